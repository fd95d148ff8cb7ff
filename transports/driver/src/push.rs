//! Pushing from an OCI layout: the plan (which blobs, which manifests in which order) read
//! from `index.json` and the blobs it reaches, and the layout as the push's blob source.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use ocireg_core::manifest::{Descriptor, Manifest};
use ocireg_core::{BlobId, Platform, PushManifest, PushPlan};

use crate::layout::{blob_path, read_blob, read_index};
use crate::BlobSource;

/// Chunks a blob is read in.
const READ_CHUNK: usize = 256 * 1024;
/// Indexes within indexes a plan follows at most.
const MAX_DEPTH: usize = 8;

/// The blobs of a plan, as files of the layout.
#[derive(Debug)]
pub struct LayoutSource {
    paths: Vec<(PathBuf, u64)>,
}

/// The push plan for the image of the layout at `root` named `name` (its `ref.name`),
/// or its only image when `name` is `None`; and the layout as its blob source. Every
/// manifest is read and verified; every blob must be in the layout with its size.
///
/// With a `platform`, an index is replaced by its manifest for that platform (the others
/// need not be in the layout); an image manifest is pushed as it is.
pub fn plan_from_layout(
    root: &Path,
    name: Option<&str>,
    platform: Option<&Platform>,
) -> io::Result<(PushPlan, LayoutSource)> {
    let images = read_index(root)?;
    let chosen: Vec<_> = images
        .iter()
        .filter(|i| name.is_none_or(|n| i.name.as_deref() == Some(n)))
        .collect();
    let image = match (chosen.as_slice(), name) {
        ([one], _) => *one,
        ([], Some(n)) => {
            let names: Vec<&str> = images.iter().filter_map(|i| i.name.as_deref()).collect();
            return Err(invalid(format!(
                "{}: no image named {n:?} (names: {})",
                root.display(),
                names.join(", ")
            )));
        }
        (_, _) => {
            return Err(invalid(format!(
                "{}: {} images; name the one to push",
                root.display(),
                chosen.len()
            )))
        }
    };
    let mut top = image.descriptor.clone();
    if let Some(wanted) = platform {
        let bytes = read_blob(root, &top.digest)?;
        let (manifest, _) =
            Manifest::parse(&top.media_type, &bytes).map_err(|e| invalid(e.to_string()))?;
        if let Manifest::Index(ix) = manifest {
            top = ix
                .select(wanted)
                .map_err(|e| invalid(format!("{}: {e}", root.display())))?
                .clone();
        }
    }
    plan_for_manifest(root, &top)
}

/// The push plan for the manifest `top` of the layout at `root` (by its descriptor:
/// what it lists must be in the layout), and the layout as its blob source.
pub fn plan_for_manifest(root: &Path, top: &Descriptor) -> io::Result<(PushPlan, LayoutSource)> {
    let mut plan = PushPlan::default();
    let mut source = LayoutSource { paths: Vec::new() };
    let mut seen = HashSet::new();
    add_manifest(root, top, 0, &mut plan, &mut source, &mut seen)?;
    Ok((plan, source))
}

