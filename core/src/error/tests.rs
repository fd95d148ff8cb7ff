//! Tests of errors.

use super::*;

#[test]
fn classification() {
    for s in [500, 502, 503, 504, 522, 599, 408, 425, 429, 499] {
        assert!(is_temporary_status(s), "{s}");
    }
    for s in [501, 505, 511, 400, 401, 403, 404, 416, 200] {
        assert!(!is_temporary_status(s), "{s}");
    }
}

#[test]
fn redaction() {
    let u = Url::parse(
        "https://user:pw@s3.example/b?X-Amz-Signature=abc&scope=repository:a:pull&service=x",
    )
    .unwrap();
    let r = redact_url(&u);
    assert!(
        !r.contains("abc") && !r.contains("pw") && !r.contains("user"),
        "{r}"
    );
    assert!(r.contains("X-Amz-Signature=REDACTED"), "{r}");
    assert!(r.contains("scope=repository%3Aa%3Apull"), "{r}");
}

#[test]
fn status_error_text() {
    let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
    let e = StatusError {
        method: "GET".into(),
        url: "https://r/v2/a/manifests/x".into(),
        status: 404,
        errors: parse_registry_errors(body).unwrap(),
        body: String::new(),
        retry_after: None,
        rate_limit: None,
    };
    assert_eq!(
        e.to_string(),
        "GET https://r/v2/a/manifests/x: HTTP 404 Not Found: MANIFEST_UNKNOWN: manifest unknown"
    );
    assert_eq!(Error::Status(Box::new(e)).kind(), ErrorKind::NotFound);
    assert!(parse_registry_errors(b"<html>").is_none());
}

#[test]
fn kinds_a_caller_can_branch_on() {
    let status = |status: u16, retry_after: Option<Duration>| {
        Box::new(StatusError {
            method: "GET".into(),
            url: "u".into(),
            status,
            errors: vec![],
            body: String::new(),
            retry_after,
            rate_limit: None,
        })
    };
    let refused = |given: bool, code: u16| Error::Unauthorized {
        registry: "r".into(),
        repository: "a".into(),
        credentials_given: given,
        source: status(code, None),
    };
    let transport = |kind| Error::Transport {
        method: "GET".into(),
        url: "u".into(),
        error: TransportError::new(kind, "x"),
    };
    let wait = Some(Duration::from_secs(7));
    for (e, kind) in [
        (Error::Status(status(404, None)), ErrorKind::NotFound),
        (Error::Status(status(403, None)), ErrorKind::Forbidden),
        (Error::Status(status(503, None)), ErrorKind::Server),
        (
            Error::Status(status(429, wait)),
            ErrorKind::RateLimited { retry_after: wait },
        ),
        (
            refused(false, 401),
            ErrorKind::Unauthorized {
                credentials_given: false,
            },
        ),
        (
            refused(true, 401),
            ErrorKind::Unauthorized {
                credentials_given: true,
            },
        ),
        (refused(true, 403), ErrorKind::Forbidden),
        (transport(TransportErrorKind::Connect), ErrorKind::Network),
        (
            Error::GaveUp {
                what: "x".into(),
                attempts: 3,
                last: Box::new(transport(TransportErrorKind::Broken)),
            },
            ErrorKind::Network,
        ),
        (Error::Cancelled, ErrorKind::Stopped),
        (
            Error::Reference(crate::reference::Reference::parse("a/b:bad tag").unwrap_err()),
            ErrorKind::InvalidInput,
        ),
    ] {
        assert_eq!(e.kind(), kind, "{e}");
    }
    assert!(refused(true, 401)
        .to_string()
        .contains("credentials given were rejected"));
    assert!(refused(false, 401)
        .to_string()
        .contains("no credentials were given"));
    assert!(!transport(TransportErrorKind::NameNotResolved).is_temporary());
    assert!(transport(TransportErrorKind::Connect).is_temporary());
}
