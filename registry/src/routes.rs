//! Routing and responses of the pull-only registry.

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
        let mut json = serde_json::json!({ key: page });
        if let Some(name) = name {
            json["name"] = name.into();
        }
        let body = json.to_string();
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

fn ok_reply(content_type: &str, body: Bytes, digest: Option<&Digest>) -> Reply {
    let mut b = Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.len())
        .header("x-content-type-options", "nosniff");
    if let Some(d) = digest {
        b = b
            .header("docker-content-digest", d.to_string())
            .header(header::ETAG, format!("\"{d}\""))
            .header(header::ACCEPT_RANGES, "bytes");
    }
    Reply::new(b.body(()).expect("valid headers"), body)
}

/// Serves stored content like a static file: `If-None-Match`, single `Range`.
fn content<B>(req: &Request<B>, digest: &Digest, content_type: &str, data: Bytes) -> Reply {
    let etag = format!("\"{digest}\"");
    if let Some(inm) = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if inm.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t == etag || t.strip_prefix("W/") == Some(etag.as_str())
        }) {
            let head = Response::builder()
                .status(StatusCode::NOT_MODIFIED)
                .header(header::ETAG, etag)
                .header("docker-content-digest", digest.to_string())
                .body(())
                .expect("valid headers");
            return Reply::new(head, Bytes::new());
        }
    }
    let total = data.len() as u64;
    if let Some(range) = req.headers().get(header::RANGE) {
        match parse_range(range.as_bytes(), total) {
            RangeSpec::Ignore => {}
            RangeSpec::Unsatisfiable => {
                let head = Response::builder()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{total}"))
                    .header(header::CONTENT_LENGTH, 0)
                    .body(())
                    .expect("valid headers");
                return Reply::new(head, Bytes::new());
            }
            RangeSpec::Range(first, last) => {
                let part = data.slice(first as usize..=last as usize);
                let head = Response::builder()
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(header::CONTENT_TYPE, content_type)
                    .header(header::CONTENT_LENGTH, part.len())
                    .header(
                        header::CONTENT_RANGE,
                        format!("bytes {first}-{last}/{total}"),
                    )
                    .header("docker-content-digest", digest.to_string())
                    .header(header::ETAG, etag)
                    .header(header::ACCEPT_RANGES, "bytes")
                    .header("x-content-type-options", "nosniff")
                    .body(())
                    .expect("valid headers");
                return Reply::new(head, part);
            }
        }
    }
    ok_reply(content_type, data, Some(digest))
}

enum RangeSpec {
    Ignore,
    Unsatisfiable,
    Range(u64, u64),
}

