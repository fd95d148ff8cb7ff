//! The benchmark: a real `docker-registry` on loopback (filesystem storage, plain http),
//! generated images pushed with `skopeo`, each pulled by every tool, several times.
//!
//! Push and copy rows follow the pull workloads (`--only push` runs only them).
//!
//! `cargo run --release -p ocireg-bench` (options: `--runs N`, `--baseline PATH` to run
//! another ocireg binary beside this one, `--tools a,b` to run only tools whose name
//! contains one of these, `--quick` for small
//! workloads, `--only NAME,...`; `--only latency` for the far-registry rows of
//! `latency.rs`, `--only tls` for the https rows of `tls_rows.rs`, `--only push` for the
//! push and copy rows, `--only stream` for a blob read as a stream into its hash).
//! Prints markdown tables.
//!
//! Tools: `ocireg` over tokio and over async-std, the `oci-client` crate (streaming
//! `pull_blob`, same concurrency), `skopeo copy docker://… oci:…`, and a peer row: every
//! blob fetched with `curl` and piped to `openssl dgst -sha256` (SHA-NI), in parallel,
//! written nowhere; and ocireg with `--no-fsync`. The limit each row is compared with is
//! the slowest of the three stages measured alone in the same run (`stages.rs`: network,
//! hash, durable write), or, for a tool that does not flush what it writes, the slowest
//! with a plain write. Each run is a fresh process measured by `/usr/bin/time` (wall, CPU,
//! peak RSS); requests and bytes come from the registry's access log, or from the cutting
//! proxy when there is one. The registry's CPU time per run comes from `/proc`: with the
//! client's, over the machine's cores, it is the row's CPU floor, the wall time no overlap
//! of stages can beat when both processes share the machine.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

mod latency;
mod push_rows;
mod stages;
mod stream_rows;
mod tls_rows;
mod tools;

pub(crate) use tools::*;

use ocireg_core::{Digest, Platform};
use ocireg_registry::images::image;
use ocireg_tests::proxy::CuttingProxy;
use ocireg_tests::real::{Mode, RealRegistry};

const CONCURRENCY: usize = 8;

type Pushed = (String, Vec<(Digest, u64)>, usize);

struct Workload {
    name: &'static str,
    layers: Vec<usize>,
    cuts: usize,
}

/// The cores this machine has: the CPU floor of a row is the CPU time of the client
/// and the registry together, spread over all of them (no overlap can beat it).
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

