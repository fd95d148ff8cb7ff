//! A real `docker-registry` (CNCF distribution, Debian package) on loopback, with images
//! generated here and pushed with `skopeo`. Everything listens on 127.0.0.1 only, and the
//! process is killed when the handle drops.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ocireg_core::manifest::OCI_INDEX;
use ocireg_core::Digest;
use ocireg_registry::images::TestImage;
use serde_json::json;

/// How the registry is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain http, no auth.
    Open,
    /// https with a self-signed CA, no auth.
    OpenTls,
    /// https that asks every client for a certificate its CA signed (mutual TLS,
    /// `http.tls.clientcas`); the client's pair is [`RealRegistry::client`], and
    /// `certs.d` holds it with the CA (`--cert-dir`).
    MutualTls,
    /// Plain http with htpasswd basic auth (user `peer`, password `peerpass`).
    Basic,
    /// Plain http with token auth from a [`crate::token_server::TokenServer`].
    Token,
}

/// A running registry.
pub struct RealRegistry {
    child: Child,
    /// Working directory (config, storage, certificates).
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The CA certificate, in TLS mode.
    pub ca: Option<PathBuf>,
    /// The client certificate and key it accepts, in mutual TLS mode.
    pub client: Option<(PathBuf, PathBuf)>,
    /// The mode.
    pub mode: Mode,
}

/// User name in basic mode.
pub const USER: &str = "peer";
/// Password in basic mode.
pub const PASSWORD: &str = "peerpass";

/// Issues, with the CA in `tls`, a certificate for `subject` with the extensions `ext`:
/// its key `<name>.key`, the certificate `out`.
fn issue(tls: &Path, name: &str, subject: &str, ext: &str, out: &str) {
    let t = |f: &str| tls.join(f).display().to_string();
    run(Command::new("openssl").args([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        subject,
        "-keyout",
        &t(&format!("{name}.key")),
        "-out",
        &t(&format!("{name}.csr")),
    ]));
    std::fs::write(tls.join(format!("{name}.cnf")), ext).unwrap();
    run(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        &t(&format!("{name}.csr")),
        "-CA",
        &t("ca.crt"),
        "-CAkey",
        &t("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &t(&format!("{name}.cnf")),
        "-out",
        &t(out),
    ]));
}

/// A loopback port nothing listens on now (a registry about to start there, or one
/// that is down).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (is it installed? .ci/run installs it)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl RealRegistry {
    /// Starts a registry in `mode` and waits until it answers.
    pub fn start(mode: Mode) -> RealRegistry {
        assert!(mode != Mode::Token, "use start_token");
        Self::start_inner(mode, None, false)
    }

    /// Starts a registry in `mode` that takes deletes (`storage.delete.enabled`, off by
    /// default in docker-registry).
    pub fn start_deleting(mode: Mode) -> RealRegistry {
        assert!(mode != Mode::Token, "use start_token");
        Self::start_inner(mode, None, true)
    }

    /// Starts a registry whose token auth trusts the token server with `realm`, signing
    /// with the certificate `token.crt` in `token_dir`.
    pub fn start_token(realm: &str, token_dir: &Path) -> RealRegistry {
        Self::start_inner(
            Mode::Token,
            Some((realm.to_string(), token_dir.join("token.crt"))),
            false,
        )
    }

    fn start_inner(mode: Mode, token: Option<(String, PathBuf)>, deletes: bool) -> RealRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n{}http:\n  addr: {addr}\n  secret: ocireg-test\n",
            storage.display(),
            if deletes { "  delete:\n    enabled: true\n" } else { "" }
        );
        let mut ca = None;
        let mut client = None;
        if matches!(mode, Mode::OpenTls | Mode::MutualTls) {
            let tls = dir.path().join("tls");
            std::fs::create_dir_all(&tls).unwrap();
            let t = |f: &str| tls.join(f).display().to_string();
            run(Command::new("openssl").args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=ocireg-test-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &t("ca.key"),
                "-out",
                &t("ca.crt"),
            ]));
            issue(
                &tls,
                "server",
                "/CN=127.0.0.1",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
                "server.crt",
            );
            config += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t("server.crt"),
                t("server.key")
            );
            let certs = dir.path().join("certs.d");
            std::fs::create_dir_all(&certs).unwrap();
            std::fs::copy(tls.join("ca.crt"), certs.join("ca.crt")).unwrap();
            ca = Some(tls.join("ca.crt"));
            if mode == Mode::MutualTls {
                // a client certificate of the same CA, in the files and in certs.d
                issue(
                    &tls,
                    "client",
                    "/CN=ocireg-test-client",
                    "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
                    "client.cert",
                );
                std::fs::copy(tls.join("client.cert"), certs.join("client.cert")).unwrap();
                std::fs::copy(tls.join("client.key"), certs.join("client.key")).unwrap();
                config += &format!("    clientcas:\n      - {}\n", t("ca.crt"));
                client = Some((tls.join("client.cert"), tls.join("client.key")));
            }
        }
        if mode == Mode::Basic {
            let htpasswd = run(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
            std::fs::write(dir.path().join("htpasswd"), htpasswd).unwrap();
            config += &format!(
                "auth:\n  htpasswd:\n    realm: ocireg-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        if let Some((realm, crt)) = &token {
            config += &format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                crate::token_server::SERVICE,
                crate::token_server::ISSUER,
                crt.display()
            );
        }
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry must be installed (apt-get install docker-registry; .ci/run does it)");
        let reg = RealRegistry {
            child,
            dir,
            addr,
            ca,
            client,
            mode,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&reg.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start: {}",
                std::fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// skopeo's TLS and credential options for the destination side.
    fn dest_opts(&self) -> Vec<String> {
        let mut o = match self.mode {
            Mode::OpenTls | Mode::MutualTls => vec![format!(
                "--dest-cert-dir={}",
                self.dir.path().join("certs.d").display()
            )],
            _ => vec!["--dest-tls-verify=false".to_string()],
        };
        if matches!(self.mode, Mode::Basic | Mode::Token) {
            o.push(format!("--dest-creds={USER}:{PASSWORD}"));
        }
        o
    }

    /// Pushes an image (written as an OCI layout, or a `dir:` layout for Docker
    /// schema2) to `repo:tag`, preserving digests.
    pub fn push(&self, img: &TestImage, repo: &str, tag: &str) {
        let src = tempfile::tempdir().unwrap();
        let source = if img.media_type == ocireg_core::manifest::DOCKER_MANIFEST {
            write_dir_layout(src.path(), img);
            format!("dir:{}", src.path().display())
        } else {
            write_oci_layout(src.path(), &[(img, Some(tag))], &[]);
            format!("oci:{}:{tag}", src.path().display())
        };
        self.skopeo_push(&source, repo, tag, false);
    }

    /// Pushes an OCI layout (with an index) to `repo:tag` with `--all`.
    pub fn push_layout(&self, layout: &Path, name: &str, repo: &str, tag: &str) {
        self.skopeo_push(&format!("oci:{}:{name}", layout.display()), repo, tag, true);
    }

    fn skopeo_push(&self, source: &str, repo: &str, tag: &str, all: bool) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "-q", "--preserve-digests"]);
        if all {
            cmd.arg("--all");
        }
        cmd.args(self.dest_opts())
            .arg(source)
            .arg(format!("docker://{}/{repo}:{tag}", self.addr));
        run(&mut cmd);
    }
}

