//! Latency rows: the registry made far by a proxy of the project's own
//! ([`ocireg_tests::delay::DelayProxy`]: one round trip per new connection, one per
//! exchange, bytes not throttled), and every tool reported in round trips (wall / RTT).
//!
//! Workloads: 40 small layers; an index of 6 platforms of which one is pulled; the same
//! 40 layers behind token auth (the token server behind the same delay, with
//! credentials); one 64 MiB layer. Requests come from the registry's access log,
//! connections from the proxy.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ocireg_core::manifest::OCI_INDEX;
use ocireg_core::Platform;
use ocireg_registry::images::{image, index};
use ocireg_tests::delay::DelayProxy;
use ocireg_tests::real::{write_oci_layout, Mode, RealRegistry, PASSWORD, USER};
use ocireg_tests::token_server::TokenServer;

use crate::{access_log, median_run, timed_with, CONCURRENCY};

/// The added round trip.
pub(crate) const RTT: Duration = Duration::from_millis(40);

#[derive(Clone, Copy, PartialEq, Eq)]
enum LatencyTool {
    Ocireg,
    Baseline,
    OciClient,
    Skopeo,
}

impl LatencyTool {
    fn name(self) -> &'static str {
        match self {
            LatencyTool::Ocireg => "ocireg (tokio)",
            LatencyTool::Baseline => "ocireg baseline (tokio)",
            LatencyTool::OciClient => "oci-client 0.18",
            LatencyTool::Skopeo => "skopeo copy",
        }
    }
}

/// What a tool is asked to pull, and how.
struct Target<'a> {
    reference: String,
    /// Credentials (user, password) when the registry wants them.
    creds: Option<(&'a str, &'a str)>,
}

/// One tool's command line and environment.
fn command(
    tool: LatencyTool,
    bin: &Path,
    baseline: Option<&Path>,
    t: &Target,
    out: &Path,
) -> (String, Vec<String>, Vec<(&'static str, String)>) {
    let out_s = out.display().to_string();
    let mut env = Vec::new();
    match tool {
        LatencyTool::Ocireg | LatencyTool::Baseline => {
            if let Some((u, p)) = t.creds {
                env.push(("OCIREG_USERNAME", u.to_string()));
                env.push(("OCIREG_PASSWORD", p.to_string()));
            }
            let program = match (tool, baseline) {
                (LatencyTool::Baseline, Some(b)) => b.display().to_string(),
                _ => bin.join("ocireg").display().to_string(),
            };
            let args = [
                "pull",
                "--plain-http",
                "--progress",
                "none",
                "--concurrency",
                &CONCURRENCY.to_string(),
                &t.reference,
                &out_s,
            ];
            (program, args.map(str::to_string).to_vec(), env)
        }
        LatencyTool::OciClient => {
            if let Some((u, p)) = t.creds {
                env.push(("OCI_CLIENT_USER", u.to_string()));
                env.push(("OCI_CLIENT_PASSWORD", p.to_string()));
            }
            let args = vec![t.reference.clone(), out_s, CONCURRENCY.to_string()];
            (bin.join("oci-client-pull").display().to_string(), args, env)
        }
        LatencyTool::Skopeo => {
            let mut args = vec![
                "copy".to_string(),
                "-q".into(),
                "--src-tls-verify=false".into(),
                "--preserve-digests".into(),
            ];
            if let Some((u, p)) = t.creds {
                args.push(format!("--src-creds={u}:{p}"));
            }
            args.push(format!("docker://{}", t.reference));
            args.push(format!("oci:{out_s}:v1"));
            ("skopeo".to_string(), args, env)
        }
    }
}

/// Pushes the workloads' images and runs every tool against each, through the proxy.
pub(crate) fn run(
    bin: &Path,
    baseline: Option<&Path>,
    runs: usize,
    quick: bool,
    scratch: &Path,
    include: &dyn Fn(&str) -> bool,
) {
    let mut tools = vec![LatencyTool::Ocireg];
    if baseline.is_some() {
        tools.push(LatencyTool::Baseline);
    }
    tools.extend([LatencyTool::OciClient, LatencyTool::Skopeo]);
    println!(
        "## Far registry: {} ms added to every round trip\n",
        RTT.as_millis()
    );
    println!("Every row is the real registry behind the benchmark's delay proxy (one round trip per new connection and per exchange, bytes not throttled), concurrency {CONCURRENCY}. Round trips = wall time / RTT (process start included); added round trips = (wall − the same pull with no delay) / RTT.\n");

    let open = RealRegistry::start(Mode::Open);
    let small = vec![16 << 10; 40];
    let big = vec![if quick { 16 << 20 } else { 64 << 20 }];
    type Row<'a> = (
        &'static str,
        &'a RealRegistry,
        &'static str,
        Option<(&'static str, &'static str)>,
    );
    let mut rows: Vec<Row> = Vec::new();
    if include("40 small layers") {
        open.push(
            &image(300, &small, &Platform::host(), false),
            "far/small",
            "v1",
        );
        rows.push(("40 small layers", &open, "far/small", None));
    }
    if include("index") {
        let platforms = [
            "linux/386",
            "linux/arm64/v8",
            "linux/arm/v7",
            "linux/ppc64le",
            "linux/s390x",
        ];
        let mut plats: Vec<Platform> = platforms
            .iter()
            .filter_map(|p| Platform::parse(p))
            .collect();
        plats.retain(|p| p.architecture != Platform::host().architecture);
        plats.truncate(5);
        plats.insert(2, Platform::host());
        let imgs: Vec<_> = plats
            .iter()
            .enumerate()
            .map(|(i, p)| image(310 + i as u64, &[64 << 10; 8], p, false))
            .collect();
        let children: Vec<_> = imgs.iter().zip(&plats).collect();
        let idx = index(&children);
        let dir = tempfile::tempdir().expect("tempdir");
        let untagged: Vec<_> = imgs.iter().map(|i| (i, None)).collect();
        write_oci_layout(dir.path(), &untagged, &[(OCI_INDEX, &idx, "v1")]);
        open.push_layout(dir.path(), "v1", "far/index", "v1");
        rows.push(("index of 6 platforms, one pulled", &open, "far/index", None));
    }
    let token = include("token").then(|| {
        let keys = tempfile::tempdir().expect("tempdir");
        let users = [(USER.to_string(), PASSWORD.to_string())].into();
        let ts = TokenServer::start(keys.path(), users, false, 300);
        let ts_addr = ts
            .realm
            .trim_start_matches("http://")
            .trim_end_matches("/token")
            .to_string();
        let ts_proxy = DelayProxy::start(ts_addr, RTT);
        let realm = format!("http://{}/token", ts_proxy.addr);
        let reg = RealRegistry::start_token(&realm, keys.path());
        reg.push(
            &image(300, &small, &Platform::host(), false),
            "far/small",
            "v1",
        );
        (keys, ts, ts_proxy, reg)
    });
    let token_proxy = token.as_ref().map(|(_, _, p, _)| p);
    if let Some((_, _, _, reg)) = &token {
        rows.push((
            "40 small layers, token auth",
            reg,
            "far/small",
            Some((USER, PASSWORD)),
        ));
    }
    if include("64 MiB") {
        open.push(&image(320, &big, &Platform::host(), false), "far/big", "v1");
        let name = if quick {
            "one 16 MiB layer"
        } else {
            "one 64 MiB layer"
        };
        rows.push((name, &open, "far/big", None));
    }

    let time_file = scratch.join("latency-time");
    println!("| workload | tool | wall s (median) | same, no delay | round trips (wall / RTT) | added round trips | vs ocireg | connections | requests | peak RSS MiB | result |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, reg, repo, creds) in &rows {
        let mut base = None;
        for &tool in &tools {
            // The same pull with no delay first: what is not round trips (process start,
            // hashing, writing) is subtracted in the "added" column.
            if let Some(p) = &token_proxy {
                p.set_rtt(Duration::ZERO);
            }
            let near = measure(runs, &|| {
                one_run(
                    tool,
                    bin,
                    baseline,
                    reg,
                    repo,
                    *creds,
                    Duration::ZERO,
                    &time_file,
                    scratch,
                )
            });
            if let Some(p) = &token_proxy {
                p.set_rtt(RTT);
            }
            let far = measure(runs, &|| {
                one_run(
                    tool, bin, baseline, reg, repo, *creds, RTT, &time_file, scratch,
                )
            });
            let (near, far) = match (near, far) {
                (Ok(n), Ok(f)) => (n, f),
                (Err(e), _) | (_, Err(e)) => {
                    println!(
                        "| {name} | {} | – | – | – | – | – | – | – | – | failed: {e} |",
                        tool.name()
                    );
                    continue;
                }
            };
            let trips = far.wall / RTT.as_secs_f64();
            let added = (far.wall - near.wall).max(0.0) / RTT.as_secs_f64();
            if tool == LatencyTool::Ocireg {
                base = Some(trips);
            }
            let vs = base.map_or("–".into(), |b| format!("{:.2}×", trips / b.max(1e-9)));
            println!(
                "| {name} | {} | {:.2} | {:.2} | {trips:.1} | {added:.1} | {vs} | {} | {} | {:.1} | ok |",
                tool.name(),
                far.wall,
                near.wall,
                far.connections,
                far.requests,
                far.rss_kib as f64 / 1024.0,
            );
        }
    }
    println!();
    drop(token);
}

