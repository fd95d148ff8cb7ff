//! Tags and digests: more tags for an existing manifest (its bytes put under each, no
//! blob moved, the digest unchanged), and the digest a reference names (a `HEAD`, or a
//! `GET` where the registry omits `Docker-Content-Digest`).

use std::time::Instant;

use http::{header, Method};

use crate::blob::content_length;
use crate::digest::Digest;
use crate::endpoint::{Endpoint, Target};
use crate::engine::{Call, Engine, Fetched, History, OnRetry, OutBody};
use crate::machine::{Goal, Machine};
use crate::manifest::{Descriptor, MANIFEST_ACCEPT};
use crate::reference::Reference;
use crate::{Config, Event};

use super::manifest::{self, Verified, Wanted};

/// The manifest `reference` names, as [`Wanted`] (by tag, verified against a digest
/// given too).
fn wanted(reference: &Reference) -> Wanted {
    Wanted {
        reference: reference.manifest_path_ref(),
        expected: reference.digest().cloned(),
        platform: None,
    }
}

/// Puts one manifest under more tags.
#[derive(Debug)]
struct Tag {
    wanted: Wanted,
    manifest: Option<Verified>,
    tags: Vec<String>,
    next: usize,
}

impl Tag {
    fn put_next(&mut self, engine: &mut Engine) {
        let (Some(m), Some(tag)) = (&self.manifest, self.tags.get(self.next)) else {
            return;
        };
        self.next += 1;
        let mut c = Call::get("*/*", "manifest", engine.config().manifest_limit);
        c.method = Method::PUT;
        c.accept = None;
        c.on_retry = OnRetry::Resend;
        c.body = OutBody::Bytes(m.bytes.clone());
        c.content_type = Some(m.media_type.clone());
        engine.call(
            Target::Api(Endpoint::Manifest(tag.clone())),
            format!("manifest {tag}"),
            c,
            History::default(),
        );
    }
}

impl Goal for Tag {
    fn on_fetched(&mut self, engine: &mut Engine, f: Fetched) {
        match &self.manifest {
            None => match manifest::verify(&self.wanted, f) {
                Ok(v) => {
                    self.manifest = Some(v);
                    self.put_next(engine);
                }
                Err(e) => engine.fail(e),
            },
            Some(m) => {
                let tag = self.tags[self.next - 1].clone();
                engine.emit(Event::ManifestPushed {
                    digest: m.digest.clone(),
                    reference: tag,
                });
                self.put_next(engine);
            }
        }
    }
}

/// The digest a reference names.
#[derive(Debug)]
struct Resolve {
    wanted: Wanted,
    /// The `GET` is out (the `HEAD` said no digest).
    got: bool,
}

impl Goal for Resolve {
    fn on_fetched(&mut self, engine: &mut Engine, f: Fetched) {
        if self.got {
            return match manifest::verify(&self.wanted, f) {
                Ok(v) => engine.emit(Event::Resolved {
                    descriptor: v.descriptor,
                }),
                Err(e) => engine.fail(e),
            };
        }
        let served = f
            .headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v.trim()).ok())
            .filter(|d| self.wanted.expected.as_ref().is_none_or(|e| e == d));
        let media_type = f
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match (served, content_length(&f.headers), media_type) {
            (Some(digest), Some(size), Some(media_type)) => engine.emit(Event::Resolved {
                descriptor: Descriptor::new(&media_type, digest, size),
            }),
            // no digest said (or not the one asked for): the manifest itself, hashed
            _ => {
                self.got = true;
                manifest::fetch(engine, &self.wanted);
            }
        }
    }
}

impl Machine {
    /// Puts the manifest `reference` names (read and verified first) under each of
    /// `tags` in its repository: one [`Event::ManifestPushed`] per tag, then `Done`. No
    /// blob moves; the digest is unchanged.
    pub fn tag(config: Config, reference: Reference, tags: Vec<String>, now: Instant) -> Machine {
        Machine::start(config, reference, now, |engine| {
            let wanted = wanted(engine.reference());
            manifest::fetch(engine, &wanted);
            Ok(Tag {
                wanted,
                manifest: None,
                tags,
                next: 0,
            })
        })
    }

    /// Puts `manifest` (checked against its descriptor and parsed first) under each of
    /// `tags` of `reference`'s repository, or under its digest when `tags` is empty: one
    /// [`Event::ManifestPushed`] per name, then `Done`. For a manifest that lists only
    /// what the repository holds already (an index of its images, an artifact's).
    pub fn put_manifest(
        config: Config,
        reference: Reference,
        manifest: crate::PushManifest,
        tags: Vec<String>,
        now: Instant,
    ) -> Machine {
        Machine::start(config, reference, now, |engine| {
            let d = &manifest.descriptor;
            let checked = crate::manifest::Manifest::parse(&d.media_type, &manifest.bytes)
                .map_err(crate::Error::from)
                .and_then(|(parsed, media_type)| {
                    let digest = Digest::of(d.digest.algorithm(), &manifest.bytes);
                    if digest != d.digest || manifest.bytes.len() as u64 != d.len() {
                        return Err(crate::Error::DigestMismatch {
                            what: "the manifest to put".into(),
                            expected: d.digest.clone(),
                            actual: digest,
                        });
                    }
                    Ok(Verified {
                        digest,
                        media_type,
                        bytes: manifest.bytes.clone(),
                        manifest: parsed,
                        descriptor: d.clone(),
                    })
                });
            let verified = checked?;
            let tags = if tags.is_empty() {
                vec![verified.digest.to_string()]
            } else {
                tags
            };
            let mut goal = Tag {
                wanted: wanted(engine.reference()),
                manifest: Some(verified),
                tags,
                next: 0,
            };
            goal.put_next(engine);
            Ok(goal)
        })
    }

    /// The descriptor (digest, media type, size) of the manifest `reference` names: a
    /// `HEAD`, then a `GET` (hashed) where the registry does not say its digest.
    /// [`Event::Resolved`], then `Done`.
    pub fn resolve(config: Config, reference: Reference, now: Instant) -> Machine {
        Machine::start(config, reference, now, |engine| {
            let wanted = wanted(engine.reference());
            let mut c = Call::get(MANIFEST_ACCEPT, "manifest", 0);
            c.method = Method::HEAD;
            engine.call(
                Target::Api(Endpoint::Manifest(wanted.reference.clone())),
                format!("manifest {}", wanted.reference),
                c,
                History::default(),
            );
            Ok(Resolve { wanted, got: false })
        })
    }
}
