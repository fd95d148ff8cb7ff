//! Editing a subject's referrers tag: a registry without the referrers API leaves the
//! list to its clients, as an image index under the subject's referrers tag
//! ([`fallback_tag`]). A push of a manifest with a `subject` adds it there; a delete
//! takes it out. Both are a read-modify-write of one tag that other clients may be
//! writing at the same moment (two `attach`es to one image), and the registry has no
//! lock to offer, so one edit is:
//!
//! 1. read the tag, with its `ETag`;
//! 2. write the changed index with `If-Match` (`If-None-Match: *` where the tag did not
//!    exist): a registry that honours it answers `412` when another writer came first,
//!    and the edit starts over from 1;
//! 3. read the tag back after a pause (`Config::referrers_tag_settle`, plus jitter): a
//!    registry that ignores preconditions (`docker-registry` does) lets a writer that read
//!    before our write replace it with an older copy; the read-back finds our change
//!    missing and the edit starts over from 2 with what it read.
//!
//! Every writer doing the same converges: a loss needs another writer's read and write to
//! straddle the whole pause. Rounds are bounded (`Config::referrers_tag_rounds`).

use bytes::Bytes;
use http::{header, Method};

use crate::digest::Digest;
use crate::endpoint::{Endpoint, Target};
use crate::engine::{Call, Engine, Fetched, History, OnRetry, OpId, OutBody, Precondition};
use crate::error::Error;
use crate::manifest::{Descriptor, Index, Manifest, OCI_INDEX};
use crate::referrers::{fallback_tag, with_referrer, without_referrer};
use crate::time::later;
use crate::Event;

/// What an edit does to the list.
#[derive(Debug)]
pub(crate) enum Change {
    /// Lists this manifest (once).
    Add(Box<Descriptor>),
    /// Takes this manifest out.
    Remove(Digest),
}

impl Change {
    /// The index to write so that the change holds, from the tag as read (`None`: no
    /// such tag); `None` when it holds already.
    fn apply(&self, current: Option<&Index>) -> Option<Bytes> {
        match self {
            Change::Add(d) => with_referrer(current, (**d).clone()),
            Change::Remove(d) => without_referrer(current?, d),
        }
    }

    fn digest(&self) -> &Digest {
        match self {
            Change::Add(d) => &d.digest,
            Change::Remove(d) => d,
        }
    }
}

/// Where an edit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Reading the tag (at first, or after a `412`).
    Reading,
    /// The changed index is being written.
    Writing,
    /// Reading the tag back after a write.
    Checking,
}

/// One edit of a referrers tag, driven by its goal: [`TagEdit::start`], then every
/// answer to [`TagEdit::op`] goes to [`TagEdit::on_fetched`] until it returns true.
#[derive(Debug)]
pub(crate) struct TagEdit {
    subject: Digest,
    change: Change,
    step: Step,
    op: OpId,
    /// Writes sent so far (bounded by the config's rounds).
    writes: u32,
}

/// What the tag held when it was read.
struct Read {
    index: Option<Index>,
    etag: Option<String>,
}

impl TagEdit {
    /// Starts editing `subject`'s referrers tag: reads it.
    pub(crate) fn start(engine: &mut Engine, subject: Digest, change: Change) -> TagEdit {
        let op = read(engine, &subject, None);
        TagEdit {
            subject,
            change,
            step: Step::Reading,
            op,
            writes: 0,
        }
    }

    /// The operation whose answer the edit waits for.
    pub(crate) fn op(&self) -> OpId {
        self.op
    }

    /// The answer to [`TagEdit::op`]: true when the edit is over (the change holds as
    /// read back, or held before anything was written). A failure fails the engine.
    pub(crate) fn on_fetched(&mut self, engine: &mut Engine, f: Fetched) -> bool {
        let tag = fallback_tag(&self.subject);
        match self.step {
            Step::Writing if f.status == 412 => {
                // another writer came first: read what it wrote
                self.step = Step::Reading;
                self.op = read(engine, &self.subject, None);
                false
            }
            Step::Writing => {
                engine.emit(Event::ReferrersTagUpdated {
                    tag,
                    subject: self.subject.clone(),
                });
                let settle = engine.config().referrers_tag_settle;
                let at = later(engine.now(), settle + self.jitter(engine, settle / 2));
                self.step = Step::Checking;
                self.op = read(engine, &self.subject, Some(at));
                false
            }
            Step::Reading | Step::Checking => {
                let read = match parse(&tag, &f) {
                    Ok(r) => r,
                    Err(e) => {
                        engine.fail(e);
                        return true;
                    }
                };
                let Some(bytes) = self.change.apply(read.index.as_ref()) else {
                    return true;
                };
                if self.writes >= engine.config().referrers_tag_rounds {
                    engine.fail(Error::List {
                        what: "referrers",
                        url: tag,
                        problem: format!(
                            "other clients kept replacing the referrers tag: {} writes of \
                             {} were undone; push it again when they are done",
                            self.writes,
                            self.change.digest()
                        ),
                    });
                    return true;
                }
                self.writes += 1;
                let precondition = match (&read.index, read.etag) {
                    (None, _) => Some(Precondition::Absent),
                    (Some(_), Some(etag)) => Some(Precondition::Matches(etag)),
                    (Some(_), None) => None,
                };
                self.step = Step::Writing;
                self.op = write(engine, &self.subject, bytes, precondition);
                false
            }
        }
    }

