//! The whole client machine under an arbitrary sequence of network inputs.
//!
//! Invariants checked after every step: no panic; the blob ledger's rules
//! ([`crate::ledger`], shared with the simulated network: deliveries contiguous and within
//! the size, `BlobDone` once with the right digest, skips and resumes consistent, no wait
//! in the past); request ids unique; blob requests in flight within the concurrency
//! limit; every drain ends within a bounded number of steps, and so does the whole run.
//!
//! The origin rule: `Authorization` (and a refresh token in a form body) goes only to the
//! registry origin or to a token realm that a response *from the registry origin* named,
//! and only over https; a bearer token only to the registry. A challenge from any other
//! origin (a redirect target) never makes its realm eligible.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use http::{header, Response};
use ocireg_core::{
    Action, BlobId, Config, Credentials, Digest, Input, Machine, Platform, Reference, RequestId,
    RetryPolicy, Secret, TransportError, TransportErrorKind,
};
use ocireg_registry::images::{image, TestImage};

use crate::ledger::Ledger;

const REGISTRY: &str = "https://reg.test";
const MAX_CONCURRENT: usize = 3;
/// Polls allowed to drain after one input.
const DRAIN_BOUND: usize = 10_000;

#[derive(Arbitrary, Debug)]
struct Script {
    basic_credentials: bool,
    identity_token: bool,
    all_platforms: bool,
    ops: Vec<Op>,
    /// What the machine is for: the image (most values), its referrers, the catalog,
    /// the tags, the top manifest alone.
    goal: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A response head for the k-th open request.
    Head {
        k: u8,
        status: Status,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// A chunk of the right content for the k-th open request (manifest or blob), from
    /// `start`, `len` bytes.
    Content { k: u8, start: u16, len: u16 },
    /// Arbitrary bytes.
    Chunk { k: u8, data: Vec<u8> },
    /// The body ends.
    End { k: u8 },
    /// The transport fails.
    Error { k: u8, kind: u8 },
    /// Time passes (milliseconds, up to about a minute).
    Time { ms: u16 },
    /// The caller answers a queued blob: skip it, or resume from a prefix.
    Answer { blob: u8, skip: bool, prefix: u16 },
    /// The caller gives up.
    Cancel,
    /// A whole well-formed answer for the k-th open request: 200 with the right headers
    /// and content, then the end (so deep sequences such as manifest → blob → redirect →
    /// challenge are reachable in a few steps).
    Whole { k: u8 },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Status {
    S200,
    S206,
    S301,
    S307,
    S401,
    S403,
    S404,
    S416,
    S429,
    S500,
    S503,
    Other(u16),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum HeaderName {
    ContentType,
    ContentLength,
    ContentRange,
    Location,
    WwwAuthenticate,
    RetryAfter,
    Date,
    DockerContentDigest,
    Link,
}

#[derive(Arbitrary, Debug)]
enum HeaderValue {
    /// Something meaningful for that header.
    Good(u8),
    /// Arbitrary text.
    Raw(String),
}

/// The content the fuzzer can reach: one image (and an index over it).
struct World {
    img: TestImage,
    index: Bytes,
}

fn world() -> World {
    let img = image(3, &[700, 3000], &Platform::host(), false);
    let index = ocireg_registry::images::index(&[(&img, &Platform::host())]);
    World { img, index }
}

fn good_value(name: HeaderName, pick: u8, w: &World, path: &str) -> String {
    match name {
        HeaderName::ContentType => [
            ocireg_core::manifest::OCI_MANIFEST,
            ocireg_core::manifest::OCI_INDEX,
            ocireg_core::manifest::DOCKER_MANIFEST,
            "application/octet-stream",
        ][pick as usize % 4]
            .to_string(),
        HeaderName::ContentLength => content_for(w, path).map(|c| c.len()).unwrap_or(pick as usize).to_string(),
        HeaderName::ContentRange => {
            let len = content_for(w, path).map(|c| c.len()).unwrap_or(100);
            let first = (pick as usize) % len.max(1);
            format!("bytes {first}-{}/{len}", len.saturating_sub(1))
        }
        HeaderName::Location => [
            "/redirected/x",
            "https://cdn.test/blob?X-Amz-Signature=secret",
            "http://reg.test/downgrade",
            "relative/path",
            "https://reg.test:444/other-port",
            "https://cdn.test/v2/x/y/blobs/elsewhere",
        ][pick as usize % 6]
            .to_string(),
        HeaderName::WwwAuthenticate => [
            r#"Bearer realm="https://auth.test/token",service="svc",scope="repository:x/y:pull""#,
            r#"Bearer realm="http://auth.test/token",service="svc""#,
            r#"Basic realm="reg""#,
            r#"Bearer realm="https://reg.test/token",error="insufficient_scope",scope="repository:z:pull""#,
            r#"Bearer error="invalid_token""#,
            r#"Bearer realm="https://cdn.test/token",service="cdn""#,
            r#"Bearer realm="/token",service="relative""#,
        ][pick as usize % 7]
            .to_string(),
        HeaderName::RetryAfter => ["0", "1", "30", "3600", "Sun, 06 Nov 1994 08:49:40 GMT"][pick as usize % 5].to_string(),
        HeaderName::Date => "Sun, 06 Nov 1994 08:49:37 GMT".to_string(),
        HeaderName::DockerContentDigest => content_for(w, path)
            .map(|c| Digest::sha256(&c).to_string())
            .unwrap_or_else(|| Digest::sha256(b"x").to_string()),
        HeaderName::Link => format!("</v2/x/y/tags/list?n=1&last={pick}>; rel=\"next\""),
    }
}

/// The right content for a request path, when the world has it.
fn content_for(w: &World, path: &str) -> Option<Bytes> {
    if path.contains("/manifests/") {
        if path.ends_with(&w.img.digest().to_string()) {
            return Some(w.img.manifest.clone());
        }
        return Some(w.index.clone());
    }
    if path.starts_with("/token") || path.contains("/token?") {
        return Some(Bytes::from_static(br#"{"token":"t0k3n","expires_in":300}"#));
    }
    w.img
        .blobs()
        .find(|b| path.ends_with(&Digest::sha256(b).to_string()))
        .cloned()
}

fn status_code(s: Status) -> u16 {
    match s {
        Status::S200 => 200,
        Status::S206 => 206,
        Status::S301 => 301,
        Status::S307 => 307,
        Status::S401 => 401,
        Status::S403 => 403,
        Status::S404 => 404,
        Status::S416 => 416,
        Status::S429 => 429,
        Status::S500 => 500,
        Status::S503 => 503,
        Status::Other(c) => 100 + c % 500,
    }
}

fn header_name(n: HeaderName) -> header::HeaderName {
    match n {
        HeaderName::ContentType => header::CONTENT_TYPE,
        HeaderName::ContentLength => header::CONTENT_LENGTH,
        HeaderName::ContentRange => header::CONTENT_RANGE,
        HeaderName::Location => header::LOCATION,
        HeaderName::WwwAuthenticate => header::WWW_AUTHENTICATE,
        HeaderName::RetryAfter => header::RETRY_AFTER,
        HeaderName::Date => header::DATE,
        HeaderName::DockerContentDigest => header::HeaderName::from_static("docker-content-digest"),
        HeaderName::Link => header::LINK,
    }
}

struct Open {
    id: RequestId,
    path: String,
    origin: String,
}

/// The invariant checker around one machine.
struct Checker {
    ledger: Ledger,
    ids: HashSet<RequestId>,
    open: Vec<Open>,
    realms: HashSet<String>,
}

fn origin(uri: &http::Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or(""),
        uri.authority().map(|a| a.as_str()).unwrap_or("")
    )
}

impl Checker {
    /// Drains the machine, checking each action. Returns true when it ended.
    fn drain(&mut self, pull: &mut Machine, now: Instant) -> bool {
        for _ in 0..DRAIN_BOUND {
            match pull.poll_action(now) {
                Action::Send { id, request } => {
                    assert!(self.ids.insert(id), "request id reused");
                    let o = origin(request.uri());
                    let to_registry = o == REGISTRY;
                    let to_realm = self.realms.contains(&o);
                    if let Some(auth) = request.headers().get(header::AUTHORIZATION) {
                        let a = auth.to_str().unwrap_or("");
                        assert!(to_registry || to_realm, "Authorization sent to {o}");
                        assert!(
                            o.starts_with("https://"),
                            "Authorization over plain http to {o}"
                        );
                        if a.starts_with("Bearer") {
                            assert!(to_registry, "a registry token sent to {o}");
                        }
                        assert!(auth.is_sensitive(), "credentials not marked sensitive");
                    }
                    if String::from_utf8_lossy(request.body()).contains("refresh_token=") {
                        assert!(to_registry || to_realm, "a refresh token sent to {o}");
                        assert!(
                            o.starts_with("https://"),
                            "a refresh token over plain http to {o}"
                        );
                    }
                    let path = request
                        .uri()
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default();
                    self.open.push(Open {
                        id,
                        path,
                        origin: o,
                    });
                    let blob_requests = self
                        .open
                        .iter()
                        .filter(|r| r.path.contains("/blobs/"))
                        .count();
                    assert!(
                        blob_requests <= MAX_CONCURRENT,
                        "{blob_requests} blob requests in flight"
                    );
                }
                Action::Abort { id } => self.open.retain(|r| r.id != id),
                action => {
                    self.ledger.observe(&action, now);
                    match action {
                        Action::Wait { .. } => return false,
                        Action::Done | Action::Failed(_) => return true,
                        _ => {}
                    }
                }
            }
        }
        panic!("the drain did not end within {DRAIN_BOUND} polls");
    }
}

/// Runs the machine on `data`.
pub fn check(data: &[u8]) {
    let Ok(input) = Script::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    run(input);
}

/// Runs the machine through `input`'s operations, checking the invariants at each step.
fn run(input: Script) {
    let w = world();
    let t0 = Instant::now();
    let mut now = t0;
    let config = Config {
        max_concurrent: MAX_CONCURRENT,
        retry: RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        },
        credentials: if input.identity_token {
            Credentials::IdentityToken {
                token: Secret::new("refresh"),
            }
        } else if input.basic_credentials {
            Credentials::Basic {
                username: "u".into(),
                password: Secret::new("p"),
            }
        } else {
            Credentials::Anonymous
        },
        platform: if input.all_platforms {
            ocireg_core::PlatformChoice::All
        } else {
            ocireg_core::PlatformChoice::Host
        },
        seed: 7,
        ..Config::default()
    };
    let reference = Reference::parse("reg.test/x/y:v1").unwrap();
    let mut pull = match input.goal {
        1 => Machine::list_referrers(config, reference, None, t0),
        2 => Machine::list_referrers(config, reference, Some("application/x".into()), t0),
        3 => Machine::catalog(config, reference, t0),
        4 => Machine::list_tags(config, reference, t0),
        5 => Machine::inspect(config, reference, t0),
        _ => Machine::pull(config, reference, t0),
    };
    let mut c = Checker {
        ledger: Ledger::default(),
        ids: HashSet::new(),
        open: Vec::new(),
        realms: HashSet::new(),
    };
    if c.drain(&mut pull, now) {
        return;
    }
    for op in input.ops.into_iter().take(500) {
        let pick = |k: u8, open: &Vec<Open>| (!open.is_empty()).then(|| k as usize % open.len());
        match op {
            Op::Head { k, status, headers } => {
                let Some(i) = pick(k, &c.open) else { continue };
                let mut b = Response::builder().status(status_code(status));
                for (n, v) in headers.into_iter().take(8) {
                    let value = match v {
                        HeaderValue::Good(p) => good_value(n, p, &w, &c.open[i].path),
                        HeaderValue::Raw(s) => s,
                    };
                    // Only the registry's own challenges name a realm that may receive
                    // credentials.
                    let from_registry = c.open[i].origin == REGISTRY;
                    if matches!(n, HeaderName::WwwAuthenticate) && from_registry {
                        for ch in ocireg_core::auth::parse_www_authenticate([value.as_bytes()]) {
                            let realm = ch
                                .param("realm")
                                .and_then(|r| url::Url::parse(REGISTRY).ok()?.join(r).ok());
                            if let Some(r) =
                                realm.and_then(|r| r.as_str().parse::<http::Uri>().ok())
                            {
                                c.realms.insert(origin(&r));
                            }
                        }
                    }
                    if let Ok(v) = http::HeaderValue::from_str(&value) {
                        b = b.header(header_name(n), v);
                    }
                }
                if let Ok(head) = b.body(()) {
                    pull.handle_input(c.open[i].id, Input::Head(head), now);
                }
            }
            Op::Content { k, start, len } => {
                let Some(i) = pick(k, &c.open) else { continue };
                let Some(content) = content_for(&w, &c.open[i].path) else {
                    continue;
                };
                let start = (start as usize).min(content.len());
                let end = (start + len as usize).min(content.len());
                pull.handle_input(c.open[i].id, Input::Chunk(content.slice(start..end)), now);
            }
            Op::Chunk { k, data } => {
                let Some(i) = pick(k, &c.open) else { continue };
                pull.handle_input(c.open[i].id, Input::Chunk(Bytes::from(data)), now);
            }
            Op::End { k } => {
                let Some(i) = pick(k, &c.open) else { continue };
                let r = c.open.remove(i);
                pull.handle_input(r.id, Input::End, now);
            }
            Op::Error { k, kind } => {
                let Some(i) = pick(k, &c.open) else { continue };
                let r = c.open.remove(i);
                let kind = [
                    TransportErrorKind::Connect,
                    TransportErrorKind::NotTls,
                    TransportErrorKind::Tls,
                    TransportErrorKind::Broken,
                    TransportErrorKind::Timeout,
                    TransportErrorKind::Other,
                ][kind as usize % 6];
                pull.handle_input(r.id, Input::Error(TransportError::new(kind, "fuzz")), now);
            }
            Op::Time { ms } => now += Duration::from_millis(u64::from(ms)),
            Op::Answer { blob, skip, prefix } => {
                let ids: Vec<BlobId> = c.ledger.queued.keys().copied().collect();
                if ids.is_empty() {
                    continue;
                }
                let id = ids[blob as usize % ids.len()];
                let (size, digest) = c.ledger.queued[&id].clone();
                if c.ledger.delivered.contains_key(&id) || c.ledger.done.contains(&id) {
                    continue;
                }
                let Some(queued) = pull.queued(id) else {
                    continue;
                };
                if skip {
                    queued.skip();
                } else if let Some(content) = w.img.blobs().find(|b| Digest::sha256(b) == digest) {
                    // a verified prefix, as a layout writer would have it
                    let n = (prefix as usize).min(content.len()).min(size as usize);
                    let mut v = ocireg_core::Verifier::new(digest.algorithm());
                    v.update(&content[..n]);
                    if queued.resume(v).is_ok() {
                        c.ledger.delivered.insert(id, content[..n].to_vec());
                    }
                }
            }
            Op::Cancel => pull.cancel(now),
            Op::Whole { k } => {
                let Some(i) = pick(k, &c.open) else { continue };
                let r = c.open.remove(i);
                let Some(content) = content_for(&w, &r.path) else {
                    pull.handle_input(
                        r.id,
                        Input::Head(Response::builder().status(404).body(()).unwrap()),
                        now,
                    );
                    pull.handle_input(r.id, Input::End, now);
                    continue;
                };
                let mut b = Response::builder()
                    .status(200)
                    .header(header::CONTENT_LENGTH, content.len());
                if r.path.contains("/manifests/") {
                    let mt = if content == w.index {
                        ocireg_core::manifest::OCI_INDEX
                    } else {
                        ocireg_core::manifest::OCI_MANIFEST
                    };
                    b = b.header(header::CONTENT_TYPE, mt);
                }
                pull.handle_input(r.id, Input::Head(b.body(()).unwrap()), now);
                pull.handle_input(r.id, Input::Chunk(content), now);
                pull.handle_input(r.id, Input::End, now);
            }
        }
        if c.drain(&mut pull, now) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leak of the trust-boundary issue as a fuzz input: the registry redirects a blob
    /// to a CDN, which answers 401 with a challenge naming its own token service. Before
    /// the origin rule the machine sent the user's Basic credentials there and this
    /// failed with "Authorization sent to https://cdn.test".
    #[test]
    fn a_redirect_targets_challenge_gets_no_credentials() {
        for (basic_credentials, identity_token) in [(true, false), (false, true)] {
            let cdn_location = || vec![(HeaderName::Location, HeaderValue::Good(5))];
            let cdn_challenge = || vec![(HeaderName::WwwAuthenticate, HeaderValue::Good(5))];
            let ops = vec![
                // the manifest; then the three blob requests are open: [b0, b1, b2]
                Op::Whole { k: 0 },
                // b0 is redirected to the CDN: [b1, b2, cdn]
                Op::Head {
                    k: 0,
                    status: Status::S307,
                    headers: cdn_location(),
                },
                Op::End { k: 0 },
                // the CDN refuses with its own realm
                Op::Head {
                    k: 2,
                    status: Status::S401,
                    headers: cdn_challenge(),
                },
                Op::End { k: 2 },
                // whatever comes next (a token request, or b0 again at the registry):
                // redirect and refuse once more
                Op::Head {
                    k: 2,
                    status: Status::S307,
                    headers: cdn_location(),
                },
                Op::End { k: 2 },
                Op::Head {
                    k: 2,
                    status: Status::S401,
                    headers: cdn_challenge(),
                },
                Op::End { k: 2 },
            ];
            run(Script {
                basic_credentials,
                identity_token,
                all_platforms: false,
                ops,
                goal: 0,
            });
        }
    }
}
