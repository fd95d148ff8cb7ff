//! Artifacts from files ([`Client::push_artifact`]): the files as the layers of an OCI
//! artifact manifest (`artifactType`, the empty config `{}` as the image spec's artifact
//! guidance says, a title per layer, annotations), pushed to a tag, or by digest with a
//! `subject` so that it becomes a referrer of that manifest (oras `attach`). The files
//! come back byte for byte through a pull's titled files.

use std::future::{Future, IntoFuture};
use std::io::Read as _;
use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use ocireg_core::digest::{Algorithm, Verifier};
use ocireg_core::manifest::{OCI_EMPTY, OCI_MANIFEST};
use ocireg_core::{BlobId, Descriptor, Digest, PushManifest, PushPlan};

use super::{parse, Client};
use crate::{BlobSource, Caller, Error};

/// Chunks a file is read in.
const READ_CHUNK: usize = 256 * 1024;
/// Files of one artifact, at most.
pub const MAX_ARTIFACT_FILES: usize = 1024;

/// Where a file's bytes are.
#[derive(Clone, Debug)]
pub enum Content {
    /// In memory.
    Bytes(Bytes),
    /// In this file, read as the upload takes it.
    File(PathBuf),
}

/// One file of an artifact.
#[derive(Clone, Debug)]
pub struct ArtifactFile {
    /// Its name (`org.opencontainers.image.title`): a plain relative path.
    pub title: String,
    /// Its media type (`application/octet-stream` when none is given).
    pub media_type: String,
    /// Its bytes.
    pub content: Content,
}

/// An artifact push being set up ([`Client::push_artifact`]); `.await` gives the
/// manifest's digest.
#[must_use = "a push does nothing until it is awaited"]
pub struct ArtifactRequest<'a> {
    client: &'a Client,
    target: String,
    artifact_type: String,
    files: Vec<ArtifactFile>,
    annotations: Vec<(String, String)>,
    subject: Option<String>,
}

impl Client {
    /// A push of files as an artifact of `artifact_type` to `target` (a tag; or a
    /// repository, pushed by digest, when the artifact has a subject).
    pub fn push_artifact(&self, target: &str, artifact_type: &str) -> ArtifactRequest<'_> {
        ArtifactRequest {
            client: self,
            target: target.to_string(),
            artifact_type: artifact_type.to_string(),
            files: Vec::new(),
            annotations: Vec::new(),
            subject: None,
        }
    }
}

