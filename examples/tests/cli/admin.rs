//! `ocireg login`/`logout`, `tag`, `digest` and `delete` against a real registry:
//! credentials checked before anything is stored, stored where a later command (and
//! docker) finds them; a registry that refuses deletes named with the setting to change.

use super::*;

/// Runs `ocireg args` with `DOCKER_CONFIG` at `cfg` and `stdin` as its input.
fn with_stdin(cfg: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    support::output_with_stdin(
        ocireg()
            .env("DOCKER_CONFIG", cfg)
            .env_remove("OCIREG_PASSWORD")
            .env_remove("OCIREG_USERNAME")
            .args(args),
        stdin.as_bytes(),
    )
}

#[test]
fn login_checks_then_stores_and_logout_removes() {
    login_round(&RealRegistry::start(Mode::Basic));
}

/// The same against token auth: the credentials are checked by getting a token for the
/// API root from the token server (which refuses anonymous users here).
#[test]
fn login_with_token_auth_checks_then_stores() {
    use ocireg_tests::real::{PASSWORD, USER};
    use ocireg_tests::token_server::TokenServer;
    let keys = tempfile::tempdir().unwrap();
    let users = [(USER.to_string(), PASSWORD.to_string())]
        .into_iter()
        .collect();
    let ts = TokenServer::start(keys.path(), users, false, 300);
    let reg = RealRegistry::start_token(&ts.realm, keys.path());
    login_round(&reg);
    // the check asked the token service with the user's credentials
    let log = ts.log.lock().unwrap();
    assert!(
        log.iter().any(|r| r.user.as_deref() == Some(USER)),
        "{log:?}"
    );
}