impl RealRegistry {
    /// The CPU time (user + system, seconds) the registry process has used so far, from
    /// `/proc` (0 where there is none): what serving a pull cost the machine.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // the fields after the command name, which ends with the last ')'
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
            .sum();
        // SAFETY: sysconf reads a constant of the system.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        ticks as f64 / per_second
    }

    /// The request lines (`METHOD /path HTTP/x`) of the access log from line `from` on,
    /// and the log's length now (pass it as `from` next time).
    pub fn requests_since(&self, from: usize) -> (Vec<String>, usize) {
        let text =
            std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let requests = lines[from.min(lines.len())..]
            .iter()
            .filter_map(|l| {
                let start = l
                    .find("\"GET ")
                    .or_else(|| l.find("\"HEAD "))
                    .or_else(|| l.find("\"POST "))
                    .or_else(|| l.find("\"PUT "))
                    .or_else(|| l.find("\"PATCH "))?;
                let rest = &l[start + 1..];
                Some(rest[..rest.find('"')?].to_string())
            })
            .collect();
        (requests, lines.len())
    }
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes an OCI image layout holding `images` (each tagged when a name is given) and
/// raw extra manifests (`(media type, bytes, name)`, e.g. an index).
pub fn write_oci_layout(
    dir: &Path,
    images: &[(&TestImage, Option<&str>)],
    extra: &[(&str, &[u8], &str)],
) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut entries = Vec::new();
    let put = |data: &[u8]| {
        let d = Digest::sha256(data);
        std::fs::write(blobs.join(d.hex()), data).unwrap();
        d
    };
    for (img, name) in images {
        for b in img.blobs() {
            put(b);
        }
        let d = put(&img.manifest);
        if let Some(n) = name {
            entries.push(json!({"mediaType": img.media_type, "digest": d.to_string(), "size": img.manifest.len(), "annotations": {"org.opencontainers.image.ref.name": n}}));
        }
    }
    for (mt, bytes, name) in extra {
        let d = put(bytes);
        entries.push(json!({"mediaType": mt, "digest": d.to_string(), "size": bytes.len(), "annotations": {"org.opencontainers.image.ref.name": name}}));
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Writes skopeo's `dir:` layout (manifest.json, one file per blob, version).
pub fn write_dir_layout(dir: &Path, img: &TestImage) {
    std::fs::write(dir.join("manifest.json"), &img.manifest).unwrap();
    std::fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    for b in img.blobs() {
        std::fs::write(dir.join(Digest::sha256(b).hex()), b).unwrap();
    }
}

/// Digests of every file under `blobs/` of a layout, sorted.
pub fn layout_blobs(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for alg in std::fs::read_dir(dir.join("blobs")).unwrap() {
        let alg = alg.unwrap();
        for f in std::fs::read_dir(alg.path()).unwrap() {
            out.push(format!(
                "{}:{}",
                alg.file_name().to_string_lossy(),
                f.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    out.sort();
    out
}

/// `skopeo copy --preserve-digests oci:SRC:TAG oci:DST:TAG`, then the manifest digest
/// skopeo reads back from the copy.
pub fn skopeo_roundtrip(src: &Path, tag: &str) -> String {
    let dst = tempfile::tempdir().unwrap();
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", "--preserve-digests"])
        .arg(format!("oci:{}:{tag}", src.display()))
        .arg(format!("oci:{}:{tag}", dst.path().display())));
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:{tag}", dst.path().display()))
        .output()
        .unwrap();
    assert!(raw.status.success());
    Digest::sha256(&raw.stdout).to_string()
}
