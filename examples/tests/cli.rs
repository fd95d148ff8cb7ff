//! The `ocireg` binary: exit codes, messages, pull against a real registry, serve, demo.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ocireg_core::Platform;
use ocireg_registry::images::image;
use ocireg_tests::real::{layout_blobs, skopeo_roundtrip, Mode, RealRegistry};

mod support;
use support::{ocireg, serve_inprocess, succeed};

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
        (vec!["pull", "--concurrency", "0", "a/b:v1", "/tmp/x"], "0"),
        (
            vec!["pull", "--hash-threads", "17", "a/b:v1", "/tmp/x"],
            "17",
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

#[test]
fn pull_from_real_registry_plain_and_tls() {
    for mode in [Mode::Open, Mode::OpenTls] {
        let reg = RealRegistry::start(mode);
        let img = image(51, &[2000, 400_000], &Platform::host(), false);
        reg.push(&img, "cli/img", "v1");
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = ocireg();
        cmd.arg("pull");
        match &reg.ca {
            Some(ca) => cmd.arg("--ca-file").arg(ca),
            None => cmd.arg("--plain-http"),
        };
        let out = cmd
            .arg(format!("{}/cli/img:v1", reg.addr))
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&img.digest().to_string()), "{stdout}");
        assert_eq!(layout_blobs(dir.path()).len(), 3 + 1);
        assert_eq!(skopeo_roundtrip(dir.path(), "v1"), img.digest().to_string());
    }
}

#[test]
fn serve_a_layout_and_pull_it_back() {
    // demo writes a layout; serve it; pull from the served copy
    let work = tempfile::tempdir().unwrap();
    let demo_dir = work.path().join("demo");
    let out = ocireg()
        .args(["demo", "--dir"])
        .arg(&demo_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("5 fetched"));
    // port 0: the server binds a free port itself and prints it once it listens (no
    // bind-and-release race, no polling for readiness)
    let mut server = ocireg()
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--repository",
            "demo/copy",
        ])
        .arg(&demo_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .expect("serving … on http://addr")
        .to_string();
    let copy = work.path().join("copy");
    let out = ocireg()
        .args(["pull", &format!("{addr}/demo/copy:v1")])
        .arg(&copy)
        .output()
        .unwrap();
    // read-only: a push is refused, in one line that says so
    let refused = ocireg()
        .args(["push", "--progress", "none"])
        .arg(&demo_dir)
        .arg(format!("{addr}/demo/pushed:v1"))
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("405") && err.contains("UNSUPPORTED"), "{err}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(layout_blobs(&copy), layout_blobs(&demo_dir));
    assert_eq!(
        std::fs::read(copy.join("index.json")).unwrap(),
        std::fs::read(demo_dir.join("index.json")).unwrap()
    );
}