/// The run whose wall time is the median of them all: the one a table reports.
fn median_run<T: Clone>(runs: &[T], wall: impl Fn(&T) -> f64) -> Option<T> {
    let m = median(runs.iter().map(&wall).collect());
    runs.iter().find(|r| (wall(r) - m).abs() < 1e-9).cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let quick = args.iter().any(|a| a == "--quick");
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect());
    let baseline: Option<PathBuf> = args
        .iter()
        .position(|a| a == "--baseline")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let tools_filter: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--tools")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect());
    let tools: Vec<Tool> = TOOLS
        .iter()
        .copied()
        .filter(|t| *t != Tool::Baseline || baseline.is_some())
        .filter(|t| {
            tools_filter
                .as_ref()
                .is_none_or(|f| f.iter().any(|n| t.name().contains(n.as_str())))
        })
        .collect();
    // build the programs under test
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Both packages named: the benchmark is not a default member of the workspace, so a
    // bare `--bin oci-client-pull` would not be found.
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let b = sh(Command::new(&cargo).current_dir(&workspace).args([
        "build",
        "--release",
        "-q",
        "-p",
        "ocireg",
        "--bin",
        "ocireg",
        "-p",
        "ocireg-bench",
        "--bin",
        "oci-client-pull",
        "--bin",
        "oci-client-push",
    ]));
    if !b.status.success() {
        eprintln!(
            "ocireg-bench: building the programs under test failed: {}",
            String::from_utf8_lossy(&b.stderr)
        );
        std::process::exit(1);
    }
    let bin = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("release");
    let gib = if quick { 64 << 20 } else { 1 << 30 };
    let workloads = [
        Workload {
            name: if quick {
                "one 64 MiB layer"
            } else {
                "one 1 GiB layer"
            },
            layers: vec![gib],
            cuts: 0,
        },
        Workload {
            name: if quick {
                "16 layers of 4 MiB"
            } else {
                "64 layers of 16 MiB"
            },
            layers: vec![if quick { 4 << 20 } else { 16 << 20 }; if quick { 16 } else { 64 }],
            cuts: 0,
        },
        Workload {
            name: "300 layers of 8 KiB",
            layers: vec![8 << 10; 300],
            cuts: 0,
        },
        Workload {
            name: if quick {
                "64 MiB layer, 5 cuts"
            } else {
                "1 GiB layer, 5 cuts"
            },
            layers: vec![gib],
            cuts: 5,
        },
    ];
    let reg = RealRegistry::start(Mode::Open);
    let log = reg.dir.path().join("registry.log");
    let scratch = tempfile::tempdir().unwrap();
    let time_file = scratch.path().join("time");
    let stage_files = scratch.path().join("stage-files");
    println!("# ocireg benchmark\n");
    println!("{} runs per tool (median), concurrency {CONCURRENCY}, registry at {} (docker-registry, filesystem storage, plain http)\n", runs, reg.addr);
    // the last image pushed: repository, blobs, layer count
    let mut pushed: Option<Pushed> = None;
    for (wi, w) in workloads.iter().enumerate() {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| w.name.contains(n.as_str())))
        {
            continue;
        }
        // push (the cut workload reuses the big image)
        let (repo, blobs) = match &pushed {
            Some((repo, blobs, layers))
                if w.cuts > 0
                    && *layers == w.layers.len()
                    && blobs.iter().any(|(_, s)| *s as usize == w.layers[0]) =>
            {
                (repo.clone(), blobs.clone())
            }
            _ => {
                let started = std::time::Instant::now();
                let img = image(100 + wi as u64, &w.layers, &Platform::host(), false);
                let repo = format!("bench/w{wi}");
                reg.push(&img, &repo, "v1");
                // the blobs as files, for the stages measured alone
                let _ = std::fs::remove_dir_all(&stage_files);
                std::fs::create_dir_all(&stage_files).unwrap();
                for b in img.blobs() {
                    std::fs::write(stage_files.join(Digest::sha256(b).hex()), b).unwrap();
                }
                let blobs: Vec<(Digest, u64)> = img
                    .blobs()
                    .map(|b| (Digest::sha256(b), b.len() as u64))
                    .collect();
                eprintln!(
                    "pushed {} ({} blobs) in {:.1}s",
                    w.name,
                    blobs.len(),
                    started.elapsed().as_secs_f64()
                );
                pushed = Some((repo.clone(), blobs.clone(), w.layers.len()));
                (repo, blobs)
            }
        };
        let total: u64 = blobs.iter().map(|(_, s)| s).sum();
        println!(
            "## {} ({:.1} MiB of blobs)\n",
            w.name,
            total as f64 / (1 << 20) as f64
        );
        // the limit, measured right (not for the cut workload: the proxy is the bound)
        let limit = (w.cuts == 0).then(|| {
            let s = stages::measure(&reg.addr, &repo, &blobs, &stage_files, scratch.path(), runs);
            println!("{}\n", s.describe());
            s
        });
        println!("| tool | durable | wall s (median) | MB/s | vs ocireg (tokio) | vs its limit | CPU s | registry CPU s | CPU floor s | peak RSS MiB | requests | bytes moved | result |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let mut base = None;
        for &tool in &tools {
            let mut results = Vec::new();
            for r in 0..runs {
                let (addr, proxy) = if w.cuts > 0 {
                    // cut points spread over the layer, one per connection
                    let points: Vec<u64> = (0..w.cuts)
                        .map(|i| {
                            (w.layers[0] as u64 / (w.cuts as u64 + 2)) * (i as u64 + 1) / 2
                                + (1 << 20) * (r as u64 + 1)
                        })
                        .collect();
                    let p = CuttingProxy::start(reg.addr.clone(), points);
                    (p.addr.clone(), Some(p))
                } else {
                    (reg.addr.clone(), None)
                };
                let (from, _, _) = access_log(&log, usize::MAX);
                let registry_cpu = reg.cpu_seconds();
                let out = scratch.path().join("out");
                let (ok, error, wall, cpu, rss) = run_tool(
                    tool,
                    &bin,
                    baseline.as_deref(),
                    &addr,
                    &repo,
                    &blobs,
                    &out,
                    &time_file,
                );
                std::thread::sleep(Duration::from_millis(200)); // let the registry flush its log
                let registry_cpu = reg.cpu_seconds() - registry_cpu;
                let (_, requests, logged_bytes) = access_log(&log, from);
                let bytes = proxy
                    .as_ref()
                    .map(|p| p.downstream_bytes.load(Ordering::Relaxed))
                    .unwrap_or(logged_bytes);
                results.push(Run {
                    ok,
                    wall,
                    cpu,
                    registry_cpu,
                    rss_kib: rss,
                    requests,
                    bytes,
                    error,
                });
                let _ = std::fs::remove_dir_all(&out);
                if !ok {
                    break; // a tool that fails once is reported as failing
                }
            }
            let ok = results.iter().all(|r| r.ok);
            let wall = median(results.iter().map(|r| r.wall).collect());
            if tool == Tool::OciregTokio && ok {
                base = Some(wall);
            }
            let mid = median_run(&results, |r| r.wall).unwrap_or_default();
            let ratio = match base {
                Some(b) if ok && b > 0.0 => format!("{:.2}×", wall / b),
                _ => "–".into(),
            };
            // a durable tool against the durable limit, the others against the limit
            // without durability
            let its_limit = limit.map(|l| {
                if tool.durable() {
                    l.limit()
                } else {
                    l.limit_without_durability()
                }
            });
            let vs_limit = match its_limit {
                Some(l) if ok && l > 0.0 => format!("{:.2}×", wall / l),
                _ => "–".into(),
            };
            let cpu = median(results.iter().map(|r| r.cpu).collect());
            let registry_cpu = median(results.iter().map(|r| r.registry_cpu).collect());
            if ok {
                println!(
                    "| {} | {} | {:.2} | {:.0} | {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | ok |",
                    tool.name(),
                    if tool.durable() { "yes" } else { "no" },
                    wall,
                    total as f64 / wall.max(1e-9) / 1e6,
                    ratio,
                    vs_limit,
                    cpu,
                    registry_cpu,
                    (cpu + registry_cpu) / cores(),
                    mid.rss_kib as f64 / 1024.0,
                    mid.requests,
                    mid.bytes,
                )
            } else {
                let e = results
                    .last()
                    .map(|r| r.error.replace('|', "/"))
                    .unwrap_or_default();
                println!(
                    "| {} | – | – | – | – | – | – | – | – | – | – | – | failed: {} |",
                    tool.name(),
                    e
                );
            }
        }
        println!();
    }
    if only.as_ref().is_none_or(|o| o.iter().any(|n| n == "tls")) {
        tls_rows::run(&bin, runs, quick, scratch.path());
    }
    // `--only latency` runs every latency row; `--only latency,token` only those named.
    let latency_filters: Vec<&String> = only
        .iter()
        .flatten()
        .filter(|n| !["latency", "tls", "push", "copy"].contains(&n.as_str()))
        .collect();
    let latency_row = |name: &str| {
        latency_filters.is_empty() || latency_filters.iter().any(|n| name.contains(n.as_str()))
    };
    if only
        .as_ref()
        .is_none_or(|o| o.iter().any(|n| n == "latency"))
    {
        latency::run(
            &bin,
            baseline.as_deref(),
            runs,
            quick,
            scratch.path(),
            &latency_row,
        );
    }
    if only
        .as_ref()
        .is_none_or(|o| o.iter().any(|n| n == "push" || n == "copy"))
    {
        push_rows::run(&bin, baseline.as_deref(), runs, quick, scratch.path());
    }
    if only
        .as_ref()
        .is_none_or(|o| o.iter().any(|n| n == "stream"))
    {
        stream_rows::run(&bin, runs, quick, scratch.path());
    }
}
