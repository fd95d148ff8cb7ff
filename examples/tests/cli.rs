//! The `ocireg` binary: exit codes, messages, pull against a real registry, serve, demo.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ocireg_core::Platform;
use ocireg_registry::images::image;
use ocireg_tests::real::{layout_blobs, skopeo_roundtrip, Mode, RealRegistry};

fn ocireg() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ocireg"))
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let out = ocireg().args(["pull"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = ocireg()
        .args(["pull", "Bad Ref", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("\"Bad Ref\"") || err.contains("Bad Ref"),
        "{err}"
    );
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
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("ocireg: ") && last.contains("Connect"),
        "{err}"
    );
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = ocireg()
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--repository",
            "demo/copy",
        ])
        .arg(&demo_dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let copy = work.path().join("copy");
    let out = ocireg()
        .args(["pull", &format!("127.0.0.1:{port}/demo/copy:v1")])
        .arg(&copy)
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
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
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
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
}
