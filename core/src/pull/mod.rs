//! The pull machine: one image reference in, requests out, verified bytes delivered.
//!
//! [`Pull`] owns every operation of a pull (manifests, blobs, token fetches), the token
//! cache and the timers. This file is the engine's loop: inputs (`handle_*`), then
//! [`Pull::poll_action`] and the timers. One file per concern beside it:
//! - `types.rs`: the public surface (ids, [`Config`], [`Event`], [`Action`]);
//! - `op.rs`: an operation (one HTTP exchange with a purpose) and its attempt history;
//! - `origin.rs`: the origin model (the registry's origin, who may carry a secret);
//! - `session.rs`: the auth session (token slots, challenges, the credential a request
//!   carries);
//! - `request.rs`: building and sending one request;
//! - `recovery.rs`: what a failed exchange means, as one pure function (`recover`), and
//!   the one place that applies its answer;
//! - `image.rs` and `tags.rs`: what the pull is for (manifests, platforms and blobs; tag
//!   pages).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use http::Response;

use crate::blob::content_length;
use crate::digest::Digest;
use crate::error::{redact_url, Error, TransportError, TransportErrorKind, ERROR_BODY_LIMIT};
use crate::reference::Reference;
use crate::retry::Rng;
use crate::time::later;

mod image;
mod op;
mod origin;
mod recovery;
mod request;
mod session;
mod tags;
mod types;

use op::{Incoming, Op, OpKind, OpState};
use origin::RegistryOrigin;
use session::{RegistryAuth, TokenSlot};
pub use types::{Action, BlobId, Config, Event, Input, ManifestRole, PlatformChoice, RequestId};

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
    origin: RegistryOrigin,
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
        let origin = RegistryOrigin::new(&reference, config.plain_http);
        let rng = Rng::new(config.seed);
        let mut pull = Pull {
            goal,
            config,
            origin,
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

    /// Exchange `id` said something (a head or a chunk): its op, with the silence timer
    /// re-armed; `None` for an exchange no longer wanted.
    fn heard_from(&mut self, id: RequestId, now: Instant) -> Option<usize> {
        self.tick(now);
        let ix = *self.in_flight.get(&id)?;
        self.ops[ix].state = OpState::InFlight {
            id,
            deadline: later(now, self.config.idle_timeout),
        };
        Some(ix)
    }

    /// Something happened to exchange `id`: one entry point for every input (the four
    /// methods below are the same, one per kind).
    pub fn handle_input(&mut self, id: RequestId, input: Input, now: Instant) {
        match input {
            Input::Head(head) => self.handle_head(id, head, now),
            Input::Chunk(chunk) => self.handle_chunk(id, chunk, now),
            Input::End => self.handle_end(id, now),
            Input::Error(error) => self.handle_error(id, error, now),
        }
    }

    /// The response head of exchange `id` arrived.
    pub fn handle_head(&mut self, id: RequestId, head: Response<()>, now: Instant) {
        let Some(ix) = self.heard_from(id, now) else {
            return;
        };
        let op = &mut self.ops[ix];
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
        let Some(ix) = self.heard_from(id, now) else {
            return;
        };
        let op = &mut self.ops[ix];
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
                    last: None,
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
