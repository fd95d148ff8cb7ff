//! Generated test images: deterministic configs and layers from a seed.

use bytes::Bytes;
use ocireg_core::manifest::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use ocireg_core::{Descriptor, Digest, Manifest, Platform, PushManifest, PushPlan};
use serde_json::json;

use crate::routes::Registry;

/// A generated image: its manifest bytes and every blob it references.
#[derive(Clone, Debug)]
pub struct TestImage {
    /// Manifest media type.
    pub media_type: String,
    /// Manifest bytes.
    pub manifest: Bytes,
    /// Config blob.
    pub config: Bytes,
    /// Layer blobs, in order.
    pub layers: Vec<Bytes>,
}

impl TestImage {
    /// The manifest digest.
    pub fn digest(&self) -> Digest {
        Digest::sha256(&self.manifest)
    }

    /// Every blob: config then layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Bytes> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }

    /// Adds blobs and manifest to a registry repository, tagged when `tag` is given.
    pub fn add_to(&self, reg: &mut Registry, repo: &str, tag: Option<&str>) -> Digest {
        for b in self.blobs() {
            reg.add_blob(repo, b.clone());
        }
        reg.add_manifest(repo, &self.media_type, self.manifest.clone(), tag)
    }
}

/// Deterministic pseudo-random bytes (SplitMix64).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = ocireg_core::retry::Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Builds an image with layers of the given sizes (random content from `seed`).
/// `docker` selects Docker schema2 media types instead of OCI.
pub fn image(seed: u64, layer_sizes: &[usize], platform: &Platform, docker: bool) -> TestImage {
    let (mt, config_mt, layer_mt) = if docker {
        (
            DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar",
        )
    };
    let layers: Vec<Bytes> = layer_sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            Bytes::from(random_bytes(
                seed.wrapping_mul(1000).wrapping_add(i as u64 + 1),
                n,
            ))
        })
        .collect();
    let config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {"Labels": {"ocireg.seed": seed.to_string()}},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| Digest::sha256(l).to_string()).collect::<Vec<_>>()},
    });
    let config = Bytes::from(serde_json::to_vec(&config).expect("json"));
    let desc = |mt: &str, b: &Bytes| json!({"mediaType": mt, "digest": Digest::sha256(b).to_string(), "size": b.len()});
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": desc(config_mt, &config),
        "layers": layers.iter().map(|l| desc(layer_mt, l)).collect::<Vec<_>>(),
    });
    TestImage {
        media_type: mt.to_string(),
        manifest: Bytes::from(serde_json::to_vec(&manifest).expect("json")),
        config,
        layers,
    }
}

/// An OCI 1.1 artifact: `artifact_type`, the empty config (`{}`), one layer per file
/// (media type `application/octet-stream`, named by an `org.opencontainers.image.title`
/// annotation), and a `subject` when it refers to another manifest (a signature, an SBOM).
pub fn artifact(
    artifact_type: &str,
    files: &[(&str, &[u8])],
    subject: Option<&TestImage>,
) -> TestImage {
    let config = Bytes::from_static(b"{}");
    let layers: Vec<Bytes> = files
        .iter()
        .map(|(_, b)| Bytes::copy_from_slice(b))
        .collect();
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": ocireg_core::manifest::OCI_EMPTY, "digest": Digest::sha256(&config).to_string(), "size": 2},
        "layers": files.iter().map(|(title, b)| json!({
            "mediaType": "application/octet-stream",
            "digest": Digest::sha256(b).to_string(),
            "size": b.len(),
            "annotations": {"org.opencontainers.image.title": title},
        })).collect::<Vec<_>>(),
        "annotations": {"org.opencontainers.image.created": "2026-11-29T00:00:00Z"},
    });
    if let Some(s) = subject {
        manifest["subject"] = json!({
            "mediaType": s.media_type,
            "digest": s.digest().to_string(),
            "size": s.manifest.len(),
        });
    }
    TestImage {
        media_type: OCI_MANIFEST.to_string(),
        manifest: Bytes::from(serde_json::to_vec(&manifest).expect("json")),
        config,
        layers,
    }
}

/// An OCI index over the given images (each with its platform).
pub fn index(children: &[(&TestImage, &Platform)]) -> Bytes {
    let manifests: Vec<_> = children
        .iter()
        .map(|(img, p)| {
            json!({
                "mediaType": img.media_type,
                "digest": img.digest().to_string(),
                "size": img.manifest.len(),
                "platform": p,
            })
        })
        .collect();
    Bytes::from(
        serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
        )
        .expect("json"),
    )
}

fn plan_descriptor(media_type: &str, bytes: &Bytes) -> Descriptor {
    Descriptor::new(media_type, Digest::sha256(bytes), bytes.len() as u64)
}

/// The plan for `imgs` (their blobs once each, their manifests, then `index` if given,
/// as the top), and the blob bytes by [`ocireg_core::BlobId`].
pub fn push_plan(
    imgs: &[&TestImage],
    index: Option<&Bytes>,
    tags: &[&str],
) -> (PushPlan, Vec<Bytes>) {
    let mut plan = PushPlan {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..PushPlan::default()
    };
    let mut source: Vec<Bytes> = Vec::new();
    for img in imgs {
        let (m, _) = Manifest::parse(&img.media_type, &img.manifest).expect("test manifest");
        let Manifest::Image(m) = m else {
            panic!("an image manifest")
        };
        for (d, bytes) in m.blobs().zip(img.blobs()) {
            if !plan.blobs.iter().any(|b| b.digest == d.digest) {
                plan.blobs.push(d.clone());
                source.push(bytes.clone());
            }
        }
        plan.manifests.push(PushManifest {
            descriptor: plan_descriptor(&img.media_type, &img.manifest),
            bytes: img.manifest.clone(),
        });
    }
    if let Some(ix) = index {
        plan.manifests.push(PushManifest {
            descriptor: plan_descriptor(OCI_INDEX, ix),
            bytes: ix.clone(),
        });
    }
    (plan, source)
}
