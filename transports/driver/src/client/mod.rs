//! A client for callers who want an operation in a few lines: one value that holds the
//! transport, the runtime's clock, the core's [`Config`], where credentials come from and
//! where mirrors are configured, with a method per operation. Each adapter wraps it with
//! its own transport and runtime (`ocireg_tokio::Client`, `ocireg_smol::Client`,
//! `ocireg_async_std::Client`); the hand-driven [`Machine`]s stay the way for anything
//! else.
//!
//! Credentials are chosen per registry: those given with [`Client::credentials`], else
//! Docker's `config.json` (auths, credential helpers), else none. Mirrors
//! ([`Client::hosts_dir`], containerd's `hosts.toml`) serve every read: pull, inspect,
//! manifests, tags, referrers, blob reads and the source side of a copy; a mirror gets
//! its own credentials, never the upstream's.
//!
//! One file per kind of work: `hosts.rs` (which host serves a read), `pull.rs` (pulls
//! into a layout, with referrers), `copy.rs` (push and copy), `blob.rs` (manifests and
//! blobs as values and streams), `admin.rs` (digests, tags, deletes, credential checks),
//! `artifact.rs` (artifacts from files), `index.rs` (indexes from manifests),
//! `callers.rs` (the callers the operations drive with), `adapter.rs` (the adapters'
//! `Client` macro).

use std::path::PathBuf;
use std::sync::Arc;

use futures::stream::{Stream, StreamExt};
use futures::FutureExt;
use ocireg_core::{Config, Credentials, Descriptor, Digest, Event, Machine, Manifest, Reference};

use crate::{Caller, Error, Runtime, Transport};

mod adapter;
mod admin;
mod artifact;
mod blob;
mod callers;
mod copy;
mod hosts;
mod index;
mod pull;

pub use artifact::{ArtifactFile, ArtifactRequest, Content, MAX_ARTIFACT_FILES};
pub use blob::{BlobStream, BlockingRead, ManifestRead};
pub use copy::{layout_arg, layout_dir, Copied, CopyRequest, PushRequest};
pub use index::IndexRequest;
pub use pull::{PullRequest, Pulled};

pub use callers::Collect;
use callers::{Both, TagSender};
use hosts::Read;

/// Builds a transport that, for the host it names, also trusts its CA certificates and
/// shows its client certificate (every other host as the client's own transport does):
/// how a client reaches a mirror whose `hosts.toml` entry names a `ca` or a `client`.
pub type TransportFactory =
    Arc<dyn Fn(&crate::tls::HostTls) -> Result<Arc<dyn Transport>, rustls::Error> + Send + Sync>;

/// A registry client over a transport and a runtime.
#[derive(Clone)]
pub struct Client {
    transport: Arc<dyn Transport>,
    runtime: Arc<dyn Runtime>,
    config: Config,
    credentials: Vec<(String, Credentials)>,
    docker_config: Option<PathBuf>,
    hosts_dir: Option<PathBuf>,
    factory: Option<TransportFactory>,
    skip_verify_allowed: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("hosts_dir", &self.hosts_dir)
            .field("docker_config", &self.docker_config)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with the core's default configuration that reads Docker's credentials.
    /// (To hash large blobs on threads of their own, give a [`Config`] whose `hashing` is
    /// [`crate::hashing::HashThreads`].)
    pub fn new(transport: impl Transport + 'static, runtime: impl Runtime + 'static) -> Self {
        Client::from_parts(Arc::new(transport), Arc::new(runtime))
    }

    /// [`Client::new`] over a shared transport and runtime.
    pub fn from_parts(transport: Arc<dyn Transport>, runtime: Arc<dyn Runtime>) -> Self {
        Client {
            transport,
            runtime,
            config: Config::default(),
            credentials: Vec::new(),
            docker_config: crate::credentials::default_config_path(),
            hosts_dir: None,
            factory: None,
            skip_verify_allowed: false,
        }
    }

    /// Uses `config` for every operation (its credentials are replaced per registry).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Uses `credentials` for `registry` (`host[:port]` as written in references, or a
    /// mirror's). They go to that registry alone: never to a mirror of it.
    pub fn credentials(mut self, registry: &str, credentials: Credentials) -> Self {
        self.credentials.push((registry.to_string(), credentials));
        self
    }

