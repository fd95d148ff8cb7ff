//! The machines that write to a registry under an arbitrary sequence of answers: a
//! push (of an image, or of an artifact with a `subject`, which edits its subject's
//! referrers tag), the deletes, `tag`, a manifest `PUT` of its own and the credentials
//! check.
//!
//! Invariants checked after every step: no panic; request ids unique; an upload asks for
//! bytes within its blob; `Authorization` goes only to the registry, or to a token realm
//! a challenge from the registry named (both https here); a
//! manifest is put only once every blob was reported in the repository; each blob is
//! reported once; every drain ends within a bounded number of polls; `Done` only when
//! every blob and the tagged manifest are in (pushes); a `DELETE` names only what the
//! machine was asked to delete; writes of a referrers tag are bounded, and one after a
//! read that gave an entity tag carries it (`If-Match`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use http::{header, Response};
use ocireg_core::manifest::{OCI_INDEX, OCI_MANIFEST};
use ocireg_core::{
    Action, Config, Credentials, Digest, Event, Input, Machine, Platform, Reference, RequestId,
    RetryPolicy, Secret, TransportError, TransportErrorKind,
};
use ocireg_registry::images::{artifact, image};

const REGISTRY: &str = "https://reg.test";
const DRAIN_BOUND: usize = 10_000;

#[derive(Arbitrary, Debug)]
struct Script {
    goal: Goal,
    basic_credentials: bool,
    small_chunks: bool,
    mount: bool,
    ops: Vec<Op>,
}

/// Which machine runs.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Image,
    /// An artifact whose subject is the image: its referrers tag is edited.
    Referrer,
    DeleteManifest,
    DeleteTag,
    DeleteBlob,
    Tag,
    PutManifest,
    Login,
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
    ETag,
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
        Name::ETag => (
            header::ETAG,
            ["\"sha256:1\"", "W/\"weak\"", "no quotes", "\"\""][p % 4].to_string(),
        ),
    }
}

/// What a registry that accepts everything (and has no referrers API) would answer:
/// the head and the body.
fn good(r: &Open, sizes: &[(Digest, u64)], manifest: &Bytes) -> (Response<()>, Bytes) {
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
    let mut body = Bytes::new();
    let b = match r.method.as_str() {
        // the referrers tag holds an empty index
        "GET" if r.url.contains(REFERRERS_TAG_PATH) => {
            body = Bytes::from_static(EMPTY_INDEX.as_bytes());
            b.status(200)
                .header(header::CONTENT_TYPE, OCI_INDEX)
                .header(header::ETAG, INDEX_ETAG)
        }
        "GET" | "HEAD" if r.url.contains("/manifests/") => {
            if r.method == "GET" {
                body = manifest.clone();
            }
            b.status(200)
                .header(header::CONTENT_TYPE, OCI_MANIFEST)
                .header(
                    "docker-content-digest",
                    Digest::sha256(manifest).to_string(),
                )
        }
        "GET" if r.url.contains("/referrers/") => b.status(404),
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
        "DELETE" => b.status(202),
        _ => b.status(200),
    };
    let b = b.header(header::CONTENT_LENGTH, body.len());
    (b.body(()).expect("valid head"), body)
}

/// Runs the machines on `data`.
pub fn check(data: &[u8]) {
    let Ok(script) = Script::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    run(script);
}

/// The path of the test image's referrers tag.
const REFERRERS_TAG_PATH: &str = "/manifests/sha256-";
/// What its tag holds, and its entity tag.
const EMPTY_INDEX: &str =
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
const INDEX_ETAG: &str = "\"sha256:index\"";

