//! Blobs as operations: queued until a concurrency slot is free, skipped or resumed at
//! the caller's word, delivered without a request when their content is embedded,
//! verified at the end (and started over once when a caller's prefix was corrupt).

use std::time::Instant;

use bytes::Bytes;

use crate::blob::{BlobDownload, EndOutcome};
use crate::digest::{Digest, Verifier};
use crate::endpoint::{Endpoint, Target};
use crate::error::{Error, TransportError, TransportErrorKind};
use crate::manifest::Descriptor;
use crate::{Action, BlobId, Event, ResumeRefused};

use super::op::{Exchange, Op, OpId, OpState};
use super::Engine;

impl Engine {
    /// Queues the download of `descriptor` (validated by the goal); `embedded` is its
    /// content when the descriptor carries it.
    pub(crate) fn download(&mut self, descriptor: Descriptor, embedded: Option<Bytes>) -> BlobId {
        let embedded = embedded.or_else(|| (descriptor.size == 0).then(Bytes::new));
        let blob = BlobId(self.downloads.len());
        let size = descriptor.len();
        let dl = BlobDownload::new(
            descriptor.digest.clone(),
            size,
            Verifier::new(descriptor.digest.algorithm()),
            skip_budget(size, self.config.skip_budget_percent),
        )
        .hash_with(offload_for(&self.config, size));
        let target = Target::Api(Endpoint::Blob(descriptor.digest.clone()));
        let what = format!("blob {}", descriptor.digest);
        self.out.push_back(Action::Event(Event::BlobQueued {
            blob,
            descriptor: descriptor.clone(),
        }));
        let exchange = Exchange::Download {
            blob,
            descriptor,
            dl,
            embedded,
        };
        let op = self.add_op(Op::new(exchange, what, target, OpState::Queued));
        self.downloads.push(op);
        blob
    }

    /// The caller already has `blob`, verified: it is not downloaded. False (and nothing
    /// changes) unless the blob is still queued.
    pub(crate) fn skip_download(&mut self, blob: BlobId) -> bool {
        let Some(op) = self.queued(blob) else {
            return false;
        };
        if let Some(Exchange::Download { descriptor, .. }) = self.ops.get(&op).map(|o| &o.exchange)
        {
            let (digest, size) = (descriptor.digest.clone(), descriptor.len());
            self.out
                .push_back(Action::Event(Event::BlobSkipped { blob, digest, size }));
        }
        self.set_state(op, None);
        true
    }

    /// The caller has the first `verifier.len()` bytes of `blob` (hashed into
    /// `verifier`): the download continues after them.
    pub(crate) fn resume_download(
        &mut self,
        blob: BlobId,
        verifier: Verifier,
    ) -> Result<(), ResumeRefused> {
        let budget_pct = self.config.skip_budget_percent;
        let op = self.queued(blob).ok_or(ResumeRefused::NotQueued)?;
        let Some(Exchange::Download {
            dl,
            descriptor,
            embedded,
            ..
        }) = self.ops.get_mut(&op).map(|o| &mut o.exchange)
        else {
            return Err(ResumeRefused::NotQueued);
        };
        if embedded.is_some() {
            return Err(ResumeRefused::Embedded);
        }
        if verifier.len() >= descriptor.len() {
            return Err(ResumeRefused::TooLong);
        }
        if verifier.algorithm() != descriptor.digest.algorithm() {
            return Err(ResumeRefused::OtherAlgorithm);
        }
        let size = descriptor.len();
        let offset = verifier.len();
        *dl = BlobDownload::new(
            descriptor.digest.clone(),
            size,
            verifier,
            skip_budget(size, budget_pct),
        )
        .hash_with(offload_for(&self.config, size));
        self.out
            .push_back(Action::Event(Event::DownloadResumed { blob, offset }));
        Ok(())
    }

    /// The hash over the bytes of `blob` delivered so far, when kept in the core.
    pub(crate) fn hashed_prefix(&self, blob: BlobId) -> Option<Verifier> {
        let op = self.download_op(blob)?;
        match &self.ops.get(&op)?.exchange {
            Exchange::Download { dl, .. } => dl.hashed_prefix(),
            _ => None,
        }
    }

