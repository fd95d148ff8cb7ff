//! A fault-injection layer around [`Registry`], for tests and demos.
//!
//! Rules apply to request paths containing a pattern; counters are kept per rule and
//! path, so "refuse the first try" means the first try *of each path*.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};

use crate::routes::{Registry, Reply};

mod races;
mod rules;
mod tokens;

pub use rules::{Fault, Rule};

use tokens::token_scope;

/// Requests [`FaultyRegistry::log`] keeps at most.
pub const LOG_LIMIT: usize = 10_000;

/// Prefix of paths a [`Fault::RedirectOnce`] sends clients to.
pub const REDIRECTED_PREFIX: &str = "/redirected";

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Authorization` scheme sent (`Bearer`, `Basic`), never the secret.
    pub auth_scheme: Option<String>,
    /// The `Range` header.
    pub range: Option<String>,
    /// Status answered.
    pub status: u16,
    /// Body bytes actually sent (after cuts).
    pub body_bytes: usize,
}

/// A [`Registry`] behind fault rules. `handle` takes `&mut self` (it counts tries).
#[derive(Debug, Default)]
pub struct FaultyRegistry {
    /// The registry behind the faults.
    pub inner: Registry,
    rules: Vec<Rule>,
    counts: HashMap<(usize, String), u32>,
    issued: u32,
    token_uses: HashMap<String, u32>,
    /// With [`Fault::Token`]: a token is accepted this many times, then answered with
    /// this status (401, or 403 as some registries do) and a Bearer challenge.
    pub token_max_uses: Option<(u32, u16)>,
    /// With [`Fault::Token`]: `POST /token` (OAuth2 refresh-token grant) is served;
    /// otherwise it is answered 404 so clients fall back to `GET`.
    pub token_post: bool,
    /// Refuse pushes (`405 UNSUPPORTED`), as `ocireg serve` does unless `--allow-push`.
    pub read_only: bool,
    /// With [`Fault::Token`]: tokens say they were issued this many seconds before the
    /// response's `Date` (`issued_at`), so less of their 300 s lifetime is left.
    pub token_issued_ago: Option<u64>,
    /// The requests handled, in order (the most recent, up to [`LOG_LIMIT`]).
    pub log: Vec<Seen>,
}

impl FaultyRegistry {
    /// Wraps a registry.
    pub fn new(inner: Registry, rules: Vec<Rule>) -> FaultyRegistry {
        FaultyRegistry {
            inner,
            rules,
            ..Default::default()
        }
    }

    /// Replaces the rules and resets the counters.
    pub fn set_rules(&mut self, rules: Vec<Rule>) {
        self.rules = rules;
        self.counts.clear();
    }

    fn bump(&mut self, rule: usize, path: &str) -> u32 {
        let c = self.counts.entry((rule, path.to_string())).or_insert(0);
        *c += 1;
        *c
    }

    /// Answers one request whose body does not matter (pulls).
    pub fn handle<B>(&mut self, req: &Request<B>) -> Reply {
        self.handle_with_body(req, &Bytes::new())
    }

    /// Answers one request with its body (pushes write it).
    pub fn handle_with_body<B>(&mut self, req: &Request<B>, body: &Bytes) -> Reply {
        let mut reply = self.decide(req, body);
        let path = req.uri().path();
        for rule in &self.rules {
            if let (Fault::Headers(headers), true) =
                (&rule.fault, path.contains(&rule.path_contains))
            {
                for (k, v) in headers {
                    if let (Ok(k), Ok(v)) = (
                        header::HeaderName::from_bytes(k.as_bytes()),
                        HeaderValue::from_str(v),
                    ) {
                        reply.head.headers_mut().insert(k, v);
                    }
                }
            }
        }
        // Every answer carries its date, as a real registry's does: an HTTP-date
        // `Retry-After` is placed on the client's clock relative to it.
        if !reply.head.headers().contains_key(header::DATE) {
            let date = httpdate::fmt_http_date(std::time::SystemTime::now());
            if let Ok(v) = HeaderValue::from_str(&date) {
                reply.head.headers_mut().insert(header::DATE, v);
            }
        }
        let sent = reply
            .cut_after
            .into_iter()
            .chain(reply.stall_after)
            .min()
            .unwrap_or(reply.body.len())
            .min(reply.body.len());
        // The log is bounded: a long-running server keeps the most recent half.
        if self.log.len() >= LOG_LIMIT {
            self.log.drain(..LOG_LIMIT / 2);
        }
        self.log.push(Seen {
            method: req.method().to_string(),
            path: req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            auth_scheme: req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(' ').next())
                .map(str::to_string),
            range: req
                .headers()
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            status: reply.status().as_u16(),
            body_bytes: sent,
        });
        reply
    }

    fn decide<B>(&mut self, req: &Request<B>, body: &Bytes) -> Reply {
        let full_path = req.uri().path().to_string();
        let mut body = body.clone();
        let mut reset = false;
        // query parameters the registry behind does not see (a refused mount's, an
        // ignored single POST's)
        let mut dropped: &[&str] = &[];
        let ranged = req.headers().contains_key(header::RANGE);
        let mut cut: Option<usize> = None;
        let mut stall: Option<usize> = None;
        let mut range_fault: Option<Fault> = None;
        let mut racing: Option<Vec<u8>> = None;
        let mut stale = false;
        let put_tag = (req.method() == http::Method::PUT)
            .then(|| races::tag_at(req.uri().path()))
            .flatten();
        let path = full_path
            .strip_prefix(REDIRECTED_PREFIX)
            .filter(|p| p.starts_with('/'))
            .unwrap_or(&full_path)
            .to_string();
        for i in 0..self.rules.len() {
            let rule = self.rules[i].clone();
            if !full_path.contains(&rule.path_contains) {
                continue;
            }
            match rule.fault {
                Fault::FailFirst { times, status } => {
                    if self.bump(i, &full_path) <= times {
                        return simple(status, &[]);
                    }
                }
                Fault::RateLimit { times, retry_after } => {
                    if self.bump(i, &full_path) <= times {
                        return simple(429, &[("retry-after", retry_after.as_str())]);
                    }
                }
                Fault::Challenge {
                    times,
                    status,
                    www_authenticate,
                } => {
                    if self.bump(i, &full_path) <= times {
                        return simple(status, &[("www-authenticate", www_authenticate.as_str())]);
                    }
                }
                Fault::RedirectOnce => {
                    if !full_path.starts_with(REDIRECTED_PREFIX) && self.bump(i, &full_path) == 1 {
                        let target = match req.uri().query() {
                            Some(q) => format!("{REDIRECTED_PREFIX}{full_path}?{q}"),
                            None => format!("{REDIRECTED_PREFIX}{full_path}"),
                        };
                        return simple(307, &[("location", target.as_str())]);
                    }
                }
                Fault::RedirectTo { base } => {
                    let target = format!("{}{}", base.trim_end_matches('/'), path);
                    return simple(307, &[("location", target.as_str())]);
                }
                Fault::Token { realm, service } => {
                    if path == "/token" {
                        if req.method() == http::Method::POST {
                            if !self.token_post {
                                return simple(404, &[]);
                            }
                            return self.issue_token_to(&service);
                        }
                        return self.issue_token(req, &service);
                    }
                    let token = req
                        .headers()
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .filter(|t| t.starts_with("tok-"))
                        .map(str::to_string);
                    let mut status = 401;
                    let ok = match (&token, self.token_max_uses) {
                        (Some(t), Some((max, expired_status))) => {
                            let uses = self.token_uses.entry(t.clone()).or_insert(0);
                            *uses += 1;
                            status = expired_status;
                            *uses <= max
                        }
                        (Some(_), None) => true,
                        (None, _) => false,
                    };
                    if !ok {
                        let scope = token_scope(&path).unwrap_or_default();
                        let challenge = format!(
                            "Bearer realm=\"{realm}\",service=\"{service}\",scope=\"{scope}\""
                        );
                        let mut r = simple(status, &[("www-authenticate", challenge.as_str())]);
                        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                        r.head
                            .headers_mut()
                            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
                        r.body = Bytes::from_static(body.as_bytes());
                        return r;
                    }
                }
                Fault::Basic { username, password } => {
                    let want = format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{username}:{password}"))
                    );
                    let ok = req
                        .headers()
                        .get(header::AUTHORIZATION)
                        .is_some_and(|v| v.as_bytes() == want.as_bytes());
                    if !ok {
                        return simple(401, &[("www-authenticate", "Basic realm=\"ocireg-test\"")]);
                    }
                }
                Fault::CutBody { after, times } => {
                    if self.bump(i, &full_path) <= times {
                        cut = Some(after);
                    }
                }
                Fault::StallBody { after, times } => {
                    if self.bump(i, &full_path) <= times {
                        stall = Some(after);
                    }
                }
                Fault::ShortRange { by, times } => {
                    if req.method() == http::Method::PATCH
                        && body.len() > by
                        && self.bump(i, &full_path) <= times
                    {
                        body = body.slice(..body.len() - by);
                    }
                }
                Fault::RefuseMount => {
                    if req.method() == http::Method::POST {
                        dropped = &["mount", "from"];
                    }
                }
                Fault::IgnoreSinglePost => {
                    if req.method() == http::Method::POST {
                        dropped = &["digest"];
                        body = Bytes::new();
                    }
                }
                Fault::CutUpload { after, times } => {
                    if body.len() > after && self.bump(i, &full_path) <= times {
                        body = body.slice(..after);
                        reset = true;
                    }
                }
                // added to the answer, whatever it is (in `handle_with_body`)
                Fault::Headers(_) => {}
                Fault::RacingWriter { index, times } => {
                    if put_tag.is_some() && self.bump(i, &full_path) <= times {
                        racing = Some(index);
                    }
                }
                Fault::StaleWriter { times } => {
                    if put_tag.is_some() && self.bump(i, &full_path) <= times {
                        stale = true;
                    }
                }
                f
                @ (Fault::IgnoreRange | Fault::WrongContentRange | Fault::RangeNotSatisfiable) => {
                    if ranged {
                        range_fault = Some(f);
                    }
                }
            }
        }
        let inner_req = {
            let query = req.uri().query().map(|q| {
                if dropped.is_empty() {
                    return q.to_string();
                }
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(
                        url::form_urlencoded::parse(q.as_bytes())
                            .filter(|(k, _)| !dropped.contains(&k.as_ref())),
                    )
                    .finish()
            });
            let uri = match query {
                Some(q) if !q.is_empty() => format!("{path}?{q}"),
                _ => path.clone(),
            };
            let mut b = Request::builder().method(req.method()).uri(uri.as_str());
            for (k, v) in req.headers() {
                if !(k == header::RANGE && range_fault == Some(Fault::IgnoreRange)) {
                    b = b.header(k, v);
                }
            }
            match b.body(()) {
                Ok(r) => r,
                // e.g. a request for "?x" whose path is empty: nothing a registry serves
                Err(_) => return simple(400, &[]),
            }
        };
        if let (Some(index), Some(at)) = (&racing, &put_tag) {
            self.write_first(at, index);
        }
        let before = put_tag.as_ref().and_then(|at| self.tag_target(at));
        let mut reply = if self.read_only {
            self.inner.handle(&inner_req)
        } else {
            self.inner.respond(&inner_req, &body)
        };
        if let (true, Some(at)) = (stale && reply.status().is_success(), &put_tag) {
            self.write_back(at, before);
        }
        if reset {
            // The registry kept what arrived; the client sees the connection break.
            reply.reset = true;
            return reply;
        }
        match range_fault {
            Some(Fault::RangeNotSatisfiable) if reply.status().is_success() => {
                let total = reply
                    .head
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit('/').next())
                    .unwrap_or("*")
                    .to_string();
                reply = simple(
                    416,
                    &[("content-range", format!("bytes */{total}").as_str())],
                );
            }
            Some(Fault::WrongContentRange) if reply.status() == StatusCode::PARTIAL_CONTENT => {
                let cr = ocireg_core::range::parse_content_range(
                    reply.head.headers()[header::CONTENT_RANGE].as_bytes(),
                );
                if let Some(cr) = cr {
                    let total = cr.total.map_or("*".to_string(), |t| t.to_string());
                    let wrong = format!("bytes {}-{}/{total}", cr.first.saturating_sub(1), cr.last);
                    reply.head.headers_mut().insert(
                        header::CONTENT_RANGE,
                        HeaderValue::from_str(&wrong).expect("ascii"),
                    );
                }
            }
            _ => {}
        }
        reply.cut_after = cut;
        reply.stall_after = stall;
        reply
    }
}

fn simple(status: u16, headers: &[(&str, &str)]) -> Reply {
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, 0);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    Reply::new(b.body(()).expect("valid status and headers"), Bytes::new())
}

/// How long a stalled body waits before the adapter gives up on it (the client should
/// abort long before).
pub const STALL_LIMIT: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests;
