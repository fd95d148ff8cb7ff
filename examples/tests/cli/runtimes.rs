//! Every command on the async-std and smol runtimes as well.

use super::*;

/// `--runtime` chooses the sockets a run uses: `-v` names the transport made, and its
/// type is that runtime's (tokio's by default).
#[test]
fn the_runtime_flag_chooses_the_transport() {
    let img = image(59, &[5000, 300_000], &Platform::host(), false);
    let (addr, _reg, _rt) = inprocess(&img, vec![]);
    for (runtime, sockets) in [
        (None, "hyper_rustls"),
        (Some("tokio"), "hyper_rustls"),
        (Some("async-std"), "AsyncStdSockets"),
        (Some("smol"), "SmolSockets"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = ocireg();
        if let Some(r) = runtime {
            cmd.args(["--runtime", r]);
        }
        let out = ok(cmd
            .args(["pull", "-v", &format!("{addr}/test/repo:v1")])
            .arg(dir.path()));
        assert_eq!(layout_blobs(dir.path()).len(), 4);
        let err = String::from_utf8_lossy(&out.stderr);
        let transport = err
            .lines()
            .find(|l| l.contains("transport: "))
            .unwrap_or_else(|| panic!("{runtime:?}: no transport named: {err}"));
        assert!(transport.contains(sockets), "{runtime:?}: {transport}");
        for other in ["hyper_rustls", "AsyncStdSockets", "SmolSockets"] {
            assert!(
                other == sockets || !transport.contains(other),
                "{transport}"
            );
        }
    }
}

#[test]
fn every_command_runs_on_async_std() {
    every_command_runs_on("async-std", 60);
}

#[test]
fn every_command_runs_on_smol() {
    every_command_runs_on("smol", 61);
}

/// Serves a pulled layout on `runtime`, then inspects, lists tags, the catalog and
/// referrers on it.
fn every_command_runs_on(runtime: &str, seed: u64) {
    let img = image(seed, &[4000], &Platform::host(), false);
    let (addr, _reg, _rt) = inprocess(&img, vec![]);
    let dir = tempfile::tempdir().unwrap();
    ok(ocireg()
        .args(["--runtime", runtime, "pull", "--progress", "none"])
        .arg(format!("{addr}/test/repo:v1"))
        .arg(dir.path()));
    let mut server = ocireg()
        .args(["serve", "--runtime", runtime, "--addr", "127.0.0.1:0"])
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
        .args(["inspect", "--runtime", runtime, "--plain-http"])
        .arg(format!("{served}/served/copy:v1"))
        .output()
        .unwrap();
    let tags = ocireg()
        .args(["tags", "--runtime", runtime, "--plain-http"])
        .arg(format!("{served}/served/copy"))
        .output()
        .unwrap();
    let catalog = ocireg()
        .args(["catalog", "--runtime", runtime, "--plain-http", &served])
        .output()
        .unwrap();
    let referrers = ocireg()
        .args(["referrers", "--runtime", runtime, "--plain-http"])
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

/// `--http1.1` speaks HTTP/1.1 to a registry that offers HTTP/2 over TLS (the
/// registry's own access log says which protocol each request came in), on every
/// runtime; without it, HTTP/2 is spoken.
#[test]
fn http1_only_speaks_http_1_1_to_a_registry_that_offers_http_2() {
    let reg = RealRegistry::start(Mode::OpenTls);
    let img = image(62, &[2000], &Platform::host(), false);
    reg.push(&img, "proto/app", "v1");
    let ca = reg.ca.clone().unwrap().display().to_string();
    let target = format!("{}/proto/app:v1", reg.addr);
    for runtime in ["tokio", "async-std", "smol"] {
        for (flag, protocol) in [(Some("--http1.1"), "HTTP/1.1"), (None, "HTTP/2.0")] {
            let (_, from) = reg.requests_since(0);
            let mut cmd = ocireg();
            cmd.args(["--runtime", runtime, "inspect", "--ca-file", &ca]);
            if let Some(f) = flag {
                cmd.arg(f);
            }
            ok(cmd.arg(&target));
            let (lines, _) = reg.requests_since(from);
            let manifest: Vec<&String> = lines
                .iter()
                .filter(|l| l.contains("/v2/proto/app/manifests/v1"))
                .collect();
            assert!(!manifest.is_empty(), "{runtime}: {lines:?}");
            for l in manifest {
                assert!(l.ends_with(protocol), "{runtime} {flag:?}: {l}");
            }
        }
    }
}
