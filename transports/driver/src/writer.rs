//! Blob bytes written on a thread of their own: the task that receives and verifies hands
//! each chunk over and goes on, while the disk works beside it (the pipeline of receive,
//! hash and write, instead of the three in turn).
//!
//! Order and durability stay as before: one thread takes the chunks of every file in the
//! order they were delivered, and a blob handed over with [`Writer::finish`] is checked,
//! `fsync`ed and renamed by a second thread (the finisher) only once everything handed
//! over for its file is written, while the download of the other blobs goes on (a blob's
//! flush took the receiving task ~5 ms per 16 MiB blob before). [`Writer::settle`] waits
//! for every finish and reports the first error; [`Writer::barrier`] waits for one file's
//! writes. The queues are bounded, so a slow disk slows the download (memory stays
//! bounded) rather than piling up chunks. Every [`WRITE_BEHIND`] bytes of a file the
//! kernel is asked to start writing it back (Linux: `sync_file_range`, which does not
//! wait), so the final `fsync` is short.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::gather::Gathered;

/// Hand-overs queued for the writer at most (each is a file's chunks gathered up to
/// [`BATCH`]). A queued chunk keeps the transport's whole read buffer alive, so this is
/// memory: since a blob's flush no longer stops the receiving task, the queue is full
/// more often, and 4 put the 64×16 MiB pull at 16.5 MiB peak RSS against 15.0–15.9 with 2,
/// at the same speed (BENCHMARKS.md).
const QUEUE: usize = 2;

/// Every this many bytes of a file, writeback of it is started.
pub(crate) const WRITE_BEHIND: u64 = 8 << 20;

/// Chunks are gathered per file up to this many bytes and handed over together: each
/// hand-over may wake the writer thread (a futex call each way), and an HTTP/2 server
/// sends a large blob in frames of tens of KiB. Memory: at most this much per file. What
/// is gathered is handed over at the latest when the drive loop goes idle
/// ([`Writer::flush`]), so nothing received waits for more to arrive.
const BATCH: usize = 256 << 10;

/// One file being written: its descriptor (a duplicate of the layout writer's), the
/// first error of a write to it, bytes since writeback was last started, and the chunks
/// gathered but not yet handed over (see [`BATCH`]).
pub(crate) struct Slot {
    file: File,
    error: Mutex<Option<io::Error>>,
    unflushed: Mutex<u64>,
    /// Writeback is started every [`WRITE_BEHIND`] bytes (the file will be flushed).
    write_behind: bool,
    gathered: Mutex<Gathered>,
}

impl Slot {
    /// A slot writing through a duplicate of `file` (they share the file offset).
    /// With `write_behind`, writeback is started as the file grows (for a file that will
    /// be flushed).
    pub(crate) fn new(file: &File, write_behind: bool) -> io::Result<Arc<Slot>> {
        Ok(Arc::new(Slot {
            file: file.try_clone()?,
            error: Mutex::new(None),
            unflushed: Mutex::new(0),
            write_behind,
            gathered: Mutex::new(Gathered::default()),
        }))
    }
}

/// What names a finished file (check, flush, rename): run by the finisher once the
/// file's bytes are written; gives the time its flushes took.
pub(crate) type Finish = Box<dyn FnOnce() -> io::Result<Duration> + Send>;

/// Files named since the last [`Writer::settle`]: how many, the time their flushes
/// took, and the first error.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    pub(crate) named: usize,
    pub(crate) sync: Duration,
    pub(crate) error: Option<io::Error>,
}

enum Job {
    Write(Arc<Slot>, Vec<Bytes>),
    Barrier(Arc<Slot>, SyncSender<io::Result<()>>),
    Finish(Arc<Slot>, Finish),
    Settle(SyncSender<Settled>),
}

/// The finisher's work, in the order the writer passes it on.
enum Naming {
    Run(Finish),
    Settle(SyncSender<Settled>),
}

/// Finishes queued for the finisher at most (each holds an open file until it runs).
const FINISHES: usize = 64;

