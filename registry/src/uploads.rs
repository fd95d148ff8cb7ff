//! The push side of the test registry: upload sessions, mounts and manifest `PUT`s, as
//! the distribution spec describes them (and as `docker-registry` answers them).
//!
//! - `POST /v2/<name>/blobs/uploads/` opens a session: `202`, `Location` (carrying state
//!   in its query, which a client must send back exactly), `Range`, `Docker-Upload-UUID`,
//!   and `OCI-Chunk-Min-Length` when configured. With `?digest=` and a body it is a
//!   whole upload (`201`); with `?mount=<digest>&from=<repo>` it mounts a blob the other
//!   repository has (`201`) or opens a session (`202`).
//! - `PATCH <location>` appends a chunk; a `Content-Range` that does not start at the
//!   session's size is `416`. `GET <location>` says the size (`204`, `Range: 0-<last>`).
//! - `PUT <location>?digest=` appends the body, checks the digest, and names the blob.
//! - `PUT /v2/<name>/manifests/<ref>` stores a manifest whose blobs (or child manifests)
//!   are already in the repository; a digest reference must match the bytes.

use std::collections::HashMap;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use ocireg_core::reference::{validate_repository, validate_tag};
use ocireg_core::{Digest, Manifest};

use crate::routes::{error_reply, Registry, Reply};

/// Open upload sessions.
#[derive(Debug, Default)]
pub(crate) struct Uploads {
    sessions: HashMap<String, Session>,
    next: u64,
    /// `OCI-Chunk-Min-Length` to announce, if any.
    pub(crate) chunk_min: Option<u64>,
}

#[derive(Debug)]
struct Session {
    repo: String,
    data: Vec<u8>,
    /// Steps so far: the `_state` a `Location` carries, which must come back.
    state: u64,
}

fn reply(status: u16, headers: &[(header::HeaderName, String)]) -> Reply {
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, 0);
    for (k, v) in headers {
        b = b.header(k, v.as_str());
    }
    Reply::new(b.body(()).expect("valid headers"), Bytes::new())
}

fn unknown_upload() -> Reply {
    error_reply(
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
        "blob upload unknown to registry",
    )
}

fn digest_invalid() -> Reply {
    error_reply(
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
        "provided digest did not match uploaded content",
    )
}

/// `0-<last>`, as `docker-registry` writes it (`0-0` for an empty session too).
fn range_of(len: usize) -> String {
    format!("0-{}", len.saturating_sub(1))
}

