//! What the caller sees of a pull's blobs, checked action by action: the invariants the
//! simulated network (`ocireg-tests`) and the machine fuzz target share, kept once.
//!
//! - deliveries are contiguous, never past the size, never after the blob is done or
//!   skipped;
//! - `BlobDone` comes once per blob, with exactly the bytes delivered and their digest;
//! - `BlobSkipped` comes once, only for a blob with no bytes and not done;
//! - `Resumed` continues at exactly the end of what was delivered;
//! - `Restarted` discards what was delivered;
//! - a `Wait` is never in the past;
//! - at `Done`, every queued blob is done or skipped.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use ocireg_core::{Action, BlobId, Digest, Event};

/// The blobs of one pull as its caller would hold them.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Queued blobs: size and digest.
    pub queued: BTreeMap<BlobId, (u64, Digest)>,
    /// Bytes delivered per blob (a restart empties it).
    pub delivered: BTreeMap<BlobId, Vec<u8>>,
    /// Blobs reported done.
    pub done: HashSet<BlobId>,
    /// Blobs reported skipped.
    pub skipped: HashSet<BlobId>,
}

impl Ledger {
    /// Records `action` (polled at `now`), panicking when it breaks an invariant.
    pub fn observe(&mut self, action: &Action, now: Instant) {
        match action {
            Action::Deliver {
                blob,
                offset,
                bytes,
            } => {
                let size = self.queued.get(blob).map(|q| q.0);
                let size = size.unwrap_or_else(|| panic!("bytes for unqueued {blob:?}"));
                assert!(!self.done.contains(blob), "delivery after BlobDone");
                assert!(!self.skipped.contains(blob), "delivery of a skipped blob");
                let buf = self.delivered.entry(*blob).or_default();
                assert_eq!(
                    *offset,
                    buf.len() as u64,
                    "delivery of {blob:?} not contiguous"
                );
                buf.extend_from_slice(bytes);
                assert!(buf.len() as u64 <= size, "delivered past the size");
            }
            Action::Event(e) => self.event(e),
            Action::Wait { until: Some(u) } => {
                assert!(*u >= now, "a wait in the past: {:?}", now - *u);
            }
            Action::Done => {
                for blob in self.queued.keys() {
                    assert!(
                        self.done.contains(blob) || self.skipped.contains(blob),
                        "Done with {blob:?} neither done nor skipped"
                    );
                }
            }
            _ => {}
        }
    }

    fn event(&mut self, e: &Event) {
        match e {
            Event::BlobQueued { blob, descriptor } => {
                let q = (descriptor.len(), descriptor.digest.clone());
                assert!(self.queued.insert(*blob, q).is_none(), "queued twice");
            }
            Event::BlobFetched { blob, digest, size } => {
                let data = self.delivered.get(blob).map_or(&b""[..], |b| b.as_slice());
                assert_eq!(data.len() as u64, *size, "BlobDone with the wrong size");
                assert_eq!(
                    &Digest::of(digest.algorithm(), data),
                    digest,
                    "BlobDone with the wrong digest"
                );
                assert_eq!(self.queued[blob].1, *digest);
                assert!(self.done.insert(*blob), "BlobDone twice");
                assert!(!self.skipped.contains(blob), "BlobDone of a skipped blob");
            }
            Event::BlobSkipped { blob, digest, .. } => {
                assert_eq!(self.queued[blob].1, *digest);
                assert!(!self.done.contains(blob), "skipped after BlobDone");
                assert!(!self.delivered.contains_key(blob), "skipped after bytes");
                assert!(self.skipped.insert(*blob), "BlobSkipped twice");
            }
            Event::DownloadResumed { blob, offset } => {
                let have = self.delivered.get(blob).map_or(0, |b| b.len() as u64);
                assert_eq!(*offset, have, "resumed elsewhere than the end");
            }
            Event::DownloadRestarted { blob } => {
                self.delivered.remove(blob);
            }
            _ => {}
        }
    }
}
