//! Reads through mirrors: the hosts a [`Client`] asks for one read, in the order the
//! core's [`HostPlan`] gives (a tag resolved on a resolve host, then everything by that
//! digest from the first pull host that serves it, the upstream last). Each host gets
//! its own configuration ([`Host::configure`]), its own credentials (looked up by its own
//! name: the upstream's are never sent to a mirror) and its own transport when its entry
//! names a CA (trusted for that host alone).
//!
//! With no host configuration for the registry, a read is one step against the upstream,
//! as written: no extra request.

use std::sync::Arc;

use std::time::Instant;

use ocireg_core::mirrors::{Host, HostPlan, Purpose};
use ocireg_core::{Config, Digest, Event, Machine, Reference};

use super::callers::Watched;
use super::{Client, Collect, Inspected};
use crate::{Caller, Error, Transport};

/// One host to run a read against: its configuration, the reference on it and the
/// transport to use.
pub(crate) struct Step {
    /// The configuration for this host (credentials, API root, headers, attempts).
    pub(crate) config: Config,
    /// The reference on this host (by digest once resolved).
    pub(crate) reference: Reference,
    /// The transport for this host.
    pub(crate) transport: Arc<dyn Transport>,
    /// The host's URL, for messages.
    pub(crate) host: url::Url,
}

/// What the walk is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// Content, by digest: a tag is resolved first (on a resolve host).
    Content,
    /// A tag listing or a tag's digest: asked of resolve hosts, as written.
    AsWritten,
}

#[allow(clippy::large_enum_variant)] // one per read
enum Plan {
    /// No host configuration: one step, the upstream.
    Upstream(Option<Step>),
    /// The hosts of `hosts.toml`.
    Hosts {
        plan: HostPlan,
        config: crate::hosts::HostsConfig,
        read: Read,
    },
}

/// The hosts for one read, and where it stands.
pub(crate) struct Walk {
    plan: Plan,
    /// The failure of the last host tried, for when none is left.
    last: Option<Error>,
}

impl Client {
    /// The host configuration of `reference`'s registry in the client's hosts
    /// directory, if any.
    fn hosts_of(&self, reference: &Reference) -> Result<Option<crate::hosts::HostsConfig>, Error> {
        match &self.hosts_dir {
            Some(dir) => crate::hosts::load(dir, reference, self.config.plain_http)
                .map_err(|e| Error::Credentials(format!("hosts configuration: {e}"))),
            None => Ok(None),
        }
    }

    /// Where a push to `target` (a copy's target too) goes: as the core's
    /// [`push_host`](ocireg_core::mirrors::push_host) picks it from the registry's
    /// `hosts.toml` (the first host with the `push` capability, else the upstream), with
    /// that host's configuration, credentials and TLS; without one, the registry itself.
    pub(crate) fn push_step(&self, target: &Reference) -> Result<Step, Error> {
        let Some(config) = self.hosts_of(target)? else {
            return Ok(Step {
                config: self.config_for(target)?,
                reference: target.clone(),
                transport: self.transport.clone(),
                host: ocireg_core::mirrors::Host::upstream(target, self.config.plain_http).url,
            });
        };
        let host = ocireg_core::mirrors::push_host(&config.mirrors, &config.upstream).clone();
        let on_host = host
            .reference(target)
            .map_err(|e| Error::Plan(std::io::Error::other(e.to_string())))?;
        if !host.upstream {
            tracing::info!("pushing {target} to {}", host.url);
        }
        self.step(&config, &host, target, on_host)
    }

    /// The hosts `reference` is read from, for `read`.
    pub(crate) fn walk(&self, reference: &Reference, read: Read) -> Result<Walk, Error> {
        let hosts = self.hosts_of(reference)?;
        let plan = match hosts {
            None => Plan::Upstream(Some(Step {
                config: self.config_for(reference)?,
                reference: reference.clone(),
                transport: self.transport.clone(),
                host: ocireg_core::mirrors::Host::upstream(reference, self.config.plain_http).url,
            })),
            Some(config) => {
                if let Some(host) = config.skip_verify.first() {
                    if !self.skip_verify_allowed {
                        return Err(Error::Plan(std::io::Error::other(format!(
                            "{}: skip_verify = true for {host} is refused: TLS verification \
                             stays on unless the client allows it (--insecure-skip-tls-verify); \
                             trust its CA with `ca` instead",
                            config.file.display()
                        ))));
                    }
                }
                let plan = HostPlan::new(
                    config.mirrors.clone(),
                    config.upstream.clone(),
                    reference.clone(),
                );
                Plan::Hosts { plan, config, read }
            }
        };
        Ok(Walk { plan, last: None })
    }

    /// The step for `host` of `config`, reading `reference` (as that host serves it) for
    /// the reference the user wrote, `written`.
    fn step(
        &self,
        config: &crate::hosts::HostsConfig,
        host: &Host,
        written: &Reference,
        reference: Reference,
    ) -> Result<Step, Error> {
        let mut c = if host.upstream {
            self.config_for(written)?
        } else {
            // a mirror's credentials are its own: looked up by its name, never the
            // upstream's
            self.config_for_registry(&host.authority())?
        };
        host.configure(&mut c, written);
        let cas = config.cas_of(host);
        let client = config.client_of(host);
        let dial = config.dial_timeout_of(host);
        let own = !cas.is_empty() && !self.skip_verify_allowed;
        let transport = if !own && client.is_none() && dial.is_none() {
            self.transport.clone()
        } else {
            self.transport_for_host(&host.authority(), &cas, client, dial)?
        };
        Ok(Step {
            config: c,
            reference,
            transport,
            host: host.url.clone(),
        })
    }

