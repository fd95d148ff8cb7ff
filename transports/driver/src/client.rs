//! A client for callers who want an operation in a few lines: one value that holds the
//! transport, the runtime's clock, the core's [`Config`] and where credentials come from,
//! with a method per operation. Each adapter wraps it with its own transport and runtime
//! (`ocireg_tokio::Client`, `ocireg_async_std::Client`); the hand-driven
//! [`Machine`]s stay the way for anything else.
//!
//! Credentials are chosen per registry: those given with [`Client::credentials`], else
//! Docker's `config.json` (auths, credential helpers), else none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::stream::{Stream, StreamExt};
use futures::FutureExt;
use ocireg_core::{
    Config, Credentials, Descriptor, Digest, Event, Machine, Manifest, PlatformChoice, Reference,
};

use crate::layout::{pull_to_layout, Stats};
use crate::{Caller, Error, Runtime, Transport};

/// A registry client over transport `T` and runtime `R`.
pub struct Client<T, R> {
    transport: Arc<T>,
    runtime: Arc<R>,
    config: Config,
    credentials: Vec<(String, Credentials)>,
    docker_config: Option<PathBuf>,
}

impl<T: Transport + 'static, R: Runtime + 'static> Client<T, R> {
    /// A client with the core's default configuration that reads Docker's credentials.
    /// (To hash large blobs on threads of their own, give a [`Config`] whose `hashing` is
    /// [`crate::hashing::HashThreads`].)
    pub fn new(transport: T, runtime: R) -> Self {
        Client {
            transport: Arc::new(transport),
            runtime: Arc::new(runtime),
            config: Config::default(),
            credentials: Vec::new(),
            docker_config: crate::credentials::default_config_path(),
        }
    }

    /// Uses `config` for every operation (its credentials are replaced per registry).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Uses `credentials` for `registry` (`host[:port]` as written in references).
    pub fn credentials(mut self, registry: &str, credentials: Credentials) -> Self {
        self.credentials.push((registry.to_string(), credentials));
        self
    }

    /// The configuration for an operation on `reference`'s registry.
    fn config_for(&self, reference: &Reference) -> Result<Config, Error> {
        let registry = reference.registry();
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

    /// A pull of `reference` (`[host[:port]/]repository[:tag][@digest]`): finish it with
    /// [`PullRequest::to_layout`] or [`PullRequest::to_sink`].
    pub fn pull(&self, reference: &str) -> PullRequest<'_, T, R> {
        PullRequest {
            client: self,
            reference: reference.to_string(),
            platform: None,
        }
    }

    /// The manifest (or index) `reference` names, verified.
    pub async fn inspect(&self, reference: &str) -> Result<Inspected, Error> {
        let reference = parse(reference)?;
        let mut inspect =
            Machine::inspect(self.config_for(&reference)?, reference, self.runtime.now());
        let mut seen = Collect::default();
        crate::drive(&mut inspect, &*self.transport, &*self.runtime, &mut seen).await?;
        Inspected::from_events(seen.0).ok_or(Error::Internal("an inspect ended with no manifest"))
    }

    /// Every tag of `repository`, as the registry's pages arrive.
    pub fn tags<'a>(&'a self, repository: &str) -> impl Stream<Item = Result<String, Error>> + 'a {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let repository = repository.to_string();
        let driving = async move {
            let reference = parse(&repository)?;
            let mut pull =
                Machine::list_tags(self.config_for(&reference)?, reference, self.runtime.now());
            let mut pages = TagSender(tx);
            crate::drive(&mut pull, &*self.transport, &*self.runtime, &mut pages).await
        };
        // the pages as they come, then the drive's failure if it failed
        let failure = driving
            .into_stream()
            .filter_map(|r| futures::future::ready(r.err().map(Err)));
        futures::stream::select(rx.map(Ok), failure)
    }

    /// The referrers of the manifest `reference` names (signatures, SBOMs, …), of
    /// `artifact_type` only when given.
    pub async fn referrers(
        &self,
        reference: &str,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, Error> {
        let reference = parse(reference)?;
        let mut pull = Machine::list_referrers(
            self.config_for(&reference)?,
            reference,
            artifact_type.map(str::to_string),
            self.runtime.now(),
        );
        let mut seen = Collect::default();
        crate::drive(&mut pull, &*self.transport, &*self.runtime, &mut seen).await?;
        Ok(seen
            .0
            .into_iter()
            .flat_map(|e| match e {
                Event::Referrers { referrers, .. } => referrers,
                _ => Vec::new(),
            })
            .collect())
    }

    /// Pushes the image of the layout at `layout` named `name` (its only image when
    /// `None`) to `target`; the digest of its top manifest.
    pub async fn push(
        &self,
        layout: impl AsRef<Path>,
        name: Option<&str>,
        target: &str,
    ) -> Result<Digest, Error> {
        let target = parse(target)?;
        let (plan, source) =
            crate::push::plan_from_layout(layout.as_ref(), name, None).map_err(Error::Plan)?;
        self.push_plan(plan, &source, target, false).await
    }

    /// Copies the image `source` names (every platform) to `target`, streaming each blob
    /// that must travel from one registry to the other (mounted within one registry);
    /// the digest of its top manifest.
    pub async fn copy(&self, source: &str, target: &str) -> Result<Digest, Error> {
        let (source, target) = (parse(source)?, parse(target)?);
        let mut pull_config = self.config_for(&source)?;
        pull_config.platform = PlatformChoice::All;
        let mut plan = crate::push::plan_from_registry(
            &source,
            pull_config.clone(),
            &*self.transport,
            &*self.runtime,
        )
        .await?;
        plan.mount_from = ocireg_core::push::mount_source(&source, &target);
        let blobs = plan.blobs.clone();
        let streamed = crate::push::RegistrySource::new(
            self.transport.clone(),
            self.runtime.clone(),
            pull_config,
            source,
            blobs,
        );
        self.push_plan(plan, &streamed, target, true).await
    }

    /// Pushes `plan` with blob bytes from `source`; `streamed` when the source sends a
    /// blob from its start whatever range is asked (one request per blob, then).
    async fn push_plan(
        &self,
        plan: ocireg_core::PushPlan,
        source: &dyn crate::BlobSource,
        target: Reference,
        streamed: bool,
    ) -> Result<Digest, Error> {
        let top = plan
            .manifests
            .last()
            .map(|m| m.descriptor.digest.clone())
            .ok_or_else(|| Error::Plan(std::io::Error::other("nothing to push")))?;
        let mut config = self.config_for(&target)?;
        if streamed {
            config.upload_chunk_size = u64::MAX;
        }
        let mut push = Machine::push(config, target, plan, self.runtime.now());
        let mut upload = crate::Upload {
            source,
            observer: |_: &Event| {},
        };
        crate::drive(&mut push, &*self.transport, &*self.runtime, &mut upload).await?;
        Ok(top)
    }
}

