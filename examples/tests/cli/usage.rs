//! Exit codes and messages of wrong usage and of failures.

use super::*;

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let out = ocireg().args(["pull"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // usage errors exit 2, quoting what was wrong and saying what is expected
    for (args, says) in [
        (
            vec!["pull", "reg.test/a@sha256:xyz", "/tmp/x"],
            "\"reg.test/a@sha256:xyz\" is not an image reference",
        ),
        (
            vec!["pull", "Bad Ref", "/tmp/x"],
            "expected [host[:port]/]repository",
        ),
        (
            vec!["pull", "--platform", "bogus", "a/b:v1", "/tmp/x"],
            "\"bogus\" is not a platform",
        ),
        // the bound is named, not only the value echoed
        (
            vec!["pull", "--concurrency", "0", "a/b:v1", "/tmp/x"],
            "0 is not in 1..=256",
        ),
        (
            vec!["pull", "--hash-threads", "17", "a/b:v1", "/tmp/x"],
            "17 is not in 0..=16",
        ),
        (
            vec!["pull", "--username", "u", "a/b:v1", "/tmp/x"],
            "--password-stdin",
        ),
        (vec!["copy", "a/b:v1", "not a target"], "oci:DIR[:NAME]"),
    ] {
        let out = ocireg()
            .args(&args)
            .env_remove("OCIREG_PASSWORD")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // nobody listens on this port: one clear line, exit 1
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = ocireg()
        .args([
            "pull",
            "--attempts",
            "2",
            &format!("127.0.0.1:{port}/x/y:v1"),
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // one line that names the cause and what to check; the retries are not warnings
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("ocireg: cannot connect to 127.0.0.1:")
            && err.contains("after 2 attempts")
            && err.contains("is a registry running at"),
        "{err}"
    );
    assert!(!err.contains("WARN"), "{err}");
    // and the failed first pull left no layout skeleton behind
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert!(
        !err.contains('\x1b'),
        "no colour codes when stderr is not a terminal"
    );
    assert!(!err.contains("panicked"));
}
