//! OCI image layouts on disk: writing a pull into one (atomically, resumably, safely in
//! a shared directory) and reading one back.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ocireg_core::manifest::Descriptor;
use ocireg_core::{BlobId, Digest, Event, ManifestRole, QueuedBlob};
use serde_json::{json, Value};

use crate::writer::{Slot, Writer};
use crate::Caller;

mod disk;
mod drive;

pub(crate) use disk::blob_path;
pub use disk::write_atomic;
use disk::{
    hash_prefix, name_blob, names, open_no_follow, partial_path, real_dir, regular_file_of,
    IndexLock, Ingest, Open,
};
pub use drive::{pull_into, pull_to_layout};

/// The annotation naming an image in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Where unfinished downloads live inside the layout.
pub const INGEST_DIR: &str = "ingest";

/// What a pull did, for the summary.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Blobs downloaded.
    pub fetched: usize,
    /// Blobs already present.
    pub skipped: usize,
    /// Blobs continued from a partial file of an earlier run.
    pub resumed: usize,
    /// Blob bytes received in this run.
    pub bytes: u64,
    /// Retries.
    pub retries: usize,
    /// Time spent making finished blobs durable (`fsync` of data and directory).
    pub sync: std::time::Duration,
}

/// Writes a pull into an OCI image layout.
///
/// The layout is treated as a directory other programs (and other pulls) share:
/// - blobs are written under `ingest/` and renamed into `blobs/<alg>/<hex>` only after the
///   core verified them, with the data `fsync`ed before the rename and the directory
///   after it, so neither a kill nor a power loss leaves a named blob with wrong content;
/// - files are created with `O_NOFOLLOW` (or `O_EXCL` under unique names), a symlink found
///   in `ingest/` or `blobs/` is removed or replaced, never followed, and a name is
///   renamed into place only while it still is the file this process wrote;
/// - each partial file is locked by the process writing it: a second pull of the same
///   blob at the same moment writes a private file instead of sharing it;
/// - `index.json` is read, changed and replaced under an exclusive lock, so concurrent
///   pulls into one layout keep every tag.
pub struct LayoutWriter {
    root: PathBuf,
    tag: Option<String>,
    open: HashMap<BlobId, Open>,
    resolved: Option<Descriptor>,
    verify_existing: bool,
    /// Blob data is flushed before it is named.
    durable: bool,
    /// Counters.
    pub stats: Stats,
    /// The thread that writes blob bytes.
    writer: Writer,
}

