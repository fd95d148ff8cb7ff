//! What the CLI tests share: the binary, a run that must succeed, the in-process registry
//! on a free port.

#![allow(dead_code)] // each test file uses what it needs

use std::process::Command;

/// The proxy variables a test environment may hold: every run starts without them (a
/// test that wants one sets it).
pub const PROXY_VARS: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The `ocireg` binary of this build, run without the environment's proxies.
pub fn ocireg() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocireg"));
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd` (an `ocireg` command with its arguments and environment), which must
/// succeed (else its stderr is the failure); its output.
pub fn ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    // the arguments only: the environment may hold a test password
    let args: Vec<_> = cmd.get_args().collect();
    assert!(
        out.status.success(),
        "ocireg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `ocireg args`, which must succeed (else its stderr is the failure); its output.
pub fn run_ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> std::process::Output {
    ok(ocireg().args(args))
}

/// [`run_ok`]'s stdout.
pub fn succeed<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    String::from_utf8_lossy(&run_ok(args).stdout).into_owned()
}

/// Runs `ocireg args`, which must fail with exit 1 (a failure, not a usage error); its
/// stderr.
pub fn fail(args: &[&std::ffi::OsStr]) -> String {
    let out = ocireg().args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "ocireg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Serves `r` with `rules` on a free port, in a background runtime.
pub fn serve_inprocess(
    r: ocireg_registry::Registry,
    rules: Vec<ocireg_registry::Rule>,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<ocireg_registry::FaultyRegistry>>,
    tokio::runtime::Runtime,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let reg = std::sync::Arc::new(std::sync::Mutex::new(ocireg_registry::FaultyRegistry::new(
        r, rules,
    )));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    rt.spawn(ocireg_tokio::serve(listener, reg.clone()));
    (addr, reg, rt)
}

/// `ocireg serve --allow-push` of a layout on a free port, on `runtime`; stopped when
/// dropped.
pub struct Served {
    child: std::process::Child,
    /// `127.0.0.1:port`.
    pub addr: String,
}

impl Served {
    /// Starts serving the layout `dir`.
    pub fn start(dir: &std::path::Path, runtime: &str) -> Served {
        let mut child = ocireg()
            .args([
                "--runtime",
                runtime,
                "serve",
                "--allow-push",
                "--addr",
                "127.0.0.1:0",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        let addr = line.trim().rsplit("http://").next().unwrap().to_string();
        Served { child, addr }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` with `input` on its stdin; its output (stdout and stderr captured).
pub fn output_with_stdin(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}
