//! What a machine asks of its driver ([`Action`]) and what the driver tells it
//! ([`Input`]), with the identifiers both use.

use std::time::Instant;

use bytes::Bytes;
use http::Request;
use url::Url;

use crate::error::{redact_url, Error};
use crate::events::Event;

/// Identifies one HTTP exchange. Never reused within a [`Machine`](crate::Machine).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Identifies one blob of a pull.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub usize);

/// What the caller must do next.
///
/// `Debug` never prints a request's body or its credentials (bodies may carry a refresh
/// token; `Authorization` values are marked sensitive and print as `Sensitive`).
#[allow(clippy::large_enum_variant)] // actions are moved once, not stored
#[non_exhaustive]
pub enum Action {
    /// Start this HTTP exchange and report its head, chunks and end (or error) with `id`.
    Send {
        /// Identifies the exchange.
        id: RequestId,
        /// The request. The body is empty except for token POSTs.
        request: Request<Bytes>,
    },
    /// Start this HTTP exchange like [`Action::Send`], with bytes
    /// `offset..offset + len` of the caller's blob `blob` as the request body (the
    /// request itself carries an empty body and the `Content-Length`). Only a push asks
    /// for it; the same range may be asked for again when an upload resumes.
    Upload {
        /// Identifies the exchange.
        id: RequestId,
        /// The request, without its body.
        request: Request<Bytes>,
        /// Whose bytes.
        blob: BlobId,
        /// First byte of the body within the blob.
        offset: u64,
        /// Bytes in the body.
        len: u64,
    },
    /// A hint, not an exchange: up to `connections` more requests to `origin` will be
    /// wanted at once soon (the blobs of a manifest still in flight). A transport with a
    /// connection pool may open that many connections now, so that the blob requests
    /// find them ready instead of each waiting a handshake; any other transport ignores
    /// it. Nothing is reported back.
    Prepare {
        /// `scheme://host[:port]/`.
        origin: Url,
        /// Connections worth opening, besides the one in use.
        connections: usize,
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
        /// When to call [`Machine::poll_action`](crate::Machine::poll_action) again at the latest.
        until: Option<Instant>,
    },
    /// The operation is complete.
    Done,
    /// The operation failed. Every exchange still open was aborted before this.
    Failed(Error),
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Send { id, request } => f
                .debug_struct("Send")
                .field("id", id)
                .field("method", request.method())
                .field("url", &redacted_uri(request.uri()))
                .field("headers", request.headers())
                .field("body_len", &request.body().len())
                .finish(),
            Action::Upload {
                id,
                request,
                blob,
                offset,
                len,
            } => f
                .debug_struct("Upload")
                .field("id", id)
                .field("method", request.method())
                .field("uri", &redacted_uri(request.uri()))
                .field("blob", blob)
                .field("offset", offset)
                .field("len", len)
                .finish(),
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
            Action::Prepare {
                origin,
                connections,
            } => f
                .debug_struct("Prepare")
                .field("origin", &origin.as_str())
                .field("connections", connections)
                .finish(),
            Action::Event(e) => f.debug_tuple("Event").field(e).finish(),
            Action::Wait { until } => f.debug_struct("Wait").field("until", until).finish(),
            Action::Done => f.write_str("Done"),
            Action::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

fn redacted_uri(uri: &http::Uri) -> String {
    Url::parse(&uri.to_string())
        .map(|u| redact_url(&u))
        .unwrap_or_default()
}

/// What happened to an exchange: the machine's inputs as data, for drivers, simulations
/// and fuzzers that pass them around ([`Machine::handle_input`](crate::Machine::handle_input)).
#[derive(Debug)]
pub enum Input {
    /// The response head arrived.
    Head(http::Response<()>),
    /// A chunk of the body arrived.
    Chunk(Bytes),
    /// The body ended normally.
    End,
    /// The transport failed (connect, TLS, reset, early EOF).
    Error(crate::error::TransportError),
}
