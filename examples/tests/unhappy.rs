//! The CLI's rows of "what a user needs" when things are not as expected: serve of what
//! is not a layout, serve -v logs, inspect --platform and --format json, --quiet, a
//! platform the image does not have, filesystem errors that name the path.

use std::process::Stdio;

use ocireg_core::Platform;
use ocireg_registry::images::{image, index};
use ocireg_registry::Registry;
use ocireg_tests::real::write_oci_layout;

mod support;
use support::{fail, ocireg, serve_inprocess, succeed, Served};

#[test]
fn serve_says_what_a_directory_lacks_and_logs_requests_with_v() {
    let work = tempfile::tempdir().unwrap();
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = fail(&["serve".as_ref(), empty.as_os_str()]);
    assert!(
        err.contains("no index.json") && err.contains("--allow-push"),
        "{err}"
    );
    let missing = work.path().join("missing");
    let err = fail(&["serve".as_ref(), missing.as_os_str()]);
    assert!(err.contains("does not exist"), "{err}");
    // empty and taking pushes is fine
    let served = Served::start(&empty, "tokio");
    drop(served);
    // -v: one line per request, with its status and size
    let img = image(95, &[1000], &Platform::host(), false);
    let layout = work.path().join("layout");
    write_oci_layout(&layout, &[(&img, Some("v1"))], &[]);
    let mut server = ocireg()
        .args(["-v", "serve", "--addr", "127.0.0.1:0"])
        .arg(&layout)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(server.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    succeed(&["inspect", &format!("{addr}/image:v1")]);
    let _ = server.kill();
    let out = server.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("GET /v2/image/manifests/v1 200"), "{log}");
}

#[test]
fn inspect_picks_a_platform_and_speaks_json_and_quiet_is_quiet() {
    let here = Platform::host();
    let other = Platform::parse("linux/riscv64").unwrap();
    let a = image(96, &[500], &here, false);
    let b = image(97, &[600], &other, false);
    let idx = index(&[(&a, &here), (&b, &other)]);
    let mut r = Registry::new();
    a.add_to(&mut r, "app", None);
    b.add_to(&mut r, "app", Some("riscv"));
    r.add_manifest("app", ocireg_core::manifest::OCI_INDEX, idx, Some("v1"));
    let (addr, _reg, _rt) = serve_inprocess(r, vec![]);
    let shown = succeed(&[
        "inspect",
        "--platform",
        "linux/riscv64",
        &format!("{addr}/app:v1"),
    ]);
    assert!(shown.contains(&b.digest().to_string()), "{shown}");
    let doc: serde_json::Value = serde_json::from_str(&succeed(&[
        "inspect",
        "--format",
        "json",
        &format!("{addr}/app:v1"),
    ]))
    .unwrap();
    assert_eq!(doc["mediaType"], ocireg_core::manifest::OCI_INDEX);
    assert_eq!(doc["manifest"]["manifests"].as_array().unwrap().len(), 2);
    // --quiet: nothing on either stream, exit 0
    let dir = tempfile::tempdir().unwrap();
    let out = ocireg()
        .args([
            "--quiet",
            "pull",
            "--progress",
            "plain",
            &format!("{addr}/app:v1"),
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!((out.stdout.len(), out.stderr.len()), (0, 0), "{out:?}");
    // a platform that a single-platform image does not have: pulled, with a warning
    let out = ocireg()
        .args([
            "pull",
            "--platform",
            "windows/amd64",
            &format!("{addr}/app:riscv"),
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning") && err.contains("linux/riscv64") && err.contains("windows/amd64"),
        "{err}"
    );
    // a layout path that cannot be a directory is named in the error
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under = file.join("layout");
    let reference = std::ffi::OsString::from(format!("{addr}/app:riscv"));
    let err = fail(&["pull".as_ref(), &reference, under.as_os_str()]);
    assert!(err.contains(&under.display().to_string()), "{err}");
}

/// A registry name that does not resolve fails at once (one attempt, no backoff), saying
/// so, on both runtimes.
#[test]
fn a_name_that_does_not_resolve_is_not_retried() {
    for runtime in ["tokio", "async-std", "smol"] {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let out = ocireg()
            .args(["--runtime", runtime, "pull", "--timeout", "120"])
            .arg("no-such-registry.invalid/team/app:v1")
            .arg(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{runtime}: {err}");
        assert!(
            err.contains("no-such-registry.invalid does not resolve") && !err.contains("attempts"),
            "{runtime}: {err}"
        );
        // six attempts would have waited through their backoff (1+2+4+8+16 s)
        assert!(
            started.elapsed() < std::time::Duration::from_secs(25),
            "{runtime}"
        );
    }
}

/// A filesystem error names the path it happened at: a layout under a regular file, and a
/// layout whose `blobs/sha256` is a file, where the pull has already fetched the manifest.
#[test]
fn filesystem_errors_name_the_path() {
    let img = image(98, &[700], &Platform::host(), false);
    let mut r = Registry::new();
    img.add_to(&mut r, "app", Some("v1"));
    let (addr, _reg, _rt) = serve_inprocess(r, vec![]);
    let reference = format!("{addr}/app:v1");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let under = file.join("layout");
    let err = fail(&["pull".as_ref(), reference.as_ref(), under.as_os_str()]);
    assert!(
        err.contains(&*under.to_string_lossy()) && err.lines().count() == 1,
        "{err}"
    );
    let layout = work.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs")).unwrap();
    std::fs::write(layout.join("blobs/sha256"), b"").unwrap();
    let err = fail(&["pull".as_ref(), reference.as_ref(), layout.as_os_str()]);
    assert!(
        err.contains(&*layout.join("blobs/sha256").to_string_lossy()),
        "{err}"
    );
}
