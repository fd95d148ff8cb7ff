//! The public surface of a pull: identifiers, configuration, events and actions.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use url::Url;

use crate::auth::Credentials;
use crate::digest::Digest;
use crate::error::{redact_url, Error};
use crate::manifest::{Descriptor, Manifest, Platform};
use crate::retry::RetryPolicy;

/// Identifies one HTTP exchange. Never reused within a [`Machine`](crate::Machine).
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
    /// Blob downloads in flight at once while the blobs are small (at most
    /// [`Config::small_blob`] bytes each): many small layers cost round trips, not
    /// bandwidth, so more of them overlap. A large blob still starts only while fewer
    /// than `max_concurrent` downloads run; this never lowers that. A driver that runs
    /// one exchange at a time sets both to 1.
    pub max_concurrent_small: usize,
    /// The size up to which a blob counts as small (default 1 MiB).
    pub small_blob: u64,
    /// Hashes blobs larger than [`Config::small_blob`] on other threads (see
    /// [`offload`](crate::offload)); `None` (the default) hashes them as they arrive.
    pub hashing: Option<std::sync::Arc<dyn crate::offload::HashOffload>>,
    /// Largest manifest body accepted (default 4 MiB).
    pub manifest_limit: u64,
    /// Largest page of a tag list, catalog or referrers list accepted (default 4 MiB).
    pub list_page_limit: u64,
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
    /// Pages of a tag list or catalog followed at most
    /// ([`Machine::list_tags`](crate::Machine::list_tags), [`Machine::catalog`](crate::Machine::catalog));
    /// one more is an error.
    pub max_tag_pages: u32,
    /// Names asked for per page of a tag list or catalog (`?n=`); `None` lets the
    /// registry choose.
    pub tag_page_size: Option<u32>,
    /// Manifests fetched at most in one pull (indexes, their children, nested indexes).
    pub max_manifests: u32,
    /// Levels of indexes within indexes followed at most (the top manifest is level 0).
    pub max_index_depth: u8,
    /// Push: blobs up to this size go in one `PUT`; larger ones in `PATCH` chunks of this
    /// size (or the registry's `OCI-Chunk-Min-Length`, if larger), then a `PUT`.
    pub upload_chunk_size: u64,
    /// The path that stands for `/v2` on this registry: a mirror whose API lives
    /// elsewhere (containerd's `override_path`). `/v2` by default.
    pub api_root: String,
    /// Extra headers on every request to the registry's own origin (a mirror's `header`
    /// table), never to a token service or a redirect target.
    pub headers: Vec<(String, String)>,
    /// Query parameters added to every request under the API root: a mirror is asked
    /// with `ns=<upstream registry>`, as containerd does, so that one mirror can serve
    /// several upstreams. Never added to a URL the registry gave (an upload location, a
    /// redirect) nor to a token request.
    pub api_query: Vec<(String, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            retry: RetryPolicy::default(),
            max_concurrent: 8,
            max_concurrent_small: 32,
            small_blob: 1 << 20,
            hashing: None,
            manifest_limit: 4 << 20,
            list_page_limit: 4 << 20,
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
            tag_page_size: None,
            max_manifests: 10_000,
            max_index_depth: 8,
            upload_chunk_size: 32 << 20,
            api_root: "/v2".to_string(),
            headers: Vec::new(),
            api_query: Vec::new(),
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
/// (optional, see there). Events come in pairs where both directions have one
/// (`BlobFetched`/`BlobPushed`, `DownloadResumed`/`UploadResumed`,
/// `DownloadRestarted`/`UploadRestarted`). New operations add events: match with a
/// wildcard arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// caller may answer through [`Machine::queued`](crate::Machine::queued): skip it (it
    /// already has the blob) or resume it (it has a verified prefix).
    BlobQueued {
        /// The blob.
        blob: BlobId,
        /// Its descriptor.
        descriptor: Descriptor,
    },
    /// A blob was downloaded completely and its size and digest verified (the pull's
    /// pair of [`Event::BlobPushed`]).
    BlobFetched {
        /// The blob.
        blob: BlobId,
        /// Its digest.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// A queued blob is not downloaded: the caller said it has it
    /// ([`QueuedBlob::skip`](crate::QueuedBlob::skip)).
    BlobSkipped {
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
    /// A blob download continues from `offset` with a range request: after a broken
    /// attempt, or from the caller's prefix
    /// ([`QueuedBlob::resume`](crate::QueuedBlob::resume)).
    DownloadResumed {
        /// The blob.
        blob: BlobId,
        /// Where it continues.
        offset: u64,
    },
    /// A blob download starts over from byte 0: discard what was delivered for it.
    DownloadRestarted {
        /// The blob.
        blob: BlobId,
    },
    /// Push: a blob's upload starts over from byte 0 in a new session (the registry lost
    /// or refused the old one).
    UploadRestarted {
        /// The blob.
        blob: BlobId,
    },
    /// Push: a blob is in the repository.
    BlobPushed {
        /// The blob (its index in the plan).
        blob: BlobId,
        /// Its digest.
        digest: Digest,
        /// Its size.
        size: u64,
        /// How it got there.
        how: Pushed,
    },
    /// Push: after a failed transfer the registry said it holds the first `offset`
    /// bytes of the blob, and the upload continues from there (the pair of
    /// [`Event::DownloadResumed`]).
    UploadResumed {
        /// The blob.
        blob: BlobId,
        /// Bytes the registry holds.
        offset: u64,
    },
    /// Push: a manifest was stored under `reference` (a tag, or its digest).
    ManifestPushed {
        /// Its digest.
        digest: Digest,
        /// The tag or digest it was put under.
        reference: String,
    },
    /// A page of the repository's tags ([`Machine::list_tags`](crate::Machine::list_tags)).
    Tags {
        /// Tags on this page, in the registry's order.
        tags: Vec<String>,
    },
    /// A pushed manifest was added to the referrers tag of its subject (the registry has
    /// no referrers API to list it by itself).
    ReferrersTagUpdated {
        /// The subject.
        subject: Digest,
        /// Its referrers tag.
        tag: String,
    },
    /// A page of the referrers of `subject` ([`Machine::list_referrers`](crate::Machine::list_referrers)),
    /// filtered by artifact type when one was asked for.
    Referrers {
        /// The manifest they refer to.
        subject: Digest,
        /// Their descriptors (media type, digest, size, artifact type, annotations).
        referrers: Vec<Descriptor>,
        /// Where the list came from.
        via: ReferrersVia,
    },
    /// A page of the registry's repositories ([`Machine::catalog`](crate::Machine::catalog)).
    Repositories {
        /// Repository names on this page, in the registry's order.
        names: Vec<String>,
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

/// Why a queued blob cannot continue from the caller's prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeRefused {
    /// The blob is no longer queued (it started, finished, or was skipped).
    NotQueued,
    /// Its content is embedded in the descriptor: nothing is downloaded.
    Embedded,
    /// The prefix is as long as the blob or longer.
    TooLong,
    /// The prefix was hashed with another algorithm than the blob's digest.
    OtherAlgorithm,
}

/// Where a referrers list came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferrersVia {
    /// The registry's referrers API; `filtered` when the registry applied the artifact
    /// type filter itself (`OCI-Filters-Applied`), else the client did.
    Api {
        /// The registry filtered.
        filtered: bool,
    },
    /// The referrers tag (the registry has no referrers API); filtered by the client.
    TagSchema,
}

/// How a pushed blob got into the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// It was there already (`HEAD` said so): nothing was sent.
    Existed,
    /// Mounted from another repository of the same registry: nothing was sent.
    Mounted,
    /// Uploaded.
    Uploaded,
}
