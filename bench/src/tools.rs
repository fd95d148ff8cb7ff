//! The tools a row runs and how one run of a tool is measured: a fresh process under
//! `/usr/bin/time` (wall, CPU, peak RSS), requests and bytes from the registry's access
//! log (or the cutting proxy), the registry's own CPU time from `/proc`.

use std::path::Path;
use std::process::Command;

use ocireg_core::Digest;

use crate::CONCURRENCY;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Tool {
    OciregTokio,
    /// ocireg with `--no-fsync`: the same pull without durability.
    OciregNoFsync,
    /// Another build of ocireg (`--baseline PATH`), with tokio: an A/B in one run.
    Baseline,
    OciregAsyncStd,
    OciClient,
    Skopeo,
    Limit,
}

impl Tool {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tool::OciregTokio => "ocireg (tokio)",
            Tool::OciregNoFsync => "ocireg (tokio) --no-fsync",
            Tool::Baseline => "ocireg baseline (tokio)",
            Tool::OciregAsyncStd => "ocireg (async-std)",
            Tool::OciClient => "oci-client 0.18",
            Tool::Skopeo => "skopeo copy",
            Tool::Limit => "peer: curl piped to openssl dgst (no file)",
        }
    }

    /// Whether the tool flushes what it writes before naming it (skopeo does, `strace`
    /// shows its `fdatasync`s; oci-client does not; the peer writes no file): which
    /// limit its row is compared with.
    pub(crate) fn durable(self) -> bool {
        matches!(
            self,
            Tool::OciregTokio | Tool::Baseline | Tool::OciregAsyncStd | Tool::Skopeo
        )
    }
}

pub(crate) const TOOLS: [Tool; 7] = [
    Tool::OciregTokio,
    Tool::OciregNoFsync,
    Tool::Baseline,
    Tool::OciregAsyncStd,
    Tool::OciClient,
    Tool::Skopeo,
    Tool::Limit,
];

#[derive(Default, Clone)]
pub(crate) struct Run {
    pub(crate) ok: bool,
    pub(crate) wall: f64,
    pub(crate) cpu: f64,
    /// CPU time the registry spent serving this run.
    pub(crate) registry_cpu: f64,
    pub(crate) rss_kib: u64,
    pub(crate) requests: u64,
    pub(crate) bytes: u64,
    pub(crate) error: String,
}

pub(crate) fn sh(cmd: &mut Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Access-log lines ("GET /v2/… HTTP/1.1" status size) after line `from`.
pub(crate) fn access_log(log: &Path, from: usize) -> (usize, u64, u64) {
    let mut requests = 0u64;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut bytes = 0;
    for l in &lines[from.min(lines.len())..] {
        if let Some(i) = l.find("HTTP/1.1\" ").or_else(|| l.find("HTTP/2.0\" ")) {
            requests += 1;
            let rest = &l[i + 10..];
            let mut f = rest.split_whitespace();
            let _status = f.next();
            bytes += f.next().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    (lines.len(), requests, bytes)
}

pub(crate) fn timed(cmd: &str, args: &[String], out_time: &Path) -> (bool, String, f64, f64, u64) {
    timed_with(cmd, args, &[], out_time)
}

/// [`timed`] with extra environment variables.
pub(crate) fn timed_with(
    cmd: &str,
    args: &[String],
    envs: &[(&str, &str)],
    out_time: &Path,
) -> (bool, String, f64, f64, u64) {
    let o = sh(Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %U %S %M")
        .arg("-o")
        .arg(out_time)
        .arg(cmd)
        .args(args)
        .envs(envs.iter().copied()));
    let t = std::fs::read_to_string(out_time).unwrap_or_default();
    let last = t.lines().last().unwrap_or("0 0 0 0").to_string();
    let v: Vec<f64> = last
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let (wall, cpu, rss) = if v.len() == 4 {
        (v[0], v[1] + v[2], v[3] as u64)
    } else {
        (0.0, 0.0, 0)
    };
    let err = String::from_utf8_lossy(&o.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .chars()
        .take(120)
        .collect();
    (o.status.success(), err, wall, cpu, rss)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_tool(
    tool: Tool,
    bin: &Path,
    baseline: Option<&Path>,
    addr: &str,
    repo: &str,
    blobs: &[(Digest, u64)],
    out: &Path,
    time_file: &Path,
) -> (bool, String, f64, f64, u64) {
    let _ = std::fs::remove_dir_all(out);
    let reference = format!("{addr}/{repo}:v1");
    match tool {
        Tool::OciregTokio | Tool::OciregNoFsync | Tool::OciregAsyncStd | Tool::Baseline => {
            let rt = if tool == Tool::OciregAsyncStd {
                "async-std"
            } else {
                "tokio"
            };
            let no_fsync = (tool == Tool::OciregNoFsync).then_some("--no-fsync");
            let args: Vec<String> = [
                "pull",
                "--plain-http",
                "--progress",
                "none",
                "--runtime",
                rt,
                "--concurrency",
                &CONCURRENCY.to_string(),
                &reference,
                out.to_str().unwrap(),
            ]
            .into_iter()
            .chain(no_fsync)
            .map(str::to_string)
            .collect();
            let program = match (tool, baseline) {
                (Tool::Baseline, Some(b)) => b.to_path_buf(),
                _ => bin.join("ocireg"),
            };
            timed(program.to_str().unwrap(), &args, time_file)
        }
        Tool::OciClient => {
            let args = vec![
                reference,
                out.display().to_string(),
                CONCURRENCY.to_string(),
            ];
            timed(
                bin.join("oci-client-pull").to_str().unwrap(),
                &args,
                time_file,
            )
        }
        Tool::Skopeo => {
            let args: Vec<String> = [
                "copy",
                "-q",
                "--src-tls-verify=false",
                "--preserve-digests",
                &format!("docker://{reference}"),
                &format!("oci:{}:v1", out.display()),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            timed("skopeo", &args, time_file)
        }
        Tool::Limit => {
            std::fs::create_dir_all(out).unwrap();
            let list = out.join("list");
            std::fs::write(
                &list,
                blobs
                    .iter()
                    .map(|(d, _)| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
            .unwrap();
            let script = format!(
                "xargs -P {CONCURRENCY} -I{{}} sh -c 'curl -sf http://{addr}/v2/{repo}/blobs/{{}} | openssl dgst -sha256 -r' < {list} > {dir}/sums",
                dir = out.display(),
                list = list.display()
            );
            let r = timed("bash", &["-c".to_string(), script], time_file);
            let sums = std::fs::read_to_string(out.join("sums")).unwrap_or_default();
            let mut got: Vec<String> = sums
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string)
                .collect();
            let mut want: Vec<String> = blobs.iter().map(|(d, _)| d.hex().to_string()).collect();
            got.sort();
            want.sort();
            let ok = r.0 && got == want;
            (
                ok,
                if ok {
                    r.1
                } else {
                    "digests differ or transfer failed".into()
                },
                r.2,
                r.3,
                r.4,
            )
        }
    }
}
