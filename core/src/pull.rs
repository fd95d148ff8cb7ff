//! The pull machine: one image reference in, requests out, verified bytes delivered.
//!
//! [`Pull`] owns every operation of a pull (manifests, blobs, token fetches), the token
//! cache and the timers. Read it top-down: the public surface (inputs, then
//! [`Pull::poll_action`]), then what happens to a response, then the decisions
//! (redirect, authenticate, retry), then request building.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response};
use url::Url;

use crate::auth::{parse_token_response, parse_www_authenticate, Credentials, Secret};
use crate::blob::{content_length, BlobDownload, EndOutcome};
use crate::digest::{Digest, Verifier};
use crate::error::{
    is_temporary_status, parse_registry_errors, redact_url, Error, StatusError, TransportError,
    TransportErrorKind, ERROR_BODY_LIMIT,
};
use crate::manifest::{Descriptor, Manifest, Platform, MANIFEST_ACCEPT};
use crate::reference::{is_loopback_host, Reference};
use crate::retry::{parse_retry_after, RetryPolicy, Rng};
use crate::time::later;

/// Identifies one HTTP exchange. Never reused within a [`Pull`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Identifies one blob of a pull.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub usize);

/// Which manifest(s) of an index to pull.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PlatformChoice {
    /// The platform this program runs on.
    #[default]
    Host,
    /// A given platform.
    Exactly(Platform),
    /// Every child of the index.
    All,
}

/// How a pull behaves. `Default` gives what a user would pick.
#[derive(Clone, Debug)]
pub struct Config {
    /// Retry policy for every request.
    pub retry: RetryPolicy,
    /// Blob downloads in flight at once.
    pub max_concurrent: usize,
    /// Largest manifest body accepted (default 4 MiB).
    pub manifest_limit: u64,
    /// Largest token response accepted (default 1 MiB).
    pub token_limit: u64,
    /// Platform selection for indexes.
    pub platform: PlatformChoice,
    /// Credentials for the registry.
    pub credentials: Credentials,
    /// Talk plain http to this registry (otherwise only loopback may fall back to it).
    pub plain_http: bool,
    /// Seed for backoff jitter.
    pub seed: u64,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Longest wait for a response head.
    pub head_timeout: Duration,
    /// Longest silence within a response body before it counts as stalled.
    pub idle_timeout: Duration,
    /// Give up when the pull is not done by then.
    pub deadline: Option<Instant>,
    /// Redirect hops per request.
    pub max_redirects: u8,
    /// Bytes a download may discard in total because ranges were ignored, as a percentage
    /// of its size.
    pub skip_budget_percent: u64,
    /// Tag list pages followed at most ([`Pull::list_tags`]); one more is an error.
    pub max_tag_pages: u32,
    /// Manifests fetched at most in one pull (indexes, their children, nested indexes).
    pub max_manifests: u32,
    /// Levels of indexes within indexes followed at most (the top manifest is level 0).
    pub max_index_depth: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            retry: RetryPolicy::default(),
            max_concurrent: 8,
            manifest_limit: 4 << 20,
            token_limit: 1 << 20,
            platform: PlatformChoice::Host,
            credentials: Credentials::Anonymous,
            plain_http: false,
            seed: 0,
            user_agent: concat!("ocireg/", env!("CARGO_PKG_VERSION")).to_string(),
            head_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            deadline: None,
            max_redirects: 10,
            skip_budget_percent: 100,
            max_tag_pages: 10_000,
            max_manifests: 10_000,
            max_index_depth: 8,
        }
    }
}

/// Why a manifest was fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestRole {
    /// The manifest the reference names.
    Top,
    /// A child of an index, chosen by platform or pulled with all platforms.
    Child,
    /// An index consulted only to choose a platform: not part of what is pulled.
    Selector,
}

#[allow(clippy::large_enum_variant)] // events are moved once, not stored
/// Something the caller may want to know. Only [`Event::BlobQueued`] asks for a reaction
/// (optional, see there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A manifest arrived and was verified.
    Manifest {
        /// Its digest (the reference's algorithm, else sha256).
        digest: Digest,
        /// Its media type.
        media_type: String,
        /// The exact bytes.
        bytes: Bytes,
        /// Parsed.
        manifest: Manifest,
        /// Why it was fetched.
        role: ManifestRole,
        /// The platform it was chosen for, for index children.
        platform: Option<Platform>,
    },
    /// The manifest to record for the reference (the image manifest, the platform's child,
    /// or the index itself when every platform is pulled).
    Resolved {
        /// Descriptor of that manifest.
        descriptor: Descriptor,
    },
    /// A blob will be downloaded. While handling this event (before polling again) the
    /// caller may call [`Pull::skip_blob`] (it already has the blob) or
    /// [`Pull::resume_blob`] (it has a verified prefix).
    BlobQueued {
        /// The blob.
        blob: BlobId,
        /// Its descriptor.
        descriptor: Descriptor,
    },
    /// A blob was downloaded completely and its size and digest verified.
    BlobDone {
        /// The blob.
        blob: BlobId,
        /// Its digest.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// A request failed and will be tried again.
    Retry {
        /// What is being fetched.
        what: String,
        /// The attempt that comes next (2 = first retry).
        attempt: u32,
        /// Delay before it.
        delay: Duration,
        /// Why.
        error: Error,
    },
    /// A blob download continues from `offset` with a range request.
    Resumed {
        /// The blob.
        blob: BlobId,
        /// Where it continues.
        offset: u64,
    },
    /// A blob download starts over from byte 0: discard what was delivered for it.
    Restarted {
        /// The blob.
        blob: BlobId,
    },
    /// A page of the repository's tags ([`Pull::list_tags`]).
    Tags {
        /// Tags on this page, in the registry's order.
        tags: Vec<String>,
    },
    /// The loopback registry does not speak TLS; plain http is used from now on.
    PlainHttpFallback {
        /// The registry host.
        host: String,
    },
}

/// What the caller must do next.
///
/// `Debug` never prints a request's body or its credentials (bodies may carry a refresh
/// token; `Authorization` values are marked sensitive and print as `Sensitive`).
#[allow(clippy::large_enum_variant)] // actions are moved once, not stored
pub enum Action {
    /// Start this HTTP exchange and report its head, chunks and end (or error) with `id`.
    Send {
        /// Identifies the exchange.
        id: RequestId,
        /// The request. The body is empty except for token POSTs.
        request: Request<Bytes>,
    },
    /// Drop this exchange; no more input for it is wanted (any that comes is ignored).
    Abort {
        /// The exchange.
        id: RequestId,
    },
    /// Append these bytes to the blob's content at `offset` (always the end so far).
    Deliver {
        /// The blob.
        blob: BlobId,
        /// Offset of the first byte.
        offset: u64,
        /// The bytes (already hashed).
        bytes: Bytes,
    },
    /// Something happened.
    Event(Event),
    /// Nothing to do until an input arrives or `until` passes.
    Wait {
        /// When to call [`Pull::poll_action`] again at the latest.
        until: Option<Instant>,
    },
    /// The pull is complete.
    Done,
    /// The pull failed. Every exchange still open was aborted before this.
    Failed(Error),
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Send { id, request } => {
                let url = Url::parse(&request.uri().to_string())
                    .map(|u| redact_url(&u))
                    .unwrap_or_default();
                f.debug_struct("Send")
                    .field("id", id)
                    .field("method", request.method())
                    .field("url", &url)
                    .field("headers", request.headers())
                    .field("body_len", &request.body().len())
                    .finish()
            }
            Action::Abort { id } => f.debug_struct("Abort").field("id", id).finish(),
            Action::Deliver {
                blob,
                offset,
                bytes,
            } => f
                .debug_struct("Deliver")
                .field("blob", blob)
                .field("offset", offset)
                .field("len", &bytes.len())
                .finish(),
            Action::Event(e) => f.debug_tuple("Event").field(e).finish(),
            Action::Wait { until } => f.debug_struct("Wait").field("until", until).finish(),
            Action::Done => f.write_str("Done"),
            Action::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Https,
    Http,
}

