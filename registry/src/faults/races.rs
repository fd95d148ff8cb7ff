//! Faults that play another client writing the same tag at the same moment: one that
//! gets its write in between the client's read and write ([`Fault::RacingWriter`]), and
//! one whose older copy lands just after the client's write ([`Fault::StaleWriter`]). A
//! read-modify-write of a tag (the referrers tag) must survive both.
//!
//! [`Fault::RacingWriter`]: super::Fault::RacingWriter
//! [`Fault::StaleWriter`]: super::Fault::StaleWriter

use ocireg_core::manifest::OCI_INDEX;
use ocireg_core::reference::validate_tag;
use ocireg_core::Digest;

use super::FaultyRegistry;

/// The repository and tag a manifest path names (`/v2/<name>/manifests/<tag>`), not a
/// digest.
pub(super) fn tag_at(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/v2/")?;
    let i = rest.rfind("/manifests/")?;
    let (name, tag) = (&rest[..i], &rest[i + "/manifests/".len()..]);
    validate_tag(tag).ok()?;
    Some((name.to_string(), tag.to_string()))
}

impl FaultyRegistry {
    /// The other writer puts `index` (an image index) under the tag first.
    pub(super) fn write_first(&mut self, (name, tag): &(String, String), index: &[u8]) {
        let d = Digest::sha256(index);
        self.inner
            .add_manifest_with_digest(name, OCI_INDEX, index.to_vec(), d, Some(tag));
    }

    /// What the tag points to now (for [`FaultyRegistry::write_back`]).
    pub(super) fn tag_target(&self, (name, tag): &(String, String)) -> Option<Digest> {
        self.inner.repos.get(name)?.tags.get(tag).cloned()
    }

    /// The other writer's older copy lands: the tag points where it did before the
    /// client's write (nowhere: it is gone).
    pub(super) fn write_back(&mut self, (name, tag): &(String, String), before: Option<Digest>) {
        let Some(repo) = self.inner.repos.get_mut(name) else {
            return;
        };
        match before {
            Some(d) => repo.tags.insert(tag.clone(), d),
            None => repo.tags.remove(tag),
        };
    }
}
