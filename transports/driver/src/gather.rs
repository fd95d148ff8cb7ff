//! Chunks gathered before they are handed to another thread: each hand-over may wake
//! that thread (a futex call each way), and an HTTP/2 server sends a large blob in
//! frames of tens of KiB, so the writer and the hash threads take them in batches.

use bytes::Bytes;

/// Chunks not handed over yet, and their bytes.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Gathered {
    /// Adds `bytes`; once `limit` bytes are gathered, the batch to hand over.
    pub(crate) fn push(&mut self, bytes: Bytes, limit: usize) -> Option<Vec<Bytes>> {
        self.len += bytes.len();
        self.chunks.push(bytes);
        (self.len >= limit).then(|| self.take())
    }

    /// Everything gathered so far (empty when nothing is).
    pub(crate) fn take(&mut self) -> Vec<Bytes> {
        self.len = 0;
        std::mem::take(&mut self.chunks)
    }
}
