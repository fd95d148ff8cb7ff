//! Pulling through mirrors (containerd's host configuration): which host to ask next.
//!
//! A registry may have mirrors, each allowed to *resolve* (turn a tag into a digest) or
//! to *pull* (serve content by digest), tried in order before the upstream registry
//! itself, which can do both. A tag is resolved on the first resolve host that answers;
//! everything is then pulled by that digest from the first pull host that serves it, so
//! every byte from any host is verified against the digest the resolving host gave.
//! A host that fails (cannot be reached, answers 5xx or 404, serves content that does not
//! match its digest, refuses access) gives way to the next one; the last one's failure
//! is the pull's.
//!
//! [`HostPlan`] is that decision, pure and driven by the caller: it names the next
//! attempt, hears how each ended, and says when to stop. Each attempt is an ordinary
//! [`Machine`](crate::Machine) against that host, configured by [`Host::configure`] (its API
//! root, its headers, its scheme); credentials are the caller's to choose per host, and
//! never travel from one host to another.

use url::Url;

use crate::digest::Digest;
use crate::error::Error;
use crate::reference::{Reference, ReferenceError};
use crate::Config;

/// Attempts per request on a mirror at most.
pub const MIRROR_ATTEMPTS: u32 = 2;

/// What a host may be asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Content by digest (manifests and blobs).
    pub pull: bool,
    /// A tag's digest.
    pub resolve: bool,
    /// Pushes (blobs and manifests): the upstream's, and a host's that says so (a
    /// mirror should not be pushed to unless its entry asks for it).
    pub push: bool,
}

impl Capabilities {
    /// Reads: a mirror that says nothing.
    pub const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: false,
    };

    /// Everything: the upstream registry (`server`, else the registry itself).
    pub const UPSTREAM: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: true,
    };
}

/// The host a push (or a copy's target) goes to, as containerd picks it: the first host
/// of the file with the `push` capability, else the upstream.
pub fn push_host<'a>(mirrors: &'a [Host], upstream: &'a Host) -> &'a Host {
    mirrors
        .iter()
        .find(|h| h.capabilities.push)
        .unwrap_or(upstream)
}

/// One host to try: a mirror, or the upstream registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// `scheme://host[:port]`, with the path of its API root when it has one.
    pub url: Url,
    /// What it may be asked.
    pub capabilities: Capabilities,
    /// The URL's path is the API root itself (containerd's `override_path`); otherwise
    /// `/v2` is appended to it.
    pub override_path: bool,
    /// Extra headers on every request to it.
    pub headers: Vec<(String, String)>,
    /// The upstream registry (the reference's own), not a mirror.
    pub upstream: bool,
}

impl Host {
    /// The reference's own registry, over https unless `plain_http`.
    pub fn upstream(reference: &Reference, plain_http: bool) -> Host {
        let scheme = if plain_http { "http" } else { "https" };
        Host {
            url: Url::parse(&format!("{scheme}://{}/", reference.api_host()))
                .expect("a validated registry is a valid host"),
            capabilities: Capabilities::UPSTREAM,
            override_path: false,
            headers: Vec::new(),
            upstream: true,
        }
    }

    /// `host[:port]` of the host: what its credentials are looked up by.
    pub fn authority(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }

    /// `reference` as this host serves it: the same repository, tag and digest, on this
    /// host (the upstream keeps the reference as written).
    pub fn reference(&self, reference: &Reference) -> Result<Reference, ReferenceError> {
        if self.upstream {
            return Ok(reference.clone());
        }
        Reference::new(
            &self.authority(),
            reference.repository(),
            reference.tag(),
            reference.digest().cloned(),
        )
    }

    /// Sets what differs per host in `config` for a pull of `reference` (as the user
    /// wrote it): plain http for an `http://` host, the API root, the extra headers, the
    /// `ns=<reference's registry>` query containerd sends to a mirror, and at most two
    /// attempts per request on a mirror (the next host is the better retry).
    pub fn configure(&self, config: &mut Config, reference: &Reference) {
        if self.upstream {
            return;
        }
        config.api_query = vec![("ns".to_string(), reference.registry().to_string())];
        config.retry.max_attempts = config.retry.max_attempts.min(MIRROR_ATTEMPTS);
        config.plain_http = self.url.scheme() == "http";
        let path = self.url.path().trim_end_matches('/');
        config.api_root = if self.override_path {
            if path.is_empty() { "/" } else { path }.to_string()
        } else {
            format!("{path}/v2")
        };
        config.headers = self.headers.clone();
    }
}

/// What an attempt is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Fetch the manifest the tag names, for its digest ([`Machine::inspect`](crate::Machine::inspect)).
    Resolve,
    /// Pull the image by digest.
    Pull,
}

