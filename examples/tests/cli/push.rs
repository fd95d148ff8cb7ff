//! `ocireg push` and `copy` against the real registry, and `serve --allow-push`.

use super::*;

/// Push and copy against the real registry: a pulled layout pushed to another
/// repository (a layer larger than a chunk goes in PATCHes), pulled back identical; a
/// second push sends no blob; a mount sends none either; a copy carries the image and
/// its tag; skopeo reads what was pushed.
#[test]
fn push_and_copy_against_a_real_registry() {
    let reg = RealRegistry::start(Mode::Open);
    let img = image(60, &[3000, 40 << 20], &Platform::host(), false);
    reg.push(&img, "src/app", "v1");
    let at = |r: &str| format!("{}/{r}", reg.addr);
    let pulled = tempfile::tempdir().unwrap();
    ok(ocireg()
        .args(["pull", "--plain-http", &at("src/app:v1")])
        .arg(pulled.path()));

    let push = |args: &[&str]| {
        let out = ok(ocireg()
            .args(["push", "--plain-http", "--progress", "json"])
            .args(args));
        let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        events.last().unwrap().clone()
    };
    let dir = pulled.path().to_str().unwrap().to_string();
    // LAYOUT:NAME names the image of the layout (the pull named it by its tag)
    let s = push(&[&format!("{dir}:v1"), &at("dst/app:v2")]);
    assert_eq!(s["event"], "summary");
    assert_eq!(
        (s["uploaded"].as_u64(), s["present"].as_u64()),
        (Some(3), Some(0)),
        "{s}"
    );
    assert_eq!(s["digest"], img.digest().to_string());
    // pulled back from the new repository: the same image
    let back = tempfile::tempdir().unwrap();
    ok(ocireg()
        .args(["pull", "--plain-http", &at("dst/app:v2")])
        .arg(back.path()));
    assert_eq!(layout_blobs(back.path()), layout_blobs(pulled.path()));
    // again, with one more tag: nothing uploaded
    let s = push(&["--tag", "latest", &dir, &at("dst/app:v2")]);
    assert_eq!(
        (s["uploaded"].as_u64(), s["present"].as_u64()),
        (Some(0), Some(3)),
        "{s}"
    );
    // mounted from the first repository into a third
    let s = push(&["--mount-from", "src/app", &dir, &at("third/app:v1")]);
    assert_eq!(
        (s["uploaded"].as_u64(), s["mounted"].as_u64()),
        (Some(0), Some(3)),
        "{s}"
    );
    // copy within the registry: the tag comes along when the target has none, and every
    // blob is mounted: no blob is downloaded or uploaded (the registry's own log)
    let (_, from) = reg.requests_since(0);
    let copy = |from_ref: String, to_ref: String| {
        let out = ok(ocireg().args(["copy", "--plain-http", &from_ref, &to_ref]));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let moved = |requests: &[String]| -> Vec<String> {
        requests
            .iter()
            .filter(|r| {
                (r.starts_with("GET") && r.contains("/blobs/sha256"))
                    || r.starts_with("PATCH")
                    || (r.starts_with("PUT") && r.contains("/uploads/"))
            })
            .cloned()
            .collect()
    };
    let summary = copy(at("dst/app:latest"), at("copied/app"));
    assert!(summary.contains("3 mounted"), "{summary}");
    let (requests, now) = reg.requests_since(from);
    assert!(!requests.is_empty(), "the registry logs its requests");
    assert_eq!(moved(&requests), Vec::<String>::new(), "{requests:?}");
    // a copy to itself moves nothing either
    let summary = copy(at("dst/app:v2"), at("dst/app:v2"));
    assert!(summary.contains("3 already there"), "{summary}");
    let (requests, _) = reg.requests_since(now);
    assert_eq!(moved(&requests), Vec::<String>::new(), "{requests:?}");
    // across registries the bytes move, streamed from one registry into the other
    let other = RealRegistry::start(Mode::Open);
    let summary = copy(at("dst/app:v2"), format!("{}/far/app", other.addr));
    assert!(summary.contains("3 uploaded"), "{summary}");
    let far = tempfile::tempdir().unwrap();
    succeed(&[
        "pull".as_ref(),
        "--plain-http".as_ref(),
        format!("{}/far/app:v2", other.addr).as_ref(),
        far.path().as_os_str(),
    ]);
    assert_eq!(layout_blobs(far.path()), layout_blobs(pulled.path()));
    let out = ok(ocireg().args(["inspect", "--plain-http", &at("copied/app:latest")]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&img.digest().to_string()));
    // the registry's catalog lists every repository written to
    let listed = succeed(&["catalog", "--plain-http", "--page-size", "2", &reg.addr]);
    for repo in ["src/app", "dst/app", "third/app", "copied/app"] {
        assert!(listed.lines().any(|l| l == repo), "{repo} in {listed}");
    }
    // another client reads what ocireg pushed
    let check = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--preserve-digests"])
        .arg(format!("docker://{}", at("dst/app:v2")))
        .arg(format!("oci:{}:v2", check.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ocireg serve --allow-push` takes pushes: a layout pushed to it (in chunks) is pulled
/// back identical; on async-std as well.
#[test]
fn serve_with_allow_push_takes_a_push() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let img = image(61, &[2 << 20, 5000], &Platform::host(), false);
    ocireg_tests::real::write_oci_layout(&src, &[(&img, Some("v1"))], &[]);
    for runtime in ["tokio", "async-std"] {
        let server = support::Served::start(&src, runtime);
        let addr = server.addr.clone();
        let pushed = ocireg()
            .args(["--runtime", runtime, "push", "--chunk-size", "1"])
            .arg(&src)
            .arg(format!("{addr}/pushed/app:v1"))
            .output()
            .unwrap();
        let back = work.path().join(format!("back-{runtime}"));
        let pulled = ocireg()
            .args([
                "--runtime",
                runtime,
                "pull",
                &format!("{addr}/pushed/app:v1"),
            ])
            .arg(&back)
            .output()
            .unwrap();
        // copy with a layout on either side: oci:DIR[:NAME]
        let named = work.path().join(format!("named-{runtime}"));
        let to_layout = ocireg()
            .args(["copy", &format!("{addr}/pushed/app:v1")])
            .arg(format!("oci:{}:kept", named.display()))
            .output()
            .unwrap();
        let from_layout = ocireg()
            .args(["copy", "--progress", "plain"])
            .arg(format!("oci:{}:kept", named.display()))
            .arg(format!("{addr}/again/app:v3"))
            .output()
            .unwrap();
        drop(server);
        assert!(
            pushed.status.success(),
            "{}",
            String::from_utf8_lossy(&pushed.stderr)
        );
        let summary = String::from_utf8_lossy(&pushed.stdout);
        assert!(summary.contains("3 uploaded"), "{summary}");
        assert!(
            pulled.status.success(),
            "{}",
            String::from_utf8_lossy(&pulled.stderr)
        );
        assert_eq!(layout_blobs(&back), layout_blobs(&src));
        assert!(
            to_layout.status.success(),
            "{}",
            String::from_utf8_lossy(&to_layout.stderr)
        );
        let index = std::fs::read_to_string(named.join("index.json")).unwrap();
        assert!(index.contains("\"kept\""), "{index}");
        assert!(
            from_layout.status.success(),
            "{}",
            String::from_utf8_lossy(&from_layout.stderr)
        );
        assert!(String::from_utf8_lossy(&from_layout.stdout).contains("3 uploaded"));
    }
}
