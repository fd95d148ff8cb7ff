//! The exchange engine: operations in, requests out, outcomes back to the goal.
//!
//! The engine knows nothing of images. A goal (`crate::goals`) asks it for operations
//! (a bounded fetch, a blob download) and reacts to what finishes; the engine owns
//! everything in between. This file is its loop: inputs ([`Engine::handle_input`]),
//! then [`Engine::poll_action`] with its timers and its ready operations. One file per
//! concern beside it:
//! - `op.rs`: an operation and its attempt history;
//! - `timers.rs`: the named timer table;
//! - `origin.rs`: the origin model (the registry's origin, who may carry a secret);
//! - `auth.rs`: the auth session (token slots, challenges, the credential a request
//!   carries);
//! - `request.rs`: building and sending one request;
//! - `recovery.rs`: what a failed exchange means, as one pure function (`recover`), and
//!   the one place that applies its answer;
//! - `downloads.rs`: blobs as operations (queued, skipped, resumed, delivered).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Response};
use url::Url;

use crate::blob::content_length;
use crate::endpoint::{Endpoint, Target};
use crate::error::{redact_url, Error, TransportError, TransportErrorKind, ERROR_BODY_LIMIT};
use crate::reference::Reference;
use crate::retry::Rng;
use crate::time::later;
use crate::{Action, Config, Input, RequestId};

mod auth;
mod downloads;
mod op;
mod origin;
mod recovery;
mod request;
mod timers;

use auth::{RegistryAuth, TokenSlots};
pub(crate) use op::OpId;
pub(crate) use op::{Call, OnRetry, OutBody, Precondition};
use op::{Exchange, Incoming, Op, OpState};
use origin::RegistryOrigin;
use timers::{Timer, TimerTable};

/// An operation that was answered (a 2xx, or a status its call counts as an answer),
/// for its goal.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The operation.
    pub(crate) op: OpId,
    /// The status.
    pub(crate) status: u16,
    /// The URL the body came from (after redirects).
    pub(crate) url: Url,
    /// The response headers.
    pub(crate) headers: HeaderMap,
    /// The whole body (within the fetch's limit).
    pub(crate) body: Bytes,
}

/// An [`OnRetry::AskGoal`] operation whose retry is due: the goal sends what comes next,
/// carrying the history on so attempts stay bounded across the whole sequence.
#[derive(Debug)]
pub(crate) struct Due {
    /// The operation (now finished).
    pub(crate) op: OpId,
    /// Its attempt history.
    pub(crate) history: History,
    /// The failure that made the retry due.
    pub(crate) error: Error,
}

/// How many attempts failed in a row, and how long was waited, for an operation or a
/// sequence of them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct History {
    pub(crate) failures: u32,
    pub(crate) waited: std::time::Duration,
}

/// The exchange engine of one registry and repository.
pub(crate) struct Engine {
    config: Config,
    reference: Reference,
    origin: RegistryOrigin,
    /// Live operations, by id (finished ones are removed).
    ops: BTreeMap<OpId, Op>,
    next_op: u64,
    /// The operation of each download, by blob.
    downloads: Vec<OpId>,
    in_flight: HashMap<RequestId, OpId>,
    next_request: u64,
    timers: TimerTable,
    out: VecDeque<Action>,
    fetched: VecDeque<Fetched>,
    due: VecDeque<Due>,
    tokens: TokenSlots,
    auth: RegistryAuth,
    rng: Rng,
    last_now: Instant,
    result: Option<Result<(), Error>>,
    /// A connection hint to emit after the next requests go out.
    prepare: Option<Action>,
}