    /// Reads Docker's credentials from this `config.json` instead of the default one
    /// (`$DOCKER_CONFIG`, `~/.docker`); `None` reads none.
    pub fn docker_config(mut self, path: Option<PathBuf>) -> Self {
        self.docker_config = path;
        self
    }

    /// Reads through the mirrors configured in `dir` as containerd does
    /// (`<dir>/<registry>/hosts.toml`, else `<dir>/_default/hosts.toml`).
    pub fn hosts_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.hosts_dir = Some(dir.into());
        self
    }

    /// How to build a transport trusting a mirror's `ca` (the adapters set it).
    pub fn transport_factory(mut self, factory: TransportFactory) -> Self {
        self.factory = Some(factory);
        self
    }

    /// Lets a `hosts.toml` entry say `skip_verify = true` (refused otherwise): the
    /// transport given to this client must then itself skip verification.
    pub fn allow_skip_verify(mut self, allow: bool) -> Self {
        self.skip_verify_allowed = allow;
        self
    }

    /// The runtime's clock.
    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    /// Docker's `config.json` of this client, or the error that it has none.
    fn docker_config_path(&self) -> Result<&std::path::Path, Error> {
        self.docker_config.as_deref().ok_or_else(|| {
            Error::Credentials(
                "no Docker config directory: set DOCKER_CONFIG or HOME (or Client::docker_config)"
                    .into(),
            )
        })
    }

    /// The configuration for an operation on `reference`'s registry.
    fn config_for(&self, reference: &Reference) -> Result<Config, Error> {
        self.config_for_registry(reference.registry())
    }

    /// The configuration for an operation on `registry` (`host[:port]`), with its
    /// credentials.
    fn config_for_registry(&self, registry: &str) -> Result<Config, Error> {
        let mut config = self.config.clone();
        config.credentials = match self.credentials.iter().find(|(r, _)| r == registry) {
            Some((_, c)) => c.clone(),
            None => match &self.docker_config {
                Some(path) => crate::credentials::lookup(path, registry)
                    .map_err(|e| Error::Credentials(e.to_string()))?
                    .unwrap_or(Credentials::Anonymous),
                None => Credentials::Anonymous,
            },
        };
        Ok(config)
    }

    /// A transport that, for `authority` alone, trusts the CA files `cas` besides the
    /// client's roots and shows the client certificate `client` (certificate and key
    /// files).
    fn transport_for_host(
        &self,
        authority: &str,
        cas: &[PathBuf],
        client: Option<(PathBuf, PathBuf)>,
        connect_timeout: Option<std::time::Duration>,
    ) -> Result<Arc<dyn Transport>, Error> {
        let Some(factory) = &self.factory else {
            return Err(Error::Plan(std::io::Error::other(
                "a host names a CA, a client certificate or a dial_timeout but this client \
                 cannot build a transport for it",
            )));
        };
        let mut certs = Vec::new();
        for f in cas {
            certs.extend(
                crate::tls::load_certs(f)
                    .map_err(|e| Error::Credentials(format!("{}: {e}", f.display())))?,
            );
        }
        let identity = match client {
            Some((cert, key)) => {
                Some(crate::tls::ClientIdentity::load(&cert, &key).map_err(Error::Credentials)?)
            }
            None => None,
        };
        let host = crate::tls::HostTls {
            authority: authority.to_string(),
            cas: certs,
            identity,
            connect_timeout,
        };
        factory(&host).map_err(|e| Error::Credentials(format!("TLS setup: {e}")))
    }

    /// Drives `machine` over `transport`, with `caller`.
    async fn run(
        &self,
        machine: &mut Machine,
        transport: &dyn Transport,
        caller: &mut (dyn Caller + Send),
    ) -> Result<(), Error> {
        crate::drive(machine, transport, &*self.runtime, caller).await
    }

    /// The manifest (or index) `reference` names, verified.
    pub async fn inspect(&self, reference: &str) -> Result<Inspected, Error> {
        let reference = parse(reference)?;
        let events = self
            .events_through(&reference, Read::Content, Machine::inspect)
            .await?;
        Inspected::from_events(events).ok_or(Error::Internal("an inspect ended with no manifest"))
    }

    /// Every tag of `repository`, as the registry's pages arrive. Through mirrors, a
    /// host that fails before its first page gives way to the next.
    pub fn tags<'a>(&'a self, repository: &str) -> impl Stream<Item = Result<String, Error>> + 'a {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let repository = repository.to_string();
        let driving = async move {
            let mut pages = TagSender { to: tx };
            self.tags_observed(&repository, &mut pages).await
        };
        // the pages as they come, then the drive's failure if it failed
        let failure = driving
            .into_stream()
            .filter_map(|r| futures::future::ready(r.err().map(Err)));
        futures::stream::select(rx.map(Ok), failure)
    }

    /// Lists the tags of `repository`: one [`Event::Tags`] per page to `observer`, as
    /// they arrive. Through mirrors, a host that fails before its first page gives way to
    /// the next.
    pub async fn tags_observed(
        &self,
        repository: &str,
        observer: &mut (dyn Caller + Send),
    ) -> Result<(), Error> {
        let reference = parse(repository)?;
        self.read_through(&reference, Read::AsWritten, observer, Machine::list_tags)
            .await
    }

    /// Lists the repositories of `registry` (`host[:port]`; the catalog is the
    /// registry's own, never a mirror's): one [`Event::Repositories`] per page to
    /// `observer`. Many registries refuse it (401, 403, 404 or `UNSUPPORTED`).
    pub async fn catalog_observed(
        &self,
        registry: &str,
        observer: &mut (dyn Caller + Send),
    ) -> Result<(), Error> {
        let root = Reference::registry_root(registry)
            .map_err(|e| Error::Registry(ocireg_core::Error::Reference(e)))?;
        self.run_at(root, observer, Machine::catalog).await
    }

    /// The referrers of the manifest `reference` names (signatures, SBOMs, …), of
    /// `artifact_type` only when given.
    pub async fn referrers(
        &self,
        reference: &str,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, Error> {
        self.referrers_observed(reference, artifact_type, &mut ())
            .await
    }

    /// [`Client::referrers`], with each page ([`Event::Referrers`]: its subject and
    /// where the list came from) shown to `observer` as it arrives.
    pub async fn referrers_observed(
        &self,
        reference: &str,
        artifact_type: Option<&str>,
        observer: &mut (dyn Caller + Send),
    ) -> Result<Vec<Descriptor>, Error> {
        let reference = parse(reference)?;
        self.list_referrers(
            &reference,
            artifact_type.map(str::to_string),
            false,
            observer,
        )
        .await
    }

    /// Every referrer of the manifest `reference` names, and theirs (signatures of
    /// SBOMs), breadth first, each once (the core's walk, bounded).
    pub async fn referrers_closure(&self, reference: &str) -> Result<Vec<Descriptor>, Error> {
        let reference = parse(reference)?;
        self.list_referrers(&reference, None, true, &mut ()).await
    }

    async fn list_referrers(
        &self,
        reference: &Reference,
        artifact_type: Option<String>,
        closure: bool,
        observer: &mut (dyn Caller + Send),
    ) -> Result<Vec<Descriptor>, Error> {
        let mut seen = Collect::default();
        let mut both = Both {
            first: &mut seen,
            second: observer,
        };
        let list = |config, at, now| match closure {
            true => Machine::list_referrers_closure(config, at, now),
            false => Machine::list_referrers(config, at, artifact_type.clone(), now),
        };
        self.read_through(reference, Read::Content, &mut both, list)
            .await?;
        let mut found: Vec<Descriptor> = Vec::new();
        for e in seen.0 {
            if let Event::Referrers { referrers, .. } = e {
                for d in referrers {
                    if !found.iter().any(|f| f.digest == d.digest) {
                        found.push(d);
                    }
                }
            }
        }
        Ok(found)
    }
}

/// What [`Client::inspect`] fetched.
#[derive(Clone, Debug)]
pub struct Inspected {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its bytes, as served.
    pub bytes: bytes::Bytes,
    /// Parsed.
    pub manifest: Manifest,
}

impl Inspected {
    /// The first manifest among the events of an inspect machine.
    pub fn from_events(events: Vec<Event>) -> Option<Inspected> {
        events.into_iter().find_map(|e| match e {
            Event::Manifest {
                digest,
                media_type,
                bytes,
                manifest,
                ..
            } => Some(Inspected {
                digest,
                media_type,
                bytes,
                manifest,
            }),
            _ => None,
        })
    }
}

fn parse(reference: &str) -> Result<Reference, Error> {
    Reference::parse(reference).map_err(|e| Error::Registry(ocireg_core::Error::Reference(e)))
}
