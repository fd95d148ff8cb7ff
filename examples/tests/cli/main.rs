//! The `ocireg` binary: exit codes, messages, pull against a real registry, serve, demo.
//! One module per family of commands; the helpers they share are here.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ocireg_core::Platform;
use ocireg_registry::images::image;
use ocireg_tests::real::{layout_blobs, skopeo_roundtrip, Mode, RealRegistry};

#[path = "../support/mod.rs"]
mod support;
use support::{ocireg, ok, serve_inprocess, succeed};

mod admin;
mod client_certs;
mod credentials;
mod lists;
mod proxies;
mod pull;
mod push;
mod reads;
mod runtimes;
mod usage;

/// Runs the in-process registry with faults on a free port, in a background runtime.
fn inprocess(
    img: &ocireg_registry::images::TestImage,
    rules: Vec<ocireg_registry::Rule>,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<ocireg_registry::FaultyRegistry>>,
    tokio::runtime::Runtime,
) {
    let mut r = ocireg_registry::Registry::new();
    img.add_to(&mut r, "test/repo", Some("v1"));
    serve_inprocess(r, rules)
}

/// Runs `ocireg` with `args` and the layout `dir` last; stdout parsed as JSON lines.
fn json_events(
    args: &[&str],
    dir: &std::path::Path,
) -> (std::process::Output, Vec<serde_json::Value>) {
    let out = ocireg().args(args).arg(dir).output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (out, events)
}
