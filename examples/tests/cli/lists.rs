//! `ocireg tags`, `catalog` and `inspect`.

use super::*;

/// Tag pages as a paging registry serves them: `--page-size` asks for `n`, every page
/// is followed by its `Link`, and `--max-pages` stops a long list with exit 1 after
/// printing what it read.
#[test]
fn tags_are_paged_by_link_and_bounded() {
    let img = image(59, &[100], &Platform::host(), false);
    let mut r = ocireg_registry::Registry::new();
    for t in ["a", "b", "c", "d", "e"] {
        img.add_to(&mut r, "test/repo", Some(t));
    }
    let (addr, reg, _rt) = serve_inprocess(r, vec![]);
    let repo = format!("{addr}/test/repo");
    let out = ok(ocireg().args(["tags", "--page-size", "2", &repo]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\nc\nd\ne\n");
    let pages: Vec<String> = reg
        .lock()
        .unwrap()
        .log
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(
        pages,
        [
            "/v2/test/repo/tags/list?n=2",
            "/v2/test/repo/tags/list?n=2&last=b",
            "/v2/test/repo/tags/list?n=2&last=d"
        ]
    );
    let out = ocireg()
        .args(["tags", "--page-size", "2", "--max-pages", "2", &repo])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\nc\nd\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-pages"));
}

/// `ocireg catalog` lists every repository page by page (text or a JSON array); a
/// registry that refuses its catalog gets a message that says so and what to do instead.
#[test]
fn catalog_lists_repositories_and_explains_a_refusal() {
    use ocireg_registry::{Fault, Rule};
    let img = image(62, &[100], &Platform::host(), false);
    let mut r = ocireg_registry::Registry::new();
    for name in ["a/one", "b/two", "c/three"] {
        img.add_to(&mut r, name, Some("v1"));
    }
    let (addr, reg, _rt) = serve_inprocess(r, vec![]);
    let listed = succeed(&["catalog", "--page-size", "2", &addr]);
    assert_eq!(listed, "a/one\nb/two\nc/three\n");
    let names: Vec<String> =
        serde_json::from_str(&succeed(&["catalog", "--format", "json", &addr])).unwrap();
    assert_eq!(names, ["a/one", "b/two", "c/three"]);
    reg.lock().unwrap().set_rules(vec![Rule {
        path_contains: "_catalog".into(),
        fault: Fault::FailFirst {
            times: 100,
            status: 404,
        },
    }]);
    let out = ocireg().args(["catalog", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not list its repositories") && err.contains("ocireg tags"),
        "{err}"
    );
    // a registry is host[:port]: anything else is a usage error, said by the parser
    let out = ocireg().args(["catalog", "not a host"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is not a registry (host[:port])"), "{err}");
}

#[test]
fn inspect_tags_and_platforms_against_a_real_registry() {
    let reg = RealRegistry::start(Mode::Open);
    let img = image(55, &[1000], &Platform::host(), false);
    for t in ["v1", "v2", "latest"] {
        reg.push(&img, "cli/many", t);
    }
    let out = ok(ocireg().args(["tags", "--plain-http", &format!("{}/cli/many", reg.addr)]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "latest\nv1\nv2\n");
    // `--page-size` sends `n`; docker-registry 2.8 answers every tag in one page anyway
    // (paging by `Link` is exercised against the test registry, which does page), and
    // the answer is read whole
    let out = ok(ocireg()
        .args([
            "tags",
            "--plain-http",
            "--page-size",
            "2",
            "--max-pages",
            "1",
        ])
        .arg(format!("{}/cli/many", reg.addr)));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "latest\nv1\nv2\n");
    let out = ocireg()
        .args([
            "inspect",
            "--raw",
            "--plain-http",
            &format!("{}/cli/many:v2", reg.addr),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(ocireg_core::Digest::sha256(&out.stdout), img.digest());
    let out = ocireg()
        .args([
            "inspect",
            "--plain-http",
            &format!("{}/cli/many:v2", reg.addr),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&img.digest().to_string()) && text.contains("layers      1"),
        "{text}"
    );
    let out = ocireg()
        .args(["tags", "--plain-http", &format!("{}/cli/none", reg.addr)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("repository cli/none not found on"), "{err}");
    // the registry's own words are under -v
    let out = ocireg()
        .args([
            "-v",
            "tags",
            "--plain-http",
            &format!("{}/cli/none", reg.addr),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME_UNKNOWN"));
    // a tag that is not there says so, and how to list the tags
    let out = ocireg()
        .args([
            "inspect",
            "--plain-http",
            &format!("{}/cli/many:nope", reg.addr),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tag nope not found in repository cli/many") && err.contains("ocireg tags"),
        "{err}"
    );

    // an index with two platforms: --platform picks one, unknown ones list what exists
    let other = Platform::parse("linux/riscv64").unwrap();
    let a = image(56, &[500], &Platform::host(), false);
    let b = image(57, &[600], &other, false);
    let idx = ocireg_registry::images::index(&[(&a, &Platform::host()), (&b, &other)]);
    let src = tempfile::tempdir().unwrap();
    ocireg_tests::real::write_oci_layout(
        src.path(),
        &[(&a, None), (&b, None)],
        &[(ocireg_core::manifest::OCI_INDEX, &idx, "multi")],
    );
    reg.push_layout(src.path(), "multi", "cli/multi", "v1");
    let dir = tempfile::tempdir().unwrap();
    let out = ok(ocireg()
        .args([
            "pull",
            "--plain-http",
            "--platform",
            "linux/riscv64",
            &format!("{}/cli/multi:v1", reg.addr),
        ])
        .arg(dir.path()));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&b.digest().to_string()));
    let out = ocireg()
        .args([
            "pull",
            "--plain-http",
            "--platform",
            "windows/arm64",
            &format!("{}/cli/multi:v1", reg.addr),
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("linux/riscv64") && err.contains("windows/arm64"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = ocireg()
        .args([
            "pull",
            "--plain-http",
            "--all-platforms",
            &format!("{}/cli/multi:v1", reg.addr),
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(layout_blobs(dir.path()).len(), 1 + 3 + 3);
    assert_eq!(
        skopeo_roundtrip(dir.path(), "v1"),
        ocireg_core::Digest::sha256(&idx).to_string()
    );
}
