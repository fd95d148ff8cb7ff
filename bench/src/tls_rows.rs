//! TLS rows: the real registry over https with its own CA, one large layer, over
//! HTTP/1.1 and over HTTP/2 (ALPN), for ocireg, skopeo and oci-client, beside the peer
//! `curl --cacert … | openssl dgst -sha256` (a pipe, no file) with each protocol.
//! HTTP/2's flow-control windows must not hold a single large blob below HTTP/1.1.

use std::path::Path;

use ocireg_core::{Digest, Platform};
use ocireg_registry::images::image;
use ocireg_tests::real::{Mode, RealRegistry};

use crate::{median, median_run, timed_with};

/// One row's command: program, arguments, environment.
type Cmd = (String, Vec<String>, Vec<(&'static str, String)>);

/// Pushes one layer to a TLS registry and pulls it with every tool, `runs` times each.
pub(crate) fn run(bin: &Path, runs: usize, quick: bool, scratch: &Path) {
    let size = if quick { 64 << 20 } else { 1 << 30 };
    let reg = RealRegistry::start(Mode::OpenTls);
    let ca = reg.ca.clone().expect("a TLS registry has a CA");
    let img = image(400, &[size], &Platform::host(), false);
    reg.push(&img, "tls/big", "v1");
    let layer = Digest::sha256(&img.layers[0]);
    let reference = format!("{}/tls/big:v1", reg.addr);
    let out = scratch.join("tls-out");
    let out_s = out.display().to_string();
    let ca_s = ca.display().to_string();
    let cert_dir = reg.dir.path().join("certs.d").display().to_string();
    println!(
        "## TLS: one {} MiB layer over https (the registry's own CA)\n",
        size >> 20
    );
    println!(
        "| tool | protocol | wall s (median) | MB/s | vs ocireg HTTP/1.1 | peak RSS MiB | result |"
    );
    println!("|---|---|---|---|---|---|---|");
    let ocireg = |http1: bool| -> Cmd {
        let mut a = vec!["pull", "--progress", "none", "--ca-file", &ca_s];
        if http1 {
            a.push("--http1.1");
        }
        a.extend([reference.as_str(), out_s.as_str()]);
        (
            bin.join("ocireg").display().to_string(),
            a.into_iter().map(str::to_string).collect(),
            vec![],
        )
    };
    let skopeo = |http1: bool| -> Cmd {
        let env = if http1 {
            vec![("GODEBUG", "http2client=0".to_string())]
        } else {
            vec![]
        };
        let args = [
            "copy".to_string(),
            "-q".into(),
            format!("--src-cert-dir={cert_dir}"),
            "--preserve-digests".into(),
            format!("docker://{reference}"),
            format!("oci:{out_s}:v1"),
        ];
        ("skopeo".to_string(), args.to_vec(), env)
    };
    let curl = |http1: bool| -> Cmd {
        let script = format!(
            "mkdir -p {out_s} && curl -sf {} --cacert {ca_s} https://{}/v2/tls/big/blobs/{} | openssl dgst -sha256 -r > {out_s}/sum && grep -q {} {out_s}/sum",
            if http1 { "--http1.1" } else { "--http2" },
            reg.addr,
            layer,
            layer.hex()
        );
        ("bash".to_string(), vec!["-c".to_string(), script], vec![])
    };
    let client: Cmd = (
        bin.join("oci-client-pull").display().to_string(),
        vec![reference.clone(), out_s.clone(), "8".to_string()],
        vec![("OCI_CLIENT_CA", ca_s.clone())],
    );
    let rows: Vec<(&str, &str, Cmd)> = vec![
        ("peer: curl piped to openssl dgst", "HTTP/1.1", curl(true)),
        ("peer: curl piped to openssl dgst", "HTTP/2", curl(false)),
        ("ocireg (tokio)", "HTTP/1.1", ocireg(true)),
        ("ocireg (tokio)", "HTTP/2", ocireg(false)),
        ("skopeo copy", "HTTP/1.1", skopeo(true)),
        ("skopeo copy", "HTTP/2", skopeo(false)),
        ("oci-client 0.18", "its default (reqwest, ALPN)", client),
    ];
    let time_file = scratch.join("tls-time");
    let mut base = None;
    for (tool, protocol, (cmd, args, env)) in rows {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut results = Vec::new();
        for _ in 0..runs {
            let _ = std::fs::remove_dir_all(&out);
            let r = timed_with(&cmd, &args, &env, &time_file);
            let ok = r.0;
            results.push(r);
            if !ok {
                break;
            }
        }
        let _ = std::fs::remove_dir_all(&out);
        if let Some(r) = results.iter().find(|r| !r.0) {
            println!(
                "| {tool} | {protocol} | – | – | – | – | failed: {} |",
                r.1.replace('|', "/")
            );
            continue;
        }
        let wall = median(results.iter().map(|r| r.2).collect());
        let rss = median_run(&results, |r| r.2).map_or(0, |r| r.4);
        if tool.starts_with("ocireg") && protocol == "HTTP/1.1" {
            base = Some(wall);
        }
        let vs = base.map_or("–".to_string(), |b| format!("{:.2}×", wall / b.max(1e-9)));
        println!(
            "| {tool} | {protocol} | {wall:.2} | {:.0} | {vs} | {:.1} | ok |",
            size as f64 / wall.max(1e-9) / 1e6,
            rss as f64 / 1024.0
        );
    }
    println!();
}
