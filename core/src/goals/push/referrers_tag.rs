//! A pushed manifest with a `subject`, on a registry without the referrers API: a
//! registry with it answers the manifest `PUT` with `OCI-Subject`; without it, the
//! distribution spec makes the pusher list the manifest in the subject's referrers tag
//! (an edit of `goals/referrers_tag.rs`, safe against concurrent pushers). The next
//! manifest waits until the edit is over.

use http::HeaderMap;

use crate::engine::{Engine, Fetched};
use crate::manifest::Manifest;
use crate::referrers::{referrer_descriptor, SUBJECT};

use super::super::referrers_tag::{Change, TagEdit};
use super::{Purpose, Push};

impl Push {
    /// Manifest step `k` (plan manifest `m`) went in: when it names a subject the
    /// registry did not take note of, starts listing it in the subject's referrers tag
    /// and returns true.
    pub(super) fn update_referrers_tag(
        &mut self,
        engine: &mut Engine,
        k: usize,
        m: usize,
        headers: &HeaderMap,
    ) -> bool {
        if headers.contains_key(SUBJECT) {
            return false;
        }
        let Some(pm) = self.plan_manifests.get(m) else {
            return false;
        };
        let Ok((manifest, _)) = Manifest::parse(&pm.descriptor.media_type, &pm.bytes) else {
            return false;
        };
        let Some(subject) = manifest.subject().map(|s| s.digest.clone()) else {
            return false;
        };
        let mut added = referrer_descriptor(&pm.descriptor.media_type, &pm.bytes, &manifest);
        added.digest = pm.descriptor.digest.clone();
        let edit = TagEdit::start(engine, subject, Change::Add(Box::new(added)));
        self.ops.insert(edit.op(), Purpose::ReferrersTag(k));
        self.referrers_edit = Some(edit);
        true
    }

    /// An answer for the referrers tag's edit: the next step, or the next manifest
    /// when it is over.
    pub(super) fn referrers_tag_answered(&mut self, engine: &mut Engine, k: usize, f: Fetched) {
        let Some(edit) = self.referrers_edit.as_mut() else {
            return;
        };
        if edit.on_fetched(engine, f) {
            self.referrers_edit = None;
            return self.put_next_manifest(engine);
        }
        self.ops.insert(edit.op(), Purpose::ReferrersTag(k));
    }
}
