//! A copy between registries streams each blob from the source as the upload takes it.
//! When an upload is cut and resumed at the target's offset, the source is read again
//! from the last hash checkpoint before that offset, not from the blob's first byte,
//! and the whole blob is still verified.

use std::sync::{Arc, Mutex};

use ocireg_core::{Config, Event, Machine, Platform, Reference};
use ocireg_driver::push::{plan_from_registry, RegistrySource};
use ocireg_driver::{drive, Upload};
use ocireg_registry::images::image;
use ocireg_registry::{FaultyRegistry, Registry};
use ocireg_tests::hostile::Hostile;
use ocireg_tests::kit::Kit;
use ocireg_tests::on_every_runtime;

/// Checkpoints of a blob of this size are one `Checkpoints` spacing (4 MiB) apart, plus
/// at most one delivered chunk.
const SIZE: usize = 64 << 20;
const SPACING: u64 = 4 << 20;
const CHUNK_SLACK: u64 = 1 << 20;

/// The first byte a `Range: bytes=N-M` header asks for.
fn range_start(range: &str) -> Option<u64> {
    range
        .strip_prefix("bytes=")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

async fn a_resumed_upload_reads_the_source_from_a_checkpoint<K: Kit>() {
    let img = image(74, &[SIZE], &Platform::host(), false);
    let mut reg = Registry::new();
    img.add_to(&mut reg, "src/app", Some("v1"));
    let source = Arc::new(Mutex::new(FaultyRegistry::new(reg, vec![])));
    let source_addr = K::serve(source.clone()).await;
    let target = Arc::new(Mutex::new(FaultyRegistry::new(Registry::new(), vec![])));
    let target_addr = K::serve(target.clone()).await;
    // three cuts in the upload stream, each well past a checkpoint
    let cuts = vec![9u64 << 20, (29 << 20) + 12_345, (50 << 20) + 777];
    let (proxy, state) = Hostile::upload_cutter(target_addr, cuts);
    let cfg = Config {
        plain_http: true,
        ..Config::default()
    };
    let transport: Arc<dyn ocireg_driver::Transport> = Arc::from(K::transport(&[]));
    let runtime: Arc<dyn ocireg_driver::Runtime> = Arc::from(K::runtime());
    let from = Reference::parse(&format!("{source_addr}/src/app:v1")).unwrap();
    let to = Reference::parse(&format!("{}/dst/app:v1", proxy.addr)).unwrap();
    let plan = plan_from_registry(&from, cfg.clone(), &*transport, &*runtime)
        .await
        .unwrap();
    let streamed = RegistrySource::new(
        transport.clone(),
        runtime.clone(),
        cfg.clone(),
        from,
        plan.blobs.clone(),
    );
    // one request per blob, as `ocireg copy` sends them
    let push_cfg = Config {
        upload_chunk_size: u64::MAX,
        ..cfg
    };
    let mut push = Machine::push(push_cfg, to, plan, runtime.now());
    let mut events = Vec::new();
    drive(
        &mut push,
        &*transport,
        &*runtime,
        &mut Upload {
            source: &streamed,
            observer: |e: &Event| events.push(e.clone()),
        },
    )
    .await
    .unwrap();
    assert!(state.lock().unwrap().1.is_empty(), "a cut never happened");
    for b in img.blobs() {
        let digest = ocireg_core::Digest::sha256(b);
        assert!(target.lock().unwrap().inner.has_blob("dst/app", &digest));
    }
    // where each resumed upload continued, and where the source was read from for it
    let resumed: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::UploadResumed { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect();
    let layer_path = format!("/blobs/{}", ocireg_core::Digest::sha256(&img.layers[0]));
    let reads: Vec<Option<u64>> = source
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|s| s.method == "GET" && s.path.ends_with(&layer_path))
        .map(|s| s.range.as_deref().and_then(range_start))
        .collect();
    eprintln!("upload resumed at {resumed:?}; source read from {reads:?}");
    assert_eq!(resumed.len(), 3, "{events:?}");
    assert_eq!(reads.len(), 1 + resumed.len(), "{reads:?}");
    assert_eq!(reads[0], None, "the first read starts at byte 0");
    for (at, from) in resumed.iter().zip(&reads[1..]) {
        let from = from.unwrap_or(0);
        assert!(
            from <= *at && at - from <= SPACING + CHUNK_SLACK,
            "resumed at {at}, the source read from {from}"
        );
    }
}

on_every_runtime!(a_resumed_upload_reads_the_source_from_a_checkpoint);
