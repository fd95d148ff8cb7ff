//! The push machine under an arbitrary sequence of answers.
//!
//! Invariants checked after every step: no panic; request ids unique; an upload asks for
//! bytes within its blob; `Authorization` goes only to the registry, or to a token realm
//! a challenge from the registry named (both https here); a
//! manifest is put only once every blob was reported in the repository; each blob is
//! reported once; every drain ends within a bounded number of polls; `Done` only when
//! every blob and the tagged manifest are in.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use http::{header, Response};
use ocireg_core::{
    Action, Config, Credentials, Digest, Event, Input, Machine, Platform, Reference, RequestId,
    RetryPolicy, Secret, TransportError, TransportErrorKind,
};
use ocireg_registry::images::image;

const REGISTRY: &str = "https://reg.test";
const DRAIN_BOUND: usize = 10_000;

#[derive(Arbitrary, Debug)]
struct Script {
    basic_credentials: bool,
    small_chunks: bool,
    mount: bool,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A plausible good answer to the k-th open request (as a registry would give it).
    Good { k: u8 },
    /// An answer with this status and these headers, no body.
    Answer {
        k: u8,
        status: u16,
        headers: Vec<(Name, u8)>,
    },
    /// The transport fails.
    Error { k: u8, kind: u8 },
    /// Time passes (milliseconds).
    Time { ms: u16 },
    /// The caller gives up.
    Cancel,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Name {
    Location,
    Range,
    ChunkMin,
    DockerContentDigest,
    WwwAuthenticate,
    RetryAfter,
}

struct Open {
    id: RequestId,
    method: String,
    url: String,
}

fn value(name: Name, pick: u8) -> (header::HeaderName, String) {
    let p = pick as usize;
    match name {
        Name::Location => (
            header::LOCATION,
            [
                "/v2/x/y/blobs/uploads/s1?_state=a",
                "https://reg.test/v2/x/y/blobs/uploads/s2",
                "https://storage.test/upload?sig=secret",
                "http://reg.test/downgrade",
                "::not a url::",
            ][p % 5]
                .to_string(),
        ),
        Name::Range => (
            header::RANGE,
            ["0-0", "0-99", "0-699", "0-2999", "bytes=0-511", "junk", "0-18446744073709551615"][p % 7]
                .to_string(),
        ),
        Name::ChunkMin => (
            header::HeaderName::from_static("oci-chunk-min-length"),
            ["1", "1024", "18446744073709551615", "x"][p % 4].to_string(),
        ),
        Name::DockerContentDigest => (
            header::HeaderName::from_static("docker-content-digest"),
            Digest::sha256(&[pick]).to_string(),
        ),
        Name::WwwAuthenticate => (
            header::WWW_AUTHENTICATE,
            [r#"Basic realm="r""#, r#"Bearer realm="https://auth.test/token",service="s",scope="repository:x/y:pull,push""#][p % 2]
                .to_string(),
        ),
        Name::RetryAfter => (header::RETRY_AFTER, ["0", "2", "3600"][p % 3].to_string()),
    }
}

/// What a registry that accepts everything would answer.
fn good(r: &Open, sizes: &[(Digest, u64)]) -> Response<()> {
    // the blob a URL names by digest (`digest=` written plainly or percent-encoded)
    let named = sizes
        .iter()
        .find(|(d, _)| {
            let d = d.to_string();
            r.url.contains(&d) || r.url.contains(&d.replace(':', "%3A"))
        })
        .map(|(d, _)| d.to_string())
        .unwrap_or_default();
    let b = Response::builder();
    let b = match r.method.as_str() {
        "HEAD" => b.status(404),
        // a registry that takes a whole blob in one POST
        "POST" if r.url.contains("digest=") => b.status(201).header("docker-content-digest", named),
        "POST" => b
            .status(202)
            .header(header::LOCATION, "/v2/x/y/blobs/uploads/s1?_state=1")
            .header(header::RANGE, "0-0"),
        "PATCH" => b
            .status(202)
            .header(header::LOCATION, "/v2/x/y/blobs/uploads/s1?_state=2"),
        "GET" if r.url.contains("/uploads/") => b.status(204).header(header::RANGE, "0-0"),
        "PUT" if r.url.contains("/manifests/") => b.status(201),
        "PUT" => b.status(201).header("docker-content-digest", named),
        _ => b.status(200),
    };
    b.body(()).expect("valid head")
}

/// Runs the push machine on `data`.
pub fn check(data: &[u8]) {
    let Ok(script) = Script::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    run(script);
}

fn run(script: Script) {
    let img = image(5, &[700, 3000], &Platform::host(), false);
    let (mut plan, _) = ocireg_registry::images::push_plan(&[&img], None, &[]);
    if script.mount {
        plan.mount_from = Some("x/base".into());
    }
    let sizes: Vec<(Digest, u64)> = plan
        .blobs
        .iter()
        .map(|d| (d.digest.clone(), d.len()))
        .collect();
    let cfg = Config {
        upload_chunk_size: if script.small_chunks { 512 } else { 1 << 20 },
        max_concurrent: 2,
        retry: RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        },
        credentials: if script.basic_credentials {
            Credentials::Basic {
                username: "u".into(),
                password: Secret::new("p"),
            }
        } else {
            Credentials::Anonymous
        },
        ..Config::default()
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut push = Machine::push(cfg, Reference::parse("reg.test/x/y:v1").unwrap(), plan, t0);
    let mut c = Checker {
        open: Vec::new(),
        ids: HashSet::new(),
        pushed: HashSet::new(),
        blobs: sizes.len(),
        sizes,
        manifests: 0,
        realms: HashSet::new(),
    };
    if c.drain(&mut push, now) {
        return;
    }
    for op in script.ops.into_iter().take(300) {
        match op {
            Op::Good { k } => {
                let Some(i) = pick(k, &c.open) else { continue };
                let r = c.open.remove(i);
                push.handle_input(r.id, Input::Head(good(&r, &c.sizes)), now);
                push.handle_input(r.id, Input::End, now);
            }
            Op::Answer { k, status, headers } => {
                let Some(i) = pick(k, &c.open) else { continue };
                let r = c.open.remove(i);
                let mut b = Response::builder().status(100 + status % 500);
                for (n, p) in headers.into_iter().take(6) {
                    let (name, v) = value(n, p);
                    // only the registry's own challenge makes a realm eligible
                    if name == header::WWW_AUTHENTICATE
                        && v.contains("https://auth.test")
                        && r.url.starts_with(REGISTRY)
                    {
                        c.realms.insert("https://auth.test".to_string());
                    }
                    b = b.header(name, v);
                }
                let Ok(head) = b.body(()) else { continue };
                push.handle_input(r.id, Input::Head(head), now);
                push.handle_input(r.id, Input::End, now);
            }
            Op::Error { k, kind } => {
                let Some(i) = pick(k, &c.open) else { continue };
                let r = c.open.remove(i);
                let kind = [
                    TransportErrorKind::Connect,
                    TransportErrorKind::Broken,
                    TransportErrorKind::Timeout,
                    TransportErrorKind::Other,
                ][kind as usize % 4];
                push.handle_input(r.id, Input::Error(TransportError::new(kind, "fuzz")), now);
            }
            Op::Time { ms } => now += Duration::from_millis(u64::from(ms)),
            Op::Cancel => push.cancel(now),
        }
        if c.drain(&mut push, now) {
            return;
        }
    }
}

fn pick(k: u8, open: &[Open]) -> Option<usize> {
    (!open.is_empty()).then(|| k as usize % open.len())
}

struct Checker {
    open: Vec<Open>,
    ids: HashSet<RequestId>,
    pushed: HashSet<usize>,
    blobs: usize,
    sizes: Vec<(Digest, u64)>,
    manifests: usize,
    /// Token realms a challenge from the registry named.
    realms: HashSet<String>,
}

impl Checker {
    /// Drains the machine, checking each action. True when it ended.
    fn drain(&mut self, push: &mut Machine, now: Instant) -> bool {
        for _ in 0..DRAIN_BOUND {
            let (id, request) = match push.poll_action(now) {
                Action::Send { id, request } => (id, request.map(|_| ())),
                Action::Upload {
                    id,
                    request,
                    blob,
                    offset,
                    len,
                } => {
                    let size = self.sizes[blob.0].1;
                    assert!(
                        offset.checked_add(len).is_some_and(|e| e <= size),
                        "upload of {offset}+{len} from a {size}-byte blob"
                    );
                    (id, request.map(|_| ()))
                }
                Action::Event(Event::BlobPushed { blob, .. }) => {
                    assert!(self.pushed.insert(blob.0), "a blob reported twice");
                    continue;
                }
                Action::Event(Event::ManifestPushed { .. }) => {
                    self.manifests += 1;
                    continue;
                }
                Action::Event(_) | Action::Deliver { .. } | Action::Prepare { .. } => continue,
                Action::Abort { id } => {
                    self.open.retain(|r| r.id != id);
                    continue;
                }
                Action::Wait { until } => {
                    if let Some(u) = until {
                        assert!(u >= now, "a wait in the past");
                    }
                    return false;
                }
                Action::Done => {
                    assert_eq!(self.pushed.len(), self.blobs, "done before every blob");
                    assert!(self.manifests >= 1, "done before the manifest");
                    return true;
                }
                Action::Failed(_) => return true,
                other => panic!("an action the push checker does not know: {other:?}"),
            };
            assert!(self.ids.insert(id), "request id reused");
            let url = request.uri().to_string();
            let origin = format!(
                "{}://{}",
                request.uri().scheme_str().unwrap_or(""),
                request.uri().authority().map(|a| a.as_str()).unwrap_or("")
            );
            if request.headers().contains_key(header::AUTHORIZATION) {
                assert!(
                    origin == REGISTRY || self.realms.contains(&origin),
                    "Authorization sent to {origin}"
                );
            }
            if request.method() == http::Method::PUT && url.contains("/manifests/") {
                assert_eq!(self.pushed.len(), self.blobs, "a manifest before its blobs");
            }
            self.open.push(Open {
                id,
                method: request.method().to_string(),
                url,
            });
        }
        panic!("the drain did not end within {DRAIN_BOUND} polls");
    }
}
