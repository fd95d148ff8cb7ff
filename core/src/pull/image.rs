//! The image goal: manifests, indexes and platform choice, and the blobs they list
//! (queued, skipped, resumed from a caller's prefix, delivered when embedded).

use std::time::Instant;

use bytes::Bytes;
use http::header;

use crate::blob::{BlobDownload, EndOutcome};
use crate::digest::{Digest, Verifier};
use crate::error::{Error, TransportError, TransportErrorKind};
use crate::manifest::{Descriptor, Manifest, Platform};

use super::op::{Op, OpKind, OpState};
use super::types::{Action, BlobId, Event, ManifestRole, PlatformChoice};
use super::{Goal, Pull};

impl Pull {
    /// Answer to [`Event::BlobQueued`]: the caller already has this blob, verified.
    /// Returns false (and changes nothing) unless the blob has not started.
    pub fn skip_blob(&mut self, blob: BlobId) -> bool {
        match self.blobs.get(blob.0) {
            Some(&ix) if matches!(self.ops[ix].state, OpState::Queued) => {
                self.ops[ix].state = OpState::Done;
                true
            }
            _ => false,
        }
    }

    /// Answer to [`Event::BlobQueued`]: the caller has the first `verifier.len()` bytes of
    /// the blob (it hashed them into `verifier`), so the download continues there.
    /// Returns false (and changes nothing) unless the blob has not started, is fetched
    /// over the network (not embedded), and the prefix is shorter than the blob and of the
    /// same digest algorithm.
    pub fn resume_blob(&mut self, blob: BlobId, verifier: Verifier) -> bool {
        let budget_pct = self.config.skip_budget_percent;
        let Some(&ix) = self.blobs.get(blob.0) else {
            return false;
        };
        if !matches!(self.ops[ix].state, OpState::Queued) {
            return false;
        }
        let OpKind::Blob {
            dl,
            descriptor,
            embedded: None,
            ..
        } = &mut self.ops[ix].kind
        else {
            return false;
        };
        if verifier.len() >= descriptor.len()
            || verifier.algorithm() != descriptor.digest.algorithm()
        {
            return false;
        }
        let size = descriptor.len();
        *dl = BlobDownload::new(
            descriptor.digest.clone(),
            size,
            verifier,
            skip_budget(size, budget_pct),
        );
        true
    }

