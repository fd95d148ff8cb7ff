//! Referrers (OCI 1.1): the manifests whose `subject` names a given manifest (its
//! signatures, SBOMs, attestations). A registry lists them at
//! `/v2/<name>/referrers/<digest>`; one without that API answers `404`, and clients keep
//! the list themselves as an image index under the subject's *referrers tag*
//! ([`fallback_tag`]). What [`Machine::list_referrers`](crate::Machine::list_referrers) reads and a push of
//! a manifest with a `subject` maintains.

use bytes::Bytes;

use crate::digest::Digest;
use crate::manifest::{Descriptor, Index, Manifest, OCI_INDEX};

/// Referrers followed at most by one recursive walk
/// ([`Machine::list_referrers_closure`](crate::Machine::list_referrers_closure)).
pub const MAX_REFERRERS_FOLLOWED: usize = 256;

/// The response header that names the filters a registry applied to a referrers list
/// (`artifactType`); without it, the client filters.
pub const FILTERS_APPLIED: &str = "oci-filters-applied";

/// The response header a registry with the referrers API sends to a manifest `PUT` that
/// carries a `subject`; without it, the pusher keeps the referrers tag up to date.
pub const SUBJECT: &str = "oci-subject";

/// The referrers tag of `subject`: its algorithm (at most 32 characters), `-`, and its
/// encoded part (at most 64 characters), each character a tag may not hold replaced by
/// `-` (`sha256:abc…` → `sha256-abc…`).
pub fn fallback_tag(subject: &Digest) -> String {
    let tag_safe = |s: &str, max: usize| -> String {
        s.chars()
            .take(max)
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => c,
                _ => '-',
            })
            .collect()
    };
    format!(
        "{}-{}",
        tag_safe(subject.algorithm().as_str(), 32),
        tag_safe(subject.hex(), 64)
    )
}

/// The entry a referrers list holds for the manifest `bytes` (`media_type`, parsed as
/// `manifest`): its media type, digest and size, its artifact type and annotations.
pub fn referrer_descriptor(media_type: &str, bytes: &[u8], manifest: &Manifest) -> Descriptor {
    let mut d = Descriptor::new(media_type, Digest::sha256(bytes), bytes.len() as u64);
    d.artifact_type = manifest.artifact_type().map(str::to_string);
    d.annotations = manifest.annotations().cloned();
    d
}

/// Whether `d` passes the `artifact_type` filter (none: every entry does).
pub fn matches_filter(d: &Descriptor, artifact_type: Option<&str>) -> bool {
    artifact_type.is_none_or(|want| d.artifact_type.as_deref() == Some(want))
}

/// The referrers index `current` (as its tag holds it; none when the tag does not exist)
/// with `added` listed once: the bytes to put under the referrers tag, or `None` when
/// `added` is listed already.
pub fn with_referrer(current: Option<&Index>, added: Descriptor) -> Option<Bytes> {
    let mut manifests = current.map(|ix| ix.manifests.clone()).unwrap_or_default();
    if manifests.iter().any(|d| d.digest == added.digest) {
        return None;
    }
    manifests.push(added);
    let index = Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_string()),
        artifact_type: None,
        manifests,
        subject: None,
        annotations: None,
    };
    Some(Bytes::from(
        serde_json::to_vec(&index).expect("an index serializes"),
    ))
}

/// The referrers index `current` without `removed`: the bytes to put under the referrers
/// tag, or `None` when it does not list `removed`.
pub fn without_referrer(current: &Index, removed: &Digest) -> Option<Bytes> {
    if !current.manifests.iter().any(|d| d.digest == *removed) {
        return None;
    }
    let index = Index {
        manifests: current
            .manifests
            .iter()
            .filter(|d| d.digest != *removed)
            .cloned()
            .collect(),
        ..current.clone()
    };
    Some(Bytes::from(
        serde_json::to_vec(&index).expect("an index serializes"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tags_follow_the_spec_examples() {
        let a64 = "a".repeat(64);
        let d = Digest::parse(&format!("sha256:{a64}")).unwrap();
        assert_eq!(fallback_tag(&d), format!("sha256-{a64}"));
        // sha512: the encoded part is cut to 64 characters
        let d = Digest::parse(&format!("sha512:{}", "b".repeat(128))).unwrap();
        assert_eq!(fallback_tag(&d), format!("sha512-{}", "b".repeat(64)));
        assert!(crate::reference::validate_tag(&fallback_tag(&d)).is_ok());
    }

    #[test]
    fn a_referrer_is_listed_once() {
        let m = Manifest::parse(
            "",
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sig","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#,
        )
        .unwrap()
        .0;
        let d = referrer_descriptor(crate::manifest::OCI_MANIFEST, b"x", &m);
        assert_eq!(
            d.artifact_type.as_deref(),
            Some("application/vnd.example.sig")
        );
        let first = with_referrer(None, d.clone()).unwrap();
        let (parsed, _) = Manifest::parse(OCI_INDEX, &first).unwrap();
        let Manifest::Index(ix) = parsed else {
            panic!("an index")
        };
        assert_eq!(ix.manifests, std::slice::from_ref(&d));
        assert!(with_referrer(Some(&ix), d.clone()).is_none());
        let emptied = without_referrer(&ix, &d.digest).unwrap();
        let (Manifest::Index(empty), _) = Manifest::parse(OCI_INDEX, &emptied).unwrap() else {
            panic!("an index")
        };
        assert!(empty.manifests.is_empty());
        assert!(without_referrer(&empty, &d.digest).is_none());
        assert!(matches_filter(
            &ix.manifests[0],
            Some("application/vnd.example.sig")
        ));
        assert!(!matches_filter(&ix.manifests[0], Some("application/other")));
        assert!(matches_filter(&ix.manifests[0], None));
    }
}