#[test]
fn credentials_from_flags_env_and_docker_config() {
    use ocireg_tests::real::{PASSWORD, USER};
    use std::io::Write;
    let reg = RealRegistry::start(Mode::Basic);
    let img = image(52, &[3000], &Platform::host(), false);
    reg.push(&img, "cli/private", "v1");
    let reference = format!("{}/cli/private:v1", reg.addr);
    let empty_cfg = tempfile::tempdir().unwrap();

    // no credentials anywhere: exit 1 naming the refusal
    let dir = tempfile::tempdir().unwrap();
    let out = ocireg()
        .env("DOCKER_CONFIG", empty_cfg.path())
        .args(["pull", "--plain-http", &reference])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("none were found") && err.contains("docker login"),
        "{err}"
    );

    // --username with --password-stdin
    let mut child = ocireg()
        .env("DOCKER_CONFIG", empty_cfg.path())
        .args([
            "pull",
            "--plain-http",
            "--username",
            USER,
            "--password-stdin",
            &reference,
        ])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(PASSWORD));

    // OCIREG_USERNAME / OCIREG_PASSWORD
    let dir = tempfile::tempdir().unwrap();
    let out = ocireg()
        .env("DOCKER_CONFIG", empty_cfg.path())
        .env("OCIREG_USERNAME", USER)
        .env("OCIREG_PASSWORD", PASSWORD)
        .args(["pull", "--plain-http", &reference])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Docker's config.json (base64 auth), and an explicit wrong flag wins over it
    let cfg = tempfile::tempdir().unwrap();
    let auth = format!("{USER}:{PASSWORD}");
    let b64 = {
        let out = Command::new("base64")
            .arg("-w0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = out;
        out.stdin
            .take()
            .unwrap()
            .write_all(auth.as_bytes())
            .unwrap();
        String::from_utf8(out.wait_with_output().unwrap().stdout).unwrap()
    };
    std::fs::write(
        cfg.path().join("config.json"),
        format!(
            r#"{{"auths":{{"http://{}":{{"auth":"{b64}"}}}}}}"#,
            reg.addr
        ),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = ocireg()
        .env("DOCKER_CONFIG", cfg.path())
        .args(["pull", "--plain-http", &reference])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ocireg()
        .env("DOCKER_CONFIG", cfg.path())
        .env("OCIREG_PASSWORD", "not-it")
        .args(["pull", "--plain-http", "--username", USER, &reference])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the explicit (wrong) password wins over the file"
    );
    // ... and the failure is the refusal of that password, not anything else
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the credentials for") && err.contains("were rejected by"),
        "not a refusal: {err}"
    );
}

/// Runs the in-process registry with faults on a free port, in a background runtime.
fn inprocess(
    img: &ocireg_registry::images::TestImage,
    rules: Vec<ocireg_registry::Rule>,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<ocireg_registry::FaultyRegistry>>,
    tokio::runtime::Runtime,
) {
    let mut r = ocireg_registry::Registry::new();
    img.add_to(&mut r, "test/repo", Some("v1"));
    serve_inprocess(r, rules)
}

#[test]
fn progress_json_and_second_pull_transfers_nothing() {
    let img = image(53, &[100_000, 3 << 20], &Platform::host(), false);
    let (addr, _reg, _rt) = inprocess(&img, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let run_into = |dir: &std::path::Path, extra: &[&str]| {
        let out = ocireg()
            .args([
                "pull",
                "--progress",
                "json",
                &format!("{addr}/test/repo:v1"),
            ])
            .arg(dir)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{l}: {e}"))
            })
            .collect::<Vec<_>>()
    };
    let run = || run_into(dir.path(), &[]);
    let events = run();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"manifest"));
    assert_eq!(kinds.last(), Some(&"summary"));
    for blob in img.blobs() {
        let d = ocireg_core::Digest::sha256(blob).to_string();
        let pos = |k: &str| {
            events
                .iter()
                .position(|e| e["event"] == k && e["blob"] == d.as_str())
        };
        let (s, done) = (pos("started").unwrap(), pos("done").unwrap());
        assert!(s < done);
        assert_eq!(events[done]["size"], blob.len());
    }
    assert!(kinds.contains(&"progress"));
    let summary = events.last().unwrap();
    assert_eq!(summary["digest"], img.digest().to_string());
    assert_eq!(summary["fetched"], 3);
    assert_eq!(summary["durable"], true);
    assert_eq!(
        summary["bytes"],
        img.blobs().map(|b| b.len()).sum::<usize>()
    );
    // again: every blob is found, nothing is transferred
    let events = run();
    let summary = events.last().unwrap();
    assert_eq!(
        (
            summary["fetched"].as_u64(),
            summary["skipped"].as_u64(),
            summary["bytes"].as_u64()
        ),
        (Some(0), Some(3), Some(0))
    );
    assert_eq!(events.iter().filter(|e| e["event"] == "skipped").count(), 3);
    // --no-fsync: said in the summary, and the layout is the same: a pull over it that
    // re-hashes every blob finds nothing to fetch
    let other = tempfile::tempdir().unwrap();
    let summary = run_into(other.path(), &["--no-fsync"]).pop().unwrap();
    assert_eq!(
        (summary["durable"].as_bool(), summary["fetched"].as_u64()),
        (Some(false), Some(3))
    );
    let summary = run_into(other.path(), &["--verify-existing"])
        .pop()
        .unwrap();
    assert_eq!(
        (summary["fetched"].as_u64(), summary["skipped"].as_u64()),
        (Some(0), Some(3))
    );
    // --hash-threads: the 3 MiB layer is hashed on a thread of its own, and verified
    let third = tempfile::tempdir().unwrap();
    let summary = run_into(third.path(), &["--hash-threads", "2"])
        .pop()
        .unwrap();
    assert_eq!(summary["fetched"].as_u64(), Some(3));
}

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
    let out = ocireg()
        .args(["tags", "--page-size", "2", &repo])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    // a registry is host[:port], not a repository
    let out = ocireg().args(["catalog", "not a host"]).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
}

