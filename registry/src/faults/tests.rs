//! Tests of the fault layer.

use super::*;

#[test]
fn seed_scenario_shapes() {
    let mut r = Registry::new();
    let b = r.add_blob("test/repo", Bytes::from_static(b"0123456789"));
    let mut f = FaultyRegistry::new(
        r,
        vec![
            Rule::all(Fault::FailFirst {
                times: 1,
                status: 503,
            }),
            Rule::all(Fault::RedirectOnce),
            Rule::all(Fault::Token {
                realm: "http://x/token".into(),
                service: "myregistry.test".into(),
            }),
            Rule::blobs(Fault::CutBody {
                after: 4,
                times: u32::MAX,
            }),
        ],
    );
    let path = format!("/v2/test/repo/blobs/{b}");
    let get = |p: &str, auth: Option<&str>| {
        let mut b = Request::get(p);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(()).unwrap()
    };
    assert_eq!(f.handle(&get(&path, None)).status(), 503);
    let r = f.handle(&get(&path, None));
    assert_eq!(r.status(), 307);
    let loc = r.head.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(f.handle(&get(&loc, None)).status(), 503);
    let r = f.handle(&get(&loc, None));
    assert_eq!(r.status(), 401);
    assert!(r.head.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("repository:test/repo:pull"));
    let t = "/token?service=myregistry.test&scope=repository%3Atest%2Frepo%3Apull";
    assert_eq!(f.handle(&get(t, None)).status(), 503);
    let r = f.handle(&get(t, None));
    assert_eq!(r.status(), 307);
    let t = r.head.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(f.handle(&get(&t, None)).status(), 503);
    let tok = f.handle(&get(&t, None));
    assert!(std::str::from_utf8(&tok.body).unwrap().contains("tok-1"));
    let r = f.handle(&get(&loc, Some("Bearer tok-1")));
    assert_eq!(r.status(), 200);
    assert_eq!(r.cut_after, Some(4));
    assert_eq!(f.log.last().unwrap().body_bytes, 4);
    assert_eq!(f.log.last().unwrap().auth_scheme.as_deref(), Some("Bearer"));
}

#[test]
fn requests_with_an_empty_path_are_refused_not_a_panic() {
    // found by the `server` fuzz target
    let mut f = FaultyRegistry::new(Registry::new(), vec![Rule::all(Fault::RedirectOnce)]);
    for uri in ["example.com:80", "*", "http://host?q"] {
        let req = Request::get(uri).body(()).unwrap();
        assert_eq!(
            f.handle(&req).status(),
            307,
            "{uri}: redirected the first time"
        );
        let status = f.handle(&req).status().as_u16();
        assert!(status == 400 || status == 404, "{uri}: {status}");
    }
}

#[test]
fn range_faults() {
    let mut r = Registry::new();
    let b = r.add_blob("x", Bytes::from_static(b"0123456789"));
    let path = format!("/v2/x/blobs/{b}");
    let ranged = || {
        Request::get(path.as_str())
            .header("range", "bytes=4-9")
            .body(())
            .unwrap()
    };
    let mut f = FaultyRegistry::new(r, vec![Rule::blobs(Fault::IgnoreRange)]);
    assert_eq!(f.handle(&ranged()).status(), 200);
    f.set_rules(vec![Rule::blobs(Fault::WrongContentRange)]);
    assert_eq!(
        f.handle(&ranged()).head.headers()["content-range"],
        "bytes 3-9/10"
    );
    f.set_rules(vec![Rule::blobs(Fault::RangeNotSatisfiable)]);
    assert_eq!(f.handle(&ranged()).status(), 416);
    f.set_rules(vec![Rule::all(Fault::RateLimit {
        times: 1,
        retry_after: "2".into(),
    })]);
    assert_eq!(f.handle(&ranged()).head.headers()["retry-after"], "2");
}

/// The request log of a long-running server is bounded: past [`LOG_LIMIT`] it keeps the
/// most recent requests, the last one always.
#[test]
fn the_request_log_is_bounded() {
    let mut f = FaultyRegistry::new(Registry::new(), vec![]);
    for i in 0..(LOG_LIMIT + LOG_LIMIT / 2 + 7) {
        let req = Request::get(format!("/v2/x/manifests/t{i}"))
            .body(())
            .unwrap();
        let _ = f.handle(&req);
        assert!(
            f.log.len() <= LOG_LIMIT,
            "{} entries after {i}",
            f.log.len()
        );
    }
    let last = format!("/v2/x/manifests/t{}", LOG_LIMIT + LOG_LIMIT / 2 + 6);
    assert_eq!(f.log.last().unwrap().path, last);
    assert_eq!(LOG_LIMIT, 10_000);
}
