//! Image references: `[host[:port]/]repository[:tag][@digest]`.
//!
//! Names are validated with the distribution-spec grammar (repository components,
//! tags of at most 128 characters, digests). Docker Hub is the default registry:
//! `docker.io` is reached at `registry-1.docker.io`, and one-component names get the
//! `library/` prefix.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Docker Hub's canonical name.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's API answers.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Every name Docker Hub goes by (references, Docker's `config.json` keys).
pub const DOCKER_HUB_NAMES: &[&str] = &[
    DOCKER_HUB,
    "index.docker.io",
    DOCKER_HUB_API,
    "registry.hub.docker.com",
];
/// Longest repository name accepted.
pub const MAX_REPOSITORY_LEN: usize = 255;

/// A parsed image reference.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a reference was refused. Each variant quotes the offending part.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Empty input.
    #[error("empty image reference")]
    Empty,
    /// Invalid registry host or port.
    #[error("invalid registry {0:?} in image reference")]
    Registry(String),
    /// Repository does not match the grammar.
    #[error("invalid repository name {0:?}: components are lowercase letters and digits separated by '.', '_', '__' or '-'")]
    Repository(String),
    /// Repository longer than 255 characters.
    #[error("repository name is {0} characters long, the limit is 255")]
    RepositoryTooLong(usize),
    /// Tag does not match the grammar.
    #[error("invalid tag {0:?}: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'")]
    Tag(String),
    /// Digest part is invalid.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

impl Reference {
    /// Parses a reference such as `alpine`, `ghcr.io/o/r:tag` or `localhost:5000/r@sha256:…`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (rest, Some(Digest::parse(d)?)),
            None => (s, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, path)) if looks_like_host(first) => (first.to_string(), path),
            _ => (DOCKER_HUB.to_string(), rest),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (path, None),
        };
        validate_registry(&registry)?;
        let mut repository = repository.to_string();
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        validate_repository(&repository)?;
        if let Some(t) = &tag {
            validate_tag(t)?;
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Builds a reference from its parts, validating each.
    pub fn new(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Reference, ReferenceError> {
        validate_registry(registry)?;
        validate_repository(repository)?;
        if let Some(t) = tag {
            validate_tag(t)?;
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry itself, with no repository: what [`Machine::catalog`](crate::Machine::catalog)
    /// lists. Its repository is empty and it prints as the registry alone.
    pub fn registry_root(registry: &str) -> Result<Reference, ReferenceError> {
        validate_registry(registry)?;
        Ok(Reference {
            registry: registry.to_string(),
            repository: String::new(),
            tag: None,
            digest: None,
        })
    }

    /// The registry as written (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The `host[:port]` to connect to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The repository (`library/alpine`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What goes into the manifest URL: the tag when there is one (so pull-through
    /// caches see tags), else the digest.
    pub fn manifest_path_ref(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(t), _) => t.clone(),
            (None, Some(d)) => d.to_string(),
            (None, None) => "latest".to_string(),
        }
    }

    /// True when the registry host is a loopback name or address.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(self.api_host())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.repository.is_empty() {
            return write!(f, "{}", self.registry);
        }
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// True for `localhost`, `127.0.0.0/8` and `[::1]`, with or without a port.
pub fn is_loopback_host(host_port: &str) -> bool {
    let host = strip_port(host_port);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

fn strip_port(host_port: &str) -> &str {
    if host_port.starts_with('[') {
        // [v6] or [v6]:port
        match host_port.find(']') {
            Some(i) => &host_port[..=i],
            None => host_port,
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, _)) => h,
            None => host_port,
        }
    }
}

fn looks_like_host(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.starts_with('[')
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

fn validate_registry(r: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::Registry(r.chars().take(200).collect());
    if r.is_empty() || r.len() > 255 || !r.is_ascii() {
        return Err(bad());
    }
    let host = strip_port(r);
    if host.len() != r.len() {
        let port = r[host.len()..].strip_prefix(':').ok_or_else(bad)?;
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if port.parse::<u32>().is_ok_and(|p| p > 65535) {
            return Err(bad());
        }
    }
    if let Some(v6) = host.strip_prefix('[') {
        let inner = v6.strip_suffix(']').ok_or_else(bad)?;
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| bad());
    }
    let ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Validates a repository name against the distribution-spec grammar.
pub fn validate_repository(name: &str) -> Result<(), ReferenceError> {
    if name.len() > MAX_REPOSITORY_LEN {
        return Err(ReferenceError::RepositoryTooLong(name.len()));
    }
    if !grammar::NAME.is_match(name) {
        return Err(ReferenceError::Repository(name.to_string()));
    }
    Ok(())
}

/// Validates a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    if grammar::TAG.is_match(tag) {
        Ok(())
    } else {
        Err(ReferenceError::Tag(tag.chars().take(200).collect()))
    }
}

