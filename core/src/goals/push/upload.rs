//! One blob's upload: a session opened by `POST` (or the blob mounted, or sent whole in
//! a single `POST ?digest=` where the registry takes it), its `Location` followed exactly
//! as returned after every step, the body in one `PUT` or in `PATCH` chunks from the
//! registry's own offset, and a new session when the registry lost the old one.

use http::{header, HeaderMap, Method};
use url::Url;

use crate::digest::Digest;
use crate::endpoint::{Endpoint, Target};
use crate::engine::{Engine, Fetched, OnRetry, OutBody};
use crate::error::Error;
use crate::{BlobId, Event, Pushed};

use super::{call, served_digest, Purpose, Push, SinglePost};

/// Blobs up to this size (and the chunk size) may go in a single `POST`: one round trip
/// fewer each, and little sent twice to a registry that turns out not to take it.
const SINGLE_POST_MAX: u64 = 1 << 20;

impl Push {
    /// Opens an upload session (or mounts the blob from `mount_from`), or sends a small
    /// blob whole in a single `POST` while the registry may take it.
    pub(super) fn open(&mut self, engine: &mut Engine, i: usize) {
        let history = self.uploads[i].history;
        let d = &self.uploads[i].descriptor;
        let small = d.len() <= SINGLE_POST_MAX.min(self.uploads[i].chunk);
        if small && self.mount_from.is_none() {
            match self.single_post {
                SinglePost::Works => return self.post_whole(engine, i),
                SinglePost::Unknown { trying: false } => {
                    self.single_post = SinglePost::Unknown { trying: true };
                    return self.post_whole(engine, i);
                }
                _ => {}
            }
        }
        let endpoint = match &self.mount_from {
            Some(from) => Endpoint::UploadMount {
                digest: d.digest.clone(),
                from: from.clone(),
            },
            None => Endpoint::UploadStart,
        };
        let what = format!("upload of {}", d.digest);
        let op = engine.call(
            Target::Api(endpoint),
            what,
            call(Method::POST, OutBody::Empty, &[], OnRetry::Resend),
            history,
        );
        self.ops.insert(op, Purpose::Open(i));
    }

    /// `POST ?digest=` with the whole blob.
    fn post_whole(&mut self, engine: &mut Engine, i: usize) {
        let u = &self.uploads[i];
        let d = &u.descriptor;
        let target = Target::Api(Endpoint::UploadWhole(d.digest.clone()));
        let body = OutBody::Blob {
            blob: BlobId(i),
            offset: 0,
            len: d.len(),
        };
        // 400/405/415: a registry that refuses the form rather than ignoring the body
        let mut c = call(Method::POST, body, &[400, 405, 415], OnRetry::Resend);
        c.content_type = Some("application/octet-stream".into());
        let op = engine.call(target, format!("upload of {}", d.digest), c, u.history);
        self.ops.insert(op, Purpose::Whole(i));
    }

    /// The single `POST` was answered: stored (`201`), a session opened instead (`202`,
    /// continued as any session), or refused (a plain session next). Either way the
    /// registry's answer holds for the rest of the push.
    pub(super) fn whole_answered(&mut self, engine: &mut Engine, i: usize, f: &Fetched) {
        let works = f.status == 201;
        if matches!(self.single_post, SinglePost::Unknown { .. }) {
            self.single_post = if works {
                SinglePost::Works
            } else {
                SinglePost::Ignored
            };
        }
        match f.status {
            201 => self.uploaded(engine, i, &f.headers),
            202 => self.opened(engine, i, f),
            _ => {
                self.single_post = SinglePost::Ignored;
                self.open(engine, i)
            }
        }
    }

    pub(super) fn opened(&mut self, engine: &mut Engine, i: usize, f: &Fetched) {
        if f.status == 201 {
            return self.blob_done(engine, i, Pushed::Mounted);
        }
        let min = f
            .headers
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let u = &mut self.uploads[i];
        if let Some(min) = min {
            // bounded: a registry cannot make a chunk larger than the blob
            u.chunk = u.chunk.max(min).min(u.descriptor.len().max(1));
        }
        // a new session holds nothing, unless it says otherwise (a single `POST` whose
        // body the registry kept in the session it opened)
        u.offset = registry_offset(&f.headers)
            .unwrap_or(0)
            .min(u.descriptor.len());
        if !self.follow(i, f) {
            return engine.fail(Error::InvalidUrl {
                url: f.url.to_string(),
                reason: "the upload session's Location is missing or not a URL".into(),
            });
        }
        self.send(engine, i);
    }