/// One measured pull (median of the runs).
#[derive(Clone, Copy, Default)]
struct Measured {
    wall: f64,
    rss_kib: u64,
    connections: u64,
    requests: u64,
}

/// `runs` pulls; the median by wall time, or the first failure.
fn measure(runs: usize, one: &dyn Fn() -> Result<Measured, String>) -> Result<Measured, String> {
    let mut all = Vec::new();
    for _ in 0..runs {
        all.push(one()?);
    }
    Ok(median_run(&all, |m| m.wall).unwrap_or_default())
}

/// One pull of `repo` by `tool` through a fresh proxy adding `rtt`.
#[allow(clippy::too_many_arguments)]
fn one_run(
    tool: LatencyTool,
    bin: &Path,
    baseline: Option<&Path>,
    reg: &RealRegistry,
    repo: &str,
    creds: Option<(&str, &str)>,
    rtt: Duration,
    time_file: &Path,
    scratch: &Path,
) -> Result<Measured, String> {
    let log = reg.dir.path().join("registry.log");
    let proxy = DelayProxy::start(reg.addr.clone(), rtt);
    let target = Target {
        reference: format!("{}/{repo}:v1", proxy.addr),
        creds,
    };
    let out = scratch.join("latency-out");
    let _ = std::fs::remove_dir_all(&out);
    let (from, _, _) = access_log(&log, usize::MAX);
    let (cmd, args, env) = command(tool, bin, baseline, &target, &out);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (ok, error, wall, _cpu, rss_kib) = timed_with(&cmd, &args, &env, time_file);
    std::thread::sleep(Duration::from_millis(200)); // the registry's log
    let (_, requests, _) = access_log(&log, from);
    let _ = std::fs::remove_dir_all(&out);
    if !ok {
        return Err(error.replace('|', "/"));
    }
    Ok(Measured {
        wall,
        rss_kib,
        connections: proxy.connections.load(Ordering::Relaxed),
        requests,
    })
}