/// Bad credentials store nothing; good ones are stored privately, found by the next
/// command and by skopeo (`--authfile`); logout removes them.
fn login_round(reg: &RealRegistry) {
    use ocireg_tests::real::{PASSWORD, USER};
    let img = image(70, &[3000], &Platform::host(), false);
    reg.push(&img, "admin/app", "v1");
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("config.json");
    let login = |password: &str| {
        with_stdin(
            cfg.path(),
            &[
                "login",
                "--plain-http",
                "--username",
                USER,
                "--password-stdin",
                &reg.addr,
            ],
            password,
        )
    };
    // rejected: nothing stored
    let out = login("not-it");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("rejected") && err.contains("nothing was stored"),
        "{err}"
    );
    assert!(!file.exists());
    // accepted: stored, private, and found by the next command
    let out = login(PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let dir = tempfile::tempdir().unwrap();
    ok(ocireg()
        .env("DOCKER_CONFIG", cfg.path())
        .args([
            "pull",
            "--plain-http",
            &format!("{}/admin/app:v1", reg.addr),
        ])
        .arg(dir.path()));
    // skopeo finds them in the same file
    let out = ok(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--authfile"])
        .arg(&file)
        .arg(format!("docker://{}/admin/app:v1", reg.addr)));
    assert_eq!(out.stdout, img.manifest);
    // logout: the next pull is refused again
    ok(ocireg()
        .env("DOCKER_CONFIG", cfg.path())
        .args(["logout", &reg.addr]));
    let out = ocireg()
        .env("DOCKER_CONFIG", cfg.path())
        .args([
            "digest",
            "--plain-http",
            &format!("{}/admin/app:v1", reg.addr),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // a password on the command line is refused (a usage error)
    let out = ocireg()
        .args([
            "login",
            "--username",
            USER,
            "--password",
            PASSWORD,
            &reg.addr,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn login_to_a_registry_that_needs_nothing_stores_nothing() {
    let reg = RealRegistry::start(Mode::Open);
    let cfg = tempfile::tempdir().unwrap();
    let out = with_stdin(
        cfg.path(),
        &[
            "login",
            "--plain-http",
            "--username",
            "me",
            "--password-stdin",
            &reg.addr,
        ],
        "pw",
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("nothing was stored"), "{said}");
    assert!(!cfg.path().join("config.json").exists());
}

#[test]
fn tag_digest_and_a_registry_that_refuses_deletes() {
    let reg = RealRegistry::start(Mode::Open);
    let img = image(71, &[3000], &Platform::host(), false);
    reg.push(&img, "admin/app", "v1");
    let at = |r: &str| format!("{}/{r}", reg.addr);
    let (_, from) = reg.requests_since(0);
    ok(ocireg().args([
        "tag",
        "--plain-http",
        &at("admin/app:v1"),
        "latest",
        "stable",
    ]));
    // the manifest read once and put under each tag: no blob moved
    let (requests, _) = reg.requests_since(from);
    assert!(
        !requests.iter().any(|r| r.contains("/blobs/")),
        "{requests:?}"
    );
    let puts = requests.iter().filter(|r| r.starts_with("PUT ")).count();
    assert_eq!(puts, 2, "{requests:?}");
    // the digest, as skopeo computes it
    let out = ok(ocireg().args(["digest", "--plain-http", &at("admin/app:stable")]));
    let skopeo = ok(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{}", at("admin/app:stable"))));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&skopeo.stdout).trim()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        img.digest().to_string()
    );
    // a tag without --yes and no terminal: nothing deleted, the way out named
    let out = ocireg()
        .args(["delete", "--plain-http", &at("admin/app:latest")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--yes") && err.contains("--tag-only"), "{err}");
    // docker-registry refuses deletes unless configured to take them
    let out = ocireg()
        .args(["delete", "--yes", "--plain-http", &at("admin/app:latest")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("REGISTRY_STORAGE_DELETE_ENABLED"), "{err}");
    let out = ok(ocireg().args(["digest", "--plain-http", &at("admin/app:latest")]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        img.digest().to_string()
    );
}

#[test]
fn deletes_on_a_registry_that_takes_them() {
    let reg = RealRegistry::start_deleting(Mode::Open);
    let img = image(74, &[3000], &Platform::host(), false);
    reg.push(&img, "admin/gone", "v1");
    let at = |r: &str| format!("{}/{r}", reg.addr);
    let layer = ocireg_core::Digest::sha256(&img.layers[0]);
    ok(ocireg().args(["delete", "--yes", "--plain-http", &at("admin/gone:v1")]));
    let out = ocireg()
        .args([
            "digest",
            "--plain-http",
            &at(&format!("admin/gone@{}", img.digest())),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the manifest is still there");
    ok(ocireg().args([
        "delete",
        "--blob",
        "--plain-http",
        &at(&format!("admin/gone@{layer}")),
    ]));
    let out = ocireg()
        .args(["blob", "--plain-http", &at(&format!("admin/gone@{layer}"))])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not found") || err.contains("404") || err.contains("unknown"),
        "{err}"
    );
}

#[test]
fn artifacts_attach_and_an_index_skopeo_copies() {
    let reg = RealRegistry::start(Mode::Open);
    let amd = Platform::parse("linux/amd64").unwrap();
    let arm = Platform::parse("linux/arm64").unwrap();
    reg.push(&image(72, &[3000], &amd, false), "admin/multi", "amd");
    reg.push(&image(73, &[3500], &arm, false), "admin/multi", "arm");
    let at = |r: &str| format!("{}/{r}", reg.addr);
    ok(ocireg().args([
        "index",
        "create",
        "--plain-http",
        &at("admin/multi:both"),
        "--manifest",
        &at("admin/multi:amd"),
        "--manifest",
        &at("admin/multi:arm"),
    ]));
    let copied = tempfile::tempdir().unwrap();
    ok(Command::new("skopeo")
        .args(["copy", "--all", "--src-tls-verify=false"])
        .arg(format!("docker://{}", at("admin/multi:both")))
        .arg(format!("oci:{}:both", copied.path().display())));
    // files as an artifact, back as files
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("policy.rego"), b"package main\n").unwrap();
    ok(ocireg().current_dir(work.path()).args([
        "artifact",
        "push",
        "--plain-http",
        "--artifact-type",
        "application/vnd.example.policy",
        &at("admin/policy:v1"),
        "policy.rego:application/vnd.example.rego",
    ]));
    let files = work.path().join("files");
    ok(ocireg()
        .args(["pull", "--plain-http", "--files"])
        .arg(&files)
        .arg(at("admin/policy:v1"))
        .arg(work.path().join("layout")));
    assert_eq!(
        std::fs::read(files.join("policy.rego")).unwrap(),
        b"package main\n"
    );
    // attached: a referrer of the image (through the referrers tag on this registry)
    std::fs::write(
        work.path().join("sbom.json"),
        b"{\"spdxVersion\":\"SPDX-2.3\"}",
    )
    .unwrap();
    ok(ocireg().current_dir(work.path()).args([
        "attach",
        "--plain-http",
        "--artifact-type",
        "application/spdx+json",
        &at("admin/multi:amd"),
        "sbom.json:application/spdx+json",
    ]));
    let out = ok(ocireg().args(["referrers", "--plain-http", &at("admin/multi:amd")]));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("application/spdx+json"), "{listed}");
}

/// Eight `ocireg attach` processes at once to one image on `docker-registry` (which has
/// no referrers API, and ignores `If-Match`): each lists its artifact in the image's
/// referrers tag, and none drops another's (every writer reads the tag back after a
/// pause and lists itself again where an older copy replaced it).
#[test]
fn eight_concurrent_attaches_keep_every_referrer() {
    let reg = RealRegistry::start(Mode::Open);
    let amd = Platform::parse("linux/amd64").unwrap();
    let img = image(74, &[2000], &amd, false);
    reg.push(&img, "admin/signed", "v1");
    let at = |r: &str| format!("{}/{r}", reg.addr);
    let work = tempfile::tempdir().unwrap();
    let attaches: Vec<_> = (0..8)
        .map(|i| {
            let file = format!("sig{i}.bin");
            std::fs::write(work.path().join(&file), format!("signature {i}")).unwrap();
            ocireg()
                .current_dir(work.path())
                .args(["attach", "--plain-http", "--artifact-type"])
                .arg(format!("application/vnd.example.sig{i}"))
                .arg(at("admin/signed:v1"))
                .arg(file)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in attaches {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = ok(ocireg().args(["referrers", "--plain-http", &at("admin/signed:v1")]));
    let listed = String::from_utf8_lossy(&out.stdout);
    for i in 0..8 {
        assert!(
            listed.contains(&format!("application/vnd.example.sig{i}")),
            "sig{i} lost: {listed}"
        );
    }
    // the referrers tag itself lists the eight, each once
    let tag = ocireg_core::referrers::fallback_tag(&img.digest());
    let out = ok(ocireg().args([
        "manifest",
        "--plain-http",
        &at(&format!("admin/signed:{tag}")),
    ]));
    let index: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 8, "{index}");
}
