//! The CLI against `docker-registry` with `http.tls.clientcas`: refused without a client
//! certificate, in one line that names the flags; pull and push with `--cert`/`--key`,
//! with `--cert-dir`, and with a hosts.toml `client`; unusable certificate files are
//! usage errors that name the file.

use super::*;

#[test]
fn client_certificates_from_flags_a_cert_dir_and_hosts_toml() {
    let reg = RealRegistry::start(Mode::MutualTls);
    let img = image(160, &[3000, 9000], &Platform::host(), false);
    reg.push(&img, "mtls/app", "v1");
    let ca = reg.ca.clone().unwrap().display().to_string();
    let (cert, key) = reg.client.clone().unwrap();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let at = |r: &str| format!("{}/{r}", reg.addr);
    let work = tempfile::tempdir().unwrap();
    // without one: refused, one line, the way out named
    let out = ocireg()
        .args(["inspect", "--ca-file", &ca, &at("mtls/app:v1")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("client certificate") && err.contains("--cert"),
        "{err}"
    );
    // --cert and --key: pull, then push what was pulled
    ok(ocireg()
        .args(["pull", "--ca-file", &ca, "--cert", &cert, "--key", &key])
        .arg(at("mtls/app:v1"))
        .arg(work.path().join("a")));
    ok(ocireg()
        .args(["push", "--ca-file", &ca, "--cert", &cert, "--key", &key])
        .arg(work.path().join("a"))
        .arg(at("mtls/pushed:v1")));
    // --cert-dir: its CA and its pair
    let certs_d = reg.dir.path().join("certs.d");
    let out = ok(ocireg()
        .args(["digest", "--cert-dir"])
        .arg(&certs_d)
        .arg(at("mtls/pushed:v1")));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        img.digest().to_string()
    );
    // hosts.toml: the registry as its own host, with its CA and client pair
    let hosts = tempfile::tempdir().unwrap();
    let dir = hosts.path().join(&reg.addr);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hosts.toml"),
        format!(
            "server = \"https://{0}\"\n[host.\"https://{0}\"]\ncapabilities = [\"pull\", \"resolve\"]\nca = \"{ca}\"\nclient = [[\"{cert}\", \"{key}\"]]\n",
            reg.addr
        ),
    )
    .unwrap();
    ok(ocireg()
        .args(["pull", "--hosts-dir"])
        .arg(hosts.path())
        .arg(at("mtls/app:v1"))
        .arg(work.path().join("b")));
    // unusable files: usage errors naming the file
    let out = ocireg()
        .args([
            "inspect",
            "--cert",
            &cert,
            "--key",
            &cert,
            &at("mtls/app:v1"),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&cert), "{err}");
    let other_key = work.path().join("other.key");
    std::fs::copy(reg.dir.path().join("tls/server.key"), &other_key).unwrap();
    let out = ocireg()
        .args(["inspect", "--cert", &cert, "--key"])
        .arg(&other_key)
        .arg(at("mtls/app:v1"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("do not belong together") && err.contains("other.key"),
        "{err}"
    );
    let out = ocireg()
        .args([
            "inspect",
            "--cert",
            "/nonexistent/c.pem",
            "--key",
            &key,
            &at("mtls/app:v1"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/c.pem"));
}
