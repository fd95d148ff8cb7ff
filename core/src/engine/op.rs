//! Operations: one HTTP exchange with a purpose, its state and its attempt history.
//!
//! An operation is what a goal asks the engine for ("fetch this manifest", "download
//! this blob from offset N", "list this page of tags"); the engine runs it through any
//! number of attempts, redirects and authentication rounds until it succeeds or the
//! machine fails.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method};
use url::Url;

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
    WaitingToken(usize),
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
    pub(crate) body: OutBody,
    /// Largest response body accepted.
    pub(crate) limit: u64,
    /// What the limit is for, in messages ("manifest").
    pub(crate) limit_what: &'static str,
    /// Statuses besides 2xx that are answers for the goal, not failures (`404` to a
    /// `HEAD` probe, `416` to a chunk).
    pub(crate) answers: &'static [u16],
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
            body: OutBody::Empty,
            limit,
            limit_what,
            answers: &[],
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
    Token { slot: usize, post: bool },
}

/// The response being received for an op.
#[derive(Debug, Default)]
pub(crate) struct Incoming {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct Op {
    pub(crate) exchange: Exchange,
    /// What it is for, in messages ("manifest v1", "blob sha256:…").
    pub(crate) what: String,
    /// Where the op's requests go (before any redirect).
    pub(crate) target: Target,
    /// The redirect target currently followed, if any.
    pub(crate) redirect: Option<Url>,
    pub(crate) hops: u8,
    pub(crate) failures: u32,
    /// Time spent in backoff so far.
    pub(crate) waited: Duration,
    pub(crate) auth_retried: bool,
    /// Authentication rounds so far (bounded by `MAX_AUTH_ROUNDS`, never reset).
    pub(crate) auth_rounds: u32,
    /// Whether a refusal by a foreign origin already sent this op back to the registry.
    pub(crate) foreign_restarted: bool,
    /// Token slot and generation the last request carried.
    pub(crate) sent_token: Option<(usize, u64)>,
    /// Whether the last request carried Basic credentials.
    pub(crate) sent_basic: bool,
    /// The URL the last request went to.
    pub(crate) sent_url: Option<Url>,
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
            redirect: None,
            hops: 0,
            failures: 0,
            waited: Duration::ZERO,
            auth_retried: false,
            auth_rounds: 0,
            foreign_restarted: false,
            sent_token: None,
            sent_basic: false,
            sent_url: None,
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