#[derive(Debug)]
enum OpState {
    /// A blob waiting for a concurrency slot (or for the caller's skip/resume answer).
    Queued,
    /// To be sent at the next poll.
    Ready,
    /// Waiting for the token fetch of this slot.
    WaitingToken(usize),
    /// A request is out.
    InFlight { id: RequestId, deadline: Instant },
    /// Waiting before the next attempt.
    Backoff { until: Instant },
    /// Finished.
    Done,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per operation
enum OpKind {
    Manifest {
        reference: String,
        expected: Option<Digest>,
        role: ManifestRole,
        platform: Option<Platform>,
        /// Indexes above this manifest.
        depth: u8,
    },
    Blob {
        id: BlobId,
        descriptor: Descriptor,
        dl: BlobDownload,
        embedded: Option<Bytes>,
    },
    Token {
        slot: usize,
        post: bool,
    },
    Tags,
}

/// The response being received for an op.
#[derive(Debug, Default)]
struct Incoming {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

#[derive(Debug)]
struct Op {
    kind: OpKind,
    /// Where the op starts: the registry path, or the token realm URL.
    path: String,
    /// The redirect target currently followed, if any.
    redirect: Option<Url>,
    hops: u8,
    failures: u32,
    /// Time spent in backoff so far.
    waited: Duration,
    auth_retried: bool,
    /// Authentication rounds so far (bounded by [`MAX_AUTH_ROUNDS`], never reset).
    auth_rounds: u32,
    /// Whether a refusal by a foreign origin already sent this op back to the registry.
    foreign_restarted: bool,
    /// Token generation the last request carried.
    sent_token: Option<u64>,
    /// The URL the last request went to.
    sent_url: Option<Url>,
    state: OpState,
    incoming: Incoming,
}

impl Op {
    fn new(kind: OpKind, path: String, state: OpState) -> Op {
        Op {
            kind,
            path,
            redirect: None,
            hops: 0,
            failures: 0,
            waited: Duration::ZERO,
            auth_retried: false,
            auth_rounds: 0,
            foreign_restarted: false,
            sent_token: None,
            sent_url: None,
            state,
            incoming: Incoming::default(),
        }
    }

    fn what(&self) -> String {
        match &self.kind {
            OpKind::Manifest { reference, .. } => format!("manifest {reference}"),
            OpKind::Blob { descriptor, .. } => format!("blob {}", descriptor.digest),
            OpKind::Token { .. } => "token".to_string(),
            OpKind::Tags => format!("tag list {}", self.path),
        }
    }

    fn is_active_blob(&self) -> bool {
        matches!(self.kind, OpKind::Blob { .. })
            && !matches!(self.state, OpState::Queued | OpState::Done)
    }
}

#[derive(Debug, PartialEq, Eq)]
struct TokenKey {
    realm: Url,
    service: Option<String>,
    scopes: Vec<String>,
}

#[derive(Debug)]
struct TokenSlot {
    key: TokenKey,
    token: Option<(Secret, Instant)>,
    generation: u64,
    fetching: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RegistryAuth {
    None,
    Basic,
    Bearer(usize),
}

/// Tokens are renewed this long before they expire.
const TOKEN_EARLY_RENEWAL: Duration = Duration::from_secs(5);
/// Authentication rounds (challenge answered, request sent again) one operation may
/// take over its whole life: a registry that keeps challenging cannot make it loop.
const MAX_AUTH_ROUNDS: u32 = 8;
/// A token is renewed after a day at the latest, whatever its `expires_in` says.
const TOKEN_MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What a [`Pull`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goal {
    /// The image: manifests (platform selection included) and every blob.
    Image,
    /// Only the manifest the reference names.
    TopManifest,
    /// The repository's tags, every page.
    Tags,
}

/// The pull state machine. See the crate documentation for the driving contract.
pub struct Pull {
    goal: Goal,
    config: Config,
    reference: Reference,
    scheme: Scheme,
    ops: Vec<Op>,
    blobs: Vec<usize>,
    in_flight: HashMap<RequestId, usize>,
    next_request: u64,
    out: VecDeque<Action>,
    tokens: Vec<TokenSlot>,
    auth: RegistryAuth,
    rng: Rng,
    last_now: Instant,
    seen: HashSet<Digest>,
    /// Tag list pages requested (a `Link` back to one of them is a loop).
    pages: HashSet<String>,
    /// Manifest operations created (bounded by `Config::max_manifests`).
    manifests: u32,
    result: Option<Result<(), Error>>,
}

impl std::fmt::Debug for Pull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pull")
            .field("reference", &self.reference)
            .field("ops", &self.ops.len())
            .field("in_flight", &self.in_flight.len())
            .finish()
    }
}

impl Pull {
    /// Starts a pull of `reference`.
    pub fn new(config: Config, reference: Reference, now: Instant) -> Pull {
        Pull::with_goal(Goal::Image, config, reference, now)
    }

    /// Fetches and verifies only the manifest (or index) the reference names: one
    /// [`Event::Manifest`], then `Done`. For `ocireg inspect`.
    pub fn inspect(config: Config, reference: Reference, now: Instant) -> Pull {
        Pull::with_goal(Goal::TopManifest, config, reference, now)
    }

    /// Lists the tags of the reference's repository (its tag and digest are ignored),
    /// following `Link` pagination: one [`Event::Tags`] per page, then `Done`.
    pub fn list_tags(config: Config, reference: Reference, now: Instant) -> Pull {
        Pull::with_goal(Goal::Tags, config, reference, now)
    }