/// Runs `ocireg` with `args` and the layout `dir` last; stdout parsed as JSON lines.
fn json_events(
    args: &[&str],
    dir: &std::path::Path,
) -> (std::process::Output, Vec<serde_json::Value>) {
    let out = ocireg().args(args).arg(dir).output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (out, events)
}

/// The faults a user meets, as the CLI reports them: a 503 is a `retry` event, a cut a
/// `resumed` one (JSON) or a `resume` line (plain); `--attempts 1` turns the same 503
/// into exit 1 with a `failed` event after one request; `--timeout` ends a stalled pull
/// in about that time; `--concurrency 1` downloads one blob after the other.
#[test]
fn fault_events_and_the_flags_that_bound_a_pull() {
    use ocireg_registry::{Fault, Rule};
    let img = image(58, &[300_000, 200_000], &Platform::host(), false);
    let faults = || {
        vec![
            Rule {
                path_contains: "/manifests/".into(),
                fault: Fault::FailFirst {
                    times: 1,
                    status: 503,
                },
            },
            Rule::blobs(Fault::CutBody {
                after: 100_000,
                times: 1,
            }),
        ]
    };
    let (addr, reg, _rt) = inprocess(&img, faults());
    let reference = format!("{addr}/test/repo:v1");
    let dir = tempfile::tempdir().unwrap();
    let (out, events) = json_events(
        &[
            "pull",
            "--progress",
            "json",
            "--concurrency",
            "1",
            &reference,
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    let retry = events
        .iter()
        .find(|e| e["event"] == "retry")
        .expect("a retry event");
    assert!(retry["error"].as_str().unwrap().contains("503"), "{retry}");
    assert_eq!(retry["attempt"], 2);
    assert!(kinds.contains(&"resumed"), "{kinds:?}");
    // --concurrency 1: a blob's bytes never arrive while another blob is between its
    // start and its end
    let mut open: Option<&str> = None;
    for e in &events {
        let blob = e["blob"].as_str();
        match e["event"].as_str().unwrap() {
            "started" => {
                assert!(open.is_none(), "two blobs at once: {events:?}");
                open = blob;
            }
            "progress" | "resumed" => assert_eq!(open, blob, "{events:?}"),
            "done" => {
                assert!(open.is_none() || open == blob, "{events:?}");
                open = None;
            }
            _ => {}
        }
    }

    // plain progress: one line per notable event on stderr
    reg.lock().unwrap().set_rules(faults());
    let dir = tempfile::tempdir().unwrap();
    let out = ocireg()
        .args(["pull", "--progress", "plain", &reference])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("retry ") && l.contains("503")),
        "{err}"
    );
    assert!(err.lines().any(|l| l.starts_with("resume ")), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("done ")).count(),
        3,
        "{err}"
    );

    // --attempts 1: the 503 is final
    reg.lock().unwrap().set_rules(faults());
    let seen_before = reg.lock().unwrap().log.len();
    let dir = tempfile::tempdir().unwrap();
    let (out, events) = json_events(
        &["pull", "--progress", "json", "--attempts", "1", &reference],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let failed = events.last().unwrap();
    assert_eq!(failed["event"], "failed", "{events:?}");
    assert!(
        failed["error"].as_str().unwrap().contains("503"),
        "{failed}"
    );
    assert_eq!(
        reg.lock().unwrap().log.len() - seen_before,
        1,
        "one request, no retry"
    );

    // --timeout: a body that stalls for good ends the pull at the deadline
    reg.lock()
        .unwrap()
        .set_rules(vec![Rule::blobs(Fault::StallBody {
            after: 1_000,
            times: u32::MAX,
        })]);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = ocireg()
        .args(["pull", "--timeout", "2", &reference])
        .arg(dir.path())
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deadline exceeded"), "{err}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
}

