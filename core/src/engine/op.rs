//! Operations: one HTTP exchange with a purpose, its state and its attempt history.
//!
//! An operation is what a goal asks the engine for ("fetch this manifest", "download
//! this blob from offset N", "list this page of tags"); the engine runs it through any
//! number of attempts, redirects and authentication rounds until it succeeds or the
//! machine fails.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method};
use url::Url;

use super::auth::SlotId;
use super::History;
use crate::blob::BlobDownload;
use crate::endpoint::Target;
use crate::manifest::Descriptor;
use crate::{BlobId, RequestId};

/// Identifies an operation within one engine; never reused, so a finished (pruned)
/// operation cannot be confused with a later one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct OpId(pub(crate) u64);

#[derive(Debug)]
pub(crate) enum OpState {
    /// A download waiting for a concurrency slot (or for the caller's skip/resume answer).
    Queued,
    /// To be sent at the next poll.
    Ready,
    /// Waiting for the token fetch of this slot.
    WaitingToken(SlotId),
    /// A request is out; its response timer runs out at `deadline`.
    InFlight { id: RequestId, deadline: Instant },
    /// Waiting before the next attempt.
    Backoff { until: Instant },
}

/// The body a request carries.
#[derive(Clone, Debug, Default)]
pub(crate) enum OutBody {
    /// None.
    #[default]
    Empty,
    /// These bytes (a manifest, a small form).
    Bytes(Bytes),
    /// Bytes `offset..offset + len` of the caller's blob, which the caller streams
    /// ([`Action::Upload`](crate::Action::Upload)): the core never holds a blob.
    Blob { blob: BlobId, offset: u64, len: u64 },
}

/// A condition a write puts on what the server holds (RFC 9110 §13), so that two
/// writers of one tag cannot silently undo each other where the registry honours it
/// (`412 Precondition Failed` otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// `If-Match`: the resource still has this entity tag (the one read).
    Matches(String),
    /// `If-None-Match: *`: the resource does not exist yet.
    Absent,
}

/// What happens when an attempt fails and a retry is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnRetry {
    /// Send the same request again (after the backoff).
    Resend,
    /// Hand the op back to its goal when the backoff is over ([`Due`](super::Due)): the
    /// next request depends on what the server kept (an upload asks for its offset).
    AskGoal,
}

/// A request a goal asks for, and how its answer is read.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub(crate) method: Method,
    /// The `Accept` header, if any.
    pub(crate) accept: Option<&'static str>,
    /// The `Content-Type` of the body, if any.
    pub(crate) content_type: Option<String>,
    /// A `Content-Range` header (chunked uploads).
    pub(crate) content_range: Option<String>,
    /// The bytes `first..=last` asked for with a `Range` header (a part of a blob).
    pub(crate) range: Option<(u64, u64)>,
    /// A condition on what the server holds, for a read-modify-write.
    pub(crate) precondition: Option<Precondition>,
    pub(crate) body: OutBody,
    /// Largest response body accepted.
    pub(crate) limit: u64,
    /// What the limit is for, in messages ("manifest").
    pub(crate) limit_what: &'static str,
    /// Statuses besides 2xx that are answers for the goal, not failures (`404` to a
    /// `HEAD` probe, `416` to a chunk).
    pub(crate) answers: &'static [u16],
    /// Registry error codes that mean the registry has not caught up yet with what this
    /// operation's goal confirmed before sending it, so a retry (bounded, with backoff
    /// like a `503`) can succeed: a manifest `PUT` whose blobs were confirmed, answered
    /// `MANIFEST_BLOB_UNKNOWN` by a registry whose concurrent writes of one blob hide it
    /// for a moment (`docker-registry` rewrites a blob's link file in place).
    pub(crate) catching_up: &'static [&'static str],
    pub(crate) on_retry: OnRetry,
}

impl Call {
    /// A `GET` whose body is read whole, up to `limit` bytes.
    pub(crate) fn get(accept: &'static str, limit_what: &'static str, limit: u64) -> Call {
        Call {
            method: Method::GET,
            accept: Some(accept),
            content_type: None,
            content_range: None,
            range: None,
            precondition: None,
            body: OutBody::Empty,
            limit,
            limit_what,
            answers: &[],
            catching_up: &[],
            on_retry: OnRetry::Resend,
        }
    }
}