    /// The digest the manifest `step.reference` names on that host.
    async fn resolve(&self, step: &Step) -> Result<Digest, Error> {
        let mut inspect = Machine::inspect(
            step.config.clone(),
            step.reference.clone(),
            self.runtime.now(),
        );
        let mut seen = Collect::default();
        crate::drive(&mut inspect, &*step.transport, &*self.runtime, &mut seen).await?;
        Inspected::from_events(seen.0)
            .map(|i| i.digest)
            .ok_or(Error::Internal("an inspect ended with no manifest"))
    }
}

impl Client {
    /// Runs the machine `make` builds on each host `reference` is read from, in turn,
    /// until one answers, with `caller` seeing what it does. A host that fails gives way
    /// to the next as long as nothing was given to the caller yet (a page, a byte: bytes
    /// given cannot be taken back).
    pub(crate) async fn read_through(
        &self,
        reference: &Reference,
        read: Read,
        caller: &mut (dyn Caller + Send),
        make: impl Fn(Config, Reference, Instant) -> Machine,
    ) -> Result<(), Error> {
        let mut walk = self.walk(reference, read)?;
        loop {
            let step = walk.next(self).await?;
            let mut machine = make(step.config, step.reference, self.runtime.now());
            let mut watched = Watched::new(&mut *caller);
            match self.run(&mut machine, &*step.transport, &mut watched).await {
                Ok(()) => {
                    walk.done();
                    return Ok(());
                }
                Err(e) if watched.gave => return Err(e),
                Err(e) => walk.failed(e, &step.host)?,
            }
        }
    }

    /// The events of the machine `make` builds, read through the hosts
    /// ([`Client::read_through`]).
    pub(crate) async fn events_through(
        &self,
        reference: &Reference,
        read: Read,
        make: impl Fn(Config, Reference, Instant) -> Machine,
    ) -> Result<Vec<Event>, Error> {
        let mut seen = Collect::default();
        self.read_through(reference, read, &mut seen, make).await?;
        Ok(seen.0)
    }

    /// Runs the machine `make` builds against `reference`'s registry itself (writes
    /// never go to a mirror), with `caller`.
    pub(crate) async fn run_at(
        &self,
        reference: Reference,
        caller: &mut (dyn Caller + Send),
        make: impl FnOnce(Config, Reference, Instant) -> Machine,
    ) -> Result<(), Error> {
        let mut machine = make(self.config_for(&reference)?, reference, self.runtime.now());
        self.run(&mut machine, &*self.transport.clone(), caller)
            .await
    }
}

impl Walk {
    /// The next host to run the read against (resolving a tag first where the plan says
    /// so); the failure of the last host when none is left.
    pub(crate) async fn next(&mut self, client: &Client) -> Result<Step, Error> {
        loop {
            let (plan, config, read) = match &mut self.plan {
                Plan::Upstream(step) => {
                    return step.take().ok_or_else(|| self.exhausted(None));
                }
                Plan::Hosts { plan, config, read } => (plan, &*config, *read),
            };
            let Some(attempt) = plan.next_attempt() else {
                let registry = plan.reference().registry().to_string();
                return Err(self.exhausted(Some(registry)));
            };
            let host = plan.hosts()[attempt.host].clone();
            let written = plan.reference().clone();
            let step = client.step(config, &host, &written, attempt.reference)?;
            if attempt.purpose == Purpose::Pull || read == Read::AsWritten {
                tracing::info!("reading {} at {}", step.reference, step.host);
                return Ok(step);
            }
            tracing::info!("resolving {} at {}", step.reference, step.host);
            match client.resolve(&step).await {
                Ok(digest) => {
                    if let Plan::Hosts { plan, .. } = &mut self.plan {
                        plan.resolved(digest);
                    }
                }
                Err(e) => self.failed(e, &step.host)?,
            }
        }
    }

    /// The read at `host` failed with `e`: `Ok` when another host is to be tried
    /// ([`Walk::next`] gives it), else the failure that ends the read.
    pub(crate) fn failed(&mut self, e: Error, host: &url::Url) -> Result<(), Error> {
        let Plan::Hosts { plan, .. } = &mut self.plan else {
            return Err(e);
        };
        let Error::Registry(core) = &e else {
            return Err(e);
        };
        if !plan.failed(core) {
            return Err(e);
        }
        tracing::warn!("fallback: {host} failed: {core}; trying the next host");
        self.last = Some(e);
        Ok(())
    }

    /// The read succeeded: the plan is over.
    pub(crate) fn done(&mut self) {
        if let Plan::Hosts { plan, .. } = &mut self.plan {
            plan.pulled();
        }
    }

    fn exhausted(&mut self, registry: Option<String>) -> Error {
        self.last.take().unwrap_or_else(|| match registry {
            Some(r) => Error::Plan(std::io::Error::other(format!(
                "no host of {r} may serve this read (check the capabilities in hosts.toml)"
            ))),
            None => Error::Internal("a read asked for a second host of the upstream alone"),
        })
    }
}
