//! OCI image layouts on disk: writing a pull into one (atomically, resumably) and
//! loading one into a [`Registry`] to serve it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ocireg_core::manifest::{Descriptor, Manifest};
use ocireg_core::{BlobId, Digest, Event, ManifestRole, Pull, Verifier};
use ocireg_registry::Registry;
use serde_json::{json, Value};

use crate::Sink;

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
}

struct Open {
    file: File,
    partial: PathBuf,
    final_path: PathBuf,
}

/// Writes a pull into an OCI image layout.
///
/// Blobs are written under `ingest/` and renamed into `blobs/<alg>/<hex>` only after
/// the core verified them; `index.json` is replaced by rename. So a kill at any moment
/// leaves a valid layout, and a partial file is continued by the next run.
pub struct LayoutWriter {
    root: PathBuf,
    tag: Option<String>,
    open: HashMap<BlobId, Open>,
    resolved: Option<Descriptor>,
    /// Counters.
    pub stats: Stats,
}

fn blob_path(root: &Path, d: &Digest) -> PathBuf {
    root.join("blobs")
        .join(d.algorithm().as_str())
        .join(d.hex())
}

fn partial_path(root: &Path, d: &Digest) -> PathBuf {
    root.join(INGEST_DIR)
        .join(format!("{}-{}.partial", d.algorithm(), d.hex()))
}

/// Writes `data` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

impl LayoutWriter {
    /// Opens (or creates) the layout at `root`; `tag` becomes the `ref.name` annotation.
    pub fn create(root: impl Into<PathBuf>, tag: Option<String>) -> io::Result<LayoutWriter> {
        let root = root.into();
        fs::create_dir_all(root.join("blobs"))?;
        let marker = root.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(LayoutWriter {
            root,
            tag,
            open: HashMap::new(),
            resolved: None,
            stats: Stats::default(),
        })
    }

    /// The descriptor recorded for the reference, once resolved.
    pub fn resolved(&self) -> Option<&Descriptor> {
        self.resolved.as_ref()
    }

    /// Records the resolved manifest in `index.json` (replacing an entry of the same
    /// tag). Call after the pull succeeded.
    pub fn commit(&self) -> io::Result<()> {
        let Some(desc) = &self.resolved else {
            return Err(io::Error::other("the pull resolved no manifest"));
        };
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

    fn blob_queued(&mut self, pull: &mut Pull, blob: BlobId, d: &Descriptor) -> io::Result<()> {
        let final_path = blob_path(&self.root, &d.digest);
        if fs::metadata(&final_path).is_ok_and(|m| m.len() == d.len()) {
            pull.skip_blob(blob);
            self.stats.skipped += 1;
            return Ok(());
        }
        let partial = partial_path(&self.root, &d.digest);
        fs::create_dir_all(partial.parent().expect("ingest dir"))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&partial)?;
        let len = file.metadata()?.len();
        if len > 0 && len < d.len() {
            // Hash what an earlier run left, and continue after it.
            let mut v = Verifier::new(d.digest.algorithm());
            let mut buf = vec![0u8; 1 << 20];
            let mut reader = File::open(&partial)?;
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                v.update(&buf[..n]);
            }
            if pull.resume_blob(blob, v) {
                self.stats.resumed += 1;
            } else {
                // the machine starts this blob from zero: so does the file
                file.set_len(0)?;
            }
        } else if len > 0 {
            file.set_len(0)?;
        }
        self.open.insert(
            blob,
            Open {
                file,
                partial,
                final_path,
            },
        );
        Ok(())
    }

    fn write_manifest(&self, digest: &Digest, bytes: &Bytes) -> io::Result<()> {
        let p = blob_path(&self.root, digest);
        if p.exists() {
            return Ok(());
        }
        write_atomic(&p, bytes)
    }
}

