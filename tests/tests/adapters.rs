//! Every runtime adapter against the in-process registry over real loopback sockets:
//! one set of cases, run once per runtime (see `on_every_runtime!`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ocireg_core::{Config, Event, Machine, Platform, Reference, RetryPolicy};
use ocireg_driver::layout::{pull_to_layout, Stats};
use ocireg_driver::Error as DriveError;
use ocireg_registry::images::{image, TestImage};
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::kit::Kit;
use ocireg_tests::on_every_runtime;
use ocireg_tests::real::layout_blobs;

fn registry(img: &TestImage, rules: Vec<Rule>) -> Arc<Mutex<FaultyRegistry>> {
    let mut r = Registry::new();
    img.add_to(&mut r, "test/repo", Some("v1"));
    Arc::new(Mutex::new(FaultyRegistry::new(r, rules)))
}

fn fast_retries() -> Config {
    Config {
        retry: RetryPolicy {
            initial_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
        ..Config::default()
    }
}

async fn pull<K: Kit>(
    reference: &str,
    cfg: Config,
    dir: &Path,
    observer: &mut (dyn ocireg_driver::Caller + Send),
) -> Result<(ocireg_core::Descriptor, Stats), DriveError> {
    let t = K::transport(&[]);
    let rt = K::runtime();
    let mut p = Machine::pull(cfg, Reference::parse(reference).unwrap(), rt.now());
    pull_to_layout(&mut p, t.as_ref(), rt.as_ref(), dir, observer).await
}

async fn seed_scenario_over_sockets<K: Kit>() {
    let img = image(7, &[3000, 20_000], &Platform::host(), false);
    let half = img.config.len() / 2;
    let reg = registry(&img, vec![]);
    let addr = K::serve(reg.clone()).await;
    reg.lock().unwrap().set_rules(vec![
        Rule::all(Fault::FailFirst {
            times: 1,
            status: 503,
        }),
        Rule::all(Fault::RedirectOnce),
        Rule::all(Fault::Token {
            realm: format!("http://{addr}/token"),
            service: "myregistry.test".into(),
        }),
        Rule::blobs(Fault::CutBody {
            after: half,
            times: u32::MAX,
        }),
    ]);
    let out = tempfile::tempdir().unwrap();
    let mut resumes = 0;
    let mut fallback = false;
    let (d, stats) = pull::<K>(
        &format!("{addr}/test/repo:v1@{}", img.digest()),
        fast_retries(),
        out.path(),
        &mut |e: &Event| match e {
            Event::DownloadResumed { .. } => resumes += 1,
            Event::PlainHttpFallback { .. } => fallback = true,
            _ => {}
        },
    )
    .await
    .unwrap();
    assert_eq!(d.digest, img.digest());
    assert!(
        fallback,
        "{}: loopback https attempt falls back to http",
        K::NAME
    );
    assert!(resumes > 10, "{resumes} resumes");
    assert_eq!(stats.fetched, 3);
    assert_eq!(
        layout_blobs(out.path()),
        ocireg_tests::sim::image_digests(&img)
    );
    let log = reg.lock().unwrap().log.clone();
    let sent: usize = log
        .iter()
        .filter(|s| s.path.contains("/blobs/"))
        .map(|s| s.body_bytes)
        .sum();
    let total: usize = img.blobs().map(|b| b.len()).sum();
    assert_eq!(sent, total, "every blob byte sent exactly once");
}

async fn stall_is_detected_and_resumed<K: Kit>() {
    let img = image(8, &[500_000], &Platform::host(), false);
    let addr = K::serve(registry(
        &img,
        vec![Rule::blobs(Fault::StallBody {
            after: 100_000,
            times: 1,
        })],
    ))
    .await;
    let out = tempfile::tempdir().unwrap();
    let cfg = Config {
        plain_http: true,
        // wide enough that a loaded machine's scheduling gaps (two shared cores, the
        // whole suite running) are not stalls: the one stall is the server's
        idle_timeout: Duration::from_secs(3),
        ..fast_retries()
    };
    let mut resumed_at = None;
    pull::<K>(
        &format!("{addr}/test/repo:v1"),
        cfg,
        out.path(),
        &mut |e: &Event| {
            if let Event::DownloadResumed { offset, .. } = e {
                resumed_at = Some(*offset);
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(resumed_at, Some(100_000));
}

async fn failure_leaves_no_half_written_blob<K: Kit>() {
    let img = image(9, &[50_000], &Platform::host(), false);
    let addr = K::serve(registry(
        &img,
        vec![Rule::blobs(Fault::CutBody {
            after: 10_000,
            times: u32::MAX,
        })],
    ))
    .await;
    let out = tempfile::tempdir().unwrap();
    let cfg = Config {
        plain_http: true,
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..Config::default()
    };
    let e = pull::<K>(&format!("{addr}/test/repo:v1"), cfg, out.path(), &mut ())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("GET"), "{e}");
    // the cut layer never appears under blobs/, what does appear is verified, and no
    // index.json was written
    let present = layout_blobs(out.path());
    assert!(!present.contains(&ocireg_core::Digest::sha256(&img.layers[0]).to_string()));
    for d in &present {
        ocireg_driver::layout::read_blob(out.path(), &ocireg_core::Digest::parse(d).unwrap())
            .unwrap();
    }
    assert!(!out.path().join("index.json").exists());
}

async fn blob_redirected_to_another_origin_arrives_without_authorization<K: Kit>() {
    let img = image(10, &[40_000, 90_000], &Platform::host(), false);
    let cdn = registry(&img, vec![]);
    let cdn_addr = K::serve(cdn.clone()).await;
    let reg = registry(&img, vec![]);
    let addr = K::serve(reg.clone()).await;
    reg.lock().unwrap().set_rules(vec![
        Rule::all(Fault::Token {
            realm: format!("http://{addr}/token"),
            service: "svc".into(),
        }),
        Rule::blobs(Fault::RedirectTo {
            base: format!("http://{cdn_addr}"),
        }),
    ]);
    let out = tempfile::tempdir().unwrap();
    let cfg = Config {
        plain_http: true,
        ..fast_retries()
    };
    let (d, _) = pull::<K>(&format!("{addr}/test/repo:v1"), cfg, out.path(), &mut ())
        .await
        .unwrap();
    assert_eq!(d.digest, img.digest());
    let cdn_log = cdn.lock().unwrap().log.clone();
    assert_eq!(
        cdn_log.len(),
        3,
        "config and two layers fetched from the other origin"
    );
    assert!(
        cdn_log.iter().all(|s| s.auth_scheme.is_none()),
        "{cdn_log:?}"
    );
    let reg_log = reg.lock().unwrap().log.clone();
    assert!(reg_log
        .iter()
        .filter(|s| s.path.contains("/blobs/"))
        .all(|s| s.auth_scheme.as_deref() == Some("Bearer")));
}

async fn rate_limited_then_served<K: Kit>() {
    let img = image(11, &[10_000], &Platform::host(), false);
    let addr = K::serve(registry(
        &img,
        vec![Rule::all(Fault::RateLimit {
            times: 1,
            retry_after: "1".into(),
        })],
    ))
    .await;
    let out = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let mut delays = Vec::new();
    pull::<K>(
        &format!("{addr}/test/repo:v1"),
        Config {
            plain_http: true,
            ..fast_retries()
        },
        out.path(),
        &mut |e: &Event| {
            if let Event::Retry { delay, .. } = e {
                delays.push(*delay);
            }
        },
    )
    .await
    .unwrap();
    assert!(
        !delays.is_empty() && delays.iter().all(|d| *d >= Duration::from_secs(1)),
        "{delays:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
}

/// A copy's source: any range of a blob, read from the registry as it is consumed; a
/// read to the blob's end checks its digest, so a registry that serves other bytes is an
/// error there.
async fn a_registry_blob_source_gives_exact_ranges<K: Kit>() {
    use futures::StreamExt;
    use ocireg_driver::BlobSource;
    let img = image(80, &[300_000], &Platform::host(), false);
    let reg = registry(&img, vec![]);
    let addr = K::serve(reg.clone()).await;
    let layer = img.layers[0].clone();
    let descriptor = ocireg_core::Descriptor::new(
        "application/octet-stream",
        ocireg_core::Digest::sha256(&layer),
        layer.len() as u64,
    );
    let source = |d: ocireg_core::Descriptor| {
        ocireg_driver::push::RegistrySource::new(
            std::sync::Arc::from(K::transport(&[])),
            std::sync::Arc::from(K::runtime()),
            fast_retries(),
            Reference::parse(&format!("{addr}/test/repo")).unwrap(),
            vec![d],
        )
    };
    let read = |src: &ocireg_driver::push::RegistrySource, offset: u64, len: u64| {
        let stream = src.read(ocireg_core::BlobId(0), offset, len).unwrap();
        async move {
            let parts: Vec<std::io::Result<bytes::Bytes>> = stream.collect().await;
            parts
                .into_iter()
                .collect::<std::io::Result<Vec<_>>>()
                .map(|v| v.concat())
        }
    };
    let src = source(descriptor.clone());
    assert_eq!(read(&src, 0, 300_000).await.unwrap(), layer.to_vec());
    assert_eq!(
        read(&src, 1000, 5000).await.unwrap(),
        layer[1000..6000].to_vec()
    );
    assert_eq!(
        read(&src, 299_000, 1000).await.unwrap(),
        layer[299_000..].to_vec()
    );
    // a registry that serves other bytes under a digest: a part of it reads (a part is
    // not the digest's to check), the read to the end fails on the digest
    let claimed = ocireg_core::Digest::sha256(b"something else");
    reg.lock()
        .unwrap()
        .inner
        .add_blob_with_digest("test/repo", claimed.clone(), layer.clone());
    let wrong = source(ocireg_core::Descriptor {
        digest: claimed,
        ..descriptor
    });
    assert_eq!(
        read(&wrong, 1000, 5000).await.unwrap(),
        layer[1000..6000].to_vec()
    );
    let e = read(&wrong, 0, 300_000).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
    assert!(e.to_string().contains("digest"), "{e}");
}

on_every_runtime!(
    seed_scenario_over_sockets,
    stall_is_detected_and_resumed,
    failure_leaves_no_half_written_blob,
    blob_redirected_to_another_origin_arrives_without_authorization,
    rate_limited_then_served,
    a_registry_blob_source_gives_exact_ranges,
);
