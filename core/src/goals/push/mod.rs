//! The push goal: every blob into the repository (probed, mounted or uploaded, resumed
//! from the registry's own offset after a failure), then the manifests, children before
//! the index that lists them, the top one under each tag.
//!
//! One blob's way: `HEAD` (there: done) → `POST` (a mount: done, or a session) → one
//! `PUT ?digest=` with the whole blob when it fits a chunk, else `PATCH` chunks with
//! `Content-Range` and a closing `PUT ?digest=`. A blob of up to 1 MiB instead goes whole
//! in a single `POST ?digest=` once the registry has shown it takes one (one blob at a
//! time finds out; a registry that opens a session instead gets `POST` then `PUT`). A failed `PATCH`/`PUT` is followed,
//! after the engine's backoff, by `GET <location>`: the upload continues where the
//! registry says it stands, or, when the registry cannot say (the session is gone or
//! refused), in a new session; failures without progress count against the blob's
//! attempts across all of this. A `416` or an unknown session (`404`) answered to a
//! transfer that did not fail starts the blob over in a new session, once.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, Method};
use url::Url;

use std::time::Instant;

use crate::digest::Digest;
use crate::endpoint::{Endpoint, Target};
use crate::engine::{Call, Due, Engine, Fetched, History, OnRetry, OpId, OutBody};
use crate::error::Error;
use crate::machine::{Goal, Machine};
use crate::manifest::Descriptor;
use crate::reference::Reference;
use crate::Config;
use crate::{BlobId, Event, Pushed};

use super::referrers_tag::TagEdit;

/// One manifest of a push: its descriptor and exact bytes.
#[derive(Clone, Debug)]
pub struct PushManifest {
    /// Media type, digest and size of `bytes`.
    pub descriptor: Descriptor,
    /// The manifest as it is stored.
    pub bytes: Bytes,
}

/// What a push sends.
#[derive(Clone, Debug, Default)]
pub struct PushPlan {
    /// Every blob, once; a blob's [`BlobId`] is its index here.
    pub blobs: Vec<Descriptor>,
    /// The manifests, children before the index that lists them; the last one is the
    /// top manifest.
    pub manifests: Vec<PushManifest>,
    /// Tags for the top manifest; none pushes it by digest only.
    pub tags: Vec<String>,
    /// A repository of the same registry that may hold the blobs already: they are
    /// mounted from it instead of uploaded.
    pub mount_from: Option<String>,
}

/// Where a blob stands.
#[derive(Debug)]
struct Upload {
    descriptor: Descriptor,
    /// The session's current location (absolute), once opened.
    location: Option<Url>,
    /// Bytes the registry holds.
    offset: u64,
    /// Chunk size for this session.
    chunk: u64,
    /// A new session was opened once after a 416 or an unknown session.
    restarted: bool,
    /// Failures since the registry last confirmed bytes of this blob: carried through
    /// status checks and new sessions, so a blob that keeps failing runs out of attempts.
    history: History,
}

/// What an operation of the push is for.
#[derive(Clone, Copy, Debug)]
enum Purpose {
    Probe(usize),
    Open(usize),
    /// A `PUT` with the whole blob, or a `PATCH` of a chunk.
    Send(usize),
    /// The closing `PUT ?digest=` after the chunks.
    Close(usize),
    /// A whole blob in a single `POST ?digest=`.
    Whole(usize),
    Status(usize),
    Manifest(usize),
    /// Listing manifest step `k` in its subject's referrers tag.
    ReferrersTag(usize),
}

/// Pushes one plan.
#[derive(Debug)]
pub(crate) struct Push {
    plan_manifests: Vec<PushManifest>,
    tags: Vec<String>,
    mount_from: Option<String>,
    uploads: Vec<Upload>,
    ops: HashMap<OpId, Purpose>,
    /// Blobs not started yet (in plan order).
    next_blob: usize,
    active: usize,
    /// The next manifest `PUT` (index into manifests, then tags of the top).
    next_manifest: usize,
    /// Whether the registry takes a small blob in a single `POST`.
    single_post: SinglePost,
    /// The edit of a subject's referrers tag under way, if any.
    referrers_edit: Option<TagEdit>,
}

/// Whether the registry takes a whole blob in one `POST ?digest=` (the distribution spec
/// makes it optional: a registry without it opens a session and ignores the body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SinglePost {
    /// Not known yet; `trying` while one blob finds out (the others go by `POST` then
    /// `PUT` meanwhile, so a registry without it costs one small body sent twice).
    Unknown { trying: bool },
    /// It stored a blob so: small blobs go in one request each.
    Works,
    /// It answered with a session or refused: `POST` then `PUT`.
    Ignored,
}

