//! One blob download across any number of attempts: offsets, `Range` resume, skipping
//! on a `200` that ignored the range, hashing, and the final size and digest check.
//!
//! The hasher state lives here for the whole download, so a resumed blob is verified
//! exactly like one fetched in a single response, and no byte is hashed twice.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::digest::{Digest, Verifier};
use crate::error::{Error, SizeSeen};
use crate::offload::{BlobHash, HashOffload};
use crate::range::{content_range_matches, range_header};

/// The state of one blob download.
#[derive(Debug)]
pub(crate) struct BlobDownload {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    hash: Option<BlobHash>,
    /// Where the hash goes once bytes arrive (large blobs, when the caller gave one).
    offload: Option<Arc<dyn HashOffload>>,
    /// Bytes delivered (and hashed) so far.
    pub(crate) offset: u64,
    /// Bytes still to discard from the current response (a `200` after a range request).
    skip: u64,
    skipped_total: u64,
    skip_budget: u64,
    /// A 416 already made us start over once.
    pub(crate) restarted: bool,
    /// The download continues a prefix the caller had (an earlier run's partial file),
    /// which this machine never verified byte by byte.
    pub(crate) from_caller_prefix: bool,
    /// `offset` when the current attempt began.
    pub(crate) attempt_start: u64,
}

/// What the end of a response body means.
#[derive(Debug)]
pub(crate) enum EndOutcome {
    /// All bytes arrived and the digest matched.
    Complete,
    /// The body ended early; resume from `offset`.
    Short,
}

impl BlobDownload {
    /// A download starting at `verifier.len()` (0 for a fresh one).
    pub(crate) fn new(digest: Digest, size: u64, verifier: Verifier, skip_budget: u64) -> Self {
        let offset = verifier.len();
        BlobDownload {
            digest,
            size,
            hash: Some(BlobHash::Here(verifier)),
            offload: None,
            offset,
            skip: 0,
            skipped_total: 0,
            skip_budget,
            restarted: false,
            from_caller_prefix: offset > 0,
            attempt_start: offset,
        }
    }

    /// Hashes this blob's bytes with `offload` (from its first byte on).
    pub(crate) fn hash_with(mut self, offload: Option<Arc<dyn HashOffload>>) -> Self {
        self.offload = offload;
        self
    }

    /// The hash over the bytes delivered so far (`offset` of them), when it is kept
    /// here rather than offloaded.
    pub(crate) fn hashed_prefix(&self) -> Option<Verifier> {
        match &self.hash {
            Some(BlobHash::Here(v)) => Some(v.clone()),
            _ => None,
        }
    }

    /// The `Range` header for the next attempt, if it does not start at zero.
    pub(crate) fn range(&self) -> Option<String> {
        (self.offset > 0).then(|| range_header(self.offset, self.size))
    }

    /// A new attempt begins.
    pub(crate) fn begin_attempt(&mut self) {
        self.attempt_start = self.offset;
        self.skip = 0;
    }

    /// True if the current or last attempt moved the offset forward.
    pub(crate) fn progressed(&self) -> bool {
        self.offset > self.attempt_start
    }

    /// Starts over from byte zero (after a 416).
    pub(crate) fn restart(&mut self) {
        let alg = self.digest.algorithm();
        self.hash = Some(BlobHash::Here(Verifier::new(alg)));
        self.offset = 0;
        self.attempt_start = 0;
        self.skip = 0;
        self.restarted = true;
        self.from_caller_prefix = false;
    }

    /// Checks a successful response head. `url` is the redacted request URL.
    pub(crate) fn on_head(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        url: &str,
    ) -> Result<(), Error> {
        let ranged = self.offset > 0;
        match status.as_u16() {
            206 => {
                // Exactly the range asked for (the whole blob when none was asked for).
                let cr = headers
                    .get(http::header::CONTENT_RANGE)
                    .map(|v| v.as_bytes())
                    .unwrap_or(b"");
                if self.size > 0 && !content_range_matches(cr, self.offset, self.size) {
                    return Err(Error::InvalidContentRange {
                        url: url.to_string(),
                        got: String::from_utf8_lossy(cr).chars().take(100).collect(),
                        start: self.offset,
                        end: self.size - 1,
                        total: self.size,
                    });
                }
            }
            _ if ranged => {
                // 200: the range was ignored; discard what we already have, within budget.
                if self.skipped_total + self.offset > self.skip_budget {
                    return Err(Error::RangeIgnored {
                        url: url.to_string(),
                        offset: self.offset,
                        budget: self.skip_budget,
                    });
                }
                self.skip = self.offset;
            }
            _ => {}
        }
        if let Some(len) = content_length(headers) {
            let expected = if status == StatusCode::PARTIAL_CONTENT || self.skip == 0 {
                self.size - self.offset
            } else {
                self.size
            };
            if len > expected {
                return Err(Error::SizeMismatch {
                    digest: self.digest.clone(),
                    expected: self.size,
                    actual: SizeSeen::DeclaredLength {
                        declared: len,
                        expected,
                    },
                });
            }
        }
        Ok(())
    }