/// The writer thread and its queue; the thread ends when this is dropped.
pub(crate) struct Writer {
    jobs: Option<SyncSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread.
    pub(crate) fn start() -> io::Result<Writer> {
        let (jobs, rx) = sync_channel(QUEUE);
        let (names, finishes) = sync_channel(FINISHES);
        let finisher = std::thread::Builder::new()
            .name("ocireg-finisher".into())
            .spawn(move || finish_each(finishes))?;
        let thread = std::thread::Builder::new()
            .name("ocireg-writer".into())
            .spawn(move || {
                run(rx, names);
                let _ = finisher.join(); // it ends once `names` is dropped
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Queues `bytes` to be appended to `slot`'s file (waits while the queue is full).
    /// Small chunks are gathered up to [`BATCH`] bytes and handed over together.
    pub(crate) fn write(&self, slot: &Arc<Slot>, bytes: Bytes) -> io::Result<()> {
        let batch = slot.gathered.lock().expect("slot lock").push(bytes, BATCH);
        match batch {
            Some(batch) => self.send(Job::Write(slot.clone(), batch)),
            None => Ok(()),
        }
    }

    /// Hands over what is gathered for `slot`, without waiting for it to be written.
    /// The drive loop calls this (through [`crate::Sink::idle`]) whenever no input is
    /// ready: bytes received before a stall reach the file, so a pull killed during it
    /// resumes from them.
    pub(crate) fn flush(&self, slot: &Arc<Slot>) -> io::Result<()> {
        let rest = slot.gathered.lock().expect("slot lock").take();
        if rest.is_empty() {
            return Ok(());
        }
        self.send(Job::Write(slot.clone(), rest))
    }

    /// Hands `slot`'s file over to be named by `finish` once everything queued for it
    /// is written (not waiting for either). A write that failed is `finish`'s error
    /// instead.
    pub(crate) fn finish(&self, slot: &Arc<Slot>, finish: Finish) -> io::Result<()> {
        self.flush(slot)?;
        self.send(Job::Finish(slot.clone(), finish))
    }

    /// Waits until every file handed to [`Writer::finish`] so far is named (or failed).
    pub(crate) fn settle(&self) -> io::Result<Settled> {
        let (reply, done) = sync_channel(1);
        self.send(Job::Settle(reply))?;
        done.recv().map_err(|_| gone())
    }

    /// Waits until everything queued for `slot` is written; the first error, if any.
    pub(crate) fn barrier(&self, slot: &Arc<Slot>) -> io::Result<()> {
        self.flush(slot)?;
        let (reply, done) = sync_channel(1);
        self.send(Job::Barrier(slot.clone(), reply))?;
        done.recv().map_err(|_| gone())?
    }

    fn send(&self, job: Job) -> io::Result<()> {
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn gone() -> io::Error {
    io::Error::other("the blob writer thread stopped")
}

fn run(rx: Receiver<Job>, names: SyncSender<Naming>) {
    for job in rx {
        match job {
            Job::Write(slot, chunks) => {
                let mut error = slot.error.lock().expect("slot lock");
                if error.is_some() {
                    continue; // the file failed already: the barrier reports it
                }
                if let Err(e) = chunks.iter().try_for_each(|c| (&slot.file).write_all(c)) {
                    *error = Some(e);
                    continue;
                }
                let written: usize = chunks.iter().map(Bytes::len).sum();
                let mut unflushed = slot.unflushed.lock().expect("slot lock");
                *unflushed += written as u64;
                if slot.write_behind && *unflushed >= WRITE_BEHIND {
                    *unflushed = 0;
                    start_writeback(&slot.file);
                }
            }
            Job::Barrier(slot, reply) => {
                let result = match slot.error.lock().expect("slot lock").take() {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
                let _ = reply.send(result);
            }
            Job::Finish(slot, finish) => {
                let failed = slot.error.lock().expect("slot lock").take();
                let run: Finish = match failed {
                    Some(e) => Box::new(move || Err(e)),
                    None => finish,
                };
                // the finisher gone is said at the next settle (its reply channel closes)
                let _ = names.send(Naming::Run(run));
            }
            Job::Settle(reply) => {
                let _ = names.send(Naming::Settle(reply));
            }
        }
    }
}

/// The finisher: names each file in turn, and answers a settle with what it did since
/// the last one.
fn finish_each(rx: Receiver<Naming>) {
    let mut settled = Settled::default();
    for naming in rx {
        match naming {
            Naming::Run(finish) => match finish() {
                Ok(sync) => {
                    settled.named += 1;
                    settled.sync += sync;
                }
                Err(e) => {
                    settled.error.get_or_insert(e);
                }
            },
            Naming::Settle(reply) => {
                let _ = reply.send(std::mem::take(&mut settled));
            }
        }
    }
}

/// Asks the kernel to start writing `file`'s dirty pages to disk without waiting for
/// them (a hint: the `fsync` that makes the blob durable still follows).
#[cfg(target_os = "linux")]
fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on an open descriptor this function borrows; offset 0 and
    // length 0 mean the whole file, and no memory is passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_land_in_order_and_a_barrier_waits_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let w = Writer::start().unwrap();
        let slot = Slot::new(&file, true).unwrap();
        let mut want = Vec::new();
        for i in 0..1000u32 {
            let chunk = Bytes::from(i.to_le_bytes().repeat(100));
            want.extend_from_slice(&chunk);
            w.write(&slot, chunk).unwrap();
        }
        w.barrier(&slot).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    #[test]
    fn a_file_is_finished_after_its_writes_and_settle_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let w = Writer::start().unwrap();
        let slot = Slot::new(&file, true).unwrap();
        for _ in 0..100 {
            w.write(&slot, Bytes::from(vec![7u8; 10_000])).unwrap();
        }
        let seen = Arc::new(Mutex::new(0u64));
        let seen_by_finish = seen.clone();
        let named = dir.path().join("named");
        let to = named.clone();
        w.finish(
            &slot,
            Box::new(move || {
                *seen_by_finish.lock().unwrap() = std::fs::metadata(&path)?.len();
                std::fs::rename(&path, &to)?;
                Ok(Duration::from_millis(3))
            }),
        )
        .unwrap();
        let settled = w.settle().unwrap();
        // every byte was in the file when it was named, and the settle came after it
        assert_eq!(*seen.lock().unwrap(), 1_000_000);
        assert!(named.exists());
        assert_eq!((settled.named, settled.sync), (1, Duration::from_millis(3)));
        assert!(settled.error.is_none());
        // a settle counts only what finished since the last one
        assert_eq!(w.settle().unwrap().named, 0);
    }

    /// A writer whose one write (to a file opened read-only) failed.
    fn a_write_that_fails() -> (tempfile::TempDir, Writer, Arc<Slot>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        let read_only = File::open(&path).unwrap();
        let w = Writer::start().unwrap();
        let slot = Slot::new(&read_only, true).unwrap();
        w.write(&slot, Bytes::from_static(b"x")).unwrap();
        (dir, w, slot)
    }

    #[test]
    fn a_failed_write_is_the_finish_error_and_the_file_is_not_named() {
        let (_dir, w, slot) = a_write_that_fails();
        let ran = Arc::new(Mutex::new(false));
        let ran_in_finish = ran.clone();
        w.finish(
            &slot,
            Box::new(move || {
                *ran_in_finish.lock().unwrap() = true;
                Ok(Duration::ZERO)
            }),
        )
        .unwrap();
        let settled = w.settle().unwrap();
        assert!(settled.error.is_some());
        assert_eq!(settled.named, 0);
        assert!(!*ran.lock().unwrap());
    }

    #[test]
    fn a_failed_write_is_reported_at_the_barrier() {
        let (_dir, w, slot) = a_write_that_fails();
        assert!(w.barrier(&slot).is_err());
    }
}