fn call(method: Method, body: OutBody, answers: &'static [u16], on_retry: OnRetry) -> Call {
    Call {
        method,
        accept: None,
        content_type: None,
        content_range: None,
        range: None,
        precondition: None,
        body,
        limit: 64 << 10,
        limit_what: "upload response",
        answers,
        catching_up: &[],
        on_retry,
    }
}

impl Push {
    pub(crate) fn start(engine: &mut Engine, plan: PushPlan) -> Push {
        let chunk = engine.config().upload_chunk_size.max(1);
        let mut goal = Push {
            uploads: plan
                .blobs
                .into_iter()
                .map(|descriptor| Upload {
                    descriptor,
                    location: None,
                    offset: 0,
                    chunk,
                    restarted: false,
                    history: History::default(),
                })
                .collect(),
            plan_manifests: plan.manifests,
            tags: plan.tags,
            mount_from: plan.mount_from,
            ops: HashMap::new(),
            next_blob: 0,
            active: 0,
            next_manifest: 0,
            single_post: SinglePost::Unknown { trying: false },
            referrers_edit: None,
        };
        goal.start_blobs(engine);
        goal
    }

    /// Starts blobs while there is room, then the manifests when every blob is in.
    fn start_blobs(&mut self, engine: &mut Engine) {
        let max = engine.config().max_concurrent.max(1);
        while self.active < max && self.next_blob < self.uploads.len() {
            let i = self.next_blob;
            self.next_blob += 1;
            self.active += 1;
            let d = &self.uploads[i].descriptor;
            let target = Target::Api(Endpoint::Blob(d.digest.clone()));
            let what = format!("blob {}", d.digest);
            let op = engine.call(
                target,
                what,
                call(Method::HEAD, OutBody::Empty, &[404], OnRetry::Resend),
                History::default(),
            );
            self.ops.insert(op, Purpose::Probe(i));
        }
        if self.active == 0 && self.next_blob == self.uploads.len() {
            self.put_next_manifest(engine);
        }
    }

    fn blob_done(&mut self, engine: &mut Engine, i: usize, how: Pushed) {
        let u = &mut self.uploads[i];
        self.active -= 1;
        engine.emit(Event::BlobPushed {
            blob: BlobId(i),
            digest: u.descriptor.digest.clone(),
            size: u.descriptor.len(),
            how,
        });
        self.start_blobs(engine);
    }

    /// The manifest `PUT` number `k`: every manifest by digest except the top, which
    /// goes under each tag (or its digest when there is none).
    fn manifest_step(&self, k: usize) -> Option<(usize, String)> {
        let n = self.plan_manifests.len();
        if n == 0 || k >= n - 1 + self.tags.len().max(1) {
            return None;
        }
        if k < n - 1 {
            return Some((k, self.plan_manifests[k].descriptor.digest.to_string()));
        }
        let top = &self.plan_manifests[n - 1];
        let reference = self
            .tags
            .get(k - (n - 1))
            .cloned()
            .unwrap_or_else(|| top.descriptor.digest.to_string());
        Some((n - 1, reference))
    }

    /// `PUT`s the next manifest, one at a time, in order.
    fn put_next_manifest(&mut self, engine: &mut Engine) {
        let k = self.next_manifest;
        let Some((m, reference)) = self.manifest_step(k) else {
            return;
        };
        self.next_manifest += 1;
        let pm = &self.plan_manifests[m];
        let target = Target::Api(Endpoint::Manifest(reference.clone()));
        let mut c = call(
            Method::PUT,
            OutBody::Bytes(pm.bytes.clone()),
            &[],
            OnRetry::Resend,
        );
        c.content_type = Some(pm.descriptor.media_type.clone());
        // every blob and child of this manifest was confirmed before it is put
        c.catching_up = &["MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN"];
        let op = engine.call(
            target,
            format!("manifest {reference}"),
            c,
            History::default(),
        );
        self.ops.insert(op, Purpose::Manifest(k));
    }