/// The manifests of the layout at `root` that refer to `subject` (an `index.json` entry
/// whose manifest names it as its `subject`), and those that refer to them, breadth
/// first, each once, at most `max` (more is an error: a layout is not expected to hold
/// that many). What `ocireg pull --include-referrers` recorded, for a push to carry along.
pub fn referrers_in_layout(
    root: &Path,
    subject: &ocireg_core::Digest,
    max: usize,
) -> io::Result<Vec<Descriptor>> {
    // every entry's subject, read once
    let mut entries = Vec::new();
    for image in read_index(root)? {
        let bytes = read_blob(root, &image.descriptor.digest)?;
        let Ok((manifest, media_type)) = Manifest::parse(&image.descriptor.media_type, &bytes)
        else {
            continue;
        };
        if let Some(s) = manifest.subject() {
            let mut d = image.descriptor.clone();
            d.media_type = media_type;
            d.annotations = None;
            entries.push((s.digest.clone(), d));
        }
    }
    let mut found: Vec<Descriptor> = Vec::new();
    let mut frontier = std::collections::VecDeque::from([subject.clone()]);
    while let Some(s) = frontier.pop_front() {
        for (of, d) in &entries {
            if *of == s && !found.iter().any(|f| f.digest == d.digest) {
                if found.len() >= max {
                    return Err(invalid(format!(
                        "more than {max} referrers of {subject} in the layout"
                    )));
                }
                found.push(d.clone());
                frontier.push_back(d.digest.clone());
            }
        }
    }
    Ok(found)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Adds `d` after everything it references (children first), each manifest once.
fn add_manifest(
    root: &Path,
    d: &Descriptor,
    depth: usize,
    plan: &mut PushPlan,
    source: &mut LayoutSource,
    seen: &mut HashSet<ocireg_core::Digest>,
) -> io::Result<()> {
    if !seen.insert(d.digest.clone()) {
        return Ok(());
    }
    if depth > MAX_DEPTH {
        return Err(invalid(format!("indexes nested deeper than {MAX_DEPTH}")));
    }
    let bytes = read_blob(root, &d.digest)?;
    let (manifest, media_type) =
        Manifest::parse(&d.media_type, &bytes).map_err(|e| invalid(e.to_string()))?;
    match &manifest {
        Manifest::Image(m) => {
            for b in m.blobs() {
                if plan.blobs.iter().any(|x| x.digest == b.digest) {
                    continue;
                }
                let path = blob_path(root, &b.digest);
                let len = std::fs::symlink_metadata(&path)
                    .ok()
                    .filter(|m| m.is_file())
                    .map(|m| m.len());
                if len != Some(b.len()) {
                    return Err(invalid(format!(
                        "blob {} is not in the layout with its {} bytes (pull it completely first)",
                        b.digest,
                        b.len()
                    )));
                }
                plan.blobs.push(b.clone());
                source.paths.push((path, b.len()));
            }
        }
        Manifest::Index(ix) => {
            for child in &ix.manifests {
                add_manifest(root, child, depth + 1, plan, source, seen)?;
            }
        }
    }
    let mut descriptor = d.clone();
    descriptor.media_type = media_type;
    descriptor.annotations = None;
    plan.manifests.push(PushManifest { descriptor, bytes });
    Ok(())
}

impl BlobSource for LayoutSource {
    fn read(
        &self,
        blob: BlobId,
        offset: u64,
        len: u64,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        let (path, size) = self
            .paths
            .get(blob.0)
            .ok_or_else(|| io::Error::other(format!("no blob {blob:?} in the plan")))?;
        if offset.checked_add(len).is_none_or(|end| end > *size) {
            return Err(io::Error::other(format!(
                "{}: bytes {offset}+{len} asked of a {size}-byte blob",
                path.display()
            )));
        }
        read_file_range(path, offset, len)
    }
}

/// Bytes `offset..offset + len` of the file at `path`, in chunks read as they are taken.
pub(crate) fn read_file_range(
    path: &Path,
    offset: u64,
    len: u64,
) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let chunks = stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let n = (left as usize).min(READ_CHUNK);
        let mut buf = vec![0u8; n];
        match file.read_exact(&mut buf) {
            Ok(()) => Some((Ok(Bytes::from(buf)), (file, left - n as u64))),
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok(chunks.boxed())
}

/// The push plan for manifests as a pull fetched them (each `Event::Manifest` that is
/// part of the image, in arrival order: parents before children), with the blobs they
/// list; for a copy that mounts the blobs instead of moving them.
pub fn plan_from_manifests(fetched: Vec<(Descriptor, Bytes)>) -> io::Result<PushPlan> {
    let mut plan = PushPlan::default();
    for (descriptor, bytes) in fetched.into_iter().rev() {
        let (manifest, _) =
            Manifest::parse(&descriptor.media_type, &bytes).map_err(|e| invalid(e.to_string()))?;
        if let Manifest::Image(m) = &manifest {
            for b in m.blobs() {
                if !plan.blobs.iter().any(|x| x.digest == b.digest) {
                    plan.blobs.push(b.clone());
                }
            }
        }
        if !plan
            .manifests
            .iter()
            .any(|m| m.descriptor.digest == descriptor.digest)
        {
            plan.manifests.push(PushManifest { descriptor, bytes });
        }
    }
    Ok(plan)
}

/// Blobs read from another registry as they are sent: each read is a download of that
/// blob through the core (its digest checked when a read reaches the blob's end), moved
/// only as fast as the upload takes it. A copy between registries pushes from it, with no
/// file in between. A read from the middle of a blob (an upload resumed after a cut)
/// starts the download at the last [`Checkpoints`](crate::Checkpoints) point before it.
pub struct RegistrySource {
    transport: std::sync::Arc<dyn crate::Transport>,
    runtime: std::sync::Arc<dyn crate::Runtime>,
    config: ocireg_core::Config,
    reference: ocireg_core::Reference,
    blobs: Vec<(Descriptor, std::sync::Arc<crate::Checkpoints>)>,
}

impl RegistrySource {
    /// The blobs `blobs` (a push plan's, in its order) of `reference`'s repository.
    pub fn new(
        transport: std::sync::Arc<dyn crate::Transport>,
        runtime: std::sync::Arc<dyn crate::Runtime>,
        config: ocireg_core::Config,
        reference: ocireg_core::Reference,
        blobs: Vec<Descriptor>,
    ) -> RegistrySource {
        RegistrySource {
            transport,
            runtime,
            config,
            reference,
            blobs: blobs
                .into_iter()
                .map(|d| {
                    let c = crate::Checkpoints::new(d.len());
                    (d, std::sync::Arc::new(c))
                })
                .collect(),
        }
    }
}

impl std::fmt::Debug for RegistrySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrySource")
            .field("reference", &self.reference)
            .field("blobs", &self.blobs.len())
            .finish()
    }
}