impl Sink for LayoutWriter {
    fn event(&mut self, pull: &mut Pull, event: &Event) -> io::Result<()> {
        match event {
            Event::BlobQueued { blob, descriptor } => self.blob_queued(pull, *blob, descriptor)?,
            Event::Manifest {
                role: ManifestRole::Selector,
                ..
            } => {}
            Event::Manifest { digest, bytes, .. } => self.write_manifest(digest, bytes)?,
            Event::Resolved { descriptor } => self.resolved = Some(descriptor.clone()),
            Event::Restarted { blob } => {
                if let Some(o) = self.open.get_mut(blob) {
                    o.file.set_len(0)?;
                }
            }
            Event::BlobDone { blob, size, .. } => {
                // A blob completes without an open file only when it was embedded and
                // skipped; nothing to move then.
                if let Some(o) = self.open.remove(blob) {
                    let len = o.file.metadata()?.len();
                    if len != *size {
                        return Err(io::Error::other(format!(
                            "{}: wrote {len} bytes, expected {size}",
                            o.partial.display()
                        )));
                    }
                    drop(o.file);
                    fs::create_dir_all(o.final_path.parent().expect("blob dir"))?;
                    fs::rename(&o.partial, &o.final_path)?;
                    self.stats.fetched += 1;
                }
            }
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
        o.file.write_all(bytes)?;
        self.stats.bytes += bytes.len() as u64;
        Ok(())
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

/// Loads every image of a layout into `registry` under `repository`. An image whose
/// `ref.name` is a valid tag is tagged with it; one whose `ref.name` is a full reference
/// (`host/repo:tag`) goes to that repository. Returns the (repository, tag) pairs added.
pub fn load_into(
    root: &Path,
    registry: &mut Registry,
    repository: &str,
) -> io::Result<Vec<(String, Option<String>)>> {
    let mut added = Vec::new();
    for img in read_index(root)? {
        let (repo, tag) = match &img.name {
            Some(n) if ocireg_core::reference::validate_tag(n).is_ok() => {
                (repository.to_string(), Some(n.clone()))
            }
            Some(n) => match ocireg_core::Reference::parse(n) {
                Ok(r) => (r.repository().to_string(), r.tag().map(str::to_string)),
                Err(_) => (repository.to_string(), None),
            },
            None => (repository.to_string(), None),
        };
        load_manifest(root, registry, &repo, &img.descriptor, tag.as_deref())?;
        added.push((repo, tag));
    }
    Ok(added)
}

fn load_manifest(
    root: &Path,
    registry: &mut Registry,
    repo: &str,
    d: &Descriptor,
    tag: Option<&str>,
) -> io::Result<()> {
    let bytes = read_blob(root, &d.digest)?;
    let (manifest, media_type) = Manifest::parse(&d.media_type, &bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", d.digest)))?;
    match manifest {
        Manifest::Image(m) => {
            for b in m.blobs() {
                match read_blob(root, &b.digest) {
                    Ok(data) => registry.add_blob_with_digest(repo, b.digest.clone(), data),
                    // Blobs of other platforms or foreign layers may be absent.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Manifest::Index(i) => {
            for child in &i.manifests {
                match load_manifest(root, registry, repo, child, None) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    r => r?,
                }
            }
        }
    }
    registry.add_manifest(repo, &media_type, bytes, tag);
    Ok(())
}

/// Watches a pull written into a layout: events, bytes, skipped blobs.
pub trait Observer {
    /// An event of the pull.
    fn event(&mut self, _event: &Event) {}
    /// `n` more bytes of `blob` were written.
    fn delivered(&mut self, _blob: BlobId, _n: u64) {}
    /// A queued blob was already in the layout and is not downloaded.
    fn skipped(&mut self, _blob: BlobId, _descriptor: &Descriptor) {}
}

impl<F: FnMut(&Event)> Observer for F {
    fn event(&mut self, event: &Event) {
        self(event)
    }
}

/// Pulls into the layout at `dir` (tagging with the reference's tag) and records the
/// image in `index.json` once everything is verified. Returns the resolved descriptor
/// and the counters.
pub async fn pull_to_layout<T, R>(
    pull: &mut Pull,
    transport: &T,
    runtime: &R,
    dir: &Path,
    observer: &mut (dyn Observer + Send),
) -> Result<(Descriptor, Stats), crate::PullError>
where
    T: crate::Transport + ?Sized,
    R: crate::Runtime + ?Sized,
{
    let tag = pull.reference().tag().map(str::to_string);
    let writer = LayoutWriter::create(dir, tag)?;
    let mut sink = Observed { writer, observer };
    crate::drive(pull, transport, runtime, &mut sink).await?;
    sink.writer.commit()?;
    let desc = sink
        .writer
        .resolved()
        .cloned()
        .ok_or_else(|| io::Error::other("no manifest resolved"))?;
    Ok((desc, sink.writer.stats.clone()))
}

/// A layout writer that also shows what happens to an observer (progress, logs).
struct Observed<'a> {
    writer: LayoutWriter,
    observer: &'a mut (dyn Observer + Send),
}

impl Sink for Observed<'_> {
    fn event(&mut self, pull: &mut Pull, event: &Event) -> io::Result<()> {
        let skipped_before = self.writer.stats.skipped;
        self.writer.event(pull, event)?;
        match event {
            Event::BlobQueued { blob, descriptor }
                if self.writer.stats.skipped > skipped_before =>
            {
                self.observer.skipped(*blob, descriptor)
            }
            _ => self.observer.event(event),
        }
        Ok(())
    }

    fn deliver(&mut self, blob: BlobId, offset: u64, bytes: &Bytes) -> io::Result<()> {
        self.writer.deliver(blob, offset, bytes)?;
        self.observer.delivered(blob, bytes.len() as u64);
        Ok(())
    }
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}
