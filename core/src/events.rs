//! What happened, for the caller: [`Event`] and the small types it carries. Events come
//! in pairs where both directions of the protocol have one.

use std::time::Duration;

use bytes::Bytes;

use crate::actions::BlobId;
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{Descriptor, Manifest, Platform};

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
    /// A part of a blob, read in one request
    /// ([`Machine::fetch_blob_range`](crate::Machine::fetch_blob_range)): checked to be
    /// that range and that length, not against the digest (see there).
    BlobPart {
        /// The blob.
        digest: Digest,
        /// Where the part starts in it.
        offset: u64,
        /// The part.
        bytes: Bytes,
    },
    /// A blob is in the repository with this size ([`Machine::stat_blob`](crate::Machine::stat_blob)).
    BlobFound {
        /// Its digest.
        digest: Digest,
        /// Its size, as the registry declared it.
        size: u64,
    },
    /// A manifest, a tag or a blob was deleted
    /// ([`Machine::delete_manifest`](crate::Machine::delete_manifest) and the like).
    Deleted {
        /// What: `manifest sha256:…`, `tag v1`, `blob sha256:…`.
        what: String,
    },
    /// The registry answered its API root with the credentials given
    /// ([`Machine::check_credentials`](crate::Machine::check_credentials)).
    CredentialsChecked {
        /// Whether it asked for any (false: it answers anyone).
        needed: bool,
    },
    /// The loopback registry does not speak TLS; plain http is used from now on.
    PlainHttpFallback {
        /// The registry host.
        host: String,
    },
    /// A manifest answer announced the registry's rate limit (what is left of it).
    RateLimit {
        /// The manifest's tag or digest.
        reference: String,
        /// The limit, what remains, when it resets (as far as the registry said).
        limit: crate::RateLimit,
    },
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