    fn with_goal(goal: Goal, config: Config, reference: Reference, now: Instant) -> Pull {
        let scheme = if config.plain_http {
            Scheme::Http
        } else {
            Scheme::Https
        };
        let rng = Rng::new(config.seed);
        let mut pull = Pull {
            goal,
            config,
            scheme,
            ops: Vec::new(),
            blobs: Vec::new(),
            in_flight: HashMap::new(),
            next_request: 0,
            out: VecDeque::new(),
            tokens: Vec::new(),
            auth: RegistryAuth::None,
            rng,
            last_now: now,
            seen: HashSet::new(),
            pages: HashSet::new(),
            manifests: 0,
            result: None,
            reference,
        };
        if goal == Goal::Tags {
            let path = format!("/v2/{}/tags/list", pull.reference.repository());
            pull.pages.insert(path.clone());
            pull.ops.push(Op::new(OpKind::Tags, path, OpState::Ready));
        } else {
            let r = pull.reference.manifest_path_ref();
            let expected = pull.reference.digest().cloned();
            pull.add_manifest(r, expected, ManifestRole::Top, None, 0);
        }
        pull
    }

    /// The reference being pulled.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    // ---- inputs -------------------------------------------------------------------

    /// The response head of exchange `id` arrived.
    pub fn handle_head(&mut self, id: RequestId, head: Response<()>, now: Instant) {
        self.tick(now);
        let Some(&ix) = self.in_flight.get(&id) else {
            return;
        };
        let idle = self.config.idle_timeout;
        let op = &mut self.ops[ix];
        op.state = OpState::InFlight {
            id,
            deadline: later(now, idle),
        };
        let (parts, ()) = head.into_parts();
        op.incoming = Incoming {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: Vec::new(),
        };
        if !parts.status.is_success() {
            return;
        }
        op.auth_retried = false;
        let declared = content_length(&op.incoming.headers);
        let url = op.sent_url.as_ref().map(redact_url).unwrap_or_default();
        let checked = match &mut op.kind {
            OpKind::Manifest { .. } | OpKind::Tags => {
                check_declared("manifest", declared, self.config.manifest_limit)
            }
            OpKind::Token { .. } => check_declared("token", declared, self.config.token_limit),
            OpKind::Blob { dl, .. } => dl.on_head(parts.status, &op.incoming.headers, &url),
        };
        if let Err(e) = checked {
            self.abort_op(ix);
            self.fail(e);
        }
    }

    /// A chunk of the body of exchange `id` arrived.
    pub fn handle_chunk(&mut self, id: RequestId, chunk: Bytes, now: Instant) {
        self.tick(now);
        let Some(&ix) = self.in_flight.get(&id) else {
            return;
        };
        let idle = self.config.idle_timeout;
        let op = &mut self.ops[ix];
        op.state = OpState::InFlight {
            id,
            deadline: later(now, idle),
        };
        if !(200..300).contains(&op.incoming.status) {
            // Only the start of an error body is kept, and no more is read: at the limit
            // the exchange is dropped and the response judged on what arrived.
            let room = ERROR_BODY_LIMIT.saturating_sub(op.incoming.body.len());
            op.incoming
                .body
                .extend_from_slice(&chunk[..room.min(chunk.len())]);
            if op.incoming.body.len() >= ERROR_BODY_LIMIT {
                self.in_flight.remove(&id);
                self.out.push_back(Action::Abort { id });
                self.on_error_status(ix, now);
            }
            return;
        }
        let limit = match &mut op.kind {
            OpKind::Manifest { .. } | OpKind::Tags => ("manifest", self.config.manifest_limit),
            OpKind::Token { .. } => ("token", self.config.token_limit),
            OpKind::Blob { id: blob, dl, .. } => {
                let before = dl.offset;
                match dl.on_chunk(chunk) {
                    Ok(Some(bytes)) => self.out.push_back(Action::Deliver {
                        blob: *blob,
                        offset: before,
                        bytes,
                    }),
                    Ok(None) => {}
                    Err(e) => {
                        self.abort_op(ix);
                        self.fail(e);
                    }
                }
                return;
            }
        };
        if (op.incoming.body.len() + chunk.len()) as u64 > limit.1 {
            let e = Error::BodyTooLarge {
                what: limit.0.to_string(),
                limit: limit.1,
                declared: None,
            };
            self.abort_op(ix);
            self.fail(e);
            return;
        }
        op.incoming.body.extend_from_slice(&chunk);
    }

    /// The body of exchange `id` ended normally.
    pub fn handle_end(&mut self, id: RequestId, now: Instant) {
        self.tick(now);
        let Some(ix) = self.in_flight.remove(&id) else {
            return;
        };
        let status = self.ops[ix].incoming.status;
        if !(200..300).contains(&status) {
            self.on_error_status(ix, now);
            return;
        }
        let body = std::mem::take(&mut self.ops[ix].incoming.body);
        match &self.ops[ix].kind {
            OpKind::Manifest { .. } => self.on_manifest(ix, body),
            OpKind::Token { .. } => self.on_token(ix, &body, now),
            OpKind::Blob { .. } => self.on_blob_end(ix, now),
            OpKind::Tags => self.on_tags(ix, &body),
        }
    }

    /// Exchange `id` failed in the transport (connect, TLS, reset, early EOF).
    pub fn handle_error(&mut self, id: RequestId, error: TransportError, now: Instant) {
        self.tick(now);
        let Some(ix) = self.in_flight.remove(&id) else {
            return;
        };
        self.on_transport_error(ix, error, now);
    }

    /// Stops the pull: every open exchange is aborted and the pull ends with
    /// [`Error::Cancelled`].
    pub fn cancel(&mut self, now: Instant) {
        self.tick(now);
        self.fail(Error::Cancelled);
    }

    /// Answer to [`Event::BlobQueued`]: the caller already has this blob, verified.
    /// Returns false (and changes nothing) unless the blob has not started.
    pub fn skip_blob(&mut self, blob: BlobId) -> bool {
        match self.blobs.get(blob.0) {
            Some(&ix) if matches!(self.ops[ix].state, OpState::Queued) => {
                self.ops[ix].state = OpState::Done;
                true
            }
            _ => false,
        }
    }

    /// Answer to [`Event::BlobQueued`]: the caller has the first `verifier.len()` bytes of
    /// the blob (it hashed them into `verifier`), so the download continues there.
    /// Returns false (and changes nothing) unless the blob has not started, is fetched
    /// over the network (not embedded), and the prefix is shorter than the blob and of the
    /// same digest algorithm.
    pub fn resume_blob(&mut self, blob: BlobId, verifier: Verifier) -> bool {
        let budget_pct = self.config.skip_budget_percent;
        let Some(&ix) = self.blobs.get(blob.0) else {
            return false;
        };
        if !matches!(self.ops[ix].state, OpState::Queued) {
            return false;
        }
        let OpKind::Blob {
            dl,
            descriptor,
            embedded: None,
            ..
        } = &mut self.ops[ix].kind
        else {
            return false;
        };
        if verifier.len() >= descriptor.len()
            || verifier.algorithm() != descriptor.digest.algorithm()
        {
            return false;
        }
        let size = descriptor.len();
        *dl = BlobDownload::new(
            descriptor.digest.clone(),
            size,
            verifier,
            skip_budget(size, budget_pct),
        );
        true
    }

    // ---- output -------------------------------------------------------------------

