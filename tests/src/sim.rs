//! A simulated network: drives a [`ocireg_core::Machine`] (a pull, a push, a listing) against in-process [`FaultyRegistry`]s with a
//! fake clock, no sockets and no sleeping. Every step checks the delivery invariants.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use ocireg_core::{
    Action, BlobId, Error, Event, Input, Machine, RequestId, TransportError, TransportErrorKind,
};
use ocireg_fuzz_checks::ledger::Ledger;
use ocireg_registry::{FaultyRegistry, Reply};

/// One exchange in flight.
struct Exchange {
    id: RequestId,
    reply: Reply,
    head_sent: bool,
    sent: usize,
    ready_at: Instant,
}

/// What a simulated pull produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// `Ok` or the failure.
    pub result: Option<Result<(), Error>>,
    /// Content per blob, as delivered.
    pub blobs: BTreeMap<BlobId, Vec<u8>>,
    /// Blobs reported done.
    pub done: HashSet<BlobId>,
    /// Every event.
    pub events: Vec<Event>,
    /// Requests sent: (origin, method, path and query, had Authorization).
    pub requests: Vec<(String, String, String, bool)>,
    /// Their bodies, in the same order.
    pub bodies: Vec<Bytes>,
    /// Connection hints ([`Action::Prepare`]): origin and connections, in order. Not
    /// in the transcript (a hint changes nothing the simulated network does).
    pub prepared: Vec<(String, usize)>,
    /// Variant names of the actions, in order (a transcript).
    pub transcript: Vec<&'static str>,
    /// Simulated time the pull took.
    pub elapsed: Duration,
    /// Body bytes the servers sent.
    pub body_bytes: usize,
}

/// The simulated network.
pub struct Sim {
    /// Registries by origin (`http://host:port`).
    pub servers: HashMap<String, FaultyRegistry>,
    /// Bytes per body chunk.
    pub chunk: usize,
    /// Latency of each response head.
    pub latency: Duration,
    /// Bound on steps before declaring a livelock.
    pub max_steps: usize,
    /// The caller's blobs, by [`BlobId`], for the bodies of uploads.
    pub upload_source: Vec<Bytes>,
}

fn origin_of(uri: &http::Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map(|a| a.as_str()).unwrap_or("")
    )
}

/// An [`Action::Upload`] as the [`Action::Send`] a transport makes of it: the request
/// with the named range of the caller's blob (from `source`, by [`BlobId`]) as its body.
/// Any other action is returned as it is.
pub fn upload_as_send(action: Action, source: &[Bytes]) -> Action {
    match action {
        Action::Upload {
            id,
            request,
            blob,
            offset,
            len,
        } => {
            let body = source[blob.0].slice(offset as usize..(offset + len) as usize);
            let (parts, _) = request.into_parts();
            Action::Send {
                id,
                request: http::Request::from_parts(parts, body),
            }
        }
        other => other,
    }
}

impl Sim {
    /// One registry at `origin`.
    pub fn new(origin: &str, reg: FaultyRegistry) -> Sim {
        let mut servers = HashMap::new();
        servers.insert(origin.to_string(), reg);
        Sim {
            servers,
            chunk: 16 * 1024,
            latency: Duration::from_millis(1),
            max_steps: 1_000_000,
            upload_source: Vec::new(),
        }
    }

