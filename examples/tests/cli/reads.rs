//! `ocireg blob` and `ocireg manifest`: a blob's verified bytes (whole, to stdout or a
//! file named only once verified; or a part), a manifest's bytes as served.

use super::*;

#[test]
fn blob_writes_verified_bytes_and_manifest_the_raw_manifest() {
    let img = image(62, &[70_000], &Platform::host(), false);
    let (addr, reg, _rt) = inprocess(&img, vec![]);
    let layer = &img.layers[0];
    let digest = ocireg_core::Digest::sha256(layer);
    let at = format!("{addr}/test/repo@{digest}");
    // stdout
    let out = ok(ocireg().args(["blob", "--plain-http", &at]));
    assert_eq!(out.stdout, layer.as_ref());
    // a file, named once verified
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("layer");
    ok(ocireg()
        .args(["blob", "--plain-http", &at, "-o"])
        .arg(&file));
    assert_eq!(std::fs::read(&file).unwrap(), layer.as_ref());
    // a part: those bytes, in one ranged request
    let before = reg.lock().unwrap().log.len();
    let out = ok(ocireg().args(["blob", "--plain-http", "--range", "100-1099", &at]));
    assert_eq!(out.stdout, &layer[100..1100]);
    let ranged: Vec<_> = reg.lock().unwrap().log[before..]
        .iter()
        .filter(|s| s.method == "GET" && s.path.contains("/blobs/"))
        .map(|s| s.range.clone())
        .collect();
    assert_eq!(ranged, [Some("bytes=100-1099".to_string())]);
    // the manifest, exactly as served
    let out = ok(ocireg().args(["manifest", "--plain-http", &format!("{addr}/test/repo:v1")]));
    assert_eq!(out.stdout, img.manifest.as_ref());
}

#[test]
fn a_blob_that_is_not_its_digest_leaves_nothing_at_the_output() {
    let img = image(63, &[50_000], &Platform::host(), false);
    let mut r = ocireg_registry::Registry::new();
    img.add_to(&mut r, "test/repo", Some("v1"));
    // bytes served under a digest they do not have
    let claimed = ocireg_core::Digest::sha256(b"something else entirely");
    r.add_blob_with_digest("test/repo", claimed.clone(), img.layers[0].clone());
    let (addr, _reg, _rt) = serve_inprocess(r, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("layer");
    let out = ocireg()
        .args([
            "blob",
            "--plain-http",
            &format!("{addr}/test/repo@{claimed}"),
            "-o",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("digest"), "{err}");
    assert!(!file.exists(), "a file was left at -o");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A registry that limits the rate (Docker Hub's headers, a `Retry-After` beyond what
/// is waited): one line that names the limit, what remains and when to come back, and
/// the ways out (credentials, a mirror); `-v` shows what is left on each manifest
/// answer before that.
#[test]
fn a_rate_limit_is_named_with_what_remains_and_the_ways_out() {
    use ocireg_registry::{Fault, Rule};
    let img = image(141, &[1000], &Platform::host(), false);
    let hub = |left: u32| {
        Rule::all(Fault::Headers(vec![
            ("ratelimit-limit".into(), "100;w=21600".into()),
            ("ratelimit-remaining".into(), format!("{left};w=21600")),
        ]))
    };
    let (addr, _reg, _rt) = inprocess(&img, vec![hub(7)]);
    let out = ok(ocireg().args([
        "inspect",
        "-v",
        "--plain-http",
        &format!("{addr}/test/repo:v1"),
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rate limit 100 requests per 6h, 7 remaining"),
        "{err}"
    );
    let refusing = vec![
        hub(0),
        Rule::all(Fault::RateLimit {
            times: u32::MAX,
            retry_after: "7200".into(),
        }),
    ];
    let (addr, _reg, _rt) = inprocess(&img, refusing);
    let out = ocireg()
        .args(["inspect", "--plain-http", &format!("{addr}/test/repo:v1")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for part in [
        "100 requests per 6h, 0 remaining",
        "7200s",
        "ocireg login",
        "--hosts-dir",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
}