    /// How many downloads may run while one of `size` starts: small blobs get more
    /// slots (their cost is the round trip, and they hold little memory).
    pub(super) fn download_slots(&self, size: Option<u64>) -> usize {
        let large = self.config.max_concurrent.max(1);
        match size {
            Some(s) if s <= self.config.small_blob => self.config.max_concurrent_small.max(large),
            _ => large,
        }
    }

    /// The download operation of `blob`, if it is still live.
    pub(super) fn download_op(&self, blob: BlobId) -> Option<OpId> {
        let op = *self.downloads.get(blob.0)?;
        self.ops.contains_key(&op).then_some(op)
    }

    /// Whether `blob` waits for its download to start.
    pub(crate) fn is_queued(&self, blob: BlobId) -> bool {
        self.queued(blob).is_some()
    }

    /// The download op of `blob` while it is queued.
    fn queued(&self, blob: BlobId) -> Option<OpId> {
        let op = self.download_op(blob)?;
        matches!(self.ops[&op].state, OpState::Queued).then_some(op)
    }

    /// Delivers embedded (or empty) content without a request. True if it did.
    pub(super) fn deliver_embedded(&mut self, op: OpId) -> bool {
        let Some(Exchange::Download {
            blob,
            descriptor,
            embedded: Some(data),
            ..
        }) = self.ops.get(&op).map(|o| &o.exchange)
        else {
            return false;
        };
        let actual = Digest::of(descriptor.digest.algorithm(), data);
        if actual != descriptor.digest {
            let e = Error::DigestMismatch {
                what: format!("embedded data of {}", descriptor.digest),
                expected: descriptor.digest.clone(),
                actual,
            };
            self.fail(e);
            return true;
        }
        let (blob, digest, size, data) = (
            *blob,
            descriptor.digest.clone(),
            descriptor.len(),
            data.clone(),
        );
        if !data.is_empty() {
            self.out.push_back(Action::Deliver {
                blob,
                offset: 0,
                bytes: data,
            });
        }
        self.out
            .push_back(Action::Event(Event::BlobFetched { blob, digest, size }));
        self.set_state(op, None);
        true
    }

    pub(super) fn on_download_end(&mut self, op: OpId, now: Instant) {
        let Some(Exchange::Download {
            dl,
            blob,
            descriptor,
            ..
        }) = self.ops.get_mut(&op).map(|o| &mut o.exchange)
        else {
            return;
        };
        match dl.on_end() {
            Ok(EndOutcome::Complete) => {
                let ev = Event::BlobFetched {
                    blob: *blob,
                    digest: descriptor.digest.clone(),
                    size: descriptor.len(),
                };
                self.set_state(op, None);
                self.out.push_back(Action::Event(ev));
            }
            Ok(EndOutcome::Short) => {
                let e = TransportError::new(
                    TransportErrorKind::Broken,
                    "body ended before the descriptor's size",
                );
                self.on_transport_error(op, e, now);
            }
            // A mismatch may be the caller's prefix (an earlier run's partial file, corrupt
            // on disk) rather than the registry: start that blob over from byte 0 once,
            // saying why, instead of failing the pull.
            Err(e @ Error::DigestMismatch { .. }) if dl.from_caller_prefix && !dl.restarted => {
                dl.restart();
                let blob = *blob;
                self.retry_at_once(op, e);
                self.out
                    .push_back(Action::Event(Event::DownloadRestarted { blob }));
            }
            Err(e) => self.fail(e),
        }
    }

    /// Tells the caller that a blob's next attempt continues where it stopped.
    pub(super) fn push_resumed(&mut self, op: OpId) {
        if let Some(Exchange::Download { dl, blob, .. }) = self.ops.get(&op).map(|o| &o.exchange) {
            if dl.offset > 0 {
                self.out.push_back(Action::Event(Event::DownloadResumed {
                    blob: *blob,
                    offset: dl.offset,
                }));
            }
        }
    }
}

fn skip_budget(size: u64, percent: u64) -> u64 {
    size.saturating_mul(percent) / 100
}

/// Where a blob of `size` bytes is hashed: by the caller's offload when there is one and
/// the blob is not small (a small blob's hash is cheaper than the hand-over).
fn offload_for(
    config: &crate::Config,
    size: u64,
) -> Option<std::sync::Arc<dyn crate::offload::HashOffload>> {
    config.hashing.clone().filter(|_| size > config.small_blob)
}
