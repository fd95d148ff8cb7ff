//! Where credentials come from (flags, environment, Docker's config) and what a refusal says.

use super::*;

#[test]
fn credentials_from_flags_env_and_docker_config() {
    use ocireg_tests::real::{PASSWORD, USER};
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
    let out = support::output_with_stdin(
        ocireg()
            .env("DOCKER_CONFIG", empty_cfg.path())
            .args([
                "pull",
                "--plain-http",
                "--username",
                USER,
                "--password-stdin",
                &reference,
            ])
            .arg(dir.path()),
        format!("{PASSWORD}\n").as_bytes(),
    );
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
    ok(ocireg()
        .env("DOCKER_CONFIG", empty_cfg.path())
        .env("OCIREG_USERNAME", USER)
        .env("OCIREG_PASSWORD", PASSWORD)
        .args(["pull", "--plain-http", &reference])
        .arg(dir.path()));

    // Docker's config.json (base64 auth), and an explicit wrong flag wins over it
    let cfg = tempfile::tempdir().unwrap();
    let auth = format!("{USER}:{PASSWORD}");
    let b64 = String::from_utf8(
        support::output_with_stdin(Command::new("base64").arg("-w0"), auth.as_bytes()).stdout,
    )
    .unwrap();
    std::fs::write(
        cfg.path().join("config.json"),
        format!(
            r#"{{"auths":{{"http://{}":{{"auth":"{b64}"}}}}}}"#,
            reg.addr
        ),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    ok(ocireg()
        .env("DOCKER_CONFIG", cfg.path())
        .args(["pull", "--plain-http", &reference])
        .arg(dir.path()));
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
