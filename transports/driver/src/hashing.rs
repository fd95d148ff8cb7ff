//! Blob hashing on threads of their own ([`HashThreads`], the core's
//! [`HashOffload`]): the task that receives a blob's bytes hands them over and goes on,
//! and the blobs of one pull hash on different cores. The core still decides what is
//! hashed and compares the digest; these threads only compute.
//!
//! Each blob stays on one thread (its bytes must be hashed in order), blobs are spread
//! over the threads in turn, and each thread's queue is bounded: a thread that falls
//! behind slows the download instead of holding more chunks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use crate::gather::Gathered;
use bytes::Bytes;
use ocireg_core::offload::{HashOffload, OffloadedHash};
use ocireg_core::{Algorithm, Digest, Verifier};

/// Jobs queued per thread at most. An update holds one chunk, which keeps its whole read
/// buffer alive, so this is memory: 8 put the 64×16 MiB pull at 18.5 MiB peak RSS
/// against 15.5 with 2, at the same speed (BENCHMARKS.md).
const QUEUE: usize = 2;

/// A blob's chunks are handed over together once they reach this many bytes: an HTTP/2
/// server sends a large blob in frames of tens of KiB, and a hand-over per frame would
/// wake the hash thread per frame (HTTP/2 was 1.26× HTTP/1.1 that way).
const GATHER: usize = 128 << 10;

enum Job {
    Start(u64, Box<Verifier>),
    Update(u64, Vec<Bytes>),
    Finish(u64, SyncSender<Digest>),
    /// The download was dropped before its end (restarted, resumed, cancelled).
    Forget(u64),
}

/// Hash threads for the core ([`ocireg_core::Config::hashing`]); they end when the
/// last handle to them (this, or a blob's hash in progress) is dropped.
#[derive(Debug)]
pub struct HashThreads {
    lanes: Vec<SyncSender<Job>>,
    next_lane: AtomicUsize,
    next_id: AtomicU64,
    /// Bytes of the blobs whose hash the threads finished.
    hashed: Arc<AtomicU64>,
}

impl HashThreads {
    /// Starts `threads` hash threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<Arc<HashThreads>> {
        let hashed = Arc::new(AtomicU64::new(0));
        let lanes = (0..threads.max(1))
            .map(|i| {
                let (tx, rx) = sync_channel(QUEUE);
                let counted = hashed.clone();
                std::thread::Builder::new()
                    .name(format!("ocireg-hash-{i}"))
                    .spawn(move || hash_each(rx, &counted))?;
                Ok(tx)
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Arc::new(HashThreads {
            lanes,
            next_lane: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            hashed,
        }))
    }

    /// Bytes of the blobs whose hash these threads finished (a prefix the caller had
    /// hashed already included): what they did, for tests and summaries.
    pub fn bytes_hashed(&self) -> u64 {
        self.hashed.load(Ordering::Relaxed)
    }

    /// As many threads as the machine has cores, at most 4.
    pub fn for_this_machine() -> std::io::Result<Arc<HashThreads>> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HashThreads::start(cores.min(4))
    }
}

impl HashOffload for HashThreads {
    fn start(&self, verifier: Verifier) -> Box<dyn OffloadedHash> {
        let lane = self.next_lane.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tx = self.lanes[lane].clone();
        let algorithm = verifier.algorithm();
        let _ = tx.send(Job::Start(id, Box::new(verifier)));
        Box::new(Lane {
            tx,
            id,
            algorithm,
            open: true,
            gathered: Gathered::default(),
        })
    }
}

/// One blob's hash on its thread.
struct Lane {
    tx: SyncSender<Job>,
    id: u64,
    algorithm: Algorithm,
    open: bool,
    /// Chunks not handed over yet (see [`GATHER`]).
    gathered: Gathered,
}

impl Lane {
    fn hand_over(&mut self, chunks: Vec<Bytes>) {
        if !chunks.is_empty() {
            let _ = self.tx.send(Job::Update(self.id, chunks));
        }
    }
}

impl OffloadedHash for Lane {
    fn update(&mut self, bytes: Bytes) {
        if let Some(chunks) = self.gathered.push(bytes, GATHER) {
            self.hand_over(chunks);
        }
    }

    fn finish(mut self: Box<Self>) -> Digest {
        let rest = self.gathered.take();
        self.hand_over(rest);
        self.open = false;
        let (reply, answer) = sync_channel(1);
        let _ = self.tx.send(Job::Finish(self.id, reply));
        // A thread that is gone (it cannot be, short of a panic) gives the digest of
        // nothing: the core then rejects the blob rather than accepting unhashed bytes.
        answer
            .recv()
            .unwrap_or_else(|_| Digest::of(self.algorithm, b""))
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if self.open {
            let _ = self.tx.send(Job::Forget(self.id));
        }
    }
}

fn hash_each(rx: Receiver<Job>, hashed: &AtomicU64) {
    let mut hashes: HashMap<u64, Box<Verifier>> = HashMap::new();
    for job in rx {
        match job {
            Job::Start(id, v) => {
                hashes.insert(id, v);
            }
            Job::Update(id, chunks) => {
                if let Some(v) = hashes.get_mut(&id) {
                    chunks.iter().for_each(|c| v.update(c));
                }
            }
            Job::Finish(id, reply) => {
                if let Some(v) = hashes.remove(&id) {
                    hashed.fetch_add(v.len(), Ordering::Relaxed);
                    let _ = reply.send(v.finish());
                }
            }
            Job::Forget(id) => {
                hashes.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_hashed_on_the_threads_match_hashing_here() {
        let threads = HashThreads::start(2).unwrap();
        let blobs: Vec<Vec<u8>> = (0..5u8)
            .map(|i| vec![i; 300_000 + usize::from(i)])
            .collect();
        let mut hashes: Vec<_> = blobs
            .iter()
            .map(|_| threads.start(Verifier::new(Algorithm::Sha256)))
            .collect();
        // interleaved, as concurrent downloads deliver them
        for at in (0..300_005).step_by(65_536) {
            for (h, b) in hashes.iter_mut().zip(&blobs) {
                if at < b.len() {
                    let end = (at + 65_536).min(b.len());
                    h.update(Bytes::copy_from_slice(&b[at..end]));
                }
            }
        }
        for (h, b) in hashes.into_iter().zip(&blobs) {
            assert_eq!(h.finish(), Digest::sha256(b));
        }
    }

    #[test]
    fn a_prefix_hashed_here_continues_there() {
        let threads = HashThreads::start(1).unwrap();
        let data = b"hello, offloaded world".repeat(1000);
        let mut v = Verifier::new(Algorithm::Sha512);
        v.update(&data[..777]);
        let mut h = threads.start(v);
        h.update(Bytes::copy_from_slice(&data[777..]));
        assert_eq!(h.finish(), Digest::of(Algorithm::Sha512, &data));
        // a hash dropped unfinished is forgotten; the thread goes on serving others
        let mut dropped = threads.start(Verifier::new(Algorithm::Sha256));
        dropped.update(Bytes::from_static(b"abandoned"));
        drop(dropped);
        let mut next = threads.start(Verifier::new(Algorithm::Sha256));
        next.update(Bytes::from_static(b"x"));
        assert_eq!(next.finish(), Digest::sha256(b"x"));
    }
}