/// One attempt: a host, what for, and the reference to use there.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// Index of the host in the plan's list.
    pub host: usize,
    /// What for.
    pub purpose: Purpose,
    /// The reference on that host (by digest once resolved).
    pub reference: Reference,
}

/// Where a pull through hosts stands.
#[derive(Clone, Debug)]
enum Stage {
    /// Resolving the tag; `next` is the next host to look at.
    Resolve { next: usize },
    /// Pulling by `digest`; `next` is the next host to look at.
    Pull { digest: Digest, next: usize },
    /// Over (done, or out of hosts).
    Over,
}

/// The order of hosts for one pull, and when to stop. See the module documentation.
#[derive(Clone, Debug)]
pub struct HostPlan {
    hosts: Vec<Host>,
    reference: Reference,
    stage: Stage,
    /// The attempt in progress.
    current: Option<Attempt>,
}

impl HostPlan {
    /// A plan for `reference` over `mirrors` (in order), then its upstream registry.
    pub fn new(mirrors: Vec<Host>, upstream: Host, reference: Reference) -> HostPlan {
        let mut hosts = mirrors;
        hosts.retain(|h| !h.upstream);
        hosts.push(upstream);
        let stage = match reference.digest() {
            Some(d) => Stage::Pull {
                digest: d.clone(),
                next: 0,
            },
            None => Stage::Resolve { next: 0 },
        };
        HostPlan {
            hosts,
            reference,
            stage,
            current: None,
        }
    }

    /// The reference as the user wrote it (what [`Host::configure`] takes).
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The hosts, in the order they are tried (the upstream last).
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The next attempt, or `None` when the pull is over (done, or every host failed).
    pub fn next_attempt(&mut self) -> Option<Attempt> {
        let (purpose, next) = match &self.stage {
            Stage::Resolve { next } => (Purpose::Resolve, *next),
            Stage::Pull { next, .. } => (Purpose::Pull, *next),
            Stage::Over => return None,
        };
        let able = |h: &Host| match purpose {
            Purpose::Resolve => h.capabilities.resolve,
            Purpose::Pull => h.capabilities.pull,
        };
        let Some(i) = (next..self.hosts.len()).find(|&i| able(&self.hosts[i])) else {
            self.stage = Stage::Over;
            return None;
        };
        let wanted = match &self.stage {
            Stage::Pull { digest, .. } => Reference::new(
                self.reference.registry(),
                self.reference.repository(),
                None,
                Some(digest.clone()),
            )
            .ok()?,
            _ => self.reference.clone(),
        };
        let reference = self.hosts[i].reference(&wanted).ok()?;
        let attempt = Attempt {
            host: i,
            purpose,
            reference,
        };
        self.current = Some(attempt.clone());
        Some(attempt)
    }

    /// The resolve attempt found `digest`: pulling starts, from the first pull host.
    pub fn resolved(&mut self, digest: Digest) {
        self.current = None;
        self.stage = Stage::Pull { digest, next: 0 };
    }

    /// The pull attempt succeeded: the plan is over.
    pub fn pulled(&mut self) {
        self.current = None;
        self.stage = Stage::Over;
    }

    /// The current attempt failed with `error`: true when another host is to be tried
    /// ([`HostPlan::next_attempt`] names it), false when `error` is the pull's.
    pub fn failed(&mut self, error: &Error) -> bool {
        let Some(current) = self.current.take() else {
            return false;
        };
        if !falls_back(error) {
            self.stage = Stage::Over;
            return false;
        }
        match &mut self.stage {
            Stage::Resolve { next } | Stage::Pull { next, .. } => *next = current.host + 1,
            Stage::Over => return false,
        }
        let more = match &self.stage {
            Stage::Resolve { next } => self.hosts[*next..].iter().any(|h| h.capabilities.resolve),
            Stage::Pull { next, .. } => self.hosts[*next..].iter().any(|h| h.capabilities.pull),
            Stage::Over => false,
        };
        if !more {
            self.stage = Stage::Over;
        }
        more
    }
}