/// What an operation exchanges, as far as the engine must know to run it.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per operation
pub(crate) enum Exchange {
    /// A request of a goal whose answer is read whole and handed back to it.
    Call(Call),
    /// A blob streamed to the caller as `Deliver` actions, verified, resumable.
    Download {
        blob: BlobId,
        descriptor: Descriptor,
        dl: BlobDownload,
        /// Content already known (a descriptor's `data`, or the empty blob): delivered
        /// without a request.
        embedded: Option<Bytes>,
    },
    /// A token request of the auth session (never asked for by a goal).
    Token { slot: SlotId, post: bool },
}

/// The response being received for an op.
#[derive(Debug, Default)]
pub(crate) struct Incoming {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// Where an op's requests go: the redirect target it follows, if any, and how it got
/// there. Recovery alone changes it.
#[derive(Debug, Default)]
pub(crate) struct Route {
    /// The redirect target currently followed, if any.
    pub(crate) redirect: Option<Url>,
    /// Redirect hops followed in this attempt.
    pub(crate) hops: u8,
    /// Whether a refusal by a foreign origin already sent this op back to the registry.
    pub(crate) foreign_restarted: bool,
}

/// An op's authentication rounds. The auth session alone changes them.
#[derive(Debug, Default)]
pub(crate) struct AuthRounds {
    /// The last challenge was answered and no success came since.
    pub(crate) retried: bool,
    /// Rounds so far (bounded by `MAX_AUTH_ROUNDS`, never reset).
    pub(crate) rounds: u32,
}

/// A token an op's request carried: its slot and the generation of the token in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SentToken {
    pub(crate) slot: SlotId,
    pub(crate) generation: u64,
}

/// What an op's last request carried. Set only where a request is sent.
#[derive(Debug, Default)]
pub(crate) struct LastSent {
    /// The URL it went to.
    pub(crate) url: Option<Url>,
    /// The bearer token it carried.
    pub(crate) token: Option<SentToken>,
    /// Whether it carried Basic credentials.
    pub(crate) basic: bool,
}

#[derive(Debug)]
pub(crate) struct Op {
    pub(crate) exchange: Exchange,
    /// What it is for, in messages ("manifest v1", "blob sha256:…").
    pub(crate) what: String,
    /// Where the op's requests go (before any redirect).
    pub(crate) target: Target,
    /// Where its requests go now (changed by recovery alone).
    pub(crate) route: Route,
    /// Failures in a row and time waited (changed by recovery alone; a goal may carry
    /// them over to the next op of a sequence).
    pub(crate) history: History,
    /// Its authentication rounds (changed by the auth session alone).
    pub(crate) auth: AuthRounds,
    /// What its last request carried (set where a request is sent, `request.rs`).
    pub(crate) sent: LastSent,
    pub(crate) state: OpState,
    pub(crate) incoming: Incoming,
    /// Why the last attempt failed (while a retry waits).
    pub(crate) last_error: Option<crate::error::Error>,
}

impl Op {
    pub(crate) fn new(exchange: Exchange, what: String, target: Target, state: OpState) -> Op {
        Op {
            exchange,
            what,
            target,
            route: Route::default(),
            history: History::default(),
            auth: AuthRounds::default(),
            sent: LastSent::default(),
            state,
            incoming: Incoming::default(),
            last_error: None,
        }
    }

    /// The request method.
    pub(crate) fn method(&self) -> Method {
        match &self.exchange {
            Exchange::Call(c) => c.method.clone(),
            Exchange::Token { post: true, .. } => Method::POST,
            _ => Method::GET,
        }
    }

    /// Whether the response being received is an answer (read whole, handed to the
    /// goal) rather than a failure for recovery.
    pub(crate) fn answered(&self) -> bool {
        let status = self.incoming.status;
        (200..300).contains(&status)
            || matches!(&self.exchange, Exchange::Call(c) if c.answers.contains(&status))
    }

    /// The size of the blob a download op fetches.
    pub(crate) fn download_size(&self) -> Option<u64> {
        match &self.exchange {
            // a negative size was refused before the download was queued
            Exchange::Download { descriptor, .. } => u64::try_from(descriptor.size).ok(),
            _ => None,
        }
    }

    /// A download that holds (or is about to hold) a concurrency slot.
    pub(crate) fn is_active_download(&self) -> bool {
        matches!(self.exchange, Exchange::Download { .. }) && !matches!(self.state, OpState::Queued)
    }
}
