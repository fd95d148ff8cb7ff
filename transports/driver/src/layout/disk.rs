//! The layout's files on disk: where a blob is written while it downloads, how a
//! verified one is named (flushed, renamed only while it is still the file written,
//! directory flushed), and the helpers that never follow a symlink where they create.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ocireg_core::{Digest, Verifier};

use super::INGEST_DIR;
use crate::writer::Slot;

/// Where a blob's bytes go while it downloads.
pub(super) enum Ingest {
    /// The shared partial file `ingest/<alg>-<hex>.partial`, locked by this process: a
    /// later run may continue it.
    Shared { file: File, path: PathBuf },
    /// Another process holds the shared file: a private file of unique name, never
    /// continued by anyone.
    Private(tempfile::NamedTempFile),
}

impl Ingest {
    pub(super) fn file(&mut self) -> &mut File {
        match self {
            Ingest::Shared { file, .. } => file,
            Ingest::Private(t) => t.as_file_mut(),
        }
    }

    /// Empties the file for a blob that starts over.
    pub(super) fn truncate(&mut self) -> io::Result<()> {
        let f = self.file();
        f.set_len(0)?;
        io::Seek::seek(f, io::SeekFrom::Start(0))?;
        Ok(())
    }

    pub(super) fn path(&self) -> &Path {
        match self {
            Ingest::Shared { path, .. } => path,
            Ingest::Private(t) => t.path(),
        }
    }
}

pub(super) struct Open {
    pub(super) ingest: Ingest,
    pub(super) final_path: PathBuf,
    /// The ingest file as the writer thread writes it.
    pub(super) slot: Arc<Slot>,
}

pub(crate) fn blob_path(root: &Path, d: &Digest) -> PathBuf {
    root.join("blobs")
        .join(d.algorithm().as_str())
        .join(d.hex())
}

pub(super) fn partial_path(root: &Path, d: &Digest) -> PathBuf {
    root.join(INGEST_DIR)
        .join(format!("{}-{}.partial", d.algorithm(), d.hex()))
}

/// Creates `dir` (and its parents) and checks that it is a directory, not a symlink to
/// one: a planted link would send the layout's files elsewhere.
pub(super) fn real_dir(dir: &Path) -> io::Result<()> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dir.display()));
    fs::create_dir_all(dir).map_err(named)?;
    let m = fs::symlink_metadata(dir).map_err(named)?;
    if !m.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory (a symlink?); refusing to write through it",
            dir.display()
        )));
    }
    Ok(())
}

/// Flushes a directory's entries (a rename in it) to disk.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Opens `path` for reading and appending, creating it, without following a symlink at
/// that name (a symlink there fails with an error instead).
pub(super) fn open_no_follow(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).truncate(false).read(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    o.open(path)
}

/// True when `path` names the very file `file` is (not a symlink, not a replacement).
pub(super) fn names(path: &Path, file: &File) -> io::Result<bool> {
    let by_name = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let by_fd = file.metadata()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(by_name.is_file() && by_name.dev() == by_fd.dev() && by_name.ino() == by_fd.ino())
    }
    #[cfg(not(unix))]
    Ok(by_name.is_file() && by_name.len() == by_fd.len())
}

/// A regular file of `len` bytes at `path` (a symlink does not count).
pub(super) fn regular_file_of(path: &Path, len: u64) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == len)
}

/// Hashes the first `len` bytes of `file`.
pub(super) fn hash_prefix(
    file: &File,
    algorithm: ocireg_core::Algorithm,
    len: u64,
) -> io::Result<Verifier> {
    let mut v = Verifier::new(algorithm);
    let mut reader = io::BufReader::with_capacity(1 << 20, file.try_clone()?);
    io::Seek::seek(&mut reader, io::SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = reader.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        v.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(v)
}

/// Writes `data` to `path` through a temporary file of unique name (created with
/// `O_EXCL`), `fsync` and a rename, then `fsync`s the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    real_dir(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Holds an exclusive lock on the layout's `index.json` while alive (the lock goes with
/// the file descriptor).
pub(super) struct IndexLock {
    _file: File,
}

impl IndexLock {
    pub(super) fn take(root: &Path) -> io::Result<IndexLock> {
        let dir = root.join(INGEST_DIR);
        real_dir(&dir)?;
        let f = open_no_follow(&dir.join("index.json.lock"))?;
        f.lock()?;
        Ok(IndexLock { _file: f })
    }
}

/// Moves a verified blob into `blobs/`: data on disk first, then the name, then the
/// directory entry. Runs on the writer's finisher thread once every byte handed over for
/// the file is written; gives the time the flushes took.
pub(super) fn name_blob(mut o: Open, size: u64, durable: bool) -> io::Result<std::time::Duration> {
    let len = o.ingest.file().metadata()?.len();
    if len != size {
        return Err(io::Error::other(format!(
            "{}: wrote {len} bytes, expected {size}",
            o.ingest.path().display()
        )));
    }
    let started = std::time::Instant::now();
    if durable {
        o.ingest.file().sync_data()?;
    }
    let dir = o.final_path.parent().expect("blob dir").to_path_buf();
    real_dir(&dir)?;
    match o.ingest {
        Ingest::Shared { file, path } => {
            if !names(&path, &file)? {
                return Err(io::Error::other(format!(
                    "{} was replaced while this pull wrote it; not moving it into blobs/",
                    path.display()
                )));
            }
            fs::rename(&path, &o.final_path)?;
            drop(file); // releases the lock, after the rename
        }
        Ingest::Private(t) => {
            t.persist(&o.final_path).map_err(|e| e.error)?;
        }
    }
    if durable {
        sync_dir(&dir)?;
    }
    Ok(started.elapsed())
}