    /// Runs the machine (a pull or a push) to its end and checks invariants on the way.
    pub fn run(&mut self, pull: &mut Machine, t0: Instant) -> Outcome {
        let mut out = Outcome::default();
        let mut now = t0;
        let mut open: Vec<Exchange> = Vec::new();
        let mut ids = HashSet::new();
        let mut ledger = Ledger::default();
        for _ in 0..self.max_steps {
            let action = pull.poll_action(now);
            ledger.observe(&action, now);
            // An upload is a send whose body is the named range of the caller's blob.
            match &action {
                Action::Upload { .. } => out.transcript.push("Upload"),
                Action::Send { .. } => out.transcript.push("Send"),
                _ => {}
            }
            let action = upload_as_send(action, &self.upload_source);
            match action {
                Action::Send { id, request } => {
                    assert!(ids.insert(id), "request id {id:?} reused");
                    let origin = origin_of(request.uri());
                    let auth = request.headers().contains_key(http::header::AUTHORIZATION);
                    out.requests.push((
                        origin.clone(),
                        request.method().to_string(),
                        request
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        auth,
                    ));
                    out.bodies.push(request.body().clone());
                    let reply = match self.servers.get_mut(&origin) {
                        Some(s) => {
                            let path_req = {
                                let (parts, body) = request.into_parts();
                                let mut r = http::Request::from_parts(parts, body);
                                *r.uri_mut() = r
                                    .uri()
                                    .path_and_query()
                                    .map(|p| p.as_str())
                                    .unwrap_or("/")
                                    .parse()
                                    .unwrap();
                                r
                            };
                            let body = path_req.body().clone();
                            s.handle_with_body(&path_req, &body)
                        }
                        None => {
                            // nobody listens there
                            let refused = TransportError::new(
                                TransportErrorKind::Connect,
                                "connection refused",
                            );
                            pull.handle_input(id, Input::Error(refused), now);
                            continue;
                        }
                    };
                    if reply.reset {
                        let reset =
                            TransportError::new(TransportErrorKind::Broken, "connection reset");
                        pull.handle_input(id, Input::Error(reset), now);
                        continue;
                    }
                    open.push(Exchange {
                        id,
                        reply,
                        head_sent: false,
                        sent: 0,
                        ready_at: now + self.latency,
                    });
                }
                Action::Upload { .. } => unreachable!("turned into a Send above"),
                Action::Abort { id } => {
                    out.transcript.push("Abort");
                    open.retain(|e| e.id != id);
                }
                Action::Deliver { .. } => out.transcript.push("Deliver"),
                Action::Prepare {
                    origin,
                    connections,
                } => out.prepared.push((origin.to_string(), connections)),
                Action::Event(e) => {
                    out.transcript.push(match &e {
                        Event::Manifest { .. } => "Manifest",
                        Event::Resolved { .. } => "Resolved",
                        Event::BlobQueued { .. } => "BlobQueued",
                        Event::BlobFetched { .. } => "BlobFetched",
                        Event::BlobSkipped { .. } => "BlobSkipped",
                        Event::Retry { .. } => "Retry",
                        Event::DownloadResumed { .. } => "DownloadResumed",
                        Event::DownloadRestarted { .. } => "DownloadRestarted",
                        Event::PlainHttpFallback { .. } => "PlainHttpFallback",
                        Event::Tags { .. } => "Tags",
                        Event::Repositories { .. } => "Repositories",
                        Event::Referrers { .. } => "Referrers",
                        Event::ReferrersTagUpdated { .. } => "ReferrersTagUpdated",
                        Event::BlobPushed { .. } => "BlobPushed",
                        Event::ManifestPushed { .. } => "ManifestPushed",
                        Event::UploadResumed { .. } => "UploadResumed",
                        Event::UploadRestarted { .. } => "UploadRestarted",
                        _ => "Other",
                    });
                    out.events.push(e);
                }
                Action::Wait { until } => {
                    out.transcript.push("Wait");
                    // Feed the earliest ready exchange one step, else move time on.
                    let next_ready = open
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| !is_stalled(e))
                        .min_by_key(|(_, e)| e.ready_at)
                        .map(|(i, e)| (i, e.ready_at));
                    match (next_ready, until) {
                        (Some((i, at)), u) if u.is_none_or(|u| at <= u) => {
                            now = now.max(at);
                            if self.step(pull, &mut open, i, now, &mut out) {
                                continue;
                            }
                        }
                        (_, Some(u)) => {
                            now = now.max(u);
                        }
                        (None, None) => panic!("livelock: waiting forever with nothing in flight"),
                        _ => unreachable!(),
                    }
                }
                Action::Done => {
                    out.transcript.push("Done");
                    out.result = Some(Ok(()));
                    break;
                }
                Action::Failed(e) => {
                    out.transcript.push("Failed");
                    out.result = Some(Err(e));
                    break;
                }
                other => panic!("an action the simulated network does not know: {other:?}"),
            }
        }
        assert!(
            out.result.is_some(),
            "no end after {} steps",
            self.max_steps
        );
        out.elapsed = now - t0;
        out.blobs = ledger.delivered;
        out.done = ledger.done;
        out
    }

    /// Advances exchange `i` by one step. Returns true if it did something.
    fn step(
        &mut self,
        pull: &mut Machine,
        open: &mut Vec<Exchange>,
        i: usize,
        now: Instant,
        out: &mut Outcome,
    ) -> bool {
        let e = &mut open[i];
        if !e.head_sent {
            e.head_sent = true;
            let mut b = Response::builder().status(e.reply.head.status());
            for (k, v) in e.reply.head.headers() {
                b = b.header(k, v);
            }
            pull.handle_input(e.id, Input::Head(b.body(()).unwrap()), now);
            return true;
        }
        let limit = e
            .reply
            .cut_after
            .into_iter()
            .chain(e.reply.stall_after)
            .min()
            .unwrap_or(usize::MAX)
            .min(e.reply.body.len());
        if e.sent < limit {
            let n = self.chunk.min(limit - e.sent);
            let chunk: Bytes = e.reply.body.slice(e.sent..e.sent + n);
            e.sent += n;
            out.body_bytes += n;
            pull.handle_input(e.id, Input::Chunk(chunk), now);
            return true;
        }
        let id = e.id;
        if e.reply.cut_after.is_some_and(|c| c < e.reply.body.len()) {
            open.remove(i);
            let reset = TransportError::new(TransportErrorKind::Broken, "connection reset");
            pull.handle_input(id, Input::Error(reset), now);
            return true;
        }
        if e.reply.stall_after.is_some_and(|s| s < e.reply.body.len()) {
            return false;
        }
        open.remove(i);
        pull.handle_input(id, Input::End, now);
        true
    }
}

fn is_stalled(e: &Exchange) -> bool {
    e.head_sent
        && e.reply
            .stall_after
            .is_some_and(|s| s < e.reply.body.len() && e.sent >= s)
        && e.reply.cut_after.is_none_or(|c| c > e.sent)
}

/// The origin the simulated tests give their registry.
pub const ORIGIN: &str = "http://reg.test";

/// The configuration the simulated tests start from: plain http to [`ORIGIN`], retries
/// after 1 ms so fault schedules run quickly (in simulated time anyway).
pub fn test_config() -> ocireg_core::Config {
    ocireg_core::Config {
        plain_http: true,
        retry: ocireg_core::RetryPolicy {
            initial_delay: Duration::from_millis(1),
            ..ocireg_core::RetryPolicy::default()
        },
        ..ocireg_core::Config::default()
    }
}

/// The sorted digests of an image's manifest and blobs: what a pulled layout must hold.
pub fn image_digests(img: &ocireg_registry::images::TestImage) -> Vec<String> {
    let mut v: Vec<String> = img
        .blobs()
        .map(|b| ocireg_core::Digest::sha256(b).to_string())
        .chain([img.digest().to_string()])
        .collect();
    v.sort();
    v.dedup();
    v
}
