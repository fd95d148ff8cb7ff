//! Every command on the async-std and smol runtimes as well.

use super::*;

#[test]
fn async_std_runtime_from_the_cli() {
    let img = image(59, &[5000, 300_000], &Platform::host(), false);
    let (addr, _reg, _rt) = inprocess(&img, vec![]);
    let dir = tempfile::tempdir().unwrap();
    ok(ocireg()
        .args([
            "pull",
            "--runtime",
            "async-std",
            &format!("{addr}/test/repo:v1"),
        ])
        .arg(dir.path()));
    assert_eq!(layout_blobs(dir.path()).len(), 4);
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