fn query_value(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

impl Registry {
    /// Announces `OCI-Chunk-Min-Length` on new upload sessions.
    pub fn set_chunk_min_length(&mut self, n: u64) {
        self.uploads.chunk_min = Some(n);
    }

    /// Open upload sessions (for tests: a finished push leaves none).
    pub fn open_uploads(&self) -> usize {
        self.uploads.sessions.len()
    }

    /// Whether repository `name` has blob `digest`.
    pub fn has_blob(&self, name: &str, digest: &Digest) -> bool {
        self.repos
            .get(name)
            .is_some_and(|r| r.blobs.contains_key(digest))
    }

    /// The manifest `reference` (tag or digest) of repository `name`: media type and bytes.
    pub fn manifest(&self, name: &str, reference: &str) -> Option<(String, Bytes)> {
        let repo = self.repos.get(name)?;
        let digest = match Digest::parse(reference) {
            Ok(d) => d,
            Err(_) => repo.tags.get(reference)?.clone(),
        };
        repo.manifests.get(&digest).cloned()
    }

    /// `DELETE` of a manifest by digest (and every tag on it), of a tag alone (OCI 1.1),
    /// or of a blob: `202`, or `404` for what is not there.
    fn delete(&mut self, rest: &str) -> Option<Reply> {
        let unknown = |code: &str| {
            Some(error_reply(
                http::StatusCode::NOT_FOUND,
                code,
                "unknown to registry",
            ))
        };
        let accepted = || {
            let head = http::Response::builder()
                .status(http::StatusCode::ACCEPTED)
                .header(header::CONTENT_LENGTH, 0)
                .body(())
                .expect("static headers are valid");
            Some(Reply::new(head, Bytes::new()))
        };
        for (marker, is_blob) in [("/manifests/", false), ("/blobs/", true)] {
            let Some(i) = rest.rfind(marker) else {
                continue;
            };
            let (name, reference) = (&rest[..i], &rest[i + marker.len()..]);
            let Some(repo) = self.repos.get_mut(name) else {
                return unknown("NAME_UNKNOWN");
            };
            let digest = Digest::parse(reference).ok();
            return match (is_blob, digest) {
                (true, Some(d)) => match repo.blobs.remove(&d) {
                    Some(_) => accepted(),
                    None => unknown("BLOB_UNKNOWN"),
                },
                (true, None) => unknown("DIGEST_INVALID"),
                (false, Some(d)) => match repo.manifests.remove(&d) {
                    Some(_) => {
                        repo.tags.retain(|_, t| *t != d);
                        accepted()
                    }
                    None => unknown("MANIFEST_UNKNOWN"),
                },
                (false, None) => match repo.tags.remove(reference) {
                    Some(_) => accepted(),
                    None => unknown("MANIFEST_UNKNOWN"),
                },
            };
        }
        None
    }

    /// Answers one request with its body: pushes and deletes here, everything else as
    /// [`Registry::handle`].
    pub fn respond<B>(&mut self, req: &Request<B>, body: &Bytes) -> Reply {
        self.push_route(req, body)
            .unwrap_or_else(|| self.handle(req))
    }

    fn push_route<B>(&mut self, req: &Request<B>, body: &Bytes) -> Option<Reply> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let rest = path.strip_prefix("/v2/")?;
        let method = req.method().clone();
        if let Some(name) = rest.strip_suffix("/blobs/uploads/") {
            if method != Method::POST || validate_repository(name).is_err() {
                return None;
            }
            return Some(self.open(name, &query, body));
        }
        if let Some(i) = rest.rfind("/blobs/uploads/") {
            let (name, id) = (&rest[..i], &rest[i + "/blobs/uploads/".len()..]);
            return Some(self.step(&method, name, id, &query, req, body));
        }
        if method == Method::DELETE {
            return self.delete(rest);
        }
        if method == Method::PUT {
            let i = rest.rfind("/manifests/")?;
            let (name, reference) = (&rest[..i], &rest[i + "/manifests/".len()..]);
            let media_type = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            if let Some(refused) = self.precondition_failed(name, reference, req.headers()) {
                return Some(refused);
            }
            return Some(self.put_manifest(name, reference, &media_type, body));
        }
        None
    }

    /// `412` when a manifest `PUT`'s `If-Match` (an entity tag the reference must still
    /// have) or `If-None-Match: *` (it must not exist) does not hold, as a registry that
    /// honours preconditions answers a writer that another one overtook.
    fn precondition_failed(
        &self,
        name: &str,
        reference: &str,
        headers: &http::HeaderMap,
    ) -> Option<Reply> {
        let current = self
            .manifest(name, reference)
            .map(|(_, bytes)| format!("\"{}\"", Digest::sha256(&bytes)));
        let value = |h| {
            headers
                .get(h)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
        };
        let holds = match (value(header::IF_MATCH), value(header::IF_NONE_MATCH)) {
            (Some(want), _) => current
                .as_deref()
                .is_some_and(|c| want.split(',').any(|t| t.trim() == "*" || t.trim() == c)),
            (None, Some("*")) => current.is_none(),
            _ => true,
        };
        (!holds).then(|| {
            error_reply(
                StatusCode::PRECONDITION_FAILED,
                "PRECONDITION_FAILED",
                "the manifest changed since it was read",
            )
        })
    }

    fn open(&mut self, name: &str, query: &str, body: &Bytes) -> Reply {
        if let (Some(mount), Some(from)) = (query_value(query, "mount"), query_value(query, "from"))
        {
            if let Ok(d) = Digest::parse(&mount) {
                let found = self.repos.get(&from).and_then(|r| r.blobs.get(&d)).cloned();
                if let Some(data) = found {
                    self.repo(name).blobs.insert(d.clone(), data);
                    return created(name, &d);
                }
            }
        }
        if let Some(d) = query_value(query, "digest") {
            let Ok(d) = Digest::parse(&d) else {
                return digest_invalid();
            };
            if Digest::of(d.algorithm(), body) != d {
                return digest_invalid();
            }
            self.repo(name).blobs.insert(d.clone(), body.clone());
            return created(name, &d);
        }
        self.uploads.next += 1;
        let id = format!("u{}", self.uploads.next);
        self.uploads.sessions.insert(
            id.clone(),
            Session {
                repo: name.to_string(),
                data: Vec::new(),
                state: 0,
            },
        );
        let mut r = self.session_reply(202, name, &id);
        if let Some(n) = self.uploads.chunk_min {
            r.head.headers_mut().insert(
                "oci-chunk-min-length",
                n.to_string().parse().expect("digits"),
            );
        }
        r
    }

    /// `202`/`204` with the session's `Location` (state in the query), `Range` and id.
    fn session_reply(&self, status: u16, name: &str, id: &str) -> Reply {
        let s = &self.uploads.sessions[id];
        reply(
            status,
            &[
                (
                    header::LOCATION,
                    format!("/v2/{name}/blobs/uploads/{id}?_state={}", s.state),
                ),
                (header::RANGE, range_of(s.data.len())),
                (
                    header::HeaderName::from_static("docker-upload-uuid"),
                    id.to_string(),
                ),
            ],
        )
    }

    fn step<B>(
        &mut self,
        method: &Method,
        name: &str,
        id: &str,
        query: &str,
        req: &Request<B>,
        body: &Bytes,
    ) -> Reply {
        let Some(s) = self.uploads.sessions.get_mut(id) else {
            return unknown_upload();
        };
        // A session belongs to its repository, and a step that changes it must carry
        // the state of the last answer (a client follows `Location` exactly). The
        // status request is how a client that lost an answer finds out: any state will do.
        let stale = query_value(query, "_state") != Some(s.state.to_string());
        if s.repo != name || (stale && *method != Method::GET && *method != Method::DELETE) {
            return unknown_upload();
        }
        if *method == Method::GET {
            return self.session_reply(204, name, id);
        }
        if *method == Method::DELETE {
            self.uploads.sessions.remove(id);
            return reply(204, &[]);
        }
        if *method == Method::PATCH {
            let range = req
                .headers()
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok());
            if let Some(r) = range {
                let start = r
                    .split('-')
                    .next()
                    .and_then(|x| x.trim().parse::<usize>().ok());
                if start != Some(s.data.len()) {
                    return reply(416, &[(header::RANGE, range_of(s.data.len()))]);
                }
            }
            s.data.extend_from_slice(body);
            s.state += 1;
            return self.session_reply(202, name, id);
        }
        if *method == Method::PUT {
            let Some(d) = query_value(query, "digest").and_then(|d| Digest::parse(&d).ok()) else {
                return digest_invalid();
            };
            s.data.extend_from_slice(body);
            if Digest::of(d.algorithm(), &s.data) != d {
                return digest_invalid();
            }
            let data = Bytes::from(std::mem::take(&mut s.data));
            self.uploads.sessions.remove(id);
            self.repo(name).blobs.insert(d.clone(), data);
            return created(name, &d);
        }
        error_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "not an upload method",
        )
    }

    fn put_manifest(
        &mut self,
        name: &str,
        reference: &str,
        media_type: &str,
        body: &Bytes,
    ) -> Reply {
        if validate_repository(name).is_err() {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                "invalid repository name",
            );
        }
        let (manifest, media_type) = match Manifest::parse(media_type, body) {
            Ok(m) => m,
            Err(e) => {
                return error_reply(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", &e.to_string())
            }
        };
        let digest = Digest::sha256(body);
        let tag = if reference.contains(':') {
            match Digest::parse(reference) {
                Ok(d) if Digest::of(d.algorithm(), body) == d => None,
                _ => return digest_invalid(),
            }
        } else if validate_tag(reference).is_ok() {
            Some(reference)
        } else {
            return error_reply(StatusCode::BAD_REQUEST, "TAG_INVALID", "invalid tag");
        };
        let repo = self.repo(name);
        let missing = match &manifest {
            Manifest::Image(m) => m
                .blobs()
                .any(|d| d.data.is_none() && d.size > 0 && !repo.blobs.contains_key(&d.digest)),
            Manifest::Index(i) => i
                .manifests
                .iter()
                .any(|d| !repo.manifests.contains_key(&d.digest)),
        };
        if missing {
            let (code, what) = match manifest {
                Manifest::Image(_) => ("MANIFEST_BLOB_UNKNOWN", "blob unknown to registry"),
                Manifest::Index(_) => ("MANIFEST_UNKNOWN", "manifest unknown"),
            };
            return error_reply(StatusCode::BAD_REQUEST, code, what);
        }
        let d = match reference.contains(':') {
            true => Digest::parse(reference).expect("checked above"),
            false => digest,
        };
        self.add_manifest_with_digest(name, &media_type, body.clone(), d.clone(), tag);
        let mut headers = vec![
            (header::LOCATION, format!("/v2/{name}/manifests/{d}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                d.to_string(),
            ),
        ];
        // a registry with the referrers API lists this manifest under its subject itself
        if let (Some(subject), true) = (manifest.subject(), self.has_referrers_api()) {
            headers.push((
                header::HeaderName::from_static(ocireg_core::referrers::SUBJECT),
                subject.digest.to_string(),
            ));
        }
        reply(201, &headers)
    }
}

fn created(name: &str, d: &Digest) -> Reply {
    reply(
        201,
        &[
            (header::LOCATION, format!("/v2/{name}/blobs/{d}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                d.to_string(),
            ),
        ],
    )
}
