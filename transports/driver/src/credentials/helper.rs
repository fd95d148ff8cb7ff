//! Running a `docker-credential-<name>` helper: one verb (`get`, `store`, `erase`), its
//! input on stdin, within a time limit, its output read while it runs and bounded.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{CredentialsError, HELPER_OUTPUT_LIMIT};

/// What a helper did.
pub(super) struct Ran {
    pub(super) status: ExitStatus,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
}

impl Ran {
    /// Everything it printed, lossy.
    pub(super) fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }

    /// Why it failed: its status and the first line of its words (a helper should not
    /// print secrets on failure, and no more than a line is repeated).
    pub(super) fn failure(&self) -> String {
        let text = self.text();
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        format!("failed ({}): {first}", self.status)
    }
}

/// Runs `docker-credential-<helper> <verb>` with `input` on stdin, found on
/// `helper_path` when given, for `timeout` at most.
pub(super) fn run(
    helper: &str,
    verb: &str,
    input: &[u8],
    helper_path: Option<&std::ffi::OsStr>,
    timeout: Duration,
) -> Result<Ran, CredentialsError> {
    let err = |problem: String| CredentialsError::Helper {
        helper: helper.to_string(),
        problem,
    };
    if helper.is_empty()
        || !helper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(err("invalid helper name".into()));
    }
    let mut command = Command::new(format!("docker-credential-{helper}"));
    if let Some(p) = helper_path {
        // With PATH set for the child, the program is also looked up on it.
        command.env("PATH", p);
    }
    let mut child = command
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run it ({e}); is it installed and on PATH?")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    // Its output is read while it runs (a full pipe would stall it), bounded; a reader
    // that stops early closes the pipe, and the helper's next write fails.
    let read_bounded = |pipe: Option<Box<dyn Read + Send>>, limit: u64| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(limit).read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let stdout = read_bounded(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        HELPER_OUTPUT_LIMIT + 1,
    );
    let stderr = read_bounded(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        4096,
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(format!(
                    "no answer within {:.1}s",
                    timeout.as_secs_f64()
                )));
            }
            Err(e) => return Err(err(e.to_string())),
        }
    };
    // The helper has exited; a grandchild it left behind may still hold the pipes, so
    // the output is waited for no longer than a second.
    let out = stdout
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_default();
    let errout = stderr
        .recv_timeout(Duration::from_secs(1))
        .unwrap_or_default();
    if out.len() as u64 > HELPER_OUTPUT_LIMIT {
        return Err(err(format!(
            "printed more than {} bytes; its answer is a small JSON object",
            HELPER_OUTPUT_LIMIT
        )));
    }
    Ok(Ran {
        status,
        stdout: out,
        stderr: errout,
    })
}
