//! Routing and the read side of the registry: manifests, blobs, tag and catalog pages
//! (the push side is `uploads.rs`, stored content served in `content.rs`).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use ocireg_core::reference::{validate_repository, validate_tag};
use ocireg_core::Digest;

/// A complete response: head and body, plus how the adapter must misbehave (faults).
#[derive(Debug)]
pub struct Reply {
    /// Status and headers.
    pub head: Response<()>,
    /// The body (empty for `HEAD`).
    pub body: Bytes,
    /// Close the connection abruptly after this many body bytes.
    pub cut_after: Option<usize>,
    /// Stop sending (but keep the connection open) after this many body bytes.
    pub stall_after: Option<usize>,
    /// Break the connection instead of answering (the request was cut on its way in).
    pub reset: bool,
}

impl Reply {
    /// A reply with no fault.
    pub fn new(head: Response<()>, body: Bytes) -> Reply {
        Reply {
            head,
            body,
            cut_after: None,
            stall_after: None,
            reset: false,
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.head.status()
    }
}

#[derive(Default, Debug)]
pub(crate) struct Repo {
    pub(crate) manifests: HashMap<Digest, (String, Bytes)>,
    pub(crate) tags: BTreeMap<String, Digest>,
    pub(crate) blobs: HashMap<Digest, Bytes>,
}

/// An in-memory registry: pulls from [`Registry::handle`], pushes (upload sessions,
/// mounts, manifests) from [`Registry::respond`].
#[derive(Default, Debug)]
pub struct Registry {
    pub(crate) repos: BTreeMap<String, Repo>,
    tag_page: Option<usize>,
    pub(crate) uploads: crate::uploads::Uploads,
    /// The referrers API answers 404 (a registry without it).
    pub(crate) no_referrers_api: bool,
}

pub(crate) const JSON_UTF8: &str = "application/json; charset=utf-8";

pub(crate) fn error_reply(status: StatusCode, code: &str, message: &str) -> Reply {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string();
    let head = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, JSON_UTF8)
        .header(header::CONTENT_LENGTH, body.len())
        .header("x-content-type-options", "nosniff")
        .body(())
        .expect("static headers are valid");
    Reply::new(head, Bytes::from(body))
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    pub(crate) fn repo(&mut self, name: &str) -> &mut Repo {
        assert!(
            validate_repository(name).is_ok(),
            "invalid repository name {name:?}"
        );
        self.repos.entry(name.to_string()).or_default()
    }

    /// Adds a blob to a repository; returns its sha256 digest.
    pub fn add_blob(&mut self, repo: &str, data: impl Into<Bytes>) -> Digest {
        let data = data.into();
        let d = Digest::sha256(&data);
        self.repo(repo).blobs.insert(d.clone(), data);
        d
    }

    /// Adds a blob under a given digest (which need not be sha256).
    pub fn add_blob_with_digest(&mut self, repo: &str, digest: Digest, data: impl Into<Bytes>) {
        self.repo(repo).blobs.insert(digest, data.into());
    }

    /// Adds a manifest with its media type, reachable by digest and, when given, by tag.
    pub fn add_manifest(
        &mut self,
        repo: &str,
        media_type: &str,
        bytes: impl Into<Bytes>,
        tag: Option<&str>,
    ) -> Digest {
        let bytes = bytes.into();
        let d = Digest::sha256(&bytes);
        self.add_manifest_with_digest(repo, media_type, bytes, d, tag)
    }

    /// Adds a manifest under a given digest (which need not be sha256: a layout may
    /// name its manifests by sha512).
    pub fn add_manifest_with_digest(
        &mut self,
        repo: &str,
        media_type: &str,
        bytes: impl Into<Bytes>,
        d: Digest,
        tag: Option<&str>,
    ) -> Digest {
        let bytes = bytes.into();
        let r = self.repo(repo);
        r.manifests
            .insert(d.clone(), (media_type.to_string(), bytes));
        if let Some(t) = tag {
            assert!(validate_tag(t).is_ok(), "invalid tag {t:?}");
            r.tags.insert(t.to_string(), d.clone());
        }
        d
    }

    /// Pages tag lists by `n` tags even when the client gives no `n` (as large
    /// registries do).
    pub fn set_tag_page_size(&mut self, n: usize) {
        self.tag_page = Some(n.max(1));
    }

    /// Repository names, sorted.
    pub fn repositories(&self) -> impl Iterator<Item = &str> {
        self.repos.keys().map(String::as_str)
    }

