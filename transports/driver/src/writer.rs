//! Blob bytes written on a thread of their own: the task that receives and verifies hands
//! each chunk over and goes on, while the disk works beside it (the pipeline of receive,
//! hash and write, instead of the three in turn).
//!
//! Order and durability stay as before: one thread takes the chunks of every file in the
//! order they were delivered, a [`Writer::barrier`] waits until everything handed over
//! for a file is written (and reports the first error of that file), and only then does
//! the layout writer `fsync`, check and rename it. The queue is bounded, so a slow disk
//! slows the download (memory stays bounded) rather than piling up chunks. Every
//! [`WRITE_BEHIND`] bytes of a file the kernel is asked to start writing it back
//! (Linux: `sync_file_range`, which does not wait), so the final `fsync` is short.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Hand-overs queued for the writer at most (each is a file's chunks gathered up to
/// [`BATCH`], so about 1–2 MiB in all). A queued chunk keeps the transport's whole read
/// buffer alive, so this is memory.
const QUEUE: usize = 4;

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
    gathered: Mutex<(Vec<Bytes>, usize)>,
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
            gathered: Mutex::new((Vec::new(), 0)),
        }))
    }
}

enum Job {
    Write(Arc<Slot>, Vec<Bytes>),
    Barrier(Arc<Slot>, SyncSender<io::Result<()>>),
}

/// The writer thread and its queue; the thread ends when this is dropped.
pub(crate) struct Writer {
    jobs: Option<SyncSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread.
    pub(crate) fn start() -> io::Result<Writer> {
        let (jobs, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("ocireg-writer".into())
            .spawn(move || run(rx))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Queues `bytes` to be appended to `slot`'s file (waits while the queue is full).
    /// Small chunks are gathered up to [`BATCH`] bytes and handed over together.
    pub(crate) fn write(&self, slot: &Arc<Slot>, bytes: Bytes) -> io::Result<()> {
        let batch = {
            let mut gathered = slot.gathered.lock().expect("slot lock");
            gathered.1 += bytes.len();
            gathered.0.push(bytes);
            if gathered.1 < BATCH {
                return Ok(());
            }
            gathered.1 = 0;
            std::mem::take(&mut gathered.0)
        };
        self.send(Job::Write(slot.clone(), batch))
    }

    /// Hands over what is gathered for `slot`, without waiting for it to be written.
    /// The drive loop calls this (through [`crate::Sink::idle`]) whenever no input is
    /// ready: bytes received before a stall reach the file, so a pull killed during it
    /// resumes from them.
    pub(crate) fn flush(&self, slot: &Arc<Slot>) -> io::Result<()> {
        let rest = {
            let mut gathered = slot.gathered.lock().expect("slot lock");
            gathered.1 = 0;
            std::mem::take(&mut gathered.0)
        };
        if rest.is_empty() {
            return Ok(());
        }
        self.send(Job::Write(slot.clone(), rest))
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

fn run(rx: Receiver<Job>) {
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
    fn a_failed_write_is_reported_at_the_barrier() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        let read_only = File::open(&path).unwrap();
        let w = Writer::start().unwrap();
        let slot = Slot::new(&read_only, true).unwrap();
        w.write(&slot, Bytes::from_static(b"x")).unwrap();
        assert!(w.barrier(&slot).is_err());
    }
}
