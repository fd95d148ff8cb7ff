//! One blob as a stream of bytes, moved only as fast as it is read: what a copy
//! uploads from.

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use ocireg_core::{Action, Event, Pull};

use crate::{Body, Exchanges, Runtime, Transport};

/// The bytes of the one blob `pull` ([`Pull::blob`](ocireg_core::Pull::blob)) downloads,
/// as a stream that moves the download only as fast as it is read: bytes
/// `offset..offset + len` of it (the bytes before `offset` are read and dropped; the
/// digest is checked when the range reaches the blob's end). A copy uploads from it.
pub fn blob_stream(
    pull: Pull,
    transport: std::sync::Arc<dyn Transport>,
    runtime: std::sync::Arc<dyn Runtime>,
    size: u64,
    offset: u64,
    len: u64,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    struct State {
        pull: Pull,
        transport: std::sync::Arc<dyn Transport>,
        runtime: std::sync::Arc<dyn Runtime>,
        ex: Exchanges,
        /// Bytes still to drop, then to give.
        skip: u64,
        left: u64,
        /// The range ends where the blob does: wait for the digest check.
        to_end: bool,
    }
    let failed = |e: String| Some((Err(std::io::Error::other(e)), None));
    let state = State {
        pull,
        transport,
        runtime,
        ex: Exchanges::default(),
        skip: offset,
        left: len,
        to_end: offset.saturating_add(len) >= size,
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
                Action::Deliver { mut bytes, .. } => {
                    let drop = st.skip.min(bytes.len() as u64) as usize;
                    st.skip -= drop as u64;
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
                Action::Event(Event::Restarted { .. }) => {
                    st.ex.abort_all();
                    return failed("the source blob started over".into());
                }
                Action::Event(_) => continue,
                Action::Upload { .. } => {
                    return failed("internal error: a pull asked to upload".into())
                }
                Action::Wait { until } => until,
                Action::Done => return None,
                Action::Failed(e) => return failed(e.to_string()),
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