    pub(super) fn on_manifest(&mut self, ix: usize, body: Vec<u8>) {
        let OpKind::Manifest {
            expected,
            role,
            platform,
            reference,
            depth,
        } = &self.ops[ix].kind
        else {
            return;
        };
        let (expected, role, platform, reference, depth) = (
            expected.clone(),
            *role,
            platform.clone(),
            reference.clone(),
            *depth,
        );
        self.ops[ix].state = OpState::Done;
        let headers = std::mem::take(&mut self.ops[ix].incoming.headers);
        let body = Bytes::from(body);
        let algorithm = expected
            .as_ref()
            .map(|d| d.algorithm())
            .unwrap_or(crate::digest::Algorithm::Sha256);
        let digest = Digest::of(algorithm, &body);
        if let Some(exp) = &expected {
            if *exp != digest {
                return self.fail(Error::DigestMismatch {
                    what: format!("manifest {reference}"),
                    expected: exp.clone(),
                    actual: digest,
                });
            }
        }
        let served = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v.trim()).ok());
        if let Some(served) = served {
            let actual = Digest::of(served.algorithm(), &body);
            if actual != served {
                return self.fail(Error::DigestMismatch {
                    what: format!("manifest {reference} (Docker-Content-Digest)"),
                    expected: served,
                    actual,
                });
            }
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (manifest, media_type) = match Manifest::parse(content_type, &body) {
            Ok(m) => m,
            Err(e) => return self.fail(e.into()),
        };
        let descriptor = Descriptor {
            media_type: media_type.clone(),
            digest: digest.clone(),
            size: body.len() as i64,
            urls: None,
            annotations: None,
            data: None,
            platform: platform.clone(),
            artifact_type: match &manifest {
                Manifest::Image(m) => m.artifact_type.clone(),
                Manifest::Index(i) => i.artifact_type.clone(),
            },
        };
        if self.goal == Goal::TopManifest {
            self.out.push_back(Action::Event(Event::Manifest {
                digest,
                media_type,
                bytes: body,
                manifest,
                role,
                platform,
            }));
            self.out
                .push_back(Action::Event(Event::Resolved { descriptor }));
            return;
        }
        let all = self.config.platform == PlatformChoice::All;
        let event_role = match manifest {
            Manifest::Index(_) if !all => ManifestRole::Selector,
            _ => role,
        };
        self.out.push_back(Action::Event(Event::Manifest {
            digest,
            media_type,
            bytes: body,
            manifest: manifest.clone(),
            role: event_role,
            platform,
        }));
        let resolves = role == ManifestRole::Top || !all;
        match manifest {
            Manifest::Image(m) => {
                if resolves {
                    self.out
                        .push_back(Action::Event(Event::Resolved { descriptor }));
                }
                for d in m.blobs() {
                    self.add_blob(d.clone());
                }
            }
            Manifest::Index(idx) => {
                if all {
                    if role == ManifestRole::Top {
                        self.out
                            .push_back(Action::Event(Event::Resolved { descriptor }));
                    }
                    for child in &idx.manifests {
                        self.add_child(child, depth);
                    }
                } else {
                    let wanted = match &self.config.platform {
                        PlatformChoice::Exactly(p) => p.clone(),
                        _ => Platform::host(),
                    };
                    match idx.select(&wanted) {
                        Ok(child) => {
                            let child = child.clone();
                            self.add_child(&child, depth);
                        }
                        Err(e) => self.fail(e.into()),
                    }
                }
            }
        }
    }

    /// Queues a child of the index at `parent_depth`. Digests already seen are not
    /// fetched again (an index cannot make the pull loop), and the depth of nesting and
    /// the number of manifests are bounded.
    pub(super) fn add_child(&mut self, child: &Descriptor, parent_depth: u8) {
        if !self.seen.insert(child.digest.clone()) {
            return;
        }
        if let Err(e) = child.validate() {
            return self.fail(e.into());
        }
        if parent_depth >= self.config.max_index_depth {
            return self.fail(Error::TooMany {
                what: format!("indexes nested in {}", self.reference),
                limit: u64::from(self.config.max_index_depth),
                hint: "the image nests indexes deeper than any client follows".into(),
            });
        }
        self.add_manifest(
            child.digest.to_string(),
            Some(child.digest.clone()),
            ManifestRole::Child,
            child.platform.clone(),
            parent_depth + 1,
        );
    }

    pub(super) fn add_manifest(
        &mut self,
        reference: String,
        expected: Option<Digest>,
        role: ManifestRole,
        platform: Option<Platform>,
        depth: u8,
    ) {
        self.manifests += 1;
        if self.manifests > self.config.max_manifests {
            return self.fail(Error::TooMany {
                what: format!("manifests in {}", self.reference),
                limit: u64::from(self.config.max_manifests),
                hint: "pull one platform (--platform) instead of all".into(),
            });
        }
        let path = format!(
            "/v2/{}/manifests/{}",
            self.reference.repository(),
            reference
        );
        let kind = OpKind::Manifest {
            reference,
            expected,
            role,
            platform,
            depth,
        };
        self.ops.push(Op::new(kind, path, OpState::Ready));
    }

    pub(super) fn add_blob(&mut self, descriptor: Descriptor) {
        if !self.seen.insert(descriptor.digest.clone()) {
            return;
        }
        let embedded = match descriptor.validate() {
            Ok(e) => e,
            Err(e) => return self.fail(e.into()),
        };
        let embedded = embedded.or_else(|| (descriptor.size == 0).then(Bytes::new));
        let id = BlobId(self.blobs.len());
        let size = descriptor.len();
        let dl = BlobDownload::new(
            descriptor.digest.clone(),
            size,
            Verifier::new(descriptor.digest.algorithm()),
            skip_budget(size, self.config.skip_budget_percent),
        );
        let path = format!(
            "/v2/{}/blobs/{}",
            self.reference.repository(),
            descriptor.digest
        );
        self.blobs.push(self.ops.len());
        self.out.push_back(Action::Event(Event::BlobQueued {
            blob: id,
            descriptor: descriptor.clone(),
        }));
        let kind = OpKind::Blob {
            id,
            descriptor,
            dl,
            embedded,
        };
        self.ops.push(Op::new(kind, path, OpState::Queued));
    }

    /// Delivers embedded (or empty) content without a request. True if it did.
    pub(super) fn deliver_embedded(&mut self, ix: usize) -> bool {
        let OpKind::Blob {
            id,
            descriptor,
            embedded: Some(data),
            ..
        } = &self.ops[ix].kind
        else {
            return false;
        };
        let actual = Digest::of(descriptor.digest.algorithm(), data);
        if actual != descriptor.digest {
            let e = Error::DigestMismatch {
                what: format!("embedded data of {}", descriptor.digest),
                expected: descriptor.digest.clone(),
                actual,
            };
            self.fail(e);
            return true;
        }
        let (blob, digest, size, data) = (
            *id,
            descriptor.digest.clone(),
            descriptor.len(),
            data.clone(),
        );
        if !data.is_empty() {
            self.out.push_back(Action::Deliver {
                blob,
                offset: 0,
                bytes: data,
            });
        }
        self.out
            .push_back(Action::Event(Event::BlobDone { blob, digest, size }));
        self.ops[ix].state = OpState::Done;
        true
    }

    pub(super) fn on_blob_end(&mut self, ix: usize, now: Instant) {
        let OpKind::Blob {
            dl, id, descriptor, ..
        } = &mut self.ops[ix].kind
        else {
            return;
        };
        match dl.on_end() {
            Ok(EndOutcome::Complete) => {
                let ev = Event::BlobDone {
                    blob: *id,
                    digest: descriptor.digest.clone(),
                    size: descriptor.len(),
                };
                self.ops[ix].state = OpState::Done;
                self.out.push_back(Action::Event(ev));
            }
            Ok(EndOutcome::Short) => {
                let e = TransportError::new(
                    TransportErrorKind::Broken,
                    "body ended before the descriptor's size",
                );
                self.on_transport_error(ix, e, now);
            }
            // A mismatch may be the caller's prefix (an earlier run's partial file, corrupt
            // on disk) rather than the registry: start that blob over from byte 0 once,
            // saying why, instead of failing the pull.
            Err(e @ Error::DigestMismatch { .. }) if dl.from_caller_prefix && !dl.restarted => {
                dl.restart();
                let blob = *id;
                self.retry_at_once(ix, e);
                self.out.push_back(Action::Event(Event::Restarted { blob }));
            }
            Err(e) => self.fail(e),
        }
    }
}

pub(super) fn skip_budget(size: u64, percent: u64) -> u64 {
    size.saturating_mul(percent) / 100
}