impl ArtifactRequest<'_> {
    /// Adds a file (a layer, in the order given).
    pub fn file(mut self, file: ArtifactFile) -> Self {
        self.files.push(file);
        self
    }

    /// Adds a manifest annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.push((key.to_string(), value.to_string()));
        self
    }

    /// Makes the artifact refer to the manifest `subject` names (in the same
    /// repository): a referrer of it, as a signature or an SBOM is.
    pub fn subject(mut self, subject: &str) -> Self {
        self.subject = Some(subject.to_string());
        self
    }

    /// Runs the push, with `observer` seeing every event; the manifest's digest.
    pub async fn run(self, observer: &mut (dyn Caller + Send)) -> Result<Digest, Error> {
        let client = self.client;
        let mut target = parse(&self.target)?;
        let tagged = self
            .target
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
        if self.subject.is_some() && !tagged {
            // a referrer is found through its subject: pushed by digest, under no tag
            target =
                ocireg_core::Reference::new(target.registry(), target.repository(), None, None)
                    .map_err(|e| Error::Registry(ocireg_core::Error::Reference(e)))?;
        }
        let plan_err =
            |m: String| Error::Plan(std::io::Error::new(std::io::ErrorKind::InvalidInput, m));
        if self.files.len() > MAX_ARTIFACT_FILES {
            return Err(plan_err(format!("more than {MAX_ARTIFACT_FILES} files")));
        }
        let subject = match &self.subject {
            Some(s) => {
                let d = client.digest(s).await?;
                let at = parse(s)?;
                if at.registry() != target.registry() || at.repository() != target.repository() {
                    return Err(plan_err(format!(
                        "{s}: a subject is in the artifact's own repository ({})",
                        target.repository()
                    )));
                }
                Some(Descriptor::new(&d.media_type, d.digest.clone(), d.len()))
            }
            None => None,
        };
        let config = Bytes::from_static(b"{}");
        let mut blobs = vec![Descriptor::new(OCI_EMPTY, Digest::sha256(&config), 2)];
        let mut contents = vec![Content::Bytes(config)];
        let mut titles = std::collections::HashSet::new();
        let mut layers = Vec::new();
        for f in &self.files {
            crate::files::safe_relative(&f.title).map_err(Error::Plan)?;
            if !titles.insert(f.title.clone()) {
                return Err(plan_err(format!("two files are titled {:?}", f.title)));
            }
            let (digest, size) = hash(&f.content).map_err(Error::Source)?;
            layers.push(serde_json::json!({
                "mediaType": f.media_type,
                "digest": digest.to_string(),
                "size": size,
                "annotations": { crate::files::TITLE: f.title },
            }));
            // the same bytes twice (or the config's) are one blob, pushed once
            if !blobs.iter().any(|b| b.digest == digest) {
                blobs.push(Descriptor::new(&f.media_type, digest, size));
                contents.push(f.content.clone());
            }
        }
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": self.artifact_type,
            "config": { "mediaType": OCI_EMPTY, "digest": blobs[0].digest.to_string(), "size": 2 },
            "layers": layers,
        });
        if let Some(s) = &subject {
            manifest["subject"] = serde_json::json!({
                "mediaType": s.media_type, "digest": s.digest.to_string(), "size": s.size,
            });
        }
        if !self.annotations.is_empty() {
            let map: serde_json::Map<String, serde_json::Value> = self
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            manifest["annotations"] = serde_json::Value::Object(map);
        }
        let bytes = Bytes::from(serde_json::to_vec(&manifest).expect("a manifest serializes"));
        let digest = Digest::sha256(&bytes);
        let plan = PushPlan {
            blobs,
            manifests: vec![PushManifest {
                descriptor: Descriptor::new(OCI_MANIFEST, digest.clone(), bytes.len() as u64),
                bytes,
            }],
            tags: Vec::new(),
            mount_from: None,
        };
        let source = Contents(contents);
        client
            .push_plan(plan, &source, target, false, observer)
            .await
    }
}

impl<'a> IntoFuture for ArtifactRequest<'a> {
    type Output = Result<Digest, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.run(&mut ()).await })
    }
}

/// The sha256 digest and size of `content`, read in chunks.
fn hash(content: &Content) -> std::io::Result<(Digest, u64)> {
    match content {
        Content::Bytes(b) => Ok((Digest::sha256(b), b.len() as u64)),
        Content::File(p) => {
            let mut f = std::fs::File::open(p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
            let mut v = Verifier::new(Algorithm::Sha256);
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                v.update(&buf[..n]);
            }
            let len = v.len();
            Ok((v.finish(), len))
        }
    }
}

/// The artifact's blobs, by plan index.
struct Contents(Vec<Content>);

impl BlobSource for Contents {
    fn read(
        &self,
        blob: BlobId,
        offset: u64,
        len: u64,
    ) -> std::io::Result<BoxStream<'static, std::io::Result<Bytes>>> {
        let content = self
            .0
            .get(blob.0)
            .ok_or_else(|| std::io::Error::other(format!("no blob {blob:?} in the artifact")))?;
        match content {
            Content::Bytes(b) => {
                let end = offset.checked_add(len).filter(|e| *e <= b.len() as u64);
                let end = end.ok_or_else(|| std::io::Error::other("a range past the blob"))?;
                let part = b.slice(offset as usize..end as usize);
                Ok(stream::once(async move { Ok(part) }).boxed())
            }
            Content::File(p) => crate::push::read_file_range(p, offset, len),
        }
    }
}
