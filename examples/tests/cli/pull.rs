//! `ocireg pull` and `serve`: against the real registry and the in-process one with faults, progress, resuming a killed pull, the blocking driver.

use super::*;

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
    let out = ok(ocireg().args(["demo", "--dir"]).arg(&demo_dir));
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
fn progress_json_and_second_pull_transfers_nothing() {
    let img = image(53, &[100_000, 3 << 20], &Platform::host(), false);
    let (addr, _reg, _rt) = inprocess(&img, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let run_into = |dir: &std::path::Path, extra: &[&str]| {
        let out = ok(ocireg()
            .args([
                "pull",
                "--progress",
                "json",
                &format!("{addr}/test/repo:v1"),
            ])
            .arg(dir)
            .args(extra));
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

    ok(ocireg()
        .args([
            "pull",
            "--progress",
            "json",
            &format!("{addr}/test/repo:v1"),
        ])
        .arg(dir.path()));
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

/// `--hash-threads`: a 3 MiB layer whose bytes are not its digest is caught on the hash
/// threads' path too: exit 1, the digest named, nothing named in the layout.
#[test]
fn hash_threads_catch_a_layer_that_is_not_its_digest() {
    let img = image(63, &[3 << 20], &Platform::host(), false);
    let mut r = ocireg_registry::Registry::new();
    img.add_to(&mut r, "test/repo", Some("v1"));
    let layer = &img.layers[0];
    let other = ocireg_registry::images::random_bytes(98, layer.len());
    r.add_blob_with_digest("test/repo", ocireg_core::Digest::sha256(layer), other);
    let (addr, _reg, _rt) = serve_inprocess(r, vec![]);
    let dir = tempfile::tempdir().unwrap();
    let out = ocireg()
        .args(["pull", "--plain-http", "--hash-threads", "2"])
        .arg(format!("{addr}/test/repo:v1"))
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&ocireg_core::Digest::sha256(layer).to_string()),
        "{err}"
    );
    assert!(!layout_blobs(dir.path()).contains(&ocireg_core::Digest::sha256(layer).to_string()));
}
