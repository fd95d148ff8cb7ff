//! One blob as a stream of bytes, moved only as fast as it is read: what a copy
//! uploads from, and the hash checkpoints that let a read start mid-blob without
//! downloading the blob's start again.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use ocireg_core::{Action, BlobId, Event, Machine, Verifier};

use crate::{Body, Exchanges, Runtime, Transport};

/// The core's error as an I/O error a reader can return: `InvalidData` when the bytes
/// were not the blob's (a digest or size mismatch), `Other` otherwise; the core's error
/// is its inner error ([`registry_error_of`] finds it again).
pub fn registry_error(e: ocireg_core::Error) -> std::io::Error {
    let kind = match e.kind() {
        ocireg_core::ErrorKind::Integrity => std::io::ErrorKind::InvalidData,
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, e)
}

/// The core's error inside an I/O error made by [`registry_error`].
pub fn registry_error_of(e: &std::io::Error) -> Option<&ocireg_core::Error> {
    e.get_ref()?.downcast_ref::<ocireg_core::Error>()
}

/// At most this many checkpoints per blob (a 1 GiB blob: one per 16 MiB).
const MAX_CHECKPOINTS: u64 = 64;
/// And no closer than this: cloning a hash state is cheap, keeping many is not useful.
const MIN_SPACING: u64 = 4 << 20;

/// Hash states of one blob at points of its download, taken as a read passes them. A
/// later read from offset X (an upload resumed at the registry's offset after a cut)
/// downloads from the last point at or before X, continuing that hash, instead of from
/// byte 0: the whole blob is still verified, and at most one spacing is read again.
#[derive(Debug)]
pub struct Checkpoints {
    spacing: u64,
    points: Mutex<Vec<Verifier>>,
}

impl Checkpoints {
    /// Checkpoints for a blob of `size` bytes: at most 64, at least 4 MiB apart.
    pub fn new(size: u64) -> Checkpoints {
        Checkpoints {
            spacing: (size / MAX_CHECKPOINTS).max(MIN_SPACING),
            points: Mutex::new(Vec::new()),
        }
    }

    /// The state at the last point at or before `offset`, if any.
    pub fn before(&self, offset: u64) -> Option<Verifier> {
        let points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        points.iter().rev().find(|v| v.len() <= offset).cloned()
    }

    /// Keeps the hash `pull` holds for its blob if it has reached `at`, one spacing past
    /// the last point kept.
    fn offer(&self, pull: &Machine, at: u64) {
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        let next = points
            .last()
            .map_or(self.spacing, |v| v.len() + self.spacing);
        if at < next {
            return;
        }
        if let Some(v) = pull.hashed_prefix(BlobId(0)) {
            if points.last().is_none_or(|last| v.len() > last.len()) {
                points.push(v);
            }
        }
    }
}

/// Starts the download of `pull` ([`Machine::fetch_blob`](ocireg_core::Machine::fetch_blob), not yet
/// polled) at the last of `checkpoints` at or before `offset`: where its deliveries will
/// begin (0 when there is none, or the core refused it).
pub fn resume_at_checkpoint(pull: &mut Machine, checkpoints: &Checkpoints, offset: u64) -> u64 {
    let Some(v) = checkpoints.before(offset).filter(|v| !v.is_empty()) else {
        return 0;
    };
    let at = v.len();
    match pull.queued(BlobId(0)).map(|q| q.resume(v)) {
        Some(Ok(())) => at,
        _ => 0,
    }
}

/// The bytes of the one blob `pull` ([`Machine::fetch_blob`](ocireg_core::Machine::fetch_blob)) downloads,
/// as a stream that moves the download only as fast as it is read: bytes `range` of it
/// (bytes the download delivers before `range.start` are dropped; the digest is checked
/// when the range reaches the blob's end). With `checkpoints`, hash states are kept as
/// the download passes them. A copy uploads from it.
pub fn blob_stream(
    pull: Machine,
    transport: std::sync::Arc<dyn Transport>,
    runtime: std::sync::Arc<dyn Runtime>,
    size: u64,
    range: Range<u64>,
    checkpoints: Option<Arc<Checkpoints>>,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    struct State {
        pull: Machine,
        transport: std::sync::Arc<dyn Transport>,
        runtime: std::sync::Arc<dyn Runtime>,
        ex: Exchanges,
        /// Where the bytes to give start, and how many are still to give.
        start: u64,
        left: u64,
        checkpoints: Option<Arc<Checkpoints>>,
        /// The range ends where the blob does: wait for the digest check.
        to_end: bool,
    }
    let failed = |e: String| Some((Err(std::io::Error::other(e)), None));
    let state = State {
        pull,
        transport,
        runtime,
        ex: Exchanges::default(),
        start: range.start,
        left: range.end.saturating_sub(range.start),
        to_end: range.end >= size,
        checkpoints,
    };
    futures::stream::unfold(Some(state), move |state| async move {
        let mut st = state?;
        loop {
            if st.left == 0 && !st.to_end {
                // the range is given; the rest of the blob is not wanted
                st.ex.abort_all();
                return None;
            }
            let now = st.runtime.now();
            let until = match st.pull.poll_action(now) {
                Action::Send { id, request } => {
                    st.ex.start(&*st.transport, id, request.map(Body::Full));
                    continue;
                }
                Action::Abort { id } => {
                    st.ex.abort(id);
                    continue;
                }
                // one blob: no wave of requests to prepare for
                Action::Prepare { .. } => continue,
                Action::Deliver {
                    offset: at,
                    mut bytes,
                    ..
                } => {
                    let end = at + bytes.len() as u64;
                    if let Some(c) = &st.checkpoints {
                        c.offer(&st.pull, end);
                    }
                    let drop = st.start.saturating_sub(at).min(bytes.len() as u64) as usize;
                    let _ = bytes.split_to(drop);
                    let give = st.left.min(bytes.len() as u64) as usize;
                    st.left -= give as u64;
                    bytes.truncate(give);
                    if bytes.is_empty() {
                        continue;
                    }
                    return Some((Ok(bytes), Some(st)));
                }
                // bytes already given cannot be taken back: this read fails, the upload
                // that asked for it is retried
                Action::Event(Event::DownloadRestarted { .. }) => {
                    st.ex.abort_all();
                    return failed("the source blob started over".into());
                }
                Action::Event(_) => continue,
                Action::Wait { until } => until,
                Action::Done => return None,
                Action::Failed(e) => return Some((Err(registry_error(e)), None)),
                _ => return failed("internal error: a blob fetch asked for an upload".into()),
            };
            match st.ex.next(&*st.runtime, until).await {
                Ok(Some((id, input))) => st.pull.handle_input(id, input, st.runtime.now()),
                Ok(None) => {}
                Err(e) => return failed(e.to_string()),
            }
        }
    })
    .boxed()
}