/// The distribution spec's own expressions ("Pulling manifests"), anchored, so the code
/// reads against the spec.
mod grammar {
    use std::sync::LazyLock;

    use regex_lite::Regex;

    /// `<name>`: path components separated by `/`.
    const NAME_SPEC: &str =
        r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*";
    /// `<reference>` as a tag.
    const TAG_SPEC: &str = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}";

    fn anchored(spec: &str) -> Regex {
        // the expressions are constants of this file: a failure is a bug, seen by any test
        Regex::new(&format!("^(?:{spec})$")).expect("the spec's expression compiles")
    }

    pub(super) static NAME: LazyLock<Regex> = LazyLock::new(|| anchored(NAME_SPEC));
    pub(super) static TAG: LazyLock<Regex> = LazyLock::new(|| anchored(TAG_SPEC));
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn docker_hub_defaults() {
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.repository(), "library/alpine");
        assert_eq!(r.tag(), Some("latest"));
        let r = Reference::parse("docker.io/foo/bar:1.2").unwrap();
        assert_eq!(r.repository(), "foo/bar");
        assert_eq!(r.tag(), Some("1.2"));
    }

    #[test]
    fn hosts_ports_digests() {
        let r = Reference::parse(&format!("localhost:5000/a/b:v1@{D}")).unwrap();
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "a/b");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert!(r.is_loopback());
        assert_eq!(r.manifest_path_ref(), "v1");
        let r = Reference::parse(&format!("127.0.0.1:5000/a@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_path_ref(), D);
        assert!(r.is_loopback());
        let r = Reference::parse("[::1]:5000/x").unwrap();
        assert!(r.is_loopback());
        assert!(!Reference::parse("ghcr.io/x").unwrap().is_loopback());
        assert_eq!(
            Reference::parse("ghcr.io/x:y").unwrap().to_string(),
            "ghcr.io/x:y"
        );
    }

    #[test]
    fn bad_parts_are_quoted() {
        let e = Reference::parse("ghcr.io/UPPER/x").unwrap_err();
        assert_eq!(e, ReferenceError::Repository("UPPER/x".into()));
        assert!(e.to_string().contains("UPPER/x"));
        assert!(matches!(
            Reference::parse("x:-bad"),
            Err(ReferenceError::Tag(_))
        ));
        assert!(matches!(
            Reference::parse("x@sha256:abc"),
            Err(ReferenceError::Digest(_))
        ));
        assert!(matches!(
            Reference::parse("host:99999/x"),
            Err(ReferenceError::Registry(_))
        ));
        assert!(matches!(Reference::parse(""), Err(ReferenceError::Empty)));
        // found by the `reference` fuzz target: non-ASCII after a bracketed host
        assert!(Reference::parse("[\u{ff}\u{ec}::1]\u{ec}2]:5\u{cd}x/y").is_err());
        assert!(Reference::parse("[::1]x/y").is_err());
        let long = format!("h.io/{}", "a".repeat(256));
        assert!(matches!(
            Reference::parse(&long),
            Err(ReferenceError::RepositoryTooLong(256))
        ));
    }

    #[test]
    fn repository_grammar() {
        for ok in ["a", "a.b", "a_b", "a__b", "a---b", "a/b/c", "0"] {
            assert!(validate_repository(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a..b", "a___b", "-a", "a-", "a/", "/a", "a//b", "a._b", "A",
        ] {
            assert!(validate_repository(bad).is_err(), "{bad}");
        }
        assert!(validate_tag(&"a".repeat(128)).is_ok());
        assert!(validate_tag(&"a".repeat(129)).is_err());
        assert!(validate_tag(".a").is_err());
        assert!(validate_tag("_a.b-C").is_ok());
    }
}
