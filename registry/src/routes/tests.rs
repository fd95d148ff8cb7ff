//! Tests of the registry's read side.

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
    let with =
        |k: &str, v: &str| r.handle(&Request::get(path.as_str()).header(k, v).body(()).unwrap());
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