    /// The next thing to do. Call after every input, repeatedly, until it returns
    /// [`Action::Wait`] (or `Done`/`Failed`); call again when `Wait::until` passes or a new
    /// input arrives. A call before the wait expires is harmless. After `Done` or `Failed`
    /// it keeps returning the same outcome.
    pub fn poll_action(&mut self, now: Instant) -> Action {
        self.tick(now);
        if let Some(a) = self.out.pop_front() {
            return a;
        }
        if let Some(result) = &self.result {
            return match result {
                Ok(()) => Action::Done,
                Err(e) => Action::Failed(e.clone()),
            };
        }
        self.fire_timers();
        self.start_ready(now);
        if let Some(a) = self.out.pop_front() {
            return a;
        }
        if self.result.is_none() && self.ops.iter().all(|o| matches!(o.state, OpState::Done)) {
            self.result = Some(Ok(()));
            return Action::Done;
        }
        if let Some(Err(e)) = &self.result {
            return Action::Failed(e.clone());
        }
        Action::Wait {
            until: self.next_timeout(),
        }
    }

    /// The earliest time at which [`Pull::poll_action`] has work without new input.
    pub fn next_timeout(&self) -> Option<Instant> {
        let timers = self.ops.iter().filter_map(|o| match o.state {
            OpState::InFlight { deadline, .. } => Some(deadline),
            OpState::Backoff { until } => Some(until),
            _ => None,
        });
        timers.chain(self.config.deadline).min()
    }

    // ---- time ---------------------------------------------------------------------

    fn tick(&mut self, now: Instant) {
        if now > self.last_now {
            self.last_now = now;
        }
    }

