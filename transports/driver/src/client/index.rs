//! Image indexes from existing manifests ([`Client::create_index`]): each manifest read
//! (verified), its platform read from its config unless given, listed in a new index (or
//! added to an existing one), and the index put under the target's tag. The manifests
//! must be in the target's repository already: no blob moves.

use bytes::Bytes;
use futures::StreamExt;
use ocireg_core::manifest::{Manifest, OCI_INDEX};
use ocireg_core::{Descriptor, Digest, Machine, Platform, PushManifest};

use super::{parse, Client};
use crate::Error;

/// A config read for its platform at most this large.
const MAX_CONFIG: u64 = 4 << 20;

/// An index being set up ([`Client::create_index`]).
#[must_use = "an index is not pushed until it is run"]
pub struct IndexRequest<'a> {
    client: &'a Client,
    target: String,
    manifests: Vec<(String, Option<Platform>)>,
    annotations: Vec<(String, String)>,
    append: bool,
}

impl Client {
    /// An image index to put under `target` (a tag), listing manifests of its repository.
    pub fn create_index(&self, target: &str) -> IndexRequest<'_> {
        IndexRequest {
            client: self,
            target: target.to_string(),
            manifests: Vec::new(),
            annotations: Vec::new(),
            append: false,
        }
    }

    /// The platform an image's config says (`os`, `architecture`, `variant`).
    async fn platform_of(&self, repository: &str, config: &Descriptor) -> Result<Platform, Error> {
        if config.len() > MAX_CONFIG {
            return Err(Error::Plan(std::io::Error::other(format!(
                "the config {} is larger than {MAX_CONFIG} bytes",
                config.digest
            ))));
        }
        let mut stream = self.blob(repository, config.clone())?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| match crate::registry_error_of(&e) {
                Some(core) => Error::Registry(core.clone()),
                None => Error::Source(e),
            })?;
            bytes.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::Plan(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the config {} names no platform: {e}", config.digest),
            ))
        })
    }
}

impl IndexRequest<'_> {
    /// Lists the manifest `reference` names, with `platform` (else its config's).
    pub fn manifest(mut self, reference: &str, platform: Option<Platform>) -> Self {
        self.manifests.push((reference.to_string(), platform));
        self
    }

    /// Adds an index annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds to the index the target names now instead of starting a new one (a
    /// manifest listed already is not listed twice).
    pub fn append(mut self, append: bool) -> Self {
        self.append = append;
        self
    }

    /// Builds and puts the index; its digest.
    pub async fn run(self) -> Result<Digest, Error> {
        let client = self.client;
        let target = parse(&self.target)?;
        let repository = format!("{}/{}", target.registry(), target.repository());
        let mut listed: Vec<Descriptor> = Vec::new();
        let mut annotations = serde_json::Map::new();
        if self.append {
            let current = client.manifest(&self.target).await?;
            let Manifest::Index(ix) = current.manifest else {
                return Err(Error::Plan(std::io::Error::other(format!(
                    "{}: an image manifest, not an index: nothing to append to",
                    self.target
                ))));
            };
            listed = ix.manifests;
            for (k, v) in ix.annotations.into_iter().flatten() {
                annotations.insert(k, serde_json::Value::String(v));
            }
        }
        for (reference, platform) in &self.manifests {
            let at = parse(reference)?;
            if at.registry() != target.registry() || at.repository() != target.repository() {
                return Err(Error::Plan(std::io::Error::other(format!(
                    "{reference}: an index lists manifests of its own repository ({}); copy it there first",
                    target.repository()
                ))));
            }
            let m = client.manifest(reference).await?;
            let mut d = Descriptor::new(&m.media_type, m.digest.clone(), m.bytes.len() as u64);
            d.platform = match (platform, &m.manifest) {
                (Some(p), _) => Some(p.clone()),
                (None, Manifest::Image(image)) if image.artifact_type.is_none() => {
                    Some(client.platform_of(&repository, &image.config).await?)
                }
                _ => None,
            };
            if !listed.iter().any(|l| l.digest == d.digest) {
                listed.push(d);
            }
        }
        for (k, v) in &self.annotations {
            annotations.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
        let mut index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": listed,
        });
        if !annotations.is_empty() {
            index["annotations"] = serde_json::Value::Object(annotations);
        }
        let bytes = Bytes::from(serde_json::to_vec(&index).expect("an index serializes"));
        let digest = Digest::sha256(&bytes);
        let manifest = PushManifest {
            descriptor: Descriptor::new(OCI_INDEX, digest.clone(), bytes.len() as u64),
            bytes,
        };
        let tags: Vec<String> = target.tag().map(str::to_string).into_iter().collect();
        client
            .run_at(target, &mut (), |config, at, now| {
                Machine::put_manifest(config, at, manifest, tags, now)
            })
            .await?;
        Ok(digest)
    }
}
