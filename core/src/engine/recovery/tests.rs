//! Unit tests of [`recover`](super::recover): each answer from the facts alone.

use super::*;
use http::HeaderValue;

const LIMITS: Limits = Limits {
    max_redirects: 3,
    max_retry_after: Duration::from_secs(60),
    max_attempts: 6,
};

fn sent(url: &str) -> Sent {
    Sent {
        what: "blob sha256:x".into(),
        method: Method::GET,
        url: Url::parse(url).unwrap(),
        to_registry: url.starts_with("https://reg.test/"),
        at_start: true,
        kind: RequestKind::Registry,
        resumed_blob: false,
        hops: 0,
        catching_up: &[],
        failures: 0,
        foreign_restarted: false,
    }
}

fn status(sent: &Sent, code: u16, hs: &[(&str, &str)]) -> Recovery {
    let mut headers = HeaderMap::new();
    for (k, v) in hs {
        headers.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    recover(
        sent,
        Came::Status {
            status: code,
            headers: &headers,
            body: b"",
        },
        LIMITS,
    )
}

fn transport(sent: &Sent, kind: TransportErrorKind) -> Recovery {
    recover(
        sent,
        Came::Transport(TransportError::new(kind, "t")),
        LIMITS,
    )
}

#[test]
fn redirects_are_followed_within_the_rules() {
    let s = sent("https://reg.test/v2/r/blobs/x");
    match status(&s, 307, &[("location", "https://cdn.test/b?sig=1")]) {
        Recovery::Redirect(u) => assert_eq!(u.as_str(), "https://cdn.test/b?sig=1"),
        r => panic!("{r:?}"),
    }
    match status(&s, 302, &[("location", "/elsewhere")]) {
        Recovery::Redirect(u) => assert_eq!(u.as_str(), "https://reg.test/elsewhere"),
        r => panic!("{r:?}"),
    }
    for (loc, why) in [
        ("http://cdn.test/b", "https to plain http"),
        ("ftp://cdn.test/b", "not an http(s) URL"),
    ] {
        match status(&s, 307, &[("location", loc)]) {
            Recovery::Fail(Error::Redirect { reason, .. }) => assert!(reason.contains(why)),
            r => panic!("{loc}: {r:?}"),
        }
    }
    let far = Sent {
        hops: 3,
        ..sent("https://reg.test/v2/r/blobs/x")
    };
    assert!(matches!(
        status(&far, 307, &[("location", "/x")]),
        Recovery::Fail(Error::Redirect { .. })
    ));
}

#[test]
fn only_the_registrys_refusals_are_authenticated() {
    let s = sent("https://reg.test/v2/r/blobs/x");
    let challenge = ("www-authenticate", r#"Bearer realm="https://auth.test/t""#);
    assert!(matches!(
        status(&s, 401, &[challenge]),
        Recovery::Authenticate { .. }
    ));
    assert!(matches!(
        status(&s, 403, &[challenge]),
        Recovery::Authenticate { .. }
    ));
    // a 403 without a bearer challenge is a refusal, not a question
    assert!(matches!(
        status(&s, 403, &[]),
        Recovery::Fail(Error::Status(_))
    ));
    // the same from a redirect target: back to the registry once, never authenticated
    let cdn = Sent {
        at_start: false,
        ..sent("https://cdn.test/b")
    };
    for code in [401, 403] {
        match status(&cdn, code, &[challenge]) {
            Recovery::Restart(Restart::AtRegistry(Error::ForeignOrigin {
                origin, status, ..
            })) => {
                assert_eq!((origin.as_str(), status), ("https://cdn.test", code))
            }
            r => panic!("{r:?}"),
        }
    }
    let again = Sent {
        foreign_restarted: true,
        ..cdn
    };
    assert!(matches!(
        status(&again, 401, &[challenge]),
        Recovery::Fail(Error::ForeignOrigin { .. })
    ));
    // and not when the attempts are spent
    let spent = Sent {
        failures: 5,
        at_start: false,
        ..sent("https://cdn.test/b")
    };
    assert!(matches!(
        status(&spent, 401, &[]),
        Recovery::Fail(Error::ForeignOrigin { .. })
    ));
}

#[test]
fn restarts() {
    let token = Sent {
        kind: RequestKind::TokenPost,
        ..sent("https://auth.test/token")
    };
    assert_eq!(
        match status(&token, 404, &[]) {
            Recovery::Restart(r) => r,
            r => panic!("{r:?}"),
        },
        Restart::TokenByGet
    );
    let get = Sent {
        kind: RequestKind::TokenGet,
        ..sent("https://auth.test/token")
    };
    assert!(matches!(status(&get, 404, &[]), Recovery::Fail(_)));
    let resumed = Sent {
        resumed_blob: true,
        ..sent("https://reg.test/v2/r/blobs/x")
    };
    assert!(matches!(
        status(&resumed, 416, &[]),
        Recovery::Restart(Restart::FromZero)
    ));
    assert!(matches!(
        status(&sent("https://reg.test/v2/r/blobs/x"), 416, &[]),
        Recovery::Fail(_)
    ));
    let local = Sent {
        to_registry: true,
        ..sent("https://127.0.0.1:5000/v2/")
    };
    assert!(matches!(
        transport(&local, TransportErrorKind::NotTls),
        Recovery::Restart(Restart::PlainHttp { host }) if host == "127.0.0.1:5000"
    ));
    // not after a redirect, not off this machine
    let redirected = Sent {
        at_start: false,
        ..local
    };
    assert!(matches!(
        transport(&redirected, TransportErrorKind::NotTls),
        Recovery::Retry { .. }
    ));
    assert!(matches!(
        transport(&sent("https://reg.test/v2/"), TransportErrorKind::NotTls),
        Recovery::Retry { .. }
    ));
}

#[test]
fn retries_carry_the_servers_hint_and_its_cap() {
    let s = sent("https://reg.test/v2/r/blobs/x");
    match status(&s, 503, &[("retry-after", "5")]) {
        Recovery::Retry { after, error } => {
            assert_eq!(after, Some(Duration::from_secs(5)));
            assert_eq!(error.status(), Some(503));
        }
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        status(&s, 429, &[("retry-after", "3600")]),
        Recovery::Fail(Error::RetryAfterTooLong { .. })
    ));
    assert!(matches!(
        status(&s, 500, &[]),
        Recovery::Retry { after: None, .. }
    ));
    assert!(matches!(
        status(&s, 404, &[]),
        Recovery::Fail(Error::Status(_))
    ));
    assert!(matches!(
        transport(&s, TransportErrorKind::Broken),
        Recovery::Retry { after: None, .. }
    ));
    // a certificate that fails verification is never retried, nor a name that does
    // not resolve
    for kind in [TransportErrorKind::Tls, TransportErrorKind::NameNotResolved] {
        assert!(matches!(
            transport(&s, kind),
            Recovery::Fail(Error::Transport { .. })
        ));
    }
}

/// A manifest `PUT` whose blobs the push confirmed retries a `MANIFEST_BLOB_UNKNOWN`
/// (the registry catching up); any other request fails on it at once.
#[test]
fn a_registry_catching_up_is_retried_only_where_the_goal_says_so() {
    let body = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown"}]}"#;
    let answer = |s: &Sent| {
        recover(
            s,
            Came::Status {
                status: 400,
                headers: &HeaderMap::new(),
                body,
            },
            LIMITS,
        )
    };
    let plain = Sent {
        method: Method::PUT,
        ..sent("https://reg.test/v2/r/manifests/v1")
    };
    assert!(matches!(answer(&plain), Recovery::Fail(Error::Status(_))));
    let confirmed = Sent {
        catching_up: &["MANIFEST_BLOB_UNKNOWN"],
        ..plain
    };
    assert!(matches!(answer(&confirmed), Recovery::Retry { .. }));
}

/// A delete is never redirected: the request would delete what the `Location` names.
#[test]
fn a_delete_is_not_redirected() {
    let delete = Sent {
        method: Method::DELETE,
        ..sent("https://reg.test/v2/r/manifests/sha256:x")
    };
    assert!(matches!(
        status(&delete, 307, &[("location", "/v2/r/blobs/uploads/s1")]),
        Recovery::Fail(Error::Redirect { .. })
    ));
    let get = sent("https://reg.test/v2/r/manifests/sha256:x");
    assert!(matches!(
        status(&get, 307, &[("location", "/v2/r/manifests/sha256:y")]),
        Recovery::Redirect(_)
    ));
}

/// A `407` is a proxy's refusal: it fails at once, as the transport's refusal of a
/// tunnel does, and says how to give the proxy credentials.
#[test]
fn a_proxy_refusal_fails_at_once_and_says_how_to_give_credentials() {
    let s = sent("http://reg.test/v2/r/manifests/v1");
    let Recovery::Fail(e) = status(&s, 407, &[("proxy-authenticate", "Basic realm=\"p\"")]) else {
        panic!("a 407 is not retried")
    };
    assert!(!e.is_temporary());
    assert!(e.to_string().contains("http://user:password@"), "{e}");
}