    /// Consumes a body chunk; returns the part to deliver at `self.offset` before the
    /// call (already hashed), or an error when the body runs past the size.
    pub(crate) fn on_chunk(&mut self, mut chunk: Bytes) -> Result<Option<Bytes>, Error> {
        if self.skip > 0 {
            let n = (self.skip).min(chunk.len() as u64) as usize;
            self.skip -= n as u64;
            self.skipped_total += n as u64;
            let _ = chunk.split_to(n);
        }
        if chunk.is_empty() {
            return Ok(None);
        }
        let room = self.size - self.offset;
        if chunk.len() as u64 > room {
            return Err(Error::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                actual: SizeSeen::LongerThan(self.offset + chunk.len() as u64),
            });
        }
        if let Some(h) = self.hash.as_mut() {
            h.update(&chunk, self.offload.as_ref());
        }
        self.offset += chunk.len() as u64;
        Ok(Some(chunk))
    }

    /// The body ended.
    pub(crate) fn on_end(&mut self) -> Result<EndOutcome, Error> {
        if self.skip > 0 || self.offset < self.size {
            return Ok(EndOutcome::Short);
        }
        let actual = self
            .hash
            .take()
            .map(BlobHash::finish)
            .unwrap_or_else(|| Digest::of(self.digest.algorithm(), b""));
        if actual != self.digest {
            return Err(Error::DigestMismatch {
                what: format!("blob {}", self.digest),
                expected: self.digest.clone(),
                actual,
            });
        }
        Ok(EndOutcome::Complete)
    }
}

/// `Content-Length`, when present and valid.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;

    fn dl(data: &[u8]) -> BlobDownload {
        BlobDownload::new(
            Digest::sha256(data),
            data.len() as u64,
            Verifier::new(Algorithm::Sha256),
            data.len() as u64,
        )
    }

    #[test]
    fn resume_with_206_and_200() {
        let data = b"0123456789";
        let mut d = dl(data);
        d.on_head(StatusCode::OK, &HeaderMap::new(), "u").unwrap();
        assert_eq!(
            d.on_chunk(Bytes::from_static(b"0123")).unwrap().unwrap(),
            "0123"
        );
        assert!(matches!(d.on_end().unwrap(), EndOutcome::Short));
        assert_eq!(d.range().unwrap(), "bytes=4-9");
        d.begin_attempt();
        // 200 ignoring the range: the first 4 bytes are skipped
        d.on_head(StatusCode::OK, &HeaderMap::new(), "u").unwrap();
        assert_eq!(d.on_chunk(Bytes::from_static(b"012")).unwrap(), None);
        assert_eq!(
            d.on_chunk(Bytes::from_static(b"3456")).unwrap().unwrap(),
            "456"
        );
        assert!(matches!(d.on_end().unwrap(), EndOutcome::Short));
        d.begin_attempt();
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_RANGE, "bytes 7-9/10".parse().unwrap());
        d.on_head(StatusCode::PARTIAL_CONTENT, &h, "u").unwrap();
        assert_eq!(
            d.on_chunk(Bytes::from_static(b"789")).unwrap().unwrap(),
            "789"
        );
        assert!(matches!(d.on_end().unwrap(), EndOutcome::Complete));
    }

    #[test]
    fn wrong_range_long_body_bad_digest() {
        let mut d = dl(b"abcdef");
        d.on_chunk(Bytes::from_static(b"ab")).unwrap();
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_RANGE, "bytes 0-5/6".parse().unwrap());
        assert!(matches!(
            d.on_head(StatusCode::PARTIAL_CONTENT, &h, "u"),
            Err(Error::InvalidContentRange { .. })
        ));
        let mut d = dl(b"abc");
        assert!(matches!(
            d.on_chunk(Bytes::from_static(b"abcd")),
            Err(Error::SizeMismatch { .. })
        ));
        let mut d = BlobDownload::new(
            Digest::sha256(b"abc"),
            3,
            Verifier::new(Algorithm::Sha256),
            3,
        );
        d.on_chunk(Bytes::from_static(b"abd")).unwrap();
        assert!(matches!(d.on_end(), Err(Error::DigestMismatch { .. })));
    }

    #[test]
    fn skip_budget() {
        let data = vec![7u8; 100];
        let mut d = BlobDownload::new(
            Digest::sha256(&data),
            100,
            Verifier::new(Algorithm::Sha256),
            60,
        );
        d.on_chunk(Bytes::from(data[..50].to_vec())).unwrap();
        d.begin_attempt();
        d.on_head(StatusCode::OK, &HeaderMap::new(), "u").unwrap(); // 50 ≤ 60
        d.on_chunk(Bytes::from(data[..55].to_vec())).unwrap();
        d.begin_attempt();
        let e = d
            .on_head(StatusCode::OK, &HeaderMap::new(), "u")
            .unwrap_err(); // 50 + 55 > 60
        assert!(
            matches!(
                e,
                Error::RangeIgnored {
                    offset: 55,
                    budget: 60,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
