//! Push plans from test images: what a layout reader would hand to `Push`.

use bytes::Bytes;
use ocireg_core::manifest::OCI_INDEX;
use ocireg_core::{Descriptor, Digest, Manifest, PushManifest, PushPlan};
use ocireg_registry::images::TestImage;

fn descriptor(media_type: &str, bytes: &Bytes) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: Digest::sha256(bytes),
        size: bytes.len() as i64,
        urls: None,
        annotations: None,
        data: None,
        platform: None,
        artifact_type: None,
    }
}

/// The plan for `imgs` (their blobs once each, their manifests, then `index` if given,
/// as the top), and the blob bytes by [`ocireg_core::BlobId`].
pub fn plan(imgs: &[&TestImage], index: Option<&Bytes>, tags: &[&str]) -> (PushPlan, Vec<Bytes>) {
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
            descriptor: descriptor(&img.media_type, &img.manifest),
            bytes: img.manifest.clone(),
        });
    }
    if let Some(ix) = index {
        plan.manifests.push(PushManifest {
            descriptor: descriptor(OCI_INDEX, ix),
            bytes: ix.clone(),
        });
    }
    (plan, source)
}