    fn fire_timers(&mut self) {
        let now = self.last_now;
        if let Some(deadline) = self.config.deadline {
            if now >= deadline {
                self.fail(Error::Deadline {
                    what: self.reference.to_string(),
                    last: Box::new(Error::Transport {
                        method: "GET".into(),
                        url: self.reference.to_string(),
                        error: TransportError::new(TransportErrorKind::Timeout, "deadline reached"),
                    }),
                });
                return;
            }
        }
        for ix in 0..self.ops.len() {
            match self.ops[ix].state {
                OpState::Backoff { until } if until <= now => {
                    self.ops[ix].state = OpState::Ready;
                }
                OpState::InFlight { id, deadline } if deadline <= now => {
                    self.in_flight.remove(&id);
                    self.out.push_back(Action::Abort { id });
                    let e = TransportError::new(
                        TransportErrorKind::Timeout,
                        "no data before the time limit",
                    );
                    self.on_transport_error(ix, e, now);
                    if self.result.is_some() {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    fn start_ready(&mut self, now: Instant) {
        let mut active = self.ops.iter().filter(|o| o.is_active_blob()).count();
        // `send` may add a token fetch at the end: a `while` sees it in the same pass.
        let mut ix = 0;
        while ix < self.ops.len() {
            if self.result.is_some() {
                return;
            }
            if matches!(self.ops[ix].state, OpState::Queued)
                && active < self.config.max_concurrent.max(1)
            {
                active += 1;
                if self.deliver_embedded(ix) {
                    active -= 1;
                    ix += 1;
                    continue;
                }
                self.ops[ix].state = OpState::Ready;
            }
            if matches!(self.ops[ix].state, OpState::Ready) {
                self.send(ix, now);
            }
            ix += 1;
        }
    }

    // ---- what a response means ----------------------------------------------------

    fn on_manifest(&mut self, ix: usize, body: Vec<u8>) {
        let OpKind::Manifest {
            expected,
            role,
            platform,
            reference,
            depth,
        } = &self.ops[ix].kind
        else {
            return;
        };
        let (expected, role, platform, reference, depth) = (
            expected.clone(),
            *role,
            platform.clone(),
            reference.clone(),
            *depth,
        );
        self.ops[ix].state = OpState::Done;
        let headers = std::mem::take(&mut self.ops[ix].incoming.headers);
        let body = Bytes::from(body);
        let algorithm = expected
            .as_ref()
            .map(|d| d.algorithm())
            .unwrap_or(crate::digest::Algorithm::Sha256);
        let digest = Digest::of(algorithm, &body);
        if let Some(exp) = &expected {
            if *exp != digest {
                return self.fail(Error::DigestMismatch {
                    what: format!("manifest {reference}"),
                    expected: exp.clone(),
                    actual: digest,
                });
            }
        }
        let served = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v.trim()).ok());
        if let Some(served) = served {
            let actual = Digest::of(served.algorithm(), &body);
            if actual != served {
                return self.fail(Error::DigestMismatch {
                    what: format!("manifest {reference} (Docker-Content-Digest)"),
                    expected: served,
                    actual,
                });
            }
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (manifest, media_type) = match Manifest::parse(content_type, &body) {
            Ok(m) => m,
            Err(e) => return self.fail(e.into()),
        };
        let descriptor = Descriptor {
            media_type: media_type.clone(),
            digest: digest.clone(),
            size: body.len() as i64,
            urls: None,
            annotations: None,
            data: None,
            platform: platform.clone(),
            artifact_type: match &manifest {
                Manifest::Image(m) => m.artifact_type.clone(),
                Manifest::Index(i) => i.artifact_type.clone(),
            },
        };
        if self.goal == Goal::TopManifest {
            self.out.push_back(Action::Event(Event::Manifest {
                digest,
                media_type,
                bytes: body,
                manifest,
                role,
                platform,
            }));
            self.out
                .push_back(Action::Event(Event::Resolved { descriptor }));
            return;
        }
        let all = self.config.platform == PlatformChoice::All;
        let event_role = match manifest {
            Manifest::Index(_) if !all => ManifestRole::Selector,
            _ => role,
        };
        self.out.push_back(Action::Event(Event::Manifest {
            digest,
            media_type,
            bytes: body,
            manifest: manifest.clone(),
            role: event_role,
            platform,
        }));
        let resolves = role == ManifestRole::Top || !all;
        match manifest {
            Manifest::Image(m) => {
                if resolves {
                    self.out
                        .push_back(Action::Event(Event::Resolved { descriptor }));
                }
                for d in m.blobs() {
                    self.add_blob(d.clone());
                }
            }
            Manifest::Index(idx) => {
                if all {
                    if role == ManifestRole::Top {
                        self.out
                            .push_back(Action::Event(Event::Resolved { descriptor }));
                    }
                    for child in &idx.manifests {
                        self.add_child(child, depth);
                    }
                } else {
                    let wanted = match &self.config.platform {
                        PlatformChoice::Exactly(p) => p.clone(),
                        _ => Platform::host(),
                    };
                    match idx.select(&wanted) {
                        Ok(child) => {
                            let child = child.clone();
                            self.add_child(&child, depth);
                        }
                        Err(e) => self.fail(e.into()),
                    }
                }
            }
        }
    }

    /// Queues a child of the index at `parent_depth`. Digests already seen are not
    /// fetched again (an index cannot make the pull loop), and the depth of nesting and
    /// the number of manifests are bounded.
    fn add_child(&mut self, child: &Descriptor, parent_depth: u8) {
        if !self.seen.insert(child.digest.clone()) {
            return;
        }
        if let Err(e) = child.validate() {
            return self.fail(e.into());
        }
        if parent_depth >= self.config.max_index_depth {
            return self.fail(Error::TooMany {
                what: format!("indexes nested in {}", self.reference),
                limit: u64::from(self.config.max_index_depth),
                hint: "the image nests indexes deeper than any client follows".into(),
            });
        }
        self.add_manifest(
            child.digest.to_string(),
            Some(child.digest.clone()),
            ManifestRole::Child,
            child.platform.clone(),
            parent_depth + 1,
        );
    }

    fn on_tags(&mut self, ix: usize, body: &[u8]) {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        self.ops[ix].state = OpState::Done;
        let list: TagList = match serde_json::from_slice(body) {
            Ok(l) => l,
            Err(e) => {
                return self.fail(Error::Manifest(crate::manifest::ManifestError::Json(
                    format!("tag list: {e}"),
                )))
            }
        };
        self.out.push_back(Action::Event(Event::Tags {
            tags: list.tags.unwrap_or_default(),
        }));
        let headers = &self.ops[ix].incoming.headers;
        let Some(next) =
            crate::link::next_link(headers.get_all(header::LINK).iter().map(|v| v.as_bytes()))
        else {
            return;
        };
        // Only pages on the registry itself are followed.
        let base = self.ops[ix]
            .sent_url
            .clone()
            .unwrap_or_else(|| self.registry_url());
        match base.join(&next) {
            Ok(u) if self.is_registry_origin(&u) && u.path().ends_with("/tags/list") => {
                let path = match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_string(),
                };
                if self.pages.len() >= self.config.max_tag_pages as usize {
                    return self.fail(Error::TooMany {
                        what: format!("tag list pages of {}", self.reference.repository()),
                        limit: u64::from(self.config.max_tag_pages),
                        hint: "raise the page bound (--max-pages) if the repository really has that many tags".into(),
                    });
                }
                if !self.pages.insert(path.clone()) {
                    return self.fail(Error::Redirect {
                        from: redact_url(&base),
                        reason: "tag list pages link back to a page already read".into(),
                    });
                }
                self.ops.push(Op::new(OpKind::Tags, path, OpState::Ready));
            }
            _ => self.fail(Error::Redirect {
                from: redact_url(&base),
                reason: format!(
                    "tag list page link {:?} leaves the registry",
                    next.chars().take(200).collect::<String>()
                ),
            }),
        }
    }

    fn on_token(&mut self, ix: usize, body: &[u8], now: Instant) {
        let OpKind::Token { slot, .. } = self.ops[ix].kind else {
            return;
        };
        self.ops[ix].state = OpState::Done;
        let date = self.ops[ix]
            .incoming
            .headers
            .get(header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .and_then(|d| d.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        match parse_token_response(body) {
            Ok(t) => {
                // A token that arrives already (nearly) expired is still used once: renewing
                // it at once would only fetch another such token, forever.
                // A lifetime the server chose is bounded both ways.
                let lifetime = t
                    .lifetime(date)
                    .clamp(TOKEN_EARLY_RENEWAL * 2, TOKEN_MAX_LIFETIME);
                let s = &mut self.tokens[slot];
                s.token = Some((t.token, later(now, lifetime)));
                s.generation += 1;
                s.fetching = false;
                for op in &mut self.ops {
                    if matches!(op.state, OpState::WaitingToken(w) if w == slot) {
                        op.state = OpState::Ready;
                    }
                }
            }
            Err(problem) => {
                let realm = redact_url(&self.tokens[slot].key.realm);
                self.fail(Error::Token { realm, problem })
            }
        }
    }

    fn on_blob_end(&mut self, ix: usize, now: Instant) {
        let OpKind::Blob {
            dl, id, descriptor, ..
        } = &mut self.ops[ix].kind
        else {
            return;
        };
        match dl.on_end() {
            Ok(EndOutcome::Complete) => {
                let ev = Event::BlobDone {
                    blob: *id,
                    digest: descriptor.digest.clone(),
                    size: descriptor.len(),
                };
                self.ops[ix].state = OpState::Done;
                self.out.push_back(Action::Event(ev));
            }
            Ok(EndOutcome::Short) => {
                let e = TransportError::new(
                    TransportErrorKind::Broken,
                    "body ended before the descriptor's size",
                );
                self.on_transport_error(ix, e, now);
            }
            Err(e) => self.fail(e),
        }
    }

    fn on_transport_error(&mut self, ix: usize, error: TransportError, now: Instant) {
        let url = self.ops[ix].sent_url.clone();
        if error.kind == TransportErrorKind::NotTls {
            if let Some(u) = &url {
                let host = host_port(u);
                // Only the registry's own URL falls back, and only while the op starts
                // there: a redirect to an https URL that does not speak TLS is an
                // ordinary failure (it consumes an attempt instead of looping).
                let at_registry = self.ops[ix].redirect.is_none();
                if u.scheme() == "https"
                    && at_registry
                    && is_loopback_host(&host)
                    && self.is_registry_origin(u)
                {
                    if self.scheme == Scheme::Https {
                        self.scheme = Scheme::Http;
                        self.out
                            .push_back(Action::Event(Event::PlainHttpFallback { host }));
                    }
                    self.ops[ix].state = OpState::Ready;
                    return;
                }
            }
        }
        let err = Error::Transport {
            method: self.method_of(ix).to_string(),
            url: url.as_ref().map(redact_url).unwrap_or_default(),
            error,
        };
        self.retry_or_fail(ix, err, None, now);
    }

    fn on_error_status(&mut self, ix: usize, now: Instant) {
        let incoming = std::mem::take(&mut self.ops[ix].incoming);
        let status = incoming.status;
        let headers = &incoming.headers;
        let url = self.ops[ix].sent_url.clone();
        let redacted = url.as_ref().map(redact_url).unwrap_or_default();
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            if let Some(loc) = headers.get(header::LOCATION) {
                return self.redirect(ix, url, loc.as_bytes(), redacted);
            }
        }
        let errors = parse_registry_errors(&incoming.body).unwrap_or_default();
        let retry_after = headers.get(header::RETRY_AFTER).and_then(|v| {
            parse_retry_after(
                v.as_bytes(),
                headers.get(header::DATE).map(|d| d.as_bytes()),
            )
        });
        let serr = StatusError {
            method: self.method_of(ix).to_string(),
            url: redacted,
            status,
            body: if errors.is_empty() {
                String::from_utf8_lossy(&incoming.body).into_owned()
            } else {
                String::new()
            },
            errors,
            retry_after,
        };
        let challenges = parse_www_authenticate(
            headers
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .map(|v| v.as_bytes()),
        );
        // The origin rule: only the registry's own refusals are answered with credentials.
        // A storage host the registry redirected to that refuses (a 401 with its own
        // realm, or a 403 for an expired signed URL) sends the request back to the
        // registry, once; its challenge is never read.
        let registry_op = !matches!(self.ops[ix].kind, OpKind::Token { .. });
        let foreign = url.as_ref().is_some_and(|u| !self.is_registry_origin(u));
        if registry_op && foreign && matches!(status, 401 | 403) {
            let origin = url.as_ref().map(origin_of).unwrap_or_default();
            return self.refused_by_foreign(ix, origin, serr);
        }
        let bearer_challenge = challenges.iter().any(|c| c.is("bearer"));
        if status == 401 || (status == 403 && bearer_challenge) {
            return self.authenticate(ix, serr, &challenges);
        }
        if status == 404 {
            if let OpKind::Token { post: true, .. } = self.ops[ix].kind {
                // OAuth2 POST not supported by this token service: fall back to GET.
                if let OpKind::Token { post, .. } = &mut self.ops[ix].kind {
                    *post = false;
                }
                self.ops[ix].state = OpState::Ready;
                return;
            }
        }
        if status == 416 {
            if let OpKind::Blob { dl, id, .. } = &mut self.ops[ix].kind {
                if !dl.restarted && dl.offset > 0 {
                    dl.restart();
                    let blob = *id;
                    self.out.push_back(Action::Event(Event::Restarted { blob }));
                    self.ops[ix].state = OpState::Ready;
                    return;
                }
            }
        }
        if is_temporary_status(status) {
            if let Some(ra) = retry_after {
                if ra > self.config.retry.max_retry_after {
                    return self.fail(Error::RetryAfterTooLong {
                        after: ra,
                        cap: self.config.retry.max_retry_after,
                        source: Box::new(serr),
                    });
                }
            }
        }
        self.retry_or_fail(ix, Error::Status(Box::new(serr)), retry_after, now);
    }

    // ---- decisions ----------------------------------------------------------------

    fn redirect(&mut self, ix: usize, from: Option<Url>, location: &[u8], redacted: String) {
        let refuse = |reason: &str| Error::Redirect {
            from: redacted.clone(),
            reason: reason.to_string(),
        };
        let op = &mut self.ops[ix];
        if op.hops >= self.config.max_redirects {
            return self.fail(refuse("too many redirects"));
        }
        let Some(from) = from else { return };
        let target = std::str::from_utf8(location)
            .ok()
            .and_then(|l| from.join(l.trim()).ok());
        let Some(target) = target else {
            return self.fail(refuse("unusable Location header"));
        };
        if !matches!(target.scheme(), "http" | "https") || target.host_str().is_none() {
            return self.fail(refuse("Location is not an http(s) URL"));
        }
        if from.scheme() == "https" && target.scheme() == "http" {
            return self.fail(refuse("redirect from https to plain http"));
        }
        op.hops += 1;
        op.redirect = Some(target);
        op.state = OpState::Ready;
    }

    /// A foreign origin (a redirect target) refused the request. Start again at the
    /// registry URL once (a signed URL may have expired), counting an attempt; the second
    /// refusal fails, naming that origin.
    fn refused_by_foreign(&mut self, ix: usize, origin: String, serr: StatusError) {
        let what = self.ops[ix].what();
        let status = serr.status;
        let err = Error::ForeignOrigin {
            what: what.clone(),
            origin,
            status,
        };
        let op = &mut self.ops[ix];
        let attempt_left = op.failures + 1 < self.config.retry.max_attempts;
        if op.foreign_restarted || !attempt_left {
            return self.fail(err);
        }
        op.foreign_restarted = true;
        op.failures += 1;
        op.redirect = None;
        op.hops = 0;
        op.state = OpState::Ready;
        let attempt = op.failures + 1;
        self.out.push_back(Action::Event(Event::Retry {
            what,
            attempt,
            delay: Duration::ZERO,
            error: err,
        }));
        self.push_resumed(ix);
    }

    fn authenticate(
        &mut self,
        ix: usize,
        serr: StatusError,
        challenges: &[crate::auth::Challenge],
    ) {
        let unauthorized = |s: &Pull, serr: StatusError| Error::Unauthorized {
            registry: s.reference.registry().to_string(),
            repository: s.reference.repository().to_string(),
            source: Box::new(serr),
        };
        if matches!(self.ops[ix].kind, OpKind::Token { .. })
            || self.ops[ix].auth_retried
            || self.ops[ix].auth_rounds >= MAX_AUTH_ROUNDS
        {
            return self.fail(unauthorized(self, serr));
        }
        self.ops[ix].auth_rounds += 1;
        let bearer = challenges
            .iter()
            .find(|c| c.is("bearer") && c.param("realm").is_some());
        if let Some(b) = bearer {
            let realm = match b
                .param("realm")
                .and_then(|r| self.registry_url().join(r).ok())
            {
                Some(r) if matches!(r.scheme(), "http" | "https") && r.host_str().is_some() => r,
                _ => {
                    return self.fail(Error::Token {
                        realm: b.param("realm").unwrap_or("").chars().take(200).collect(),
                        problem: "the realm is not an http(s) URL".into(),
                    })
                }
            };
            // A realm on another origin than the registry's is trusted because the
            // registry named it, but never over plain http to a host off this machine.
            if realm.scheme() == "http"
                && !is_loopback_host(&host_port(&realm))
                && !self.may_send_credentials(&realm)
            {
                return self.fail(Error::Insecure(format!(
                    "token realm {} is plain http",
                    redact_url(&realm)
                )));
            }
            let mut scopes: Vec<String> = b
                .param("scope")
                .unwrap_or("")
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let slot = match self.auth {
                // insufficient_scope: ask for the old scopes plus the new one
                RegistryAuth::Bearer(cur) if b.param("error") == Some("insufficient_scope") => {
                    for s in &self.tokens[cur].key.scopes {
                        if !scopes.contains(s) {
                            scopes.push(s.clone());
                        }
                    }
                    self.token_slot(realm, b.param("service"), scopes)
                }
                _ => self.token_slot(realm, b.param("service"), scopes),
            };
            let op = &mut self.ops[ix];
            if op.sent_token.is_some() {
                op.auth_retried = true;
            }
            let s = &mut self.tokens[slot];
            if op.sent_token.is_some()
                && op.sent_token == Some(s.generation)
                && self.auth == RegistryAuth::Bearer(slot)
            {
                s.token = None; // refused: renew
            }
            self.auth = RegistryAuth::Bearer(slot);
            self.ops[ix].state = OpState::Ready;
            return;
        }
        let basic = challenges.iter().any(|c| c.is("basic"));
        if basic
            && matches!(self.config.credentials, Credentials::Basic { .. })
            && self.auth != RegistryAuth::Basic
        {
            self.auth = RegistryAuth::Basic;
            self.ops[ix].auth_retried = true;
            self.ops[ix].state = OpState::Ready;
            return;
        }
        self.fail(unauthorized(self, serr))
    }

    fn retry_or_fail(
        &mut self,
        ix: usize,
        err: Error,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        if !err.is_temporary() {
            return self.fail(err);
        }
        let op = &mut self.ops[ix];
        // A download that brought new bytes before it broke resumes at once: the
        // connection broke, the server is fine. Backoff is for failures in a row.
        let progressed = matches!(&op.kind, OpKind::Blob { dl, .. } if dl.progressed());
        if progressed {
            op.failures = 0;
        }
        op.failures += 1;
        let attempts = op.failures;
        let what = op.what();
        let random = self.rng.next_u64();
        let delay = match self.config.retry.delay(attempts, retry_after, random) {
            Some(_) if progressed && retry_after.is_none() => Some(Duration::ZERO),
            d => d,
        };
        let Some(delay) = delay else {
            return self.fail(if attempts > 1 {
                Error::GaveUp {
                    what,
                    attempts,
                    last: Box::new(err),
                }
            } else {
                err
            });
        };
        let until = later(now, delay);
        if self.ops[ix].waited.saturating_add(delay) > self.config.retry.budget {
            return self.fail(Error::GaveUp {
                what: format!(
                    "{what} (retry budget of {}s spent)",
                    self.config.retry.budget.as_secs()
                ),
                attempts,
                last: Box::new(err),
            });
        }
        self.ops[ix].waited = self.ops[ix].waited.saturating_add(delay);
        if self.config.deadline.is_some_and(|d| until > d) {
            return self.fail(Error::Deadline {
                what,
                last: Box::new(err),
            });
        }
        let op = &mut self.ops[ix];
        op.redirect = None;
        op.hops = 0;
        op.state = OpState::Backoff { until };
        self.out.push_back(Action::Event(Event::Retry {
            what,
            attempt: attempts + 1,
            delay,
            error: err,
        }));
        self.push_resumed(ix);
    }

    /// Tells the caller that a blob's next attempt continues where it stopped.
    fn push_resumed(&mut self, ix: usize) {
        if let OpKind::Blob { dl, id, .. } = &self.ops[ix].kind {
            if dl.offset > 0 {
                self.out.push_back(Action::Event(Event::Resumed {
                    blob: *id,
                    offset: dl.offset,
                }));
            }
        }
    }

    fn fail(&mut self, err: Error) {
        if self.result.is_some() {
            return;
        }
        let mut ids: Vec<RequestId> = self.in_flight.drain().map(|(id, _)| id).collect();
        ids.sort();
        for id in ids {
            self.out.push_back(Action::Abort { id });
        }
        for op in &mut self.ops {
            op.state = OpState::Done;
        }
        self.result = Some(Err(err));
    }

    fn abort_op(&mut self, ix: usize) {
        if let OpState::InFlight { id, .. } = self.ops[ix].state {
            self.in_flight.remove(&id);
            self.out.push_back(Action::Abort { id });
        }
    }

    // ---- building operations and requests -----------------------------------------

    fn add_manifest(
        &mut self,
        reference: String,
        expected: Option<Digest>,
        role: ManifestRole,
        platform: Option<Platform>,
        depth: u8,
    ) {
        self.manifests += 1;
        if self.manifests > self.config.max_manifests {
            return self.fail(Error::TooMany {
                what: format!("manifests in {}", self.reference),
                limit: u64::from(self.config.max_manifests),
                hint: "pull one platform (--platform) instead of all".into(),
            });
        }
        let path = format!(
            "/v2/{}/manifests/{}",
            self.reference.repository(),
            reference
        );
        let kind = OpKind::Manifest {
            reference,
            expected,
            role,
            platform,
            depth,
        };
        self.ops.push(Op::new(kind, path, OpState::Ready));
    }

    fn add_blob(&mut self, descriptor: Descriptor) {
        if !self.seen.insert(descriptor.digest.clone()) {
            return;
        }
        let embedded = match descriptor.validate() {
            Ok(e) => e,
            Err(e) => return self.fail(e.into()),
        };
        let embedded = embedded.or_else(|| (descriptor.size == 0).then(Bytes::new));
        let id = BlobId(self.blobs.len());
        let size = descriptor.len();
        let dl = BlobDownload::new(
            descriptor.digest.clone(),
            size,
            Verifier::new(descriptor.digest.algorithm()),
            skip_budget(size, self.config.skip_budget_percent),
        );
        let path = format!(
            "/v2/{}/blobs/{}",
            self.reference.repository(),
            descriptor.digest
        );
        self.blobs.push(self.ops.len());
        self.out.push_back(Action::Event(Event::BlobQueued {
            blob: id,
            descriptor: descriptor.clone(),
        }));
        let kind = OpKind::Blob {
            id,
            descriptor,
            dl,
            embedded,
        };
        self.ops.push(Op::new(kind, path, OpState::Queued));
    }

    /// Delivers embedded (or empty) content without a request. True if it did.
    fn deliver_embedded(&mut self, ix: usize) -> bool {
        let OpKind::Blob {
            id,
            descriptor,
            embedded: Some(data),
            ..
        } = &self.ops[ix].kind
        else {
            return false;
        };
        let actual = Digest::of(descriptor.digest.algorithm(), data);
        if actual != descriptor.digest {
            let e = Error::DigestMismatch {
                what: format!("embedded data of {}", descriptor.digest),
                expected: descriptor.digest.clone(),
                actual,
            };
            self.fail(e);
            return true;
        }
        let (blob, digest, size, data) = (
            *id,
            descriptor.digest.clone(),
            descriptor.len(),
            data.clone(),
        );
        if !data.is_empty() {
            self.out.push_back(Action::Deliver {
                blob,
                offset: 0,
                bytes: data,
            });
        }
        self.out
            .push_back(Action::Event(Event::BlobDone { blob, digest, size }));
        self.ops[ix].state = OpState::Done;
        true
    }

    fn token_slot(&mut self, realm: Url, service: Option<&str>, mut scopes: Vec<String>) -> usize {
        scopes.sort();
        scopes.dedup();
        let key = TokenKey {
            realm,
            service: service.map(str::to_string),
            scopes,
        };
        if let Some(i) = self.tokens.iter().position(|t| t.key == key) {
            return i;
        }
        self.tokens.push(TokenSlot {
            key,
            token: None,
            generation: 0,
            fetching: false,
        });
        self.tokens.len() - 1
    }

    fn registry_url(&self) -> Url {
        let scheme = match self.scheme {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        Url::parse(&format!("{scheme}://{}/", self.reference.api_host()))
            .expect("validated host gives a valid URL")
    }

    fn is_registry_origin(&self, url: &Url) -> bool {
        let registry = self.registry_url();
        url.host_str().is_some()
            && host_port(url).eq_ignore_ascii_case(&host_port(&registry))
            && (url.scheme() == registry.scheme()
                || (self.reference.is_loopback() && !self.config.plain_http))
    }

    /// May credentials (a password, or a token over plain http) go to `url`?
    fn may_send_credentials(&self, url: &Url) -> bool {
        url.scheme() == "https"
            || is_loopback_host(&host_port(url))
            || (self.config.plain_http
                && host_port(url).eq_ignore_ascii_case(self.reference.api_host()))
    }

    fn method_of(&self, ix: usize) -> Method {
        match self.ops[ix].kind {
            OpKind::Token { post: true, .. } => Method::POST,
            _ => Method::GET,
        }
    }

    fn send(&mut self, ix: usize, now: Instant) {
        // A registry request under bearer auth needs a live token first.
        if !matches!(self.ops[ix].kind, OpKind::Token { .. }) {
            if let RegistryAuth::Bearer(slot) = self.auth {
                let live = self.tokens[slot]
                    .token
                    .as_ref()
                    .is_some_and(|(_, exp)| later(now, TOKEN_EARLY_RENEWAL) < *exp);
                if !live {
                    self.ops[ix].state = OpState::WaitingToken(slot);
                    if !self.tokens[slot].fetching {
                        self.start_token_fetch(slot);
                    }
                    return;
                }
            }
        }
        let url = match &self.ops[ix].redirect {
            Some(u) => u.clone(),
            None => match &self.ops[ix].kind {
                &OpKind::Token { slot, post } => match Url::parse(&self.ops[ix].path) {
                    Ok(mut u) => {
                        if !post {
                            // GET: service and one scope parameter per scope
                            let key = &self.tokens[slot].key;
                            let mut q = u.query_pairs_mut();
                            if let Some(s) = &key.service {
                                q.append_pair("service", s);
                            }
                            for s in &key.scopes {
                                q.append_pair("scope", s);
                            }
                        }
                        u
                    }
                    Err(e) => {
                        return self.fail(Error::Token {
                            realm: self.ops[ix].path.chars().take(200).collect(),
                            problem: format!("the realm is not a URL: {e}"),
                        })
                    }
                },
                _ => match self.registry_url().join(&self.ops[ix].path) {
                    Ok(u) => u,
                    Err(e) => {
                        return self.fail(Error::Redirect {
                            from: self.ops[ix].path.chars().take(200).collect(),
                            reason: format!("not a usable URL: {e}"),
                        })
                    }
                },
            },
        };
        let method = self.method_of(ix);
        let mut b = Request::builder().method(method.clone()).uri(url.as_str());
        b = b.header(header::USER_AGENT, self.config.user_agent.as_str());
        let mut body = Bytes::new();
        let mut sent_token = None;
        match &mut self.ops[ix].kind {
            OpKind::Manifest { .. } => b = b.header(header::ACCEPT, MANIFEST_ACCEPT),
            OpKind::Tags => b = b.header(header::ACCEPT, "application/json"),
            OpKind::Blob { dl, .. } => {
                dl.begin_attempt();
                if let Some(r) = dl.range() {
                    b = b.header(header::RANGE, r);
                }
            }
            OpKind::Token { slot, post } => {
                let slot = *slot;
                let post = *post;
                let (auth, form) = self.token_request_parts(slot, &url, post);
                match auth {
                    Ok(Some(a)) => b = b.header(header::AUTHORIZATION, sensitive(a.expose())),
                    Ok(None) => {}
                    Err(e) => return self.fail(e),
                }
                if let Some(form) = form {
                    b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                    body = Bytes::from(form);
                }
            }
        }
        if !matches!(self.ops[ix].kind, OpKind::Token { .. }) && self.is_registry_origin(&url) {
            match self.auth {
                RegistryAuth::Bearer(slot) if self.may_send_credentials(&url) => {
                    if let Some((t, _)) = &self.tokens[slot].token {
                        b = b.header(
                            header::AUTHORIZATION,
                            sensitive(&format!("Bearer {}", t.expose())),
                        );
                        sent_token = Some(self.tokens[slot].generation);
                    }
                }
                RegistryAuth::Basic => {
                    if !self.may_send_credentials(&url) {
                        return self.fail(Error::Insecure(format!(
                            "{} is plain http",
                            redact_url(&url)
                        )));
                    }
                    if let Some(h) = self.config.credentials.basic_header() {
                        b = b.header(header::AUTHORIZATION, sensitive(h.expose()));
                    }
                }
                _ => {}
            }
        }
        let request = match b.body(body) {
            Ok(r) => r,
            Err(e) => {
                return self.fail(Error::Redirect {
                    from: redact_url(&url),
                    reason: format!("cannot build a request: {e}"),
                })
            }
        };
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let op = &mut self.ops[ix];
        op.sent_token = sent_token;
        op.sent_url = Some(url);
        op.incoming = Incoming::default();
        op.state = OpState::InFlight {
            id,
            deadline: later(now, self.config.head_timeout),
        };
        self.in_flight.insert(id, ix);
        self.out.push_back(Action::Send { id, request });
    }

    fn start_token_fetch(&mut self, slot: usize) {
        self.tokens[slot].fetching = true;
        let post = matches!(self.config.credentials, Credentials::IdentityToken { .. });
        let kind = OpKind::Token { slot, post };
        let realm = self.tokens[slot].key.realm.to_string();
        self.ops.push(Op::new(kind, realm, OpState::Ready));
    }

    /// The Authorization header and form body of a token request.
    #[allow(clippy::type_complexity)]
    fn token_request_parts(
        &self,
        slot: usize,
        url: &Url,
        post: bool,
    ) -> (Result<Option<Secret>, Error>, Option<String>) {
        let key = &self.tokens[slot].key;
        let same_origin = url.origin() == key.realm.origin();
        if post {
            if let Credentials::IdentityToken { token } = &self.config.credentials {
                if !self.may_send_credentials(url) || !same_origin {
                    return (
                        Err(Error::Insecure(format!(
                            "{} may not receive the identity token",
                            redact_url(url)
                        ))),
                        None,
                    );
                }
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("client_id", "ocireg");
                form.append_pair("refresh_token", token.expose());
                if let Some(s) = &key.service {
                    form.append_pair("service", s);
                }
                form.append_pair("scope", &key.scopes.join(" "));
                return (Ok(None), Some(form.finish()));
            }
        }
        match self.config.credentials.basic_header() {
            Some(h) if same_origin => {
                if !self.may_send_credentials(url) {
                    return (
                        Err(Error::Insecure(format!(
                            "{} is plain http",
                            redact_url(url)
                        ))),
                        None,
                    );
                }
                (Ok(Some(h)), None)
            }
            _ => (Ok(None), None),
        }
    }
}

fn check_declared(what: &str, declared: Option<u64>, limit: u64) -> Result<(), Error> {
    match declared {
        Some(n) if n > limit => Err(Error::BodyTooLarge {
            what: what.to_string(),
            limit,
            declared: Some(n),
        }),
        _ => Ok(()),
    }
}

fn skip_budget(size: u64, percent: u64) -> u64 {
    size.saturating_mul(percent) / 100
}

fn host_port(u: &Url) -> String {
    let host = match u.host() {
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        Some(h) => h.to_string(),
        None => String::new(),
    };
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// `scheme://host[:port]` of a URL: what an error may name of a foreign origin.
fn origin_of(u: &Url) -> String {
    format!("{}://{}", u.scheme(), host_port(u))
}

fn sensitive(v: &str) -> HeaderValue {
    let mut h = HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""));
    h.set_sensitive(true);
    h
}
