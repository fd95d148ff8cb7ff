//! The delete goals: a manifest by digest, a tag alone (OCI 1.1), a blob.
//!
//! A manifest is read first (by its digest, verified) to learn its `subject`: once it is
//! deleted, a registry without a referrers API still lists it in its subject's referrers
//! tag, so it is taken out of that index (a registry with the API keeps its own list).
//! Deleting an image leaves what refers to it alone. A registry that refuses deletes
//! answers `405` or `UNSUPPORTED`: the machine fails with that status.

use std::time::Instant;

use http::Method;

use super::referrers_tag::{Change, TagEdit};
use crate::digest::{Digest, DigestError};
use crate::endpoint::{Endpoint, Target};
use crate::engine::{Call, Engine, Fetched, History, OnRetry};
use crate::error::Error;
use crate::machine::{Goal, Machine};
use crate::manifest::OCI_INDEX;
use crate::reference::Reference;
use crate::{Config, Event};

use super::manifest::{self, Wanted};

/// A `DELETE` (or, for the referrers tag, a `GET`/`PUT`) whose answer the goal reads.
fn call(method: Method, answers: &'static [u16], limit: u64) -> Call {
    let mut c = Call::get(OCI_INDEX, "referrers index", limit);
    c.method = method;
    c.answers = answers;
    c.on_retry = OnRetry::Resend;
    c
}

/// Where a manifest's deletion stands.
#[derive(Debug)]
enum Stage {
    /// Reading the manifest, for its subject.
    Reading(Wanted),
    /// The `DELETE` is out.
    Deleting { subject: Option<Digest> },
    /// Asking whether the registry has a referrers API (for the subject).
    Api { subject: Digest },
    /// Taking the deleted manifest out of the subject's referrers tag.
    TagEdit(TagEdit),
}

/// Deletes one manifest by digest.
#[derive(Debug)]
struct DeleteManifest {
    digest: Digest,
    stage: Stage,
}

impl DeleteManifest {
    fn delete(&mut self, engine: &mut Engine, subject: Option<Digest>) {
        let d = &self.digest;
        engine.call(
            Target::Api(Endpoint::Manifest(d.to_string())),
            format!("delete of manifest {d}"),
            call(Method::DELETE, &[], 0),
            History::default(),
        );
        self.stage = Stage::Deleting { subject };
    }
}

impl Goal for DeleteManifest {
    fn on_fetched(&mut self, engine: &mut Engine, f: Fetched) {
        let limit = engine.config().list_page_limit;
        match std::mem::replace(&mut self.stage, Stage::Deleting { subject: None }) {
            Stage::Reading(wanted) => match manifest::verify(&wanted, f) {
                Ok(v) => self.delete(engine, v.manifest.subject().map(|s| s.digest.clone())),
                Err(e) => engine.fail(e),
            },
            Stage::Deleting { subject } => {
                engine.emit(Event::Deleted {
                    what: format!("manifest {}", self.digest),
                });
                if let Some(subject) = subject {
                    engine.call(
                        Target::Api(Endpoint::referrers(subject.clone(), None)),
                        "referrers".into(),
                        call(Method::GET, &[404], limit),
                        History::default(),
                    );
                    self.stage = Stage::Api { subject };
                }
            }
            // the registry keeps its own list
            Stage::Api { .. } if f.status != 404 => {}
            Stage::Api { subject } => {
                let change = Change::Remove(self.digest.clone());
                self.stage = Stage::TagEdit(TagEdit::start(engine, subject, change));
            }
            Stage::TagEdit(mut edit) => {
                if !edit.on_fetched(engine, f) {
                    self.stage = Stage::TagEdit(edit);
                }
            }
        }
    }
}

/// One `DELETE` of a tag or a blob.
#[derive(Debug)]
struct DeleteOne {
    what: String,
}

impl Goal for DeleteOne {
    fn on_fetched(&mut self, engine: &mut Engine, _: Fetched) {
        engine.emit(Event::Deleted {
            what: self.what.clone(),
        });
    }
}

/// `reference`'s digest, or the error that it has none.
fn digest_of(reference: &Reference, what: &str) -> Result<Digest, Error> {
    reference.digest().cloned().ok_or_else(|| {
        Error::Digest(DigestError::Malformed(format!(
            "{what} is deleted by digest (repository@sha256:…), not {reference}"
        )))
    })
}

impl Machine {
    /// Deletes the manifest `reference` names by digest: read first (for its subject),
    /// then deleted, then taken out of its subject's referrers tag where the registry has
    /// no referrers API. [`Event::Deleted`], then `Done`.
    pub fn delete_manifest(config: Config, reference: Reference, now: Instant) -> Machine {
        let digest = digest_of(&reference, "a manifest");
        Machine::start(config, reference, now, |engine| {
            let digest = digest?;
            let wanted = Wanted {
                reference: digest.to_string(),
                expected: Some(digest.clone()),
                platform: None,
            };
            manifest::fetch(engine, &wanted);
            Ok(DeleteManifest {
                digest,
                stage: Stage::Reading(wanted),
            })
        })
    }

    /// Deletes the tag `reference` names, not the manifest it points to (OCI 1.1:
    /// `DELETE /manifests/<tag>`; a registry without it answers `400`, `405` or
    /// `UNSUPPORTED`). [`Event::Deleted`], then `Done`.
    pub fn delete_tag(config: Config, reference: Reference, now: Instant) -> Machine {
        let tag = reference.tag().map(str::to_string);
        Machine::start(config, reference, now, |engine| {
            let tag = tag.ok_or(Error::Reference(crate::reference::ReferenceError::Tag(
                String::new(),
            )))?;
            engine.call(
                Target::Api(Endpoint::Manifest(tag.clone())),
                format!("delete of tag {tag}"),
                call(Method::DELETE, &[], 0),
                History::default(),
            );
            Ok(DeleteOne {
                what: format!("tag {tag}"),
            })
        })
    }

    /// Deletes the blob `reference` names by digest (`repo@sha256:…`).
    /// [`Event::Deleted`], then `Done`.
    pub fn delete_blob(config: Config, reference: Reference, now: Instant) -> Machine {
        let digest = digest_of(&reference, "a blob");
        Machine::start(config, reference, now, |engine| {
            let digest = digest?;
            engine.call(
                Target::Api(Endpoint::Blob(digest.clone())),
                format!("delete of blob {digest}"),
                call(Method::DELETE, &[], 0),
                History::default(),
            );
            Ok(DeleteOne {
                what: format!("blob {digest}"),
            })
        })
    }
}