/// A single `bytes=` range. Multiple ranges and malformed values are ignored (the whole
/// content is served), as a static file server would.
fn parse_range(v: &[u8], total: u64) -> RangeSpec {
    let Some(spec) = std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().strip_prefix("bytes="))
    else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeSpec::Ignore;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.len() <= 19 && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            Some(0) => RangeSpec::Unsatisfiable,
            Some(n) if total > 0 => RangeSpec::Range(total.saturating_sub(n), total - 1),
            Some(_) => RangeSpec::Unsatisfiable,
            None => RangeSpec::Ignore,
        },
        (first, last) => {
            let Some(first) = num(first) else {
                return RangeSpec::Ignore;
            };
            let last = if last.is_empty() {
                total.saturating_sub(1)
            } else {
                match num(last) {
                    Some(l) if l >= first => l.min(total.saturating_sub(1)),
                    _ => return RangeSpec::Ignore,
                }
            };
            if first >= total {
                RangeSpec::Unsatisfiable
            } else {
                RangeSpec::Range(first, last)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).unwrap()
    }

    fn reg() -> (Registry, Digest, Digest) {
        let mut r = Registry::new();
        let b = r.add_blob("a/b", Bytes::from_static(b"0123456789"));
        let m = r.add_manifest(
            "a/b",
            ocireg_core::manifest::OCI_MANIFEST,
            Bytes::from_static(b"{}"),
            Some("v1"),
        );
        (r, b, m)
    }

    #[test]
    fn routes_and_errors() {
        let (r, b, m) = reg();
        assert_eq!(r.handle(&get("/v2/")).status(), 200);
        let rep = r.handle(&get("/v2/a/b/manifests/v1"));
        assert_eq!(rep.status(), 200);
        assert_eq!(
            rep.head.headers()["docker-content-digest"],
            m.to_string().as_str()
        );
        assert_eq!(
            rep.head.headers()["content-type"],
            ocireg_core::manifest::OCI_MANIFEST
        );
        assert_eq!(
            r.handle(&get(&format!("/v2/a/b/manifests/{m}"))).status(),
            200
        );
        assert_eq!(
            r.handle(&get(&format!("/v2/a/b/blobs/{b}"))).body,
            "0123456789"
        );
        let e = r.handle(&get("/v2/x/manifests/v1"));
        assert_eq!(e.status(), 404);
        assert!(std::str::from_utf8(&e.body)
            .unwrap()
            .contains("NAME_UNKNOWN"));
        assert!(
            std::str::from_utf8(&r.handle(&get("/v2/a/b/manifests/v2")).body)
                .unwrap()
                .contains("MANIFEST_UNKNOWN")
        );
        let unknown = format!("/v2/a/b/blobs/{}", Digest::sha256(b"x"));
        assert!(std::str::from_utf8(&r.handle(&get(&unknown)).body)
            .unwrap()
            .contains("BLOB_UNKNOWN"));
        let post = Request::post("/v2/").body(()).unwrap();
        assert_eq!(r.handle(&post).status(), 405);
        let head = Request::head("/v2/a/b/manifests/v1").body(()).unwrap();
        let h = r.handle(&head);
        assert_eq!(h.status(), 200);
        assert!(h.body.is_empty());
        assert_eq!(h.head.headers()["content-length"], "2");
    }

    #[test]
    fn ranges_and_conditionals() {
        let (r, b, _) = reg();
        let path = format!("/v2/a/b/blobs/{b}");
        let with = |k: &str, v: &str| {
            r.handle(&Request::get(path.as_str()).header(k, v).body(()).unwrap())
        };
        let p = with("range", "bytes=3-5");
        assert_eq!(p.status(), 206);
        assert_eq!(p.body, "345");
        assert_eq!(p.head.headers()["content-range"], "bytes 3-5/10");
        assert_eq!(with("range", "bytes=7-").body, "789");
        assert_eq!(with("range", "bytes=-2").body, "89");
        assert_eq!(with("range", "bytes=10-").status(), 416);
        assert_eq!(with("range", "bytes=1-2,4-5").status(), 200);
        assert_eq!(with("if-none-match", &format!("\"{b}\"")).status(), 304);
    }

    #[test]
    fn tag_paging() {
        let mut r = Registry::new();
        for t in ["a", "b", "c", "d", "e"] {
            r.add_manifest(
                "x",
                ocireg_core::manifest::OCI_MANIFEST,
                Bytes::from(t.to_string()),
                Some(t),
            );
        }
        let p = r.handle(&get("/v2/x/tags/list?n=2"));
        assert_eq!(
            std::str::from_utf8(&p.body).unwrap(),
            r#"{"name":"x","tags":["a","b"]}"#
        );
        assert_eq!(
            p.head.headers()["link"],
            "</v2/x/tags/list?n=2&last=b>; rel=\"next\""
        );
        let p = r.handle(&get("/v2/x/tags/list?n=2&last=d"));
        assert_eq!(
            std::str::from_utf8(&p.body).unwrap(),
            r#"{"name":"x","tags":["e"]}"#
        );
        assert!(p.head.headers().get("link").is_none());
        assert_eq!(r.handle(&get("/v2/x/tags/list?n=zz")).status(), 400);
    }
}
