//! Media types, descriptors, image manifests and indexes (OCI and Docker schema2),
//! and platform selection.

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI empty descriptor media type.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The `Accept` header value for manifest requests: all four manifest types.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Why a manifest was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The JSON did not parse (or a field had the wrong type).
    #[error("malformed manifest JSON: {0}")]
    Json(String),
    /// Neither the `Content-Type` nor `mediaType` named a supported manifest type.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// `Content-Type` and the body's `mediaType` disagree.
    #[error("manifest media type mismatch: Content-Type says {header:?}, body says {body:?}")]
    MediaTypeMismatch {
        /// From the response header.
        header: String,
        /// From the JSON body.
        body: String,
    },
    /// `schemaVersion` is not 2.
    #[error("unsupported manifest schemaVersion {0}")]
    SchemaVersion(i64),
    /// A descriptor has a negative size.
    #[error("descriptor {digest} has negative size {size}")]
    NegativeSize {
        /// The descriptor's digest.
        digest: String,
        /// The size found.
        size: i64,
    },
    /// Embedded `data` is not valid base64 or its length differs from `size`.
    #[error("descriptor {digest}: embedded data {problem}")]
    EmbeddedData {
        /// The descriptor's digest.
        digest: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No entry of an index matches the wanted platform.
    #[error("no manifest for platform {wanted} (available: {})", if available.is_empty() { "none".to_string() } else { available.join(", ") })]
    NoMatchingPlatform {
        /// What was asked for.
        wanted: String,
        /// What the index offers.
        available: Vec<String>,
    },
}

impl ManifestError {
    fn embedded(digest: &Digest, what: impl Into<String>) -> ManifestError {
        ManifestError::EmbeddedData {
            digest: digest.to_string(),
            problem: what.into(),
        }
    }
}

/// A platform (`os/architecture[/variant]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// Architecture (`amd64`, `arm64`, …).
    pub architecture: String,
    /// Operating system (`linux`, …).
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features.
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Platform> {
        let mut parts = s.split('/');
        let os = parts.next().filter(|p| !p.is_empty())?;
        let arch = parts.next().filter(|p| !p.is_empty())?;
        let variant = parts.next().map(str::to_string);
        if parts.next().is_some() || variant.as_deref() == Some("") {
            return None;
        }
        Some(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant,
            ..Default::default()
        })
    }

    /// The platform this program was compiled for (a build-time constant, not a probe).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: arch.to_string(),
            ..Default::default()
        }
    }

    /// Architecture and variant in their usual normal form:
    /// `x86_64` ⇒ `amd64`, `aarch64` ⇒ `arm64`, `arm64` without variant ⇒ `v8`,
    /// `arm` without variant ⇒ `v7`.
    pub fn normalized(&self) -> (String, String, Option<String>) {
        let os = self.os.to_ascii_lowercase();
        let (arch, variant) = match (self.architecture.as_str(), self.variant.as_deref()) {
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v.map(str::to_string)),
            ("aarch64" | "arm64", None | Some("8") | Some("v8")) => ("arm64", Some("v8".into())),
            ("aarch64" | "arm64", v) => ("arm64", v.map(str::to_string)),
            ("armhf", _) => ("arm", Some("v7".into())),
            ("armel", _) => ("arm", Some("v6".into())),
            ("arm", None | Some("7")) => ("arm", Some("v7".into())),
            ("arm", Some(v)) if !v.starts_with('v') => ("arm", Some(format!("v{v}"))),
            (a, v) => (a, v.map(str::to_string)),
        };
        (os, arch.to_string(), variant)
    }

    /// True when `self` (wanted) is satisfied by `offered`. A wanted platform without a
    /// variant accepts any variant except where normalisation gives one (arm, arm64).
    pub fn matches(&self, offered: &Platform) -> bool {
        let (wo, wa, wv) = self.normalized();
        let (oo, oa, ov) = offered.normalized();
        if wo != oo || wa != oa {
            return false;
        }
        match (wv, ov) {
            (Some(w), Some(o)) => w == o,
            (Some(_), None) => false,
            (None, _) => true,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the content.
    pub digest: Digest,
    /// Size in bytes (validated non-negative; `i64` so a negative value is seen, not
    /// silently refused by the JSON layer).
    pub size: i64,
    /// Foreign URLs (never followed by ocireg).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
    /// Embedded content, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Platform (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor of `size` bytes of `media_type` content with digest `digest`, and
    /// nothing else.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            urls: None,
            annotations: None,
            data: None,
            platform: None,
            artifact_type: None,
        }
    }

    /// The size as `u64`, once validated.
    pub fn len(&self) -> u64 {
        self.size.max(0) as u64
    }

    /// True for zero-length content.
    pub fn is_empty(&self) -> bool {
        self.size <= 0
    }

    /// Checks the size and returns the embedded data when it is usable.
    ///
    /// `Ok(Some(bytes))`: embedded data of exactly `size` bytes, to be used without a
    /// request (the digest is still verified by whoever consumes it).
    /// `Err`: negative size, undecodable data or data of the wrong length.
    pub fn validate(&self) -> Result<Option<Bytes>, ManifestError> {
        if self.size < 0 {
            return Err(ManifestError::NegativeSize {
                digest: self.digest.to_string(),
                size: self.size,
            });
        }
        let Some(data) = &self.data else {
            return Ok(None);
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| ManifestError::embedded(&self.digest, format!("is not base64: {e}")))?;
        if raw.len() as u64 != self.len() {
            return Err(ManifestError::embedded(
                &self.digest,
                format!("is {} bytes but size is {}", raw.len(), self.size),
            ));
        }
        Ok(Some(Bytes::from(raw)))
    }
}

