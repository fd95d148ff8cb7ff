//! What a push sends: a plan (blobs and manifests), checked before it starts.
//!
//! [`Machine::push`](crate::Machine::push) drives the engine toward the push goal
//! (`goals/push.rs`). It asks for blob bytes by range
//! ([`Action::Upload`](crate::Action::Upload)) and never holds a blob; manifests travel
//! in the plan (they are small and bounded).

use std::collections::HashSet;

use crate::error::Error;
use crate::manifest::Manifest;
use crate::reference::Reference;

pub use crate::goals::push::{PushManifest, PushPlan};

/// The repository a copy from `source` to `target` mounts its blobs from: the source's,
/// when both are on one registry and the repositories differ. None otherwise: a blob
/// cannot be mounted from another registry, and a copy into its own repository finds
/// every blob present.
pub fn mount_source(source: &Reference, target: &Reference) -> Option<String> {
    (source.registry() == target.registry() && source.repository() != target.repository())
        .then(|| source.repository().to_string())
}

/// What makes a plan pushable: manifests that are what their descriptors say, every
/// blob once, and every reference pushed before what refers to it.
pub(crate) fn check(plan: &PushPlan) -> Result<(), Error> {
    let mut blobs = HashSet::new();
    for b in &plan.blobs {
        b.validate()?;
        if !blobs.insert(&b.digest) {
            return Err(Error::Upload {
                digest: b.digest.clone(),
                problem: "the plan lists this blob twice".into(),
            });
        }
    }
    let mut earlier = HashSet::new();
    for m in &plan.manifests {
        let d = &m.descriptor;
        let actual = crate::digest::Digest::of(d.digest.algorithm(), &m.bytes);
        if actual != d.digest || m.bytes.len() as u64 != d.len() {
            return Err(Error::DigestMismatch {
                what: "a manifest of the push plan".into(),
                expected: d.digest.clone(),
                actual,
            });
        }
        let (manifest, _) = Manifest::parse(&d.media_type, &m.bytes)?;
        let missing = match &manifest {
            Manifest::Image(im) => im
                .blobs()
                .find(|b| b.data.is_none() && b.size > 0 && !blobs.contains(&b.digest))
                .map(|b| (b.digest.clone(), "a blob it lists is not in the plan")),
            Manifest::Index(ix) => ix
                .manifests
                .iter()
                .find(|c| !earlier.contains(&c.digest))
                .map(|c| {
                    (
                        c.digest.clone(),
                        "a manifest it lists is not pushed before it",
                    )
                }),
        };
        if let Some((digest, problem)) = missing {
            return Err(Error::Upload {
                digest,
                problem: format!("{problem} (manifest {})", d.digest),
            });
        }
        earlier.insert(d.digest.clone());
    }
    if plan.manifests.is_empty() && plan.blobs.is_empty() {
        return Err(Error::Upload {
            digest: crate::digest::Digest::sha256(b""),
            problem: "the plan is empty".into(),
        });
    }
    Ok(())
}