impl LayoutWriter {
    /// Opens (or creates) the layout at `root`; `tag` becomes the `ref.name` annotation.
    pub fn create(root: impl Into<PathBuf>, tag: Option<String>) -> io::Result<LayoutWriter> {
        let root = root.into();
        real_dir(&root)?;
        real_dir(&root.join("blobs"))?;
        real_dir(&root.join(INGEST_DIR))?;
        let marker = root.join("oci-layout");
        if fs::symlink_metadata(&marker).is_err() {
            write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(LayoutWriter {
            root,
            tag,
            open: HashMap::new(),
            resolved: None,
            verify_existing: false,
            durable: true,
            stats: Stats::default(),
            writer: Writer::start()?,
        })
    }

    /// Re-hash blobs already in the layout instead of trusting their names; a blob that
    /// does not match is downloaded again.
    pub fn verify_existing(mut self, yes: bool) -> LayoutWriter {
        self.verify_existing = yes;
        self
    }

    /// Whether blob data is flushed to disk before it is named (the default). Without,
    /// a blob is still verified before it is named, but a power loss (not a killed
    /// process) may leave a named blob whose data never reached the disk. For scratch
    /// layouts that can be pulled again (CI caches, benchmarks).
    pub fn durable(mut self, yes: bool) -> LayoutWriter {
        self.durable = yes;
        self
    }

    /// The descriptor recorded for the reference, once resolved.
    pub fn resolved(&self) -> Option<&Descriptor> {
        self.resolved.as_ref()
    }

    /// Waits until every blob of the pull is named in `blobs/`, then records the
    /// resolved manifest in `index.json` (replacing an entry of the same tag), under the
    /// layout's lock. Call after the pull succeeded.
    pub fn commit(&mut self) -> io::Result<()> {
        self.settle()?;
        let Some(desc) = &self.resolved else {
            return Err(io::Error::other("the pull resolved no manifest"));
        };
        let _lock = IndexLock::take(&self.root)?;
        let path = self.root.join("index.json");
        let mut index: Value = match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                json!({"schemaVersion": 2, "mediaType": ocireg_core::manifest::OCI_INDEX, "manifests": []})
            }
            Err(e) => return Err(e),
        };
        let mut entry = serde_json::to_value(desc).map_err(io::Error::other)?;
        if let Some(tag) = &self.tag {
            entry["annotations"] = json!({ REF_NAME: tag });
        }
        let manifests = index["manifests"].as_array_mut().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "index.json has no manifests array",
            )
        })?;
        manifests.retain(|m| match &self.tag {
            Some(tag) => m["annotations"][REF_NAME].as_str() != Some(tag),
            None => {
                m["digest"].as_str() != Some(&desc.digest.to_string())
                    || m["annotations"][REF_NAME].is_string()
            }
        });
        manifests.push(entry);
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(&index).map_err(io::Error::other)?,
        )
    }

    /// Is the blob already in the layout (a regular file of the right size, and with
    /// `verify_existing` of the right digest)?
    fn present(&self, d: &Descriptor) -> io::Result<bool> {
        let path = blob_path(&self.root, &d.digest);
        if !regular_file_of(&path, d.len()) {
            return Ok(false);
        }
        if !self.verify_existing {
            return Ok(true);
        }
        let f = File::open(&path)?;
        if hash_prefix(&f, d.digest.algorithm(), d.len())?.finish() == d.digest {
            return Ok(true);
        }
        tracing::warn!(digest = %d.digest, "blob in the layout does not match its name: downloading it again");
        fs::remove_file(&path)?;
        Ok(false)
    }

    /// The shared partial file of a blob, locked by this process; `None` when another
    /// process holds it.
    fn lock_shared(&self, partial: &Path) -> io::Result<Option<File>> {
        for _ in 0..3 {
            let file = match open_no_follow(partial) {
                Ok(f) => f,
                // A symlink (ELOOP) or another non-file planted at the name: remove the
                // name (never what it points to) and create the file afresh.
                Err(e)
                    if e.kind() != io::ErrorKind::NotFound
                        && e.kind() != io::ErrorKind::PermissionDenied =>
                {
                    tracing::warn!(path = %partial.display(), "removing a non-file in ingest/: {e}");
                    fs::remove_file(partial)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !file.metadata()?.is_file() {
                fs::remove_file(partial)?;
                continue;
            }
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => return Ok(None),
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
            // Still the file of that name? (another process may have renamed it into
            // blobs/ between our open and our lock)
            if names(partial, &file)? {
                return Ok(Some(file));
            }
        }
        Err(io::Error::other(format!(
            "{}: the partial file keeps changing under this pull",
            partial.display()
        )))
    }

    fn blob_queued(&mut self, queued: QueuedBlob<'_>, d: &Descriptor) -> io::Result<()> {
        let blob = queued.id();
        if self.present(d)? {
            queued.skip();
            return Ok(());
        }
        let final_path = blob_path(&self.root, &d.digest);
        let partial = partial_path(&self.root, &d.digest);
        let mut ingest = match self.lock_shared(&partial)? {
            Some(file) => {
                // Another process may have finished this blob meanwhile.
                if self.present(d)? {
                    queued.skip();
                    return Ok(());
                }
                let len = file.metadata()?.len();
                if len > 0 && len < d.len() {
                    // Hash what an earlier run left, and continue after it.
                    let v = hash_prefix(&file, d.digest.algorithm(), len)?;
                    match queued.resume(v) {
                        Ok(()) => self.stats.resumed += 1,
                        // the machine starts this blob from zero: so does the file
                        Err(_) => file.set_len(0)?,
                    }
                } else if len > 0 {
                    file.set_len(0)?;
                }
                Ingest::Shared {
                    file,
                    path: partial,
                }
            }
            None => {
                tracing::debug!(digest = %d.digest, "another process is downloading this blob: using a private file");
                Ingest::Private(
                    tempfile::Builder::new()
                        .prefix(&format!("{}-{}.", d.digest.algorithm(), d.digest.hex()))
                        .suffix(".private")
                        .tempfile_in(self.root.join(INGEST_DIR))?,
                )
            }
        };
        let slot = Slot::new(ingest.file(), self.durable)?;
        self.open.insert(
            blob,
            Open {
                ingest,
                final_path,
                slot,
            },
        );
        Ok(())
    }

    /// Hands a verified blob to the writer, which names it once its bytes are written
    /// ([`name_blob`], beside the download: a blob's flush does not hold up the others').
    fn blob_done(&mut self, blob: BlobId, size: u64) -> io::Result<()> {
        // A blob completes without an open file only when it was embedded and skipped;
        // nothing to move then.
        let Some(o) = self.open.remove(&blob) else {
            return Ok(());
        };
        let slot = o.slot.clone();
        let durable = self.durable;
        self.writer
            .finish(&slot, Box::new(move || name_blob(o, size, durable)))
    }

    /// Waits until every finished blob is named; counts them, and the first error.
    fn settle(&mut self) -> io::Result<()> {
        let settled = self.writer.settle()?;
        self.stats.fetched += settled.named;
        self.stats.sync += settled.sync;
        settled.error.map_or(Ok(()), Err)
    }

    fn write_manifest(&self, digest: &Digest, bytes: &Bytes) -> io::Result<()> {
        let p = blob_path(&self.root, digest);
        if regular_file_of(&p, bytes.len() as u64) && !self.verify_existing {
            return Ok(());
        }
        write_atomic(&p, bytes)
    }
}

impl Caller for LayoutWriter {
    fn blob_queued(&mut self, queued: QueuedBlob<'_>, descriptor: &Descriptor) -> io::Result<()> {
        LayoutWriter::blob_queued(self, queued, descriptor)
    }

    fn event(&mut self, event: &Event) -> io::Result<()> {
        match event {
            Event::BlobSkipped { .. } => self.stats.skipped += 1,
            Event::Manifest {
                role: ManifestRole::Selector,
                ..
            } => {}
            Event::Manifest { digest, bytes, .. } => self.write_manifest(digest, bytes)?,
            Event::Resolved { descriptor } => self.resolved = Some(descriptor.clone()),
            Event::DownloadRestarted { blob } => {
                if let Some(o) = self.open.get_mut(blob) {
                    self.writer.barrier(&o.slot)?;
                    o.ingest.truncate()?;
                }
            }
            Event::BlobFetched { blob, size, .. } => self.blob_done(*blob, *size)?,
            Event::Retry { .. } => self.stats.retries += 1,
            _ => {}
        }
        Ok(())
    }

    fn deliver(&mut self, blob: BlobId, _offset: u64, bytes: &Bytes) -> io::Result<()> {
        let o = self
            .open
            .get_mut(&blob)
            .ok_or_else(|| io::Error::other(format!("bytes for unknown blob {blob:?}")))?;
        self.writer.write(&o.slot, bytes.clone())?;
        self.stats.bytes += bytes.len() as u64;
        Ok(())
    }

    fn idle(&mut self) -> io::Result<()> {
        self.open
            .values()
            .try_for_each(|o| self.writer.flush(&o.slot))
    }
}

/// An image found in a layout.
#[derive(Clone, Debug)]
pub struct LayoutImage {
    /// Its `ref.name`, if any.
    pub name: Option<String>,
    /// Its descriptor in `index.json`.
    pub descriptor: Descriptor,
}

/// Reads `index.json` of a layout.
pub fn read_index(root: &Path) -> io::Result<Vec<LayoutImage>> {
    let path = root.join("index.json");
    let bytes = fs::read(&path)?;
    let index: ocireg_core::manifest::Index = serde_json::from_slice(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    Ok(index
        .manifests
        .into_iter()
        .map(|d| LayoutImage {
            name: d
                .annotations
                .as_ref()
                .and_then(|a| a.get(REF_NAME).cloned()),
            descriptor: d,
        })
        .collect())
}

/// Reads a blob of a layout, verifying its digest.
pub fn read_blob(root: &Path, d: &Digest) -> io::Result<Bytes> {
    let data = fs::read(blob_path(root, d))?;
    if Digest::of(d.algorithm(), &data) != *d {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("blob {d} does not match its digest"),
        ));
    }
    Ok(Bytes::from(data))
}

#[cfg(test)]
mod tests;
