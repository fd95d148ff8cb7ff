//! Parser targets: no panic on any input, and what parses round-trips or obeys its grammar.

use ocireg_core::{auth, error, link, range, retry, Digest, Manifest, Reference};

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// References: parse, and a parsed reference prints to something that parses the same.
pub fn reference(data: &[u8]) {
    if let Ok(r) = Reference::parse(&text(data)) {
        let again = Reference::parse(&r.to_string()).expect("a printed reference parses");
        assert_eq!(again, r);
        assert!(r.repository().len() <= 255 + "library/".len());
    }
}

/// Digests: strict, and printing gives back the input.
pub fn digest(data: &[u8]) {
    let s = text(data);
    if let Ok(d) = Digest::parse(&s) {
        assert_eq!(d.to_string(), s);
        assert_eq!(d.hex().len(), d.algorithm().hex_len());
    }
}

/// `WWW-Authenticate`: split the input into several header values at NUL bytes.
pub fn www_authenticate(data: &[u8]) {
    let values: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let challenges = auth::parse_www_authenticate(values.iter().copied());
    // never more challenges or parameters than input bytes, names lower-cased and unique
    assert!(challenges.len() <= data.len());
    for c in &challenges {
        assert!(!c.scheme.is_empty());
        for (i, (k, _)) in c.params.iter().enumerate() {
            assert_eq!(*k, k.to_ascii_lowercase());
            assert!(
                !c.params[..i].iter().any(|(o, _)| o == k),
                "duplicate parameter kept"
            );
        }
        assert!(c.token68.is_none() || c.params.is_empty());
    }
}

/// `Content-Range`: what parses is consistent.
pub fn content_range(data: &[u8]) {
    if let Some(r) = range::parse_content_range(data) {
        assert!(r.first <= r.last);
        if let Some(t) = r.total {
            assert!(r.last < t);
            // it answers a request for [first, t) exactly when it reaches the end
            assert_eq!(
                range::content_range_matches(data, r.first, t),
                r.last + 1 == t
            );
        }
    }
}

/// `Retry-After`, with a `Date` after the first NUL; and the same bytes as the rate-limit
/// fields a `429` may carry (each NUL-separated part one of them, in turn).
pub fn retry_after(data: &[u8]) {
    let mut parts = data.splitn(2, |b| *b == 0);
    let value = parts.next().unwrap_or(b"");
    let date = parts.next();
    let _ = retry::parse_retry_after(value, date);
    let names = [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "ratelimit",
        "ratelimit-policy",
    ];
    let mut headers = http::HeaderMap::new();
    for (name, part) in names.iter().zip(data.split(|b| *b == 0)) {
        if let Ok(v) = http::HeaderValue::from_bytes(part) {
            headers.insert(*name, v);
        }
    }
    if let Some(limit) = ocireg_core::RateLimit::from_headers(&headers) {
        let _ = limit.to_string();
    }
}

/// `Link` headers.
pub fn link(data: &[u8]) {
    let values: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    if let Some(next) = link::next_link(values.iter().copied()) {
        assert!(!next.contains('>'));
    }
}

/// Manifests of all four types: the first line is the `Content-Type`.
pub fn manifest(data: &[u8]) {
    let (ct, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    if let Ok((m, media_type)) = Manifest::parse(&text(ct), body) {
        assert!(!media_type.is_empty());
        let descriptors: Vec<&ocireg_core::Descriptor> = match &m {
            Manifest::Image(i) => i.blobs().collect(),
            Manifest::Index(i) => i.manifests.iter().collect(),
        };
        for d in descriptors {
            assert!(d.size >= 0, "negative size accepted");
        }
    }
}

/// Registry error bodies, and the error text built from them.
pub fn registry_errors(data: &[u8]) {
    if let Some(entries) = error::parse_registry_errors(data) {
        let e = error::StatusError {
            method: "GET".into(),
            url: "https://r/v2/".into(),
            status: 404,
            errors: entries,
            body: String::new(),
            retry_after: None,
            rate_limit: None,
        };
        let _ = e.to_string();
    }
}

/// Token responses: a token that parses is usable in a header and lives ≥ 60 s.
pub fn token_response(data: &[u8]) {
    if let Ok(t) = auth::parse_token_response(data) {
        assert!(t.expires_in >= auth::MIN_TOKEN_LIFETIME);
        assert!(http::HeaderValue::from_str(&format!("Bearer {}", t.token.expose())).is_ok());
        assert_eq!(format!("{:?}", t.token), "REDACTED");
    }
}