fn run(script: Script) {
    let img = image(5, &[700, 3000], &Platform::host(), false);
    let sig = artifact(
        "application/vnd.example.sig",
        &[("sig", b"signed")],
        Some(&img),
    );
    let pushed = match script.goal {
        Goal::Referrer => &sig,
        _ => &img,
    };
    let (mut plan, _) = ocireg_registry::images::push_plan(&[pushed], None, &[]);
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
    let tag_writes = cfg.referrers_tag_rounds * cfg.retry.max_attempts;
    let t0 = Instant::now();
    let mut now = t0;
    let at = |r: &str| Reference::parse(&format!("reg.test/x/y{r}")).unwrap();
    let digest = img.digest();
    let (mut machine, deletes) = match script.goal {
        Goal::Image | Goal::Referrer => (Machine::push(cfg, at(":v1"), plan.clone(), t0), None),
        Goal::DeleteManifest => (
            Machine::delete_manifest(cfg, at(&format!("@{digest}")), t0),
            Some(format!("/manifests/{digest}")),
        ),
        Goal::DeleteTag => (
            Machine::delete_tag(cfg, at(":v1"), t0),
            Some("/manifests/v1".to_string()),
        ),
        Goal::DeleteBlob => {
            let blob = &sizes[0].0;
            (
                Machine::delete_blob(cfg, at(&format!("@{blob}")), t0),
                Some(format!("/blobs/{blob}")),
            )
        }
        Goal::Tag => (Machine::tag(cfg, at(":v1"), vec!["v2".into()], t0), None),
        Goal::PutManifest => {
            let m = plan.manifests[0].clone();
            (
                Machine::put_manifest(cfg, at(":v1"), m, vec!["v2".into()], t0),
                None,
            )
        }
        Goal::Login => (Machine::check_credentials(cfg, at(""), t0), None),
    };
    let pushes = matches!(script.goal, Goal::Image | Goal::Referrer);
    let mut c = Checker {
        open: Vec::new(),
        ids: HashSet::new(),
        pushed: HashSet::new(),
        blobs: if pushes { sizes.len() } else { 0 },
        sizes,
        manifests: 0,
        must_push: pushes,
        realms: HashSet::new(),
        deletes,
        tag_read: None,
        tag_writes: 0,
        max_tag_writes: tag_writes,
    };
    if c.drain(&mut machine, now) {
        return;
    }
    for op in script.ops.into_iter().take(300) {
        match op {
            Op::Good { k } => {
                let Some(i) = pick(k, &c.open) else { continue };
                let r = c.open.remove(i);
                let (head, body) = good(&r, &c.sizes, &img.manifest);
                if r.method == "GET" && r.url.contains(REFERRERS_TAG_PATH) {
                    c.tag_read = Some(Some(INDEX_ETAG.to_string()));
                }
                machine.handle_input(r.id, Input::Head(head), now);
                if !body.is_empty() {
                    machine.handle_input(r.id, Input::Chunk(body), now);
                }
                machine.handle_input(r.id, Input::End, now);
            }
            Op::Answer { k, status, headers } => {
                let Some(i) = pick(k, &c.open) else { continue };
                let r = c.open.remove(i);
                let status = 100 + status % 500;
                if r.method == "GET" && r.url.contains(REFERRERS_TAG_PATH) && status == 404 {
                    c.tag_read = Some(None);
                }
                let mut b = Response::builder().status(status);
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
                machine.handle_input(r.id, Input::Head(head), now);
                machine.handle_input(r.id, Input::End, now);
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
                machine.handle_input(r.id, Input::Error(TransportError::new(kind, "fuzz")), now);
            }
            Op::Time { ms } => now += Duration::from_millis(u64::from(ms)),
            Op::Cancel => machine.cancel(now),
        }
        if c.drain(&mut machine, now) {
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
    /// Whether `Done` needs every blob and a manifest in (a push).
    must_push: bool,
    /// Token realms a challenge from the registry named.
    realms: HashSet<String>,
    /// The path a `DELETE` may end with (none: no `DELETE` at all).
    deletes: Option<String>,
    /// The last answer to a read of the referrers tag: absent (`404`), or its entity tag.
    tag_read: Option<Option<String>>,
    tag_writes: u32,
    max_tag_writes: u32,
}

impl Checker {
    /// Drains the machine, checking each action. True when it ended.
    fn drain(&mut self, machine: &mut Machine, now: Instant) -> bool {
        for _ in 0..DRAIN_BOUND {
            let (id, request) = match machine.poll_action(now) {
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
                    assert!(
                        !self.must_push || self.manifests >= 1,
                        "done before the manifest"
                    );
                    return true;
                }
                Action::Failed(_) => return true,
                other => panic!("an action the checker does not know: {other:?}"),
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
            if request.method() == http::Method::DELETE {
                let path = request.uri().path();
                assert!(
                    self.deletes
                        .as_ref()
                        .is_some_and(|d| path.ends_with(d.as_str())),
                    "DELETE {path} by a machine asked to delete {:?}",
                    self.deletes
                );
            }
            if request.method() == http::Method::PUT && url.contains(REFERRERS_TAG_PATH) {
                self.tag_writes += 1;
                assert!(
                    self.tag_writes <= self.max_tag_writes,
                    "unbounded tag writes"
                );
                let hs = request.headers();
                match &self.tag_read {
                    Some(Some(etag)) => assert_eq!(
                        hs.get(header::IF_MATCH).map(|v| v.as_bytes()),
                        Some(etag.as_bytes()),
                        "a referrers tag write without the entity tag it read"
                    ),
                    Some(None) => assert_eq!(
                        hs.get(header::IF_NONE_MATCH).map(|v| v.as_bytes()),
                        Some(&b"*"[..]),
                        "a referrers tag created without If-None-Match"
                    ),
                    None => panic!("a referrers tag written before it was read"),
                }
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