/// An image manifest (OCI or Docker schema2; artifacts too).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: i64,
    /// Media type, when the body names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, in order.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Subject (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// An image index or Docker manifest list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: i64,
    /// Media type, when the body names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Child manifests.
    pub manifests: Vec<Descriptor>,
    /// The manifest this index refers to (OCI 1.1: it is one of its referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// A parsed manifest of any of the four supported types.
#[allow(clippy::large_enum_variant)] // a manifest is parsed once per pull
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manifest {
    /// OCI image manifest or Docker schema2 manifest.
    Image(ImageManifest),
    /// OCI image index or Docker manifest list.
    Index(Index),
}

/// The media type a manifest was served as, and whether it is an index.
fn kind_of(media_type: &str) -> Option<bool> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(false),
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(true),
        _ => None,
    }
}

/// Strips parameters (`; charset=…`) and whitespace from a `Content-Type`.
pub fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

impl Manifest {
    /// Parses a manifest body, dispatching on the response `Content-Type` (may be empty)
    /// and the body's `mediaType`. Returns the manifest and its effective media type.
    ///
    /// Every descriptor is checked: non-negative size, valid digest (by the type), and
    /// embedded data of the right length.
    pub fn parse(content_type: &str, body: &[u8]) -> Result<(Manifest, String), ManifestError> {
        let probe: Probe =
            serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
        let header = essence(content_type);
        let header_kind = kind_of(header);
        let body_mt = probe.media_type.as_deref();
        let media_type = match (header_kind, body_mt) {
            (Some(_), Some(b)) if b != header => {
                return Err(ManifestError::MediaTypeMismatch {
                    header: header.to_string(),
                    body: b.to_string(),
                })
            }
            (Some(_), _) => header.to_string(),
            (None, Some(b)) if kind_of(b).is_some() => b.to_string(),
            (None, Some(b)) => return Err(ManifestError::UnsupportedMediaType(b.to_string())),
            // No usable type anywhere: OCI allows omitting mediaType; guess by shape.
            (None, None) => {
                if probe.manifests.is_some() {
                    OCI_INDEX.to_string()
                } else if probe.config.is_some() {
                    OCI_MANIFEST.to_string()
                } else {
                    return Err(ManifestError::UnsupportedMediaType(header.to_string()));
                }
            }
        };
        let manifest = if kind_of(&media_type) == Some(true) {
            let idx: Index =
                serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
            if idx.schema_version != 2 {
                return Err(ManifestError::SchemaVersion(idx.schema_version));
            }
            for d in &idx.manifests {
                d.validate()?;
            }
            Manifest::Index(idx)
        } else {
            let m: ImageManifest =
                serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
            if m.schema_version != 2 {
                return Err(ManifestError::SchemaVersion(m.schema_version));
            }
            m.config.validate()?;
            for d in &m.layers {
                d.validate()?;
            }
            Manifest::Image(m)
        };
        Ok((manifest, media_type))
    }
}

impl ImageManifest {
    /// The config, then the layers: every blob an image needs.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }
}

impl Manifest {
    /// The manifest this one refers to (`subject`): it is one of that manifest's
    /// referrers.
    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            Manifest::Image(m) => m.subject.as_ref(),
            Manifest::Index(ix) => ix.subject.as_ref(),
        }
    }

    /// Its annotations.
    pub fn annotations(&self) -> Option<&std::collections::BTreeMap<String, String>> {
        match self {
            Manifest::Image(m) => m.annotations.as_ref(),
            Manifest::Index(ix) => ix.annotations.as_ref(),
        }
    }

    /// The artifact type a referrers list gives it: its `artifactType`, else (an image
    /// manifest) its config's media type; an index without one has none.
    pub fn artifact_type(&self) -> Option<&str> {
        match self {
            Manifest::Image(m) => m
                .artifact_type
                .as_deref()
                .filter(|t| !t.is_empty())
                .or(Some(m.config.media_type.as_str())),
            Manifest::Index(ix) => ix.artifact_type.as_deref().filter(|t| !t.is_empty()),
        }
    }
}

impl Index {
    /// Picks the entry for `wanted`. Entries without a platform are skipped.
    /// The first match in index order wins.
    pub fn select(&self, wanted: &Platform) -> Result<&Descriptor, ManifestError> {
        self.manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| wanted.matches(p)))
            .ok_or_else(|| ManifestError::NoMatchingPlatform {
                wanted: wanted.to_string(),
                available: self
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                    .collect(),
            })
    }
}

#[cfg(test)]
mod tests;