/// A pull being set up ([`Client::pull`]).
pub struct PullRequest<'a, T, R> {
    client: &'a Client<T, R>,
    reference: String,
    platform: Option<PlatformChoice>,
}

impl<T: Transport + 'static, R: Runtime + 'static> PullRequest<'_, T, R> {
    /// Which platforms of an index (default: this host's).
    pub fn platform(mut self, platform: PlatformChoice) -> Self {
        self.platform = Some(platform);
        self
    }

    fn start(&self) -> Result<Machine, Error> {
        let reference = parse(&self.reference)?;
        let mut config = self.client.config_for(&reference)?;
        if let Some(p) = &self.platform {
            config.platform = p.clone();
        }
        Ok(Machine::pull(config, reference, self.client.runtime.now()))
    }

    /// Pulls into the OCI image layout at `dir` (created, or added to; the image is
    /// named by the reference's tag).
    pub async fn to_layout(self, dir: impl AsRef<Path>) -> Result<Pulled, Error> {
        let mut pull = self.start()?;
        let c = self.client;
        let (descriptor, stats) =
            pull_to_layout(&mut pull, &*c.transport, &*c.runtime, dir.as_ref(), &mut ()).await?;
        Ok(Pulled { descriptor, stats })
    }

    /// Pulls with every event and verified byte going to `sink`.
    pub async fn to_sink(self, sink: &mut (dyn Caller + Send)) -> Result<(), Error> {
        let mut pull = self.start()?;
        let c = self.client;
        crate::drive(&mut pull, &*c.transport, &*c.runtime, sink).await
    }
}

/// What [`PullRequest::to_layout`] pulled.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// The manifest recorded for the reference (the platform's, or the index).
    pub descriptor: Descriptor,
    /// Blobs fetched, skipped and resumed, bytes, retries.
    pub stats: Stats,
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

/// A sink that keeps every event (for machines that deliver no blob: inspect, tags,
/// referrers).
#[derive(Debug, Default)]
pub struct Collect(pub Vec<Event>);

impl Caller for Collect {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        self.0.push(event.clone());
        Ok(())
    }
}

/// Sends each page of tags on.
struct TagSender(futures::channel::mpsc::UnboundedSender<String>);

impl Caller for TagSender {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        if let Event::Tags { tags } = event {
            for t in tags {
                // a receiver that went away wants no more: the drive ends with the stream
                let _ = self.0.unbounded_send(t.clone());
            }
        }
        Ok(())
    }
}

/// Defines an adapter's `Client`: [`Client`] over the adapter's transport type
/// `$transport` (built by `$build(extra_cas)`) and runtime `$runtime` (a unit struct),
/// with `new`, `trusting`, `config` and `credentials`, and every operation through
/// `Deref`; and re-exports what a user of the adapter names (the [`adapter_prelude`](crate::adapter_prelude)).
#[macro_export]
macro_rules! adapter_client {
    ($transport:ty, $runtime:ident, $build:path, $name:literal) => {
        pub use $crate::adapter_prelude::*;

        #[doc = concat!("A registry client on ", $name, ": hyper over rustls (web PKI roots), Docker's")]
        /// credentials, the core's default configuration. Every operation of
        /// [`ocireg_driver::client::Client`] is a method (through `Deref`).
        pub struct Client(ocireg_driver::client::Client<$transport, $runtime>);

        impl Client {
            /// A client with the defaults.
            pub fn new() -> Result<Client, rustls::Error> {
                Client::trusting(&[])
            }

            /// A client that also trusts the CA certificates `extra_cas` (see
            /// [`load_certs`]).
            pub fn trusting(
                extra_cas: &[rustls::pki_types::CertificateDer<'static>],
            ) -> Result<Client, rustls::Error> {
                Ok(Client(ocireg_driver::client::Client::new(
                    $build(extra_cas)?,
                    $runtime,
                )))
            }

            /// Uses `config` for every operation.
            pub fn config(self, config: ocireg_core::Config) -> Client {
                Client(self.0.config(config))
            }

            /// Uses `credentials` for `registry` instead of Docker's.
            pub fn credentials(
                self,
                registry: &str,
                credentials: ocireg_core::Credentials,
            ) -> Client {
                Client(self.0.credentials(registry, credentials))
            }
        }

        impl std::ops::Deref for Client {
            type Target = ocireg_driver::client::Client<$transport, $runtime>;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
    };
}
