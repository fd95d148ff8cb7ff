//! Fetching one manifest and verifying it: what every goal that reads manifests shares
//! (the image pull, inspect; later copy and referrers).

use bytes::Bytes;
use http::header;

use crate::digest::{Algorithm, Digest};
use crate::endpoint::Endpoint;
use crate::engine::{Engine, Fetched, OpId};
use crate::error::Error;
use crate::manifest::{Descriptor, Manifest, Platform, MANIFEST_ACCEPT};

/// A manifest asked for.
#[derive(Clone, Debug)]
pub(crate) struct Wanted {
    /// The tag or digest in the URL.
    pub(crate) reference: String,
    /// The digest it must have, when known.
    pub(crate) expected: Option<Digest>,
    /// The platform it was chosen for (index children).
    pub(crate) platform: Option<Platform>,
}

/// A manifest that arrived and passed every check.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) digest: Digest,
    pub(crate) media_type: String,
    pub(crate) bytes: Bytes,
    pub(crate) manifest: Manifest,
    /// A descriptor of it (with the platform it was chosen for).
    pub(crate) descriptor: Descriptor,
}

/// Asks the engine for the manifest `wanted.reference` of the engine's repository.
pub(crate) fn fetch(engine: &mut Engine, wanted: &Wanted) -> OpId {
    let limit = engine.config().manifest_limit;
    engine.fetch(
        Endpoint::Manifest(wanted.reference.clone()),
        format!("manifest {}", wanted.reference),
        MANIFEST_ACCEPT,
        "manifest",
        limit,
    )
}

/// Checks a fetched manifest: the digest asked for (else sha256 of the bytes), the
/// server's `Docker-Content-Digest` when it sends one, and the JSON against its media
/// type.
pub(crate) fn verify(wanted: &Wanted, fetched: Fetched) -> Result<Verified, Error> {
    let Fetched { headers, body, .. } = fetched;
    let reference = &wanted.reference;
    let algorithm = wanted
        .expected
        .as_ref()
        .map(|d| d.algorithm())
        .unwrap_or(Algorithm::Sha256);
    let digest = Digest::of(algorithm, &body);
    if let Some(exp) = &wanted.expected {
        if *exp != digest {
            return Err(Error::DigestMismatch {
                what: format!("manifest {reference}"),
                expected: exp.clone(),
                actual: digest,
            });
        }
    }
    let served = headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v.trim()).ok());
    if let Some(served) = served {
        let actual = Digest::of(served.algorithm(), &body);
        if actual != served {
            return Err(Error::DigestMismatch {
                what: format!("manifest {reference} (Docker-Content-Digest)"),
                expected: served,
                actual,
            });
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (manifest, media_type) = Manifest::parse(content_type, &body)?;
    let descriptor = Descriptor {
        media_type: media_type.clone(),
        digest: digest.clone(),
        size: body.len() as i64,
        urls: None,
        annotations: None,
        data: None,
        platform: wanted.platform.clone(),
        artifact_type: match &manifest {
            Manifest::Image(m) => m.artifact_type.clone(),
            Manifest::Index(i) => i.artifact_type.clone(),
        },
    };
    Ok(Verified {
        digest,
        media_type,
        bytes: body,
        manifest,
        descriptor,
    })
}