impl BlobSource for RegistrySource {
    fn read(
        &self,
        blob: BlobId,
        offset: u64,
        len: u64,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        let (d, checkpoints) = self
            .blobs
            .get(blob.0)
            .cloned()
            .ok_or_else(|| io::Error::other(format!("no blob {blob:?} in the plan")))?;
        let size = d.len();
        let mut pull = ocireg_core::Machine::fetch_blob(
            self.config.clone(),
            self.reference.clone(),
            d,
            self.runtime.now(),
        );
        crate::resume_at_checkpoint(&mut pull, &checkpoints, offset);
        Ok(crate::blob_stream(
            pull,
            self.transport.clone(),
            self.runtime.clone(),
            size,
            offset..offset.saturating_add(len),
            Some(checkpoints),
        ))
    }
}

/// The push plan for the image `source` names in its registry: its manifests (every
/// platform `config` chooses, each verified) fetched without a blob, with the blobs they
/// list. With a [`RegistrySource`] over the same blobs, it copies the image to another
/// repository with no file in between.
pub async fn plan_from_registry<T: crate::Transport + ?Sized, R: crate::Runtime + ?Sized>(
    source: &ocireg_core::Reference,
    config: ocireg_core::Config,
    transport: &T,
    runtime: &R,
) -> Result<PushPlan, crate::Error> {
    /// Keeps every manifest of the image (not the index a platform was chosen from, when
    /// only one platform is copied).
    struct Manifests(Vec<(Descriptor, Bytes)>);
    impl crate::Caller for Manifests {
        fn event(&mut self, e: &ocireg_core::Event) -> io::Result<()> {
            if let ocireg_core::Event::Manifest {
                digest,
                media_type,
                bytes,
                role,
                ..
            } = e
            {
                if *role != ocireg_core::ManifestRole::Selector {
                    self.0.push((
                        Descriptor::new(media_type, digest.clone(), bytes.len() as u64),
                        bytes.clone(),
                    ));
                }
            }
            Ok(())
        }
    }
    let mut pull = ocireg_core::Machine::pull_manifests(config, source.clone(), runtime.now());
    let mut sink = Manifests(Vec::new());
    crate::drive(&mut pull, transport, runtime, &mut sink).await?;
    plan_from_manifests(sink.0)
        .map_err(|e| crate::Error::Plan(io::Error::new(e.kind(), format!("{source}: {e}"))))
}