impl Engine {
    /// An engine for `reference`'s registry and repository.
    pub(crate) fn new(config: Config, reference: Reference, now: Instant) -> Engine {
        let mut timers = TimerTable::default();
        if let Some(deadline) = config.deadline {
            timers.set(Timer::Deadline, deadline);
        }
        Engine {
            origin: RegistryOrigin::new(&reference, config.plain_http),
            rng: Rng::new(config.seed),
            config,
            reference,
            ops: BTreeMap::new(),
            next_op: 0,
            downloads: Vec::new(),
            in_flight: HashMap::new(),
            next_request: 0,
            timers,
            out: VecDeque::new(),
            fetched: VecDeque::new(),
            due: VecDeque::new(),
            tokens: TokenSlots::default(),
            auth: RegistryAuth::None,
            last_now: now,
            result: None,
            prepare: None,
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Whether the machine has ended (done or failed).
    pub(crate) fn ended(&self) -> bool {
        self.result.is_some()
    }

    /// Queues a goal's event for the caller.
    pub(crate) fn emit(&mut self, event: crate::Event) {
        self.out.push_back(Action::Event(event));
    }

    /// Asks for a bounded `GET` of `endpoint` on the registry; its body comes back as
    /// [`Fetched`].
    pub(crate) fn fetch(
        &mut self,
        endpoint: Endpoint,
        what: String,
        accept: &'static str,
        limit_what: &'static str,
        limit: u64,
    ) -> OpId {
        self.call(
            Target::Api(endpoint),
            what,
            Call::get(accept, limit_what, limit),
            History::default(),
        )
    }

    /// Asks for `call` to `target` (an endpoint of the registry, or a URL it gave such as
    /// an upload location), continuing `history`; its answer comes back as [`Fetched`].
    pub(crate) fn call(
        &mut self,
        target: Target,
        what: String,
        call: Call,
        history: History,
    ) -> OpId {
        let mut op = Op::new(Exchange::Call(call), what, target, OpState::Ready);
        op.history = history;
        self.add_op(op)
    }

    /// Asks for `call` to `target` no sooner than `at` (a read-back that gives other
    /// writers time to land).
    pub(crate) fn call_at(
        &mut self,
        target: Target,
        what: String,
        call: Call,
        at: Instant,
    ) -> OpId {
        let op = self.call(target, what, call, History::default());
        self.set_state(op, Some(OpState::Backoff { until: at }));
        op
    }

    /// The engine's current time (the latest input or poll).
    pub(crate) fn now(&self) -> Instant {
        self.last_now
    }

    /// A pseudo-random word from the machine's seeded generator (jitter).
    pub(crate) fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// The next answered call, for the goal.
    pub(crate) fn take_fetched(&mut self) -> Option<Fetched> {
        self.fetched.pop_front()
    }

    /// The next call whose retry is the goal's to make.
    pub(crate) fn take_due(&mut self) -> Option<Due> {
        self.due.pop_front()
    }

    fn add_op(&mut self, op: Op) -> OpId {
        let id = OpId(self.next_op);
        self.next_op += 1;
        self.ops.insert(id, op);
        id
    }

    /// The one place an op changes state: its timers follow, and a finished op is
    /// removed.
    fn set_state(&mut self, op: OpId, state: Option<OpState>) {
        self.timers.stop(Timer::Response(op));
        self.timers.stop(Timer::Backoff(op));
        let Some(state) = state else {
            self.ops.remove(&op);
            return;
        };
        match state {
            OpState::InFlight { deadline, .. } => self.timers.set(Timer::Response(op), deadline),
            OpState::Backoff { until } => self.timers.set(Timer::Backoff(op), until),
            _ => {}
        }
        if let Some(o) = self.ops.get_mut(&op) {
            o.state = state;
        }
    }

    /// Exchange `id` said something (a head or a chunk): its op, with the silence timer
    /// re-armed; `None` for an exchange no longer wanted.
    fn heard_from(&mut self, id: RequestId, now: Instant) -> Option<OpId> {
        self.tick(now);
        let op = *self.in_flight.get(&id)?;
        let deadline = later(now, self.config.idle_timeout);
        self.set_state(op, Some(OpState::InFlight { id, deadline }));
        Some(op)
    }

    /// Something happened to exchange `id`.
    pub(crate) fn handle_input(&mut self, id: RequestId, input: Input, now: Instant) {
        match input {
            Input::Head(head) => self.on_head(id, head, now),
            Input::Chunk(chunk) => self.on_chunk(id, chunk, now),
            Input::End => self.on_end(id, now),
            Input::Error(error) => {
                self.tick(now);
                if let Some(op) = self.in_flight.remove(&id) {
                    self.on_transport_error(op, error, now);
                }
            }
        }
    }

    fn on_head(&mut self, id: RequestId, head: Response<()>, now: Instant) {
        let Some(op_id) = self.heard_from(id, now) else {
            return;
        };
        let op = self.ops.get_mut(&op_id).expect("in-flight op is live");
        let (parts, ()) = head.into_parts();
        op.incoming = Incoming {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: Vec::new(),
        };
        if !op.answered() {
            return;
        }
        if parts.status.is_success() {
            op.auth.retried = false;
        }
        let declared = content_length(&op.incoming.headers);
        let url = op.sent.url.as_ref().map(redact_url).unwrap_or_default();
        let checked = match &mut op.exchange {
            // A `HEAD` declares the size of what it does not send.
            Exchange::Call(c) if c.method == http::Method::HEAD => Ok(()),
            Exchange::Call(c) => check_declared(c.limit_what, declared, c.limit)
                .map_err(|e| range_ignored(c, op.incoming.status, &url).unwrap_or(e)),
            Exchange::Token { .. } => check_declared("token", declared, self.config.token_limit),
            Exchange::Download { dl, .. } => dl.on_head(parts.status, &op.incoming.headers, &url),
        };
        if let Err(e) = checked {
            self.abort_op(op_id);
            self.fail(e);
        }
    }

    fn on_chunk(&mut self, id: RequestId, chunk: Bytes, now: Instant) {
        let Some(op_id) = self.heard_from(id, now) else {
            return;
        };
        let op = self.ops.get_mut(&op_id).expect("in-flight op is live");
        if !op.answered() {
            // Only the start of an error body is kept, and no more is read: at the limit
            // the exchange is dropped and the response judged on what arrived.
            let room = ERROR_BODY_LIMIT.saturating_sub(op.incoming.body.len());
            op.incoming
                .body
                .extend_from_slice(&chunk[..room.min(chunk.len())]);
            if op.incoming.body.len() >= ERROR_BODY_LIMIT {
                self.in_flight.remove(&id);
                self.out.push_back(Action::Abort { id });
                self.on_error_status(op_id, now);
            }
            return;
        }
        let (limit_what, limit) = match &mut op.exchange {
            Exchange::Call(c) => (c.limit_what, c.limit),
            Exchange::Token { .. } => ("token", self.config.token_limit),
            Exchange::Download { blob, dl, .. } => {
                let before = dl.offset;
                match dl.on_chunk(chunk) {
                    Ok(Some(bytes)) => self.out.push_back(Action::Deliver {
                        blob: *blob,
                        offset: before,
                        bytes,
                    }),
                    Ok(None) => {}
                    Err(e) => {
                        self.abort_op(op_id);
                        self.fail(e);
                    }
                }
                return;
            }
        };
        if (op.incoming.body.len() + chunk.len()) as u64 > limit {
            let url = op.sent.url.as_ref().map(redact_url).unwrap_or_default();
            let ignored = match &op.exchange {
                Exchange::Call(c) => range_ignored(c, op.incoming.status, &url),
                _ => None,
            };
            let e = ignored.unwrap_or(Error::BodyTooLarge {
                what: limit_what.to_string(),
                limit,
                declared: None,
            });
            self.abort_op(op_id);
            self.fail(e);
            return;
        }
        op.incoming.body.extend_from_slice(&chunk);
    }

    fn on_end(&mut self, id: RequestId, now: Instant) {
        self.tick(now);
        let Some(op_id) = self.in_flight.remove(&id) else {
            return;
        };
        let op = self.ops.get_mut(&op_id).expect("in-flight op is live");
        if !op.answered() {
            self.on_error_status(op_id, now);
            return;
        }
        let incoming = std::mem::take(&mut op.incoming);
        match op.exchange {
            Exchange::Call(_) => {
                let url = op.sent.url.clone().unwrap_or_else(|| self.origin.url());
                // what a registry that limits the rate says is left, on each manifest
                if let Target::Api(Endpoint::Manifest(reference)) = &op.target {
                    if let Some(limit) = crate::RateLimit::from_headers(&incoming.headers) {
                        self.out.push_back(Action::Event(crate::Event::RateLimit {
                            reference: reference.clone(),
                            limit,
                        }));
                    }
                }
                self.set_state(op_id, None);
                self.fetched.push_back(Fetched {
                    op: op_id,
                    status: incoming.status,
                    url,
                    headers: incoming.headers,
                    body: Bytes::from(incoming.body),
                });
            }
            Exchange::Token { slot, .. } => {
                self.set_state(op_id, None);
                self.on_token(slot, &incoming.headers, &incoming.body, now);
            }
            Exchange::Download { .. } => self.on_download_end(op_id, now),
        }
    }

    /// Stops the machine: every open exchange is aborted and it ends with
    /// [`Error::Cancelled`].
    pub(crate) fn cancel(&mut self, now: Instant) {
        self.tick(now);
        self.fail(Error::Cancelled);
    }

    /// The next thing to do (see [`Machine::poll_action`](crate::Machine::poll_action)).
    pub(crate) fn poll_action(&mut self, now: Instant) -> Action {
        self.tick(now);
        if let Some(a) = self.out.pop_front() {
            return a;
        }
        if self.result.is_none() {
            self.fire_timers();
            self.start_ready(now);
            if let Some(hint) = self.prepare.take() {
                self.out.push_back(hint);
            }
            if let Some(a) = self.out.pop_front() {
                return a;
            }
            if self.ops.is_empty() && self.fetched.is_empty() && self.due.is_empty() {
                self.result = Some(Ok(()));
            }
        }
        match &self.result {
            Some(Ok(())) => Action::Done,
            Some(Err(e)) => Action::Failed(e.clone()),
            None => Action::Wait {
                until: self.next_timeout(),
            },
        }
    }

    /// The earliest time at which [`Engine::poll_action`] has work without new input.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.timers.next_expiry()
    }

    fn tick(&mut self, now: Instant) {
        if now > self.last_now {
            self.last_now = now;
        }
    }

    fn fire_timers(&mut self) {
        let now = self.last_now;
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::Deadline => {
                    return self.fail(Error::Deadline {
                        what: self.reference.to_string(),
                        last: None,
                    })
                }
                Timer::Backoff(op) => self.backoff_over(op),
                Timer::Response(op) => {
                    let Some(OpState::InFlight { id, .. }) = self.ops.get(&op).map(|o| &o.state)
                    else {
                        continue;
                    };
                    let id = *id;
                    self.in_flight.remove(&id);
                    self.out.push_back(Action::Abort { id });
                    let e = TransportError::new(
                        TransportErrorKind::Timeout,
                        "no data before the time limit",
                    );
                    self.on_transport_error(op, e, now);
                    if self.result.is_some() {
                        return;
                    }
                }
            }
        }
    }

    fn start_ready(&mut self, now: Instant) {
        let mut active = self.ops.values().filter(|o| o.is_active_download()).count();
        // `send` may add a token fetch (a higher id): the cursor sees it in the same pass.
        let mut cursor = OpId(0);
        while let Some((&op_id, op)) = self.ops.range(cursor..).next() {
            cursor = OpId(op_id.0 + 1);
            if self.result.is_some() {
                return;
            }
            if matches!(op.state, OpState::Queued) {
                if active >= self.download_slots(op.download_size()) {
                    continue;
                }
                if self.deliver_embedded(op_id) {
                    continue;
                }
                active += 1;
                self.set_state(op_id, Some(OpState::Ready));
            }
            if matches!(self.ops.get(&op_id).map(|o| &o.state), Some(OpState::Ready)) {
                self.send(op_id, now);
            }
        }
    }

    /// Ends the machine with `err`: every open exchange is aborted, every op dropped.
    pub(crate) fn fail(&mut self, err: Error) {
        if self.result.is_some() {
            return;
        }
        let mut ids: Vec<RequestId> = self.in_flight.drain().map(|(id, _)| id).collect();
        ids.sort();
        for id in ids {
            self.out.push_back(Action::Abort { id });
        }
        self.ops.clear();
        self.fetched.clear();
        self.due.clear();
        self.timers.clear();
        self.result = Some(Err(err));
    }

    fn abort_op(&mut self, op: OpId) {
        if let Some(OpState::InFlight { id, .. }) = self.ops.get(&op).map(|o| &o.state) {
            let id = *id;
            self.in_flight.remove(&id);
            self.out.push_back(Action::Abort { id });
        }
    }
}

/// A ranged call answered with the whole content (`200`, more than the range): the
/// registry ignores `Range`, and nothing of it may be discarded.
fn range_ignored(call: &Call, status: u16, url: &str) -> Option<Error> {
    let (offset, _) = call.range.filter(|_| status == 200)?;
    Some(Error::RangeIgnored {
        url: url.to_string(),
        offset,
        budget: 0,
    })
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