    /// A manifest is stored: check the digest the registry computed, say so, go on.
    fn manifest_put(&mut self, engine: &mut Engine, k: usize, headers: &HeaderMap) {
        let Some((m, reference)) = self.manifest_step(k) else {
            return;
        };
        let want = self.plan_manifests[m].descriptor.digest.clone();
        if let Some(got) = served_digest(headers) {
            if got.algorithm() == want.algorithm() && got != want {
                return engine.fail(Error::DigestMismatch {
                    what: format!("pushed manifest {reference} (Docker-Content-Digest)"),
                    expected: want,
                    actual: got,
                });
            }
        }
        engine.emit(Event::ManifestPushed {
            digest: want,
            reference,
        });
        // the first PUT of a manifest with a subject may have a referrers tag to update
        if k == m && self.update_referrers_tag(engine, k, m, headers) {
            return;
        }
        self.put_next_manifest(engine);
    }
}

impl Goal for Push {
    fn on_fetched(&mut self, engine: &mut Engine, f: Fetched) {
        let Some(purpose) = self.ops.remove(&f.op) else {
            return;
        };
        match purpose {
            Purpose::Probe(i) if f.status == 404 => self.open(engine, i),
            Purpose::Probe(i) => self.blob_done(engine, i, Pushed::Existed),
            Purpose::Open(i) => self.opened(engine, i, &f),
            Purpose::Whole(i) => self.whole_answered(engine, i, &f),
            // After a failed transfer the session may be gone or unusable (a registry
            // whose session state carries the offset refuses it once bytes went astray):
            // a new session, bounded by the attempts of this blob.
            Purpose::Status(i) if matches!(f.status, 404 | 416) => self.start_over(engine, i),
            Purpose::Send(i) | Purpose::Close(i) if matches!(f.status, 404 | 416) => {
                self.restart(engine, i, f.status)
            }
            Purpose::Send(i) if f.status == 201 => self.uploaded(engine, i, &f.headers),
            Purpose::Send(i) => {
                // a chunk went in: the registry's Range says how far it is
                let u = &mut self.uploads[i];
                let sent = u.offset.saturating_add(u.chunk).min(u.descriptor.len());
                u.offset = registry_offset(&f.headers)
                    .filter(|o| *o > 0)
                    .unwrap_or(sent)
                    .min(u.descriptor.len());
                u.history = History::default();
                self.follow(i, &f);
                self.send(engine, i);
            }
            Purpose::Close(i) => self.uploaded(engine, i, &f.headers),
            Purpose::Status(i) => {
                let offset = registry_offset(&f.headers).unwrap_or(0);
                self.uploads[i].offset = offset.min(self.uploads[i].descriptor.len());
                self.follow(i, &f);
                if offset > 0 {
                    engine.emit(Event::UploadResumed {
                        blob: BlobId(i),
                        offset,
                    });
                }
                self.send(engine, i);
            }
            Purpose::Manifest(k) => self.manifest_put(engine, k, &f.headers),
            Purpose::ReferrersTag(k) => self.referrers_tag_answered(engine, k, f),
        }
    }
    /// A failed `PUT`/`PATCH` may be retried: ask the registry where the upload stands.
    fn on_due(&mut self, engine: &mut Engine, due: Due) {
        let Some(Purpose::Send(i) | Purpose::Close(i)) = self.ops.remove(&due.op) else {
            return;
        };
        self.uploads[i].history = due.history;
        let Some(location) = self.uploads[i].location.clone() else {
            return engine.fail(due.error);
        };
        let what = format!("upload status of {}", self.uploads[i].descriptor.digest);
        let op = engine.call(
            Target::Given(location),
            what,
            call(Method::GET, OutBody::Empty, &[404, 416], OnRetry::Resend),
            due.history,
        );
        self.ops.insert(op, Purpose::Status(i));
    }
}

impl Machine {
    /// Pushes `plan` to `target`'s repository (its tag, if any, is added to the plan's
    /// tags): blobs first, asked for by range ([`Action::Upload`](crate::Action::Upload)), then the manifests.
    /// A plan that cannot be pushed as given (a manifest whose bytes do not match its
    /// descriptor, a blob listed twice, a manifest before what it references) fails at
    /// the first poll.
    pub fn push(config: Config, target: Reference, mut plan: PushPlan, now: Instant) -> Machine {
        if let Some(t) = target.tag() {
            if !plan.tags.iter().any(|x| x == t) {
                plan.tags.insert(0, t.to_string());
            }
        }
        Machine::start(config, target, now, |engine| {
            crate::push::check(&plan)?;
            Ok(Push::start(engine, plan))
        })
    }
}

mod referrers_tag;
mod upload;
use upload::registry_offset;

fn served_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v.trim()).ok())
}
