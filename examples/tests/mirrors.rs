//! Pulling through mirrors from the command line (`--hosts-dir`, containerd's
//! `hosts.toml`), against real `docker-registry`s on loopback: a dead mirror is passed
//! over, a mirror that holds the image serves all of it (the upstream sends no blob, by
//! its own log), and with the mirror gone the upstream serves it. TLS verification stays
//! on unless `--insecure-skip-tls-verify` is given, and that flag is warned about.

use std::path::Path;

use ocireg_core::Platform;
use ocireg_registry::images::image;
use ocireg_tests::real::{layout_blobs, Mode, RealRegistry};

mod support;
use support::{fail, ocireg, run_ok, succeed};

/// Blob downloads in a registry's log lines.
fn blob_gets(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.starts_with("GET") && l.contains("/blobs/sha256:"))
        .count()
}

fn write_hosts(dir: &Path, registry: &str, text: &str) {
    let d = dir.join(registry);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("hosts.toml"), text).unwrap();
}

#[test]
fn a_dead_mirror_is_passed_over_and_a_live_one_serves_everything() {
    let img = image(65, &[3000, 200_000], &Platform::host(), false);
    let upstream = RealRegistry::start(Mode::Open);
    upstream.push(&img, "team/app", "v1");
    let mirror = RealRegistry::start(Mode::Open);
    mirror.push(&img, "team/app", "v1");
    let hosts = tempfile::tempdir().unwrap();
    write_hosts(
        hosts.path(),
        &upstream.addr,
        &format!(
            "[host.\"http://127.0.0.1:{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n\n\
             [host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            ocireg_tests::real::free_port(),
            mirror.addr
        ),
    );
    let (_, upstream_from) = upstream.requests_since(0);
    let (_, mirror_from) = mirror.requests_since(0);
    let reference = format!("{}/team/app:v1", upstream.addr);
    let pull = |layout: &Path, runtime: &str| {
        let mut args: Vec<std::ffi::OsString> = [
            "--runtime",
            runtime,
            "pull",
            "--plain-http",
            "--progress",
            "plain",
            "--hosts-dir",
        ]
        .map(Into::into)
        .into();
        args.extend([hosts.path().into(), reference.clone().into(), layout.into()]);
        String::from_utf8_lossy(&run_ok(&args).stderr).into_owned()
    };
    let first = tempfile::tempdir().unwrap();
    let said = pull(first.path(), "tokio");
    assert!(
        said.contains("fallback"),
        "the dead mirror is reported: {said}"
    );
    let want: Vec<String> = {
        let mut v: Vec<String> = img
            .blobs()
            .chain([&img.manifest])
            .map(|b| ocireg_core::Digest::sha256(b).to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(layout_blobs(first.path()), want);
    let (upstream_log, _) = upstream.requests_since(upstream_from);
    let (mirror_log, _) = mirror.requests_since(mirror_from);
    assert_eq!(blob_gets(&upstream_log), 0, "{upstream_log:?}");
    assert_eq!(blob_gets(&mirror_log), 3, "{mirror_log:?}");
    // the image is named by the tag as written, whichever host served it
    let index = std::fs::read_to_string(first.path().join("index.json")).unwrap();
    assert!(index.contains("\"v1\""), "{index}");

    // the mirror stops: the upstream serves it all (on the other runtime)
    drop(mirror);
    let (_, upstream_from) = upstream.requests_since(0);
    let second = tempfile::tempdir().unwrap();
    pull(second.path(), "async-std");
    assert_eq!(layout_blobs(second.path()), want);
    let (upstream_log, _) = upstream.requests_since(upstream_from);
    assert_eq!(blob_gets(&upstream_log), 3, "{upstream_log:?}");
}

#[test]
fn skip_verify_needs_the_insecure_flag_which_is_loudly_warned() {
    let img = image(66, &[1000], &Platform::host(), false);
    let tls = RealRegistry::start(Mode::OpenTls);
    tls.push(&img, "team/app", "v1");
    let reference = format!("{}/team/app:v1", tls.addr);
    // the registry's own CA is not given: verification fails, as it should
    let layout = tempfile::tempdir().unwrap();
    let os = |s: &str| std::ffi::OsString::from(s);
    let (reference_arg, layout_arg) = (os(&reference), layout.path().as_os_str().to_owned());
    fail(&[
        &os("pull"),
        &os("--attempts"),
        &os("1"),
        &reference_arg,
        &layout_arg,
    ]);
    // a hosts.toml that asks to skip verification is refused without the flag
    let hosts = tempfile::tempdir().unwrap();
    write_hosts(
        hosts.path(),
        &tls.addr,
        &format!("[host.\"https://{}\"]\n  skip_verify = true\n", tls.addr),
    );
    let err = fail(&[
        &os("pull"),
        &os("--hosts-dir"),
        hosts.path().as_os_str(),
        &reference_arg,
        &layout_arg,
    ]);
    assert!(
        err.contains("skip_verify") && err.contains("--insecure-skip-tls-verify"),
        "{err}"
    );
    // with the flag: it works, and says what it gave up
    let out = ocireg()
        .args([
            "pull",
            "--insecure-skip-tls-verify",
            "--progress",
            "plain",
            &reference,
        ])
        .arg(layout.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("WARNING") && err.contains("no server certificate is checked"),
        "{err}"
    );
    // the CA file is the way that keeps verification on
    succeed(&[
        "pull",
        "--ca-file",
        tls.ca.as_ref().unwrap().to_str().unwrap(),
        &reference,
        layout.path().to_str().unwrap(),
    ]);
}

/// A mirror's `ca` vouches for that mirror alone: named for a mirror, it lets ocireg pull
/// from that mirror over TLS, and it does not make the upstream's certificate trusted
/// when the upstream was signed by it (trust is per host, as the CA file is).
#[test]
fn a_mirrors_ca_is_trusted_for_that_mirror_only() {
    let img = image(67, &[1500], &Platform::host(), false);
    let upstream = RealRegistry::start(Mode::OpenTls);
    upstream.push(&img, "team/app", "v1");
    let mirror = RealRegistry::start(Mode::OpenTls);
    mirror.push(&img, "team/app", "v1");
    let (upstream_ca, mirror_ca) = (upstream.ca.clone().unwrap(), mirror.ca.clone().unwrap());
    let reference = format!("{}/team/app:v1", upstream.addr);
    let pull = |hosts: &Path| {
        let layout = tempfile::tempdir().unwrap();
        let out = ocireg()
            .args([
                "pull",
                "--attempts",
                "1",
                "--progress",
                "plain",
                "--hosts-dir",
            ])
            .arg(hosts)
            .arg(&reference)
            .arg(layout.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // the mirror's CA serves the mirror: the pull succeeds, and the upstream (whose CA
    // nobody gave) is never needed
    let hosts = tempfile::tempdir().unwrap();
    write_hosts(
        hosts.path(),
        &upstream.addr,
        &format!(
            "[host.\"https://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = {:?}\n",
            mirror.addr,
            mirror_ca.to_str().unwrap()
        ),
    );
    let (ok, said) = pull(hosts.path());
    assert!(ok, "{said}");
    // the upstream's CA named for a mirror that is down: the upstream is then asked, and
    // its certificate is not trusted through that mirror's entry
    let hosts = tempfile::tempdir().unwrap();
    write_hosts(
        hosts.path(),
        &upstream.addr,
        &format!(
            "[host.\"https://127.0.0.1:{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = {:?}\n",
            ocireg_tests::real::free_port(),
            upstream_ca.to_str().unwrap()
        ),
    );
    let (ok, said) = pull(hosts.path());
    assert!(
        !ok,
        "the upstream was trusted through a mirror's CA: {said}"
    );
    assert!(said.to_lowercase().contains("certificate"), "{said}");
}

/// A push (and a copy's target) goes where containerd sends it: the first host whose
/// `hosts.toml` entry has the `push` capability, else the upstream; a mirror that does
/// not say `push` is never pushed to.
#[test]
fn a_push_goes_to_the_host_with_the_push_capability() {
    let img = image(66, &[3000], &Platform::host(), false);
    let upstream = RealRegistry::start(Mode::Open);
    let reads_only = RealRegistry::start(Mode::Open);
    let push_host = RealRegistry::start(Mode::Open);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    ocireg_tests::real::write_oci_layout(&layout, &[(&img, Some("v1"))], &[]);
    let hosts = tempfile::tempdir().unwrap();
    let push = |target: &str| {
        run_ok(&[
            "push".as_ref(),
            "--plain-http".as_ref(),
            "--hosts-dir".as_ref(),
            hosts.path().as_os_str(),
            layout.as_os_str(),
            target.as_ref(),
        ])
    };
    let has = |reg: &RealRegistry, r: &str| {
        let (lines, _) = reg.requests_since(0);
        lines
            .iter()
            .any(|l| l.starts_with("PUT") && l.contains(&format!("/v2/{r}/manifests/")))
    };
    // a mirror without `push`: the upstream takes it
    write_hosts(
        hosts.path(),
        &upstream.addr,
        &format!(
            "[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            reads_only.addr
        ),
    );
    push(&format!("{}/team/first:v1", upstream.addr));
    assert!(has(&upstream, "team/first"));
    assert!(!has(&reads_only, "team/first"));
    // a host with `push`: it takes the push, the upstream sees none
    write_hosts(
        hosts.path(),
        &upstream.addr,
        &format!(
            "[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n\n\
             [host.\"http://{}\"]\n  capabilities = [\"push\"]\n",
            reads_only.addr, push_host.addr
        ),
    );
    push(&format!("{}/team/second:v1", upstream.addr));
    assert!(has(&push_host, "team/second"));
    assert!(!has(&upstream, "team/second"));
    assert!(!has(&reads_only, "team/second"));
}

/// The upstream's credentials (`--username`/`--password-stdin`) go to the upstream
/// alone: a mirror that asks for exactly those credentials (one fishing for them) gets
/// none, so the pull falls back to the upstream, which takes them.
#[test]
fn the_upstreams_credentials_never_reach_a_mirror() {
    use ocireg_tests::real::{PASSWORD, USER};
    let img = image(67, &[3000], &Platform::host(), false);
    let upstream = RealRegistry::start(Mode::Basic);
    upstream.push(&img, "team/app", "v1");
    let mut r = ocireg_registry::Registry::new();
    img.add_to(&mut r, "team/app", Some("v1"));
    let fishing = ocireg_registry::Rule::all(ocireg_registry::Fault::Basic {
        username: USER.into(),
        password: PASSWORD.into(),
    });
    let (mirror, mirror_reg, _rt) = support::serve_inprocess(r, vec![fishing]);
    let no_docker_config = tempfile::tempdir().unwrap();
    let hosts = tempfile::tempdir().unwrap();
    write_hosts(
        hosts.path(),
        &upstream.addr,
        &format!("[host.\"http://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
    );
    let layout = tempfile::tempdir().unwrap();
    let out = support::output_with_stdin(
        ocireg()
            .env("DOCKER_CONFIG", no_docker_config.path())
            .args(["pull", "--plain-http", "--hosts-dir"])
            .arg(hosts.path())
            .args(["--username", USER, "--password-stdin"])
            .arg(format!("{}/team/app:v1", upstream.addr))
            .arg(layout.path()),
        PASSWORD.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = mirror_reg.lock().unwrap().log.clone();
    assert!(!log.is_empty(), "the mirror was not asked");
    assert!(
        log.iter().all(|s| s.auth_scheme.is_none()),
        "the mirror was sent credentials: {log:?}"
    );
    // the upstream served it, with the credentials
    let (lines, _) = upstream.requests_since(0);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("GET") && l.contains("/blobs/")),
        "{lines:?}"
    );
}
