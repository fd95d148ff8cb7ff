//! Hashing elsewhere: a caller may give the core a [`HashOffload`] (in
//! [`Config::hashing`](crate::Config::hashing)) that hashes large blobs on other threads,
//! so that the thread which receives the bytes does not also hash them, and the blobs of
//! one pull hash on different cores.
//!
//! The core still verifies: it decides which bytes are hashed, in which order, and
//! compares the digest the offload returns with the descriptor's before the blob is done.
//! The offload only computes. Without one (the default), the core hashes as the bytes
//! arrive.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::digest::{Digest, Verifier};

/// Hashes blobs away from the caller's thread.
pub trait HashOffload: Send + Sync + fmt::Debug {
    /// Continues `verifier` (fresh, or holding a prefix the caller had) elsewhere.
    fn start(&self, verifier: Verifier) -> Box<dyn OffloadedHash>;
}

/// One blob's hash, running elsewhere: bytes in the order they are given.
pub trait OffloadedHash: Send {
    /// Adds bytes (may wait while the offload is behind: its queue is bounded).
    fn update(&mut self, bytes: Bytes);
    /// Waits until every byte given is hashed; the digest.
    fn finish(self: Box<Self>) -> Digest;
}

/// A blob's hash: here, or handed to an offload once its bytes start arriving.
// The hasher state stays inline, as it was before offloading existed: one per download.
#[allow(clippy::large_enum_variant)]
pub(crate) enum BlobHash {
    Here(Verifier),
    Elsewhere(Box<dyn OffloadedHash>),
}

impl BlobHash {
    /// Adds `chunk`; the first bytes move the hash to `offload`, if there is one.
    pub(crate) fn update(&mut self, chunk: &Bytes, offload: Option<&Arc<dyn HashOffload>>) {
        if let (BlobHash::Here(v), Some(o)) = (&*self, offload) {
            let v = v.clone();
            *self = BlobHash::Elsewhere(o.start(v));
        }
        match self {
            BlobHash::Here(v) => v.update(chunk),
            BlobHash::Elsewhere(h) => h.update(chunk.clone()),
        }
    }

    /// The digest of every byte given.
    pub(crate) fn finish(self) -> Digest {
        match self {
            BlobHash::Here(v) => v.finish(),
            BlobHash::Elsewhere(h) => h.finish(),
        }
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobHash::Here(v) => f.debug_tuple("Here").field(v).finish(),
            BlobHash::Elsewhere(_) => f.write_str("Elsewhere"),
        }
    }
}