    /// Answers one request. Only the head matters; request bodies are ignored.
    pub fn handle<B>(&self, req: &Request<B>) -> Reply {
        let head_only = req.method() == Method::HEAD;
        if req.method() != Method::GET && !head_only {
            let mut r = error_reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "this registry only serves pulls",
            );
            r.head
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return strip_body(r, head_only);
        }
        let path = req.uri().path();
        let reply = self.route(req, path);
        strip_body(reply, head_only)
    }

    fn route<B>(&self, req: &Request<B>, path: &str) -> Reply {
        if path == "/v2/" || path == "/v2" {
            return ok_reply(JSON_UTF8, Bytes::from_static(b"{}"), None);
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return error_reply(StatusCode::NOT_FOUND, "NOT_FOUND", "not a registry path");
        };
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return self.tags(name, req.uri().query().unwrap_or(""));
        }
        if let Some(i) = rest.rfind("/referrers/") {
            let (name, subject) = (&rest[..i], &rest[i + "/referrers/".len()..]);
            if validate_repository(name).is_ok() && !subject.contains('/') {
                return self.referrers(name, subject, req.uri().query().unwrap_or(""));
            }
        }
        if rest == "_catalog" {
            let names: Vec<&String> = self.repos.keys().collect();
            let query = req.uri().query().unwrap_or("");
            return self.page("/v2/_catalog", ("repositories", names), None, query);
        }
        for (kind, marker) in [("manifests", "/manifests/"), ("blobs", "/blobs/")] {
            if let Some(i) = rest.rfind(marker) {
                let (name, reference) = (&rest[..i], &rest[i + marker.len()..]);
                if reference.contains('/') || validate_repository(name).is_err() {
                    continue;
                }
                let Some(repo) = self.repos.get(name) else {
                    return error_reply(
                        StatusCode::NOT_FOUND,
                        "NAME_UNKNOWN",
                        "repository name not known to registry",
                    );
                };
                return if kind == "manifests" {
                    manifest(repo, reference, req)
                } else {
                    blob(repo, reference, req)
                };
            }
        }
        error_reply(StatusCode::NOT_FOUND, "NOT_FOUND", "not a registry path")
    }

    fn tags(&self, name: &str, query: &str) -> Reply {
        let Some(repo) = self.repos.get(name) else {
            return error_reply(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                "repository name not known to registry",
            );
        };
        let tags: Vec<&String> = repo.tags.keys().collect();
        self.page(
            &format!("/v2/{name}/tags/list"),
            ("tags", tags),
            Some(name),
            query,
        )
    }

    /// One page of a sorted list of names (`key` in the JSON, with `name` when given):
    /// those after `last`, at most `n` (or the registry's page size), with a `Link` to
    /// `path` for the rest.
    fn page(
        &self,
        path: &str,
        (key, sorted): (&str, Vec<&String>),
        name: Option<&str>,
        query: &str,
    ) -> Reply {
        let mut n: Option<usize> = None;
        let mut last: Option<String> = None;
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "n" => match v.parse() {
                    Ok(x) => n = Some(x),
                    Err(_) => {
                        return error_reply(
                            StatusCode::BAD_REQUEST,
                            "PAGINATION_NUMBER_INVALID",
                            "invalid number of results requested",
                        )
                    }
                },
                "last" => last = Some(v.into_owned()),
                _ => {}
            }
        }
        let after: Vec<&String> = sorted
            .into_iter()
            .filter(|t| last.as_ref().is_none_or(|l| t.as_str() > l.as_str()))
            .collect();
        let n = n.or(self.tag_page);
        let take = n.unwrap_or(after.len()).min(after.len());
        let page: Vec<&String> = after[..take].to_vec();
        // `name` first, as registries write it (and whatever the map's key order)
        let mut json = serde_json::Map::new();
        if let Some(name) = name {
            json.insert("name".into(), name.into());
        }
        json.insert(key.into(), serde_json::json!(page));
        let body = serde_json::Value::Object(json).to_string();
        let mut b = Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, JSON_UTF8)
            .header(header::CONTENT_LENGTH, body.len())
            .header("x-content-type-options", "nosniff");
        if take < after.len() {
            if let (Some(n), Some(l)) = (n, page.last()) {
                let q: String = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("n", &n.to_string())
                    .append_pair("last", l)
                    .finish();
                b = b.header(header::LINK, format!("<{path}?{q}>; rel=\"next\""));
            }
        }
        Reply::new(b.body(()).expect("valid headers"), Bytes::from(body))
    }
}

fn strip_body(mut r: Reply, head_only: bool) -> Reply {
    if head_only {
        r.body = Bytes::new();
    }
    r
}

fn manifest<B>(repo: &Repo, reference: &str, req: &Request<B>) -> Reply {
    let digest = if reference.contains(':') {
        match Digest::parse(reference) {
            Ok(d) => Some(d),
            Err(_) => {
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    "DIGEST_INVALID",
                    "provided digest did not match uploaded content",
                )
            }
        }
    } else if validate_tag(reference).is_ok() {
        repo.tags.get(reference).cloned()
    } else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            "manifest tag did not match URI",
        );
    };
    match digest.and_then(|d| repo.manifests.get(&d).map(|m| (d, m))) {
        Some((d, (mt, bytes))) => content(req, &d, mt, bytes.clone()),
        None => error_reply(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        ),
    }
}

fn blob<B>(repo: &Repo, reference: &str, req: &Request<B>) -> Reply {
    let Ok(d) = Digest::parse(reference) else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "provided digest did not match uploaded content",
        );
    };
    match repo.blobs.get(&d) {
        Some(data) => content(req, &d, "application/octet-stream", data.clone()),
        None => error_reply(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
        ),
    }
}

mod content;
use content::{content, ok_reply};

#[cfg(test)]
mod tests;