    /// A pause at random below `max`, different for each writer of one tag even when
    /// their machines share a seed (the manifest's digest is mixed in).
    fn jitter(&self, engine: &mut Engine, max: std::time::Duration) -> std::time::Duration {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return std::time::Duration::ZERO;
        }
        let own = self
            .change
            .digest()
            .hex()
            .bytes()
            .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b));
        std::time::Duration::from_millis((engine.random() ^ own) % ms)
    }
}

/// Reads `subject`'s referrers tag (no sooner than `at`, when given).
fn read(engine: &mut Engine, subject: &Digest, at: Option<std::time::Instant>) -> OpId {
    let tag = fallback_tag(subject);
    let mut c = Call::get(
        OCI_INDEX,
        "referrers index",
        engine.config().list_page_limit,
    );
    c.answers = &[404];
    let target = Target::Api(Endpoint::Manifest(tag.clone()));
    let what = format!("referrers tag {tag}");
    match at {
        Some(at) => engine.call_at(target, what, c, at),
        None => engine.call(target, what, c, History::default()),
    }
}

/// Writes `bytes` as `subject`'s referrers tag, on `precondition`.
fn write(
    engine: &mut Engine,
    subject: &Digest,
    bytes: Bytes,
    precondition: Option<Precondition>,
) -> OpId {
    let tag = fallback_tag(subject);
    let mut c = Call::get(OCI_INDEX, "manifest response", 64 << 10);
    c.method = Method::PUT;
    c.accept = None;
    c.body = OutBody::Bytes(bytes);
    c.content_type = Some(OCI_INDEX.to_string());
    c.precondition = precondition;
    c.answers = &[412];
    c.on_retry = OnRetry::Resend;
    engine.call(
        Target::Api(Endpoint::Manifest(tag.clone())),
        format!("referrers tag {tag}"),
        c,
        History::default(),
    )
}

/// The tag as read: its index (none on a `404`) and its strong entity tag (a weak one
/// never matches `If-Match`, RFC 9110 §13.1.1).
fn parse(tag: &str, f: &Fetched) -> Result<Read, Error> {
    if f.status == 404 {
        return Ok(Read {
            index: None,
            etag: None,
        });
    }
    let index = match Manifest::parse(OCI_INDEX, &f.body) {
        Ok((Manifest::Index(ix), _)) => ix,
        _ => {
            return Err(Error::List {
                what: "referrers",
                url: tag.to_string(),
                problem: "the referrers tag holds something other than an image index; it is \
                          left as it is"
                    .into(),
            })
        }
    };
    let etag = f
        .headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with('"'))
        .map(str::to_string);
    Ok(Read {
        index: Some(index),
        etag,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::reference::Reference;

    fn edit(digest: Digest) -> TagEdit {
        TagEdit {
            subject: Digest::sha256(b"subject"),
            change: Change::Remove(digest),
            step: Step::Reading,
            op: OpId(0),
            writes: 0,
        }
    }

    /// The pause before a read-back varies with the manifest even between machines of one
    /// seed (two attaches of one process), stays below its bound, and is nothing when the
    /// bound is.
    #[test]
    fn jitter_varies_by_manifest_within_its_bound() {
        let max = Duration::from_millis(150);
        let pauses: Vec<Duration> = (0..8u8)
            .map(|i| {
                let mut engine = Engine::new(
                    crate::Config::default(),
                    Reference::parse("reg.test/x/y").unwrap(),
                    Instant::now(),
                );
                edit(Digest::sha256(&[i])).jitter(&mut engine, max)
            })
            .collect();
        assert!(pauses.iter().all(|p| *p < max), "{pauses:?}");
        let mut distinct = pauses.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() >= 6, "{pauses:?}");
        let mut engine = Engine::new(
            crate::Config::default(),
            Reference::parse("reg.test/x/y").unwrap(),
            Instant::now(),
        );
        assert_eq!(
            edit(Digest::sha256(b"a")).jitter(&mut engine, Duration::ZERO),
            Duration::ZERO
        );
    }
}
