//! Stream rows: one large blob read as a stream into its hash, no file (`ocireg blob …`
//! to `/dev/null`: the library's `Client::blob`, verified as it ends), beside the limit of
//! the same bytes through `curl | openssl dgst -sha256`, with peak RSS.

use std::path::Path;

use ocireg_core::{Digest, Platform};
use ocireg_registry::images::image;
use ocireg_tests::real::{Mode, RealRegistry};

use crate::{median, median_run, timed};

/// Pushes one layer and reads it with each tool, `runs` times each.
pub(crate) fn run(bin: &Path, runs: usize, quick: bool, scratch: &Path) {
    let size = if quick { 64 << 20 } else { 1 << 30 };
    let reg = RealRegistry::start(Mode::Open);
    let img = image(500, &[size], &Platform::host(), false);
    reg.push(&img, "stream/big", "v1");
    let layer = Digest::sha256(&img.layers[0]);
    drop(img);
    println!(
        "## stream: one {} MiB blob read into its hash (no file)\n",
        size >> 20
    );
    println!("| tool | wall s (median) | MB/s | vs limit | CPU s | peak RSS MiB | result |");
    println!("|---|---|---|---|---|---|---|");
    let at = format!("{}/stream/big@{layer}", reg.addr);
    let ocireg = |runtime: &str| {
        format!(
            "{} --runtime {runtime} blob --plain-http {at} > /dev/null",
            bin.join("ocireg").display()
        )
    };
    let rows = [
        (
            "limit: curl piped to openssl dgst",
            format!(
                "curl -sf http://{}/v2/stream/big/blobs/{layer} | openssl dgst -sha256 -r | grep -q {}",
                reg.addr,
                layer.hex()
            ),
        ),
        ("ocireg blob (tokio)", ocireg("tokio")),
        ("ocireg blob (smol)", ocireg("smol")),
    ];
    let time_file = scratch.join("stream-time");
    let mut base = None;
    for (tool, script) in rows {
        let args = vec!["-c".to_string(), format!("set -o pipefail; {script}")];
        let mut results = Vec::new();
        for _ in 0..runs {
            let r = timed("bash", &args, &time_file);
            let ok = r.0;
            results.push(r);
            if !ok {
                break;
            }
        }
        if let Some(r) = results.iter().find(|r| !r.0) {
            println!(
                "| {tool} | – | – | – | – | – | failed: {} |",
                r.1.replace('|', "/")
            );
            continue;
        }
        let wall = median(results.iter().map(|r| r.2).collect());
        let cpu = median(results.iter().map(|r| r.3).collect());
        let rss = median_run(&results, |r| r.2).map_or(0, |r| r.4);
        if base.is_none() {
            base = Some(wall);
        }
        let vs = base.map_or("–".to_string(), |b| format!("{:.2}×", wall / b.max(1e-9)));
        println!(
            "| {tool} | {wall:.2} | {:.0} | {vs} | {cpu:.2} | {:.1} | ok |",
            size as f64 / wall.max(1e-9) / 1e6,
            rss as f64 / 1024.0
        );
    }
    println!();
}