    /// Takes the session's new `Location` (relative to the URL it came from). False when
    /// the answer has none that parses.
    pub(super) fn follow(&mut self, i: usize, f: &Fetched) -> bool {
        let next = f
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| f.url.join(l.trim()).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        match next {
            Some(u) => {
                self.uploads[i].location = Some(u);
                true
            }
            None => self.uploads[i].location.is_some(),
        }
    }

    /// Sends what comes next from `offset`: the whole blob in one `PUT`, a chunk, or the
    /// closing `PUT`.
    pub(super) fn send(&mut self, engine: &mut Engine, i: usize) {
        let u = &self.uploads[i];
        let history = u.history;
        let Some(location) = u.location.clone() else {
            return engine.fail(Error::Cancelled);
        };
        let size = u.descriptor.len();
        let digest = u.descriptor.digest.clone();
        let what = format!("upload of {digest}");
        let (purpose, c, url) = if u.offset == 0 && size <= u.chunk {
            let body = OutBody::Blob {
                blob: BlobId(i),
                offset: 0,
                len: size,
            };
            let mut c = call(Method::PUT, body, &[404, 416], OnRetry::AskGoal);
            c.content_type = Some("application/octet-stream".into());
            (Purpose::Send(i), c, with_digest(&location, &digest))
        } else if u.offset < size {
            let len = u.chunk.min(size - u.offset);
            let body = OutBody::Blob {
                blob: BlobId(i),
                offset: u.offset,
                len,
            };
            let mut c = call(Method::PATCH, body, &[404, 416], OnRetry::AskGoal);
            c.content_type = Some("application/octet-stream".into());
            c.content_range = Some(format!("{}-{}", u.offset, u.offset + len - 1));
            (Purpose::Send(i), c, location)
        } else {
            let c = call(Method::PUT, OutBody::Empty, &[404, 416], OnRetry::AskGoal);
            (Purpose::Close(i), c, with_digest(&location, &digest))
        };
        let op = engine.call(Target::Given(url), what, c, history);
        self.ops.insert(op, purpose);
    }

    /// A `416` or an unknown session: a new session from byte 0, once.
    pub(super) fn restart(&mut self, engine: &mut Engine, i: usize, status: u16) {
        let u = &mut self.uploads[i];
        if u.restarted {
            return engine.fail(Error::Upload {
                digest: u.descriptor.digest.clone(),
                problem: format!(
                    "the registry lost the upload session again ({status}) after a new one"
                ),
            });
        }
        u.restarted = true;
        self.start_over(engine, i);
    }

    /// A new session from byte 0.
    pub(super) fn start_over(&mut self, engine: &mut Engine, i: usize) {
        let u = &mut self.uploads[i];
        u.location = None;
        u.offset = 0;
        engine.emit(Event::UploadRestarted { blob: BlobId(i) });
        self.open(engine, i);
    }

    pub(super) fn uploaded(&mut self, engine: &mut Engine, i: usize, headers: &HeaderMap) {
        let want = &self.uploads[i].descriptor.digest;
        if let Some(got) = served_digest(headers) {
            if got != *want {
                return engine.fail(Error::DigestMismatch {
                    what: format!("uploaded blob {want} (Docker-Content-Digest)"),
                    expected: want.clone(),
                    actual: got,
                });
            }
        }
        self.blob_done(engine, i, Pushed::Uploaded);
    }
}

/// The `Range: 0-<last>` of an upload answer, as the next offset. `0-0` is read as 0:
/// registries write it for an empty session too (one held byte is then sent again,
/// which the registry refuses with a 416, and the blob starts over once).
pub(super) fn registry_offset(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let last = v.trim().trim_start_matches("bytes=").split_once('-')?.1;
    match last.trim().parse::<u64>().ok()? {
        0 => Some(0),
        l => Some(l.saturating_add(1)),
    }
}

/// The location with `digest=` added to whatever query it carries.
fn with_digest(location: &Url, digest: &Digest) -> Url {
    let mut u = location.clone();
    u.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    u
}
