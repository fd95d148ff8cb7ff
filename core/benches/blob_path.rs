//! The core's own cost per byte: a 64 MiB blob fed through `Pull` in 64 KiB chunks
//! (hashing, bounds checks, `Deliver` actions) against plain `sha2` over the same chunks.
//!
//! `cargo bench -p ocireg-core --bench blob_path`

use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::Response;
use ocireg_core::manifest::OCI_MANIFEST;
use ocireg_core::{Action, Config, Digest, Machine, Reference};
use sha2::Digest as _;

const SIZE: usize = 64 << 20;
const CHUNK: usize = 64 << 10;

fn blob() -> Bytes {
    let mut x: u64 = 1;
    Bytes::from(
        (0..SIZE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>(),
    )
}

fn manifest(layer: &Bytes, config: &Bytes) -> Bytes {
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        Digest::sha256(config),
        config.len(),
        Digest::sha256(layer),
        layer.len()
    ))
}

/// One pull of the image, returning the bytes delivered.
fn pull_through_core(manifest: &Bytes, config: &Bytes, layer: &Bytes) -> u64 {
    let now = Instant::now();
    let cfg = Config {
        plain_http: true,
        ..Config::default()
    };
    let mut p = Machine::pull(cfg, Reference::parse("reg.test/x/y:v1").unwrap(), now);
    let mut delivered = 0u64;
    let mut pending = Vec::new();
    loop {
        match p.poll_action(now) {
            Action::Send { id, request } => pending.push((id, request.uri().path().to_string())),
            Action::Deliver { bytes, .. } => delivered += bytes.len() as u64,
            Action::Event(_) | Action::Abort { .. } | Action::Prepare { .. } => {}
            Action::Done => return delivered,
            Action::Failed(e) => panic!("{e}"),
            Action::Wait { .. } => {
                let (id, path) = pending.remove(0);
                let (ct, body) = if path.contains("/manifests/") {
                    (OCI_MANIFEST, manifest)
                } else if path.ends_with(&Digest::sha256(config).to_string()) {
                    ("application/octet-stream", config)
                } else {
                    ("application/octet-stream", layer)
                };
                p.handle_head(
                    id,
                    Response::builder()
                        .status(200)
                        .header("content-type", ct)
                        .body(())
                        .unwrap(),
                    now,
                );
                let mut off = 0;
                while off < body.len() {
                    let end = (off + CHUNK).min(body.len());
                    p.handle_chunk(id, body.slice(off..end), now);
                    off = end;
                    // drain deliveries as a driver would after every input
                    while let Action::Deliver { bytes, .. } = p.poll_action(now) {
                        delivered += bytes.len() as u64;
                    }
                }
                p.handle_end(id, now);
            }
            other => unreachable!("a pull does not {other:?}"),
        }
    }
}

fn bench(c: &mut Criterion) {
    let layer = blob();
    let config = Bytes::from_static(b"{}");
    let manifest = manifest(&layer, &config);
    let mut g = c.benchmark_group("64 MiB blob in 64 KiB chunks");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.sample_size(20);
    g.bench_function("plain sha2", |b| {
        b.iter(|| {
            let mut h = sha2::Sha256::new();
            for c in layer.chunks(CHUNK) {
                h.update(c);
            }
            h.finalize()
        })
    });
    g.bench_function("ocireg-core Pull", |b| {
        b.iter(|| pull_through_core(&manifest, &config, &layer))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
