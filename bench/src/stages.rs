//! The limit, measured right: the three stages of a pull, each alone, on the same blobs
//! in the same run. A pull receives the bytes (network), hashes them (CPU) and writes
//! them durably (disk); a client that overlaps the three perfectly is as fast as the
//! slowest, which is the limit every row is compared with.
//!
//! - network: every blob fetched with `curl` into `/dev/null`, 8 at a time;
//! - hash: every blob's file hashed with `openssl dgst -sha256` (SHA-NI), 8 at a time;
//! - durable write: every blob's file copied with `dd … conv=fdatasync`, 8 at a time
//!   (and, for the rows without durability, the same copy without the `fdatasync`).
//!
//! The blob files are written once beforehand and are in the page cache, as the bytes of
//! a download are in memory: only the stage itself is timed.

use std::path::Path;

use ocireg_core::Digest;

use crate::{median, timed, CONCURRENCY};

/// The stages' wall times (s), medians of the runs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stages {
    pub(crate) network: f64,
    pub(crate) hash: f64,
    pub(crate) durable_write: f64,
    pub(crate) write: f64,
}

impl Stages {
    /// The slowest stage with durable writes: the limit of a durable pull.
    pub(crate) fn limit(&self) -> f64 {
        self.network.max(self.hash).max(self.durable_write)
    }

    /// The slowest stage when nothing is flushed.
    pub(crate) fn limit_without_durability(&self) -> f64 {
        self.network.max(self.hash).max(self.write)
    }

    /// One line for the report.
    pub(crate) fn describe(&self) -> String {
        let slowest = [
            ("network", self.network),
            ("hash", self.hash),
            ("durable write", self.durable_write),
        ]
        .into_iter()
        .fold(("", 0.0f64), |a, b| if b.1 > a.1 { b } else { a });
        format!(
            "stages alone: network {:.2} s, hash {:.2} s, durable write {:.2} s (without fdatasync {:.2} s); \
             limit = the slowest ({}): {:.2} s durable, {:.2} s without durability",
            self.network,
            self.hash,
            self.durable_write,
            self.write,
            slowest.0,
            self.limit(),
            self.limit_without_durability()
        )
    }
}

/// Measures the stages for `blobs` (their bytes in `files`, named by hex) served by the
/// registry at `addr` in `repo`, `runs` times each.
pub(crate) fn measure(
    addr: &str,
    repo: &str,
    blobs: &[(Digest, u64)],
    files: &Path,
    scratch: &Path,
    runs: usize,
) -> Stages {
    let list = scratch.join("stage-list");
    let hexes: Vec<&str> = blobs.iter().map(|(d, _)| d.hex()).collect();
    std::fs::write(&list, hexes.join("\n")).unwrap();
    let out = scratch.join("stage-out");
    let time_file = scratch.join("stage-time");
    let run = |script: String| -> f64 {
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let r = timed("bash", &["-c".to_string(), script], &time_file);
        assert!(r.0, "a stage failed: {}", r.1);
        r.2
    };
    let each = |template: &str| -> f64 {
        median(
            (0..runs)
                .map(|_| {
                    run(format!(
                        "xargs -P {CONCURRENCY} -I{{}} sh -c '{template}' < {}",
                        list.display()
                    ))
                })
                .collect(),
        )
    };
    let files = files.display();
    let out_dir = out.display();
    Stages {
        network: each(&format!(
            "curl -sf -o /dev/null http://{addr}/v2/{repo}/blobs/sha256:{{}}"
        )),
        hash: each(&format!("openssl dgst -sha256 {files}/{{}} > /dev/null")),
        durable_write: each(&format!(
            "dd if={files}/{{}} of={out_dir}/{{}} bs=1M conv=fdatasync status=none"
        )),
        write: each(&format!(
            "dd if={files}/{{}} of={out_dir}/{{}} bs=1M status=none"
        )),
    }
}
