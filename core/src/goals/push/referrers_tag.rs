//! Keeping the referrers tag of a pushed manifest's subject: a registry without the
//! referrers API does not answer a manifest `PUT` that carries a `subject` with
//! `OCI-Subject`, and the distribution spec then makes the pusher add the manifest to the
//! image index under the subject's referrers tag (read it, or start it when it does not
//! exist; write it back with the manifest listed once).

use http::{HeaderMap, Method};

use crate::endpoint::{Endpoint, Target};
use crate::engine::{Call, Engine, Fetched, History, OnRetry, OutBody};
use crate::error::Error;
use crate::manifest::{Manifest, OCI_INDEX};
use crate::referrers::{fallback_tag, referrer_descriptor, with_referrer, SUBJECT};
use crate::Event;

use super::{call, Purpose, Push};

impl Push {
    /// Manifest step `k` (plan manifest `m`) went in: when it names a subject the
    /// registry did not take note of, reads the subject's referrers tag and returns true
    /// (the next manifest waits until the tag is written).
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
        let Some(subject) = self.subject_of(m) else {
            return false;
        };
        let tag = fallback_tag(&subject);
        let target = Target::Api(Endpoint::Manifest(tag.clone()));
        let limit = engine.config().manifest_limit;
        let mut c = Call::get(OCI_INDEX, "referrers index", limit);
        c.answers = &[404];
        let op = engine.call(
            target,
            format!("referrers tag {tag}"),
            c,
            History::default(),
        );
        self.ops.insert(op, Purpose::ReferrersGet(k));
        true
    }

    /// The subject's digest of plan manifest `m`, if it has one.
    fn subject_of(&self, m: usize) -> Option<crate::digest::Digest> {
        let pm = self.plan_manifests.get(m)?;
        let (manifest, _) = Manifest::parse(&pm.descriptor.media_type, &pm.bytes).ok()?;
        manifest.subject().map(|s| s.digest.clone())
    }

    /// The referrers tag as it stands (404: not yet): writes it with the manifest added,
    /// or goes on when it is listed already.
    pub(super) fn referrers_tag_read(&mut self, engine: &mut Engine, k: usize, f: Fetched) {
        let Some((m, _)) = self.manifest_step(k) else {
            return;
        };
        let Some(subject) = self.subject_of(m) else {
            return;
        };
        let tag = fallback_tag(&subject);
        let current = if f.status == 404 {
            None
        } else {
            match Manifest::parse(OCI_INDEX, &f.body) {
                Ok((Manifest::Index(ix), _)) => Some(ix),
                _ => {
                    return engine.fail(Error::List {
                        what: "referrers",
                        url: tag,
                        problem: "the referrers tag holds something other than an image index; \
                                  it is left as it is"
                            .into(),
                    })
                }
            }
        };
        let pm = &self.plan_manifests[m];
        let Ok((manifest, _)) = Manifest::parse(&pm.descriptor.media_type, &pm.bytes) else {
            return;
        };
        let mut added = referrer_descriptor(&pm.descriptor.media_type, &pm.bytes, &manifest);
        added.digest = pm.descriptor.digest.clone();
        let Some(index) = with_referrer(current.as_ref(), added) else {
            return self.put_next_manifest(engine);
        };
        let target = Target::Api(Endpoint::Manifest(tag.clone()));
        let mut c = call(Method::PUT, OutBody::Bytes(index), &[], OnRetry::Resend);
        c.content_type = Some(OCI_INDEX.to_string());
        let op = engine.call(
            target,
            format!("referrers tag {tag}"),
            c,
            History::default(),
        );
        self.ops.insert(op, Purpose::ReferrersPut(k));
    }

    /// The referrers tag is written: say so, go on with the manifests.
    pub(super) fn referrers_tag_written(&mut self, engine: &mut Engine, k: usize) {
        if let Some(subject) = self.manifest_step(k).and_then(|(m, _)| self.subject_of(m)) {
            engine.emit(Event::ReferrersTagUpdated {
                tag: fallback_tag(&subject),
                subject,
            });
        }
        self.put_next_manifest(engine);
    }
}
