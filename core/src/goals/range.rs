//! Parts of a blob and its size: the bytes `offset..offset + len` of a blob in one
//! request (`Range`), and a blob's size from a `HEAD`.
//!
//! A part cannot be verified against the blob's digest (a digest covers the whole): what
//! is checked is that the registry answered that range (`206` with the matching
//! `Content-Range`) with exactly that many bytes. A part that is the whole blob is
//! verified against the digest. A registry that ignores `Range` and sends the whole blob
//! (`200`) is refused with a message that says so, unless the range is the whole blob.

use std::time::Instant;

use http::header;

use crate::blob::content_length;
use crate::digest::{Digest, DigestError};
use crate::endpoint::{Endpoint, Target};
use crate::engine::{Call, Engine, Fetched, History};
use crate::error::{redact_url, Error};
use crate::machine::{Goal, Machine};
use crate::manifest::Descriptor;
use crate::range::parse_content_range;
use crate::reference::Reference;
use crate::{Config, Event};

/// The largest part read in one request (it is held whole).
pub const MAX_RANGE: u64 = 64 << 20;

/// One part of one blob.
#[derive(Debug)]
struct Part {
    descriptor: Descriptor,
    offset: u64,
    len: u64,
}

impl Goal for Part {
    fn on_fetched(&mut self, engine: &mut Engine, f: Fetched) {
        let whole = self.offset == 0 && self.len == self.descriptor.len();
        let problem = |p: String| Error::Blob {
            digest: self.descriptor.digest.clone(),
            problem: format!("{p} ({})", redact_url(&f.url)),
        };
        if f.status == 200 && !whole {
            return engine.fail(problem(
                "the registry ignored the Range header and sent the whole blob".into(),
            ));
        }
        if f.status == 206 {
            let asked = f
                .headers
                .get(header::CONTENT_RANGE)
                .and_then(|v| parse_content_range(v.as_bytes()))
                .is_some_and(|r| r.first == self.offset && r.last + 1 == self.offset + self.len);
            if !asked {
                return engine.fail(problem(
                    "the registry answered another range than the one asked".into(),
                ));
            }
        }
        if f.body.len() as u64 != self.len {
            return engine.fail(problem(format!(
                "{} bytes came for a part of {} bytes",
                f.body.len(),
                self.len
            )));
        }
        if whole {
            let actual = Digest::of(self.descriptor.digest.algorithm(), &f.body);
            if actual != self.descriptor.digest {
                return engine.fail(Error::DigestMismatch {
                    what: format!("blob {}", self.descriptor.digest),
                    expected: self.descriptor.digest.clone(),
                    actual,
                });
            }
        }
        engine.emit(Event::BlobPart {
            digest: self.descriptor.digest.clone(),
            offset: self.offset,
            bytes: f.body,
        });
    }
}

/// A blob's size, from a `HEAD`.
#[derive(Debug)]
struct Size {
    digest: Digest,
}

impl Goal for Size {
    fn on_fetched(&mut self, engine: &mut Engine, f: Fetched) {
        match content_length(&f.headers) {
            Some(size) => engine.emit(Event::BlobFound {
                digest: self.digest.clone(),
                size,
            }),
            None => engine.fail(Error::Blob {
                digest: self.digest.clone(),
                problem: format!(
                    "the registry declared no size for it ({})",
                    redact_url(&f.url)
                ),
            }),
        }
    }
}

impl Machine {
    /// Fetches bytes `offset..offset + len` of the blob `descriptor` of `repository` in
    /// one request: one [`Event::BlobPart`], checked as the module docs say (a part is not verified against the digest; the whole blob is). At most
    /// [`MAX_RANGE`] bytes; a range past the blob's end is refused before any request.
    pub fn fetch_blob_range(
        config: Config,
        repository: Reference,
        descriptor: Descriptor,
        offset: u64,
        len: u64,
        now: Instant,
    ) -> Machine {
        Machine::start(config, repository, now, |engine| {
            let size = descriptor.len();
            if len == 0 || len > MAX_RANGE || offset.checked_add(len).is_none_or(|e| e > size) {
                return Err(Error::InvalidRange {
                    digest: descriptor.digest.clone(),
                    offset,
                    len,
                    size,
                    max: MAX_RANGE,
                });
            }
            let mut call = Call::get("*/*", "blob range", len);
            call.range = Some((offset, offset + len - 1));
            engine.call(
                Target::Api(Endpoint::Blob(descriptor.digest.clone())),
                format!("bytes {offset}+{len} of blob {}", descriptor.digest),
                call,
                History::default(),
            );
            Ok(Part {
                descriptor,
                offset,
                len,
            })
        })
    }

    /// Asks the registry for the size of the blob `reference` names by digest
    /// (`repo@sha256:…`): one [`Event::BlobFound`], then `Done`.
    pub fn stat_blob(config: Config, reference: Reference, now: Instant) -> Machine {
        let digest = reference.digest().cloned();
        Machine::start(config, reference, now, |engine| {
            let digest = digest.ok_or_else(|| {
                Error::Digest(DigestError::Malformed(
                    "a blob is named by its digest (repo@sha256:…)".into(),
                ))
            })?;
            let mut call = Call::get("*/*", "blob", 0);
            call.method = http::Method::HEAD;
            engine.call(
                Target::Api(Endpoint::Blob(digest.clone())),
                format!("blob {digest}"),
                call,
                History::default(),
            );
            Ok(Size { digest })
        })
    }
}
