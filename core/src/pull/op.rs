//! Operations: one HTTP exchange with a purpose, its state and its attempt history.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use url::Url;

use crate::blob::BlobDownload;
use crate::digest::Digest;
use crate::manifest::{Descriptor, Platform};

use super::types::{BlobId, ManifestRole, RequestId};

#[derive(Debug)]
pub(super) enum OpState {
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
pub(super) enum OpKind {
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
pub(super) struct Incoming {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
}

#[derive(Debug)]
pub(super) struct Op {
    pub(super) kind: OpKind,
    /// Where the op starts: the registry path, or the token realm URL.
    pub(super) path: String,
    /// The redirect target currently followed, if any.
    pub(super) redirect: Option<Url>,
    pub(super) hops: u8,
    pub(super) failures: u32,
    /// Time spent in backoff so far.
    pub(super) waited: Duration,
    pub(super) auth_retried: bool,
    /// Authentication rounds so far (bounded by [`MAX_AUTH_ROUNDS`], never reset).
    pub(super) auth_rounds: u32,
    /// Whether a refusal by a foreign origin already sent this op back to the registry.
    pub(super) foreign_restarted: bool,
    /// Token generation the last request carried.
    pub(super) sent_token: Option<u64>,
    /// The URL the last request went to.
    pub(super) sent_url: Option<Url>,
    pub(super) state: OpState,
    pub(super) incoming: Incoming,
}

impl Op {
    pub(super) fn new(kind: OpKind, path: String, state: OpState) -> Op {
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

    pub(super) fn what(&self) -> String {
        match &self.kind {
            OpKind::Manifest { reference, .. } => format!("manifest {reference}"),
            OpKind::Blob { descriptor, .. } => format!("blob {}", descriptor.digest),
            OpKind::Token { .. } => "token".to_string(),
            OpKind::Tags => format!("tag list {}", self.path),
        }
    }

    pub(super) fn is_active_blob(&self) -> bool {
        matches!(self.kind, OpKind::Blob { .. })
            && !matches!(self.state, OpState::Queued | OpState::Done)
    }
}
