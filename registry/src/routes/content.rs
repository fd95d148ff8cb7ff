//! Stored content served like a static file: `ETag` and `If-None-Match`, one `Range`
//! (`206` with `Content-Range`, `416` when it cannot be satisfied).

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use ocireg_core::Digest;

use super::Reply;

pub(super) fn ok_reply(content_type: &str, body: Bytes, digest: Option<&Digest>) -> Reply {
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
pub(super) fn content<B>(
    req: &Request<B>,
    digest: &Digest,
    content_type: &str,
    data: Bytes,
) -> Reply {
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