#[test]
fn killed_pull_resumes_from_its_partial_file() {
    use ocireg_registry::{Fault, Rule};
    let size = 24 << 20;
    let img = image(54, &[size], &Platform::host(), false);
    // the layer stalls after 10 MiB: the pull hangs there and is killed
    let stall_at = 10 << 20;
    let (addr, reg, _rt) = inprocess(
        &img,
        vec![Rule::blobs(Fault::StallBody {
            after: stall_at,
            times: 1,
        })],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = ocireg()
        .args([
            "pull",
            "--progress",
            "none",
            &format!("{addr}/test/repo:v1"),
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = dir.path().join("ingest").join(format!(
        "sha256-{}.partial",
        ocireg_core::Digest::sha256(&img.layers[0]).hex()
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) < stall_at as u64 {
        assert!(
            Instant::now() < deadline,
            "the partial file never reached the stall point"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !dir.path().join("index.json").exists(),
        "a killed pull records no image"
    );
    let sent_before: usize = reg.lock().unwrap().log.iter().map(|s| s.body_bytes).sum();

    let out = ocireg()
        .args([
            "pull",
            "--progress",
            "json",
            &format!("{addr}/test/repo:v1"),
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = reg.lock().unwrap().log.clone();
    let layer_req = log
        .iter()
        .rev()
        .find(|s| s.path.contains("/blobs/") && s.range.is_some())
        .expect("a range request");
    assert_eq!(
        layer_req.range.as_deref(),
        Some(format!("bytes={stall_at}-{}", size - 1).as_str())
    );
    let sent_total: usize = log.iter().map(|s| s.body_bytes).sum();
    let content = img.blobs().map(|b| b.len()).sum::<usize>() + img.manifest.len() * 2;
    assert!(
        sent_total <= content + 1024,
        "{sent_total} bytes sent in two runs for {content}"
    );
    assert!(sent_before >= stall_at);
    assert_eq!(layout_blobs(dir.path()).len(), 3);
    for d in layout_blobs(dir.path()) {
        ocireg_driver::layout::read_blob(dir.path(), &ocireg_core::Digest::parse(&d).unwrap())
            .unwrap();
    }
}

#[test]
fn inspect_tags_and_platforms_against_a_real_registry() {
    let reg = RealRegistry::start(Mode::Open);
    let img = image(55, &[1000], &Platform::host(), false);
    for t in ["v1", "v2", "latest"] {
        reg.push(&img, "cli/many", t);
    }
    let out = ocireg()
        .args(["tags", "--plain-http", &format!("{}/cli/many", reg.addr)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "latest\nv1\nv2\n");
    // `--page-size` sends `n`; docker-registry 2.8 answers every tag in one page anyway
    // (paging by `Link` is exercised against the test registry, which does page), and
    // the answer is read whole
    let out = ocireg()
        .args([
            "tags",
            "--plain-http",
            "--page-size",
            "2",
            "--max-pages",
            "1",
        ])
        .arg(format!("{}/cli/many", reg.addr))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let out = ocireg()
        .args([
            "pull",
            "--plain-http",
            "--platform",
            "linux/riscv64",
            &format!("{}/cli/multi:v1", reg.addr),
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

#[test]
fn blocking_driver_pulls_without_an_async_runtime() {
    use ocireg_registry::{Fault, Rule};
    let img = image(58, &[5000, 700_000], &Platform::host(), false);
    // with retries, redirects, tokens and cut bodies, over https-then-http fallback
    let (addr, reg, _rt) = inprocess(&img, vec![]);
    reg.lock().unwrap().set_rules(vec![
        Rule::all(Fault::FailFirst {
            times: 1,
            status: 503,
        }),
        Rule::all(Fault::RedirectOnce),
        Rule::all(Fault::Token {
            realm: format!("http://{addr}/token"),
            service: "svc".into(),
        }),
        Rule::blobs(Fault::CutBody {
            after: 200_000,
            times: 2,
        }),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_blocking-pull"))
        .arg(format!("{addr}/test/repo:v1"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&img.digest().to_string()));
    assert_eq!(
        layout_blobs(dir.path()),
        ocireg_tests::sim::image_digests(&img)
    );
    assert_eq!(skopeo_roundtrip(dir.path(), "v1"), img.digest().to_string());
}

#[test]
fn async_std_runtime_from_the_cli() {
    let img = image(59, &[5000, 300_000], &Platform::host(), false);
    let (addr, _reg, _rt) = inprocess(&img, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let out = ocireg()
        .args([
            "pull",
            "--runtime",
            "async-std",
            &format!("{addr}/test/repo:v1"),
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(layout_blobs(dir.path()).len(), 4);
}

#[test]
fn every_command_runs_on_async_std() {
    // serve a pulled layout on async-std, then inspect and list tags on async-std
    let img = image(60, &[4000], &Platform::host(), false);
    let (addr, _reg, _rt) = inprocess(&img, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let out = ocireg()
        .args(["--runtime", "async-std", "pull", "--progress", "none"])
        .arg(format!("{addr}/test/repo:v1"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut server = ocireg()
        .args(["serve", "--runtime", "async-std", "--addr", "127.0.0.1:0"])
        .args(["--repository", "served/copy"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    // the reader stays open while the server runs
    let mut reader = std::io::BufReader::new(server.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    let served = line
        .trim()
        .rsplit("http://")
        .next()
        .expect("serving … on http://addr")
        .to_string();
    let inspect = ocireg()
        .args(["inspect", "--runtime", "async-std", "--plain-http"])
        .arg(format!("{served}/served/copy:v1"))
        .output()
        .unwrap();
    let tags = ocireg()
        .args(["tags", "--runtime", "async-std", "--plain-http"])
        .arg(format!("{served}/served/copy"))
        .output()
        .unwrap();
    let catalog = ocireg()
        .args(["catalog", "--runtime", "async-std", "--plain-http", &served])
        .output()
        .unwrap();
    let referrers = ocireg()
        .args(["referrers", "--runtime", "async-std", "--plain-http"])
        .arg(format!("{served}/served/copy:v1"))
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    assert!(String::from_utf8_lossy(&inspect.stdout).contains(&img.digest().to_string()));
    assert_eq!(String::from_utf8_lossy(&tags.stdout).trim(), "v1");
    assert_eq!(
        String::from_utf8_lossy(&catalog.stdout).trim(),
        "served/copy"
    );
    assert!(
        String::from_utf8_lossy(&referrers.stdout).starts_with("no referrers of"),
        "{}",
        String::from_utf8_lossy(&referrers.stderr)
    );
}

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
    let out = ocireg()
        .args(["pull", "--plain-http", &at("src/app:v1")])
        .arg(pulled.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let push = |args: &[&str]| {
        let out = ocireg()
            .args(["push", "--plain-http", "--progress", "json"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
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
    let out = ocireg()
        .args(["pull", "--plain-http", &at("dst/app:v2")])
        .arg(back.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
        let out = ocireg()
            .args(["copy", "--plain-http", &from_ref, &to_ref])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
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
    let out = ocireg()
        .args(["inspect", "--plain-http", &at("copied/app:latest")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
