//! Push and copy rows: one large layer from a layout to the registry (ocireg, skopeo,
//! oci-client, and the upload limit: `curl -T` of the layer into an upload session), and
//! many layers copied from one registry to another (ocireg, skopeo).

use std::path::Path;

use ocireg_core::{Digest, Platform};
use ocireg_registry::images::image;
use ocireg_tests::real::{write_oci_layout, Mode, RealRegistry};

use crate::{median, median_run, timed, CONCURRENCY};

#[derive(Clone, Copy, PartialEq, Eq)]
enum PushTool {
    Limit,
    Ocireg,
    /// Another build of ocireg (`--baseline PATH`): an A/B in one run.
    Baseline,
    Skopeo,
    OciClient,
}

impl PushTool {
    fn name(self) -> &'static str {
        match self {
            PushTool::Limit => "limit: curl -T (one upload session)",
            PushTool::Ocireg => "ocireg push",
            PushTool::Baseline => "ocireg baseline push",
            PushTool::Skopeo => "skopeo copy oci: → docker://",
            PushTool::OciClient => "oci-client 0.18 push",
        }
    }
}

/// Runs `runs` times, each against a fresh registry (kept alive for the run: skopeo
/// remembers where it saw a blob and mounts it from there, which would measure nothing);
/// (ok, error, wall, cpu, rss KiB) median.
fn measure(
    runs: usize,
    time_file: &Path,
    mut one: impl FnMut(usize, &str) -> (String, Vec<String>),
) -> (bool, String, f64, f64, u64) {
    let mut results = Vec::new();
    for r in 0..runs {
        let target = RealRegistry::start(Mode::Open);
        let (cmd, args) = one(r, &target.addr);
        let res = timed(&cmd, &args, time_file);
        drop(target);
        let ok = res.0;
        results.push(res);
        if !ok {
            break;
        }
    }
    let ok = results.iter().all(|r| r.0);
    let err = results.last().map(|r| r.1.clone()).unwrap_or_default();
    let wall = median(results.iter().map(|r| r.2).collect());
    let cpu = median(results.iter().map(|r| r.3).collect());
    let rss = median_run(&results, |r| r.2).map_or(0, |r| r.4);
    (ok, err, wall, cpu, rss)
}

fn row(name: &str, total: u64, base: Option<f64>, m: &(bool, String, f64, f64, u64)) {
    let (ok, err, wall, cpu, rss) = m;
    if !ok {
        println!(
            "| {name} | – | – | – | – | – | failed: {} |",
            err.replace('|', "/")
        );
        return;
    }
    let ratio = base.map_or("–".into(), |b| format!("{:.2}×", wall / b));
    println!(
        "| {name} | {wall:.2} | {:.0} | {ratio} | {cpu:.2} | {:.1} | ok |",
        total as f64 / wall.max(1e-9) / 1e6,
        *rss as f64 / 1024.0
    );
}

/// The push rows and the copy rows.
pub(crate) fn run(bin: &Path, baseline: Option<&Path>, runs: usize, quick: bool, scratch: &Path) {
    let time_file = scratch.join("push-time");
    let size = if quick { 64usize << 20 } else { 1 << 30 };
    let img = image(300, &[size], &Platform::host(), false);
    let layout = scratch.join("push-layout");
    write_oci_layout(&layout, &[(&img, Some("v1"))], &[]);
    let layer = Digest::sha256(&img.layers[0]);
    let layer_file = layout.join("blobs/sha256").join(layer.hex());
    let total: u64 = img.blobs().map(|b| b.len() as u64).sum();
    println!("## push: one {} MiB layer, layout → registry\n", size >> 20);
    println!("| tool | wall s (median) | MB/s | vs limit | CPU s | peak RSS MiB | result |");
    println!("|---|---|---|---|---|---|---|");
    let mut base = None;
    for (t, tool) in [
        PushTool::Limit,
        PushTool::Ocireg,
        PushTool::Baseline,
        PushTool::Skopeo,
        PushTool::OciClient,
    ]
    .into_iter()
    .filter(|t| *t != PushTool::Baseline || baseline.is_some())
    .enumerate()
    {
        let m = measure(runs, &time_file, |r, addr| {
            let repo = format!("push/t{t}r{r}");
            let target = format!("{addr}/{repo}:v1");
            match tool {
                PushTool::Limit => (
                    "bash".into(),
                    vec![
                        "-c".into(),
                        format!(
                            "set -e; loc=$(curl -sf -X POST -D - -o /dev/null http://{addr}/v2/{repo}/blobs/uploads/ | tr -d '\\r' | sed -n 's/^[Ll]ocation: //p'); \
                             case $loc in http*) url=$loc;; *) url=http://{addr}$loc;; esac; \
                             curl -sf -o /dev/null -T {} \"$url&digest={layer}\"",
                            layer_file.display()
                        ),
                    ],
                ),
                PushTool::Ocireg | PushTool::Baseline => (
                    match (tool, baseline) {
                        (PushTool::Baseline, Some(b)) => b.display().to_string(),
                        _ => bin.join("ocireg").display().to_string(),
                    },
                    vec![
                        "push".into(),
                        "--plain-http".into(),
                        "--progress".into(),
                        "none".into(),
                        "--concurrency".into(),
                        CONCURRENCY.to_string(),
                        layout.display().to_string(),
                        target,
                    ],
                ),
                PushTool::Skopeo => (
                    "skopeo".into(),
                    vec![
                        "copy".into(),
                        "-q".into(),
                        "--dest-tls-verify=false".into(),
                        format!("oci:{}:v1", layout.display()),
                        format!("docker://{target}"),
                    ],
                ),
                PushTool::OciClient => (
                    bin.join("oci-client-push").display().to_string(),
                    vec![layout.display().to_string(), target],
                ),
            }
        });
        if tool == PushTool::Limit && m.0 {
            base = Some(m.2);
        }
        let bytes = if tool == PushTool::Limit {
            size as u64
        } else {
            total
        };
        row(tool.name(), bytes, base, &m);
    }
    println!();

    // copy: many layers from one registry to another (a fresh one per run)
    let reg = RealRegistry::start(Mode::Open);
    let (n, each) = if quick { (16, 4 << 20) } else { (64, 16 << 20) };
    let many = image(301, &vec![each; n], &Platform::host(), false);
    reg.push(&many, "copy/src", "v1");
    let total: u64 = many.blobs().map(|b| b.len() as u64).sum();
    println!(
        "## copy: {n} layers of {} MiB, registry → another registry\n",
        each >> 20
    );
    println!("| tool | wall s (median) | MB/s | vs ocireg | CPU s | peak RSS MiB | result |");
    println!("|---|---|---|---|---|---|---|");
    let src = format!("{}/copy/src:v1", reg.addr);
    let ours = measure(runs, &time_file, |r, other| {
        (
            bin.join("ocireg").display().to_string(),
            vec![
                "copy".into(),
                "--plain-http".into(),
                "--progress".into(),
                "none".into(),
                src.clone(),
                format!("{other}/copy/o{r}:v1"),
            ],
        )
    });
    row("ocireg copy", total, None, &ours);
    let base = ours.0.then_some(ours.2);
    let theirs = measure(runs, &time_file, |r, other| {
        (
            "skopeo".into(),
            vec![
                "copy".into(),
                "-q".into(),
                "--src-tls-verify=false".into(),
                "--dest-tls-verify=false".into(),
                format!("docker://{src}"),
                format!("docker://{other}/copy/s{r}:v1"),
            ],
        )
    });
    row("skopeo copy docker:// → docker://", total, base, &theirs);
    println!();
}