/// Whether a host that failed with `error` gives way to the next host: it could not be
/// reached, answered an error status (5xx, 404, a refusal), or served something wrong
/// (a digest or size mismatch, a manifest that does not parse, a hostile size). Not when
/// the whole operation ran out of time or was cancelled, or the reference itself is bad:
/// no other host changes those.
pub fn falls_back(error: &Error) -> bool {
    match error {
        Error::Cancelled | Error::Deadline { .. } | Error::Reference(_) => false,
        Error::GaveUp { last, .. } => falls_back(last),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{StatusError, TransportError, TransportErrorKind};

    fn mirror(url: &str, pull: bool, resolve: bool) -> Host {
        Host {
            url: Url::parse(url).unwrap(),
            capabilities: Capabilities {
                pull,
                resolve,
                push: false,
            },
            override_path: false,
            headers: vec![],
            upstream: false,
        }
    }

    /// A push goes to the first host that says `push`, else to the upstream.
    #[test]
    fn a_push_goes_to_the_first_host_that_takes_pushes() {
        let r = Reference::parse("reg.test/a/b:v1").unwrap();
        let upstream = Host::upstream(&r, false);
        let mut readers = vec![
            mirror("https://m1.test", true, true),
            mirror("https://m2.test", true, false),
        ];
        assert_eq!(push_host(&readers, &upstream), &upstream);
        let mut pushes = mirror("https://m3.test", false, false);
        pushes.capabilities.push = true;
        readers.push(pushes.clone());
        readers.push(Host {
            capabilities: Capabilities::UPSTREAM,
            ..mirror("https://m4.test", true, true)
        });
        assert_eq!(push_host(&readers, &upstream), &pushes);
        assert!(upstream.capabilities.push);
    }

    fn not_found() -> Error {
        Error::Status(Box::new(StatusError {
            method: "GET".into(),
            url: "u".into(),
            status: 404,
            errors: vec![],
            body: String::new(),
            retry_after: None,
            rate_limit: None,
        }))
    }

    fn down() -> Error {
        Error::Transport {
            method: "GET".into(),
            url: "u".into(),
            error: TransportError::new(TransportErrorKind::Connect, "refused"),
        }
    }

    #[test]
    fn a_tag_resolves_on_resolve_hosts_then_pulls_by_digest_on_pull_hosts() {
        let r = Reference::parse("docker.io/library/alpine:3").unwrap();
        let mut plan = HostPlan::new(
            vec![
                mirror("http://pull-only:5000", true, false),
                mirror("https://both.example/base/", true, true),
            ],
            Host::upstream(&r, false),
            r,
        );
        let a = plan.next_attempt().unwrap();
        assert_eq!((a.host, a.purpose), (1, Purpose::Resolve));
        assert_eq!(a.reference.to_string(), "both.example/library/alpine:3");
        assert!(plan.failed(&down()));
        let a = plan.next_attempt().unwrap();
        assert_eq!((a.host, a.purpose), (2, Purpose::Resolve), "the upstream");
        assert_eq!(a.reference.to_string(), "docker.io/library/alpine:3");
        let d = Digest::sha256(b"m");
        plan.resolved(d.clone());
        let a = plan.next_attempt().unwrap();
        assert_eq!((a.host, a.purpose), (0, Purpose::Pull));
        assert_eq!(a.reference.digest(), Some(&d));
        assert_eq!(a.reference.registry(), "pull-only:5000");
        assert!(plan.failed(&not_found()));
        assert_eq!(plan.next_attempt().unwrap().host, 1);
        assert!(plan.failed(&Error::DigestMismatch {
            what: "blob".into(),
            expected: d.clone(),
            actual: Digest::sha256(b"x"),
        }));
        assert_eq!(plan.next_attempt().unwrap().host, 2);
        assert!(!plan.failed(&not_found()), "the upstream was the last");
        assert!(plan.next_attempt().is_none());
    }

    #[test]
    fn the_deadline_and_a_cancel_end_the_plan_at_once() {
        let r = Reference::parse("reg.test/a/b:v1").unwrap();
        for end in [
            Error::Cancelled,
            Error::Deadline {
                what: "pull".into(),
                last: Some(Box::new(down())),
            },
        ] {
            let mut plan = HostPlan::new(
                vec![mirror("http://m:1", true, true)],
                Host::upstream(&r, false),
                r.clone(),
            );
            plan.next_attempt().unwrap();
            assert!(!plan.failed(&end));
            assert!(plan.next_attempt().is_none());
        }
    }

    #[test]
    fn a_host_configures_scheme_api_root_headers_and_namespace() {
        let hub = Reference::parse("library/alpine:3").unwrap();
        let mut cfg = Config::default();
        let mut h = mirror("http://m:5000/proxy/", true, true);
        h.headers = vec![("x-a".into(), "1".into())];
        h.configure(&mut cfg, &hub);
        assert!(cfg.plain_http);
        assert_eq!(cfg.api_root, "/proxy/v2");
        assert_eq!(cfg.headers, [("x-a".to_string(), "1".to_string())]);
        assert_eq!(cfg.api_query, [("ns".to_string(), "docker.io".to_string())]);
        h.override_path = true;
        h.configure(&mut cfg, &hub);
        assert_eq!(cfg.api_root, "/proxy");
        let mut cfg = Config::default();
        mirror("https://m", true, true).configure(&mut cfg, &hub);
        assert!(!cfg.plain_http);
        assert_eq!(cfg.api_root, "/v2");
        // the upstream is asked as it is
        let mut cfg = Config::default();
        Host::upstream(&hub, false).configure(&mut cfg, &hub);
        assert!(cfg.api_query.is_empty());
    }
}
