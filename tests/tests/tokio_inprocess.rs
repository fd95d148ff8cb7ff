//! The tokio adapter against the in-process registry over real loopback sockets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ocireg_core::{Config, Event, Platform, Pull, Reference, RetryPolicy};
use ocireg_driver::layout::pull_to_layout;
use ocireg_driver::Runtime;
use ocireg_registry::images::{image, TestImage};
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::real::layout_blobs;
use ocireg_tokio::{serve, TokioRuntime, TokioTransport};

async fn start(
    img: &TestImage,
    rules: Vec<Rule>,
) -> (
    String,
    Arc<Mutex<FaultyRegistry>>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let mut r = Registry::new();
    img.add_to(&mut r, "test/repo", Some("v1"));
    let reg = Arc::new(Mutex::new(FaultyRegistry::new(r, rules)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(serve(listener, reg.clone()));
    (addr, reg, task)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_over_sockets() {
    let img = image(7, &[3000, 20_000], &Platform::host(), false);
    let half = img.config.len() / 2;
    let listener_addr;
    let (addr, reg, task) = {
        // the realm must name the server's own address: bind first, then set the rules
        let (addr, reg, task) = start(&img, vec![]).await;
        listener_addr = addr.clone();
        (addr, reg, task)
    };
    reg.lock().unwrap().set_rules(vec![
        Rule::all(Fault::FailFirst {
            times: 1,
            status: 503,
        }),
        Rule::all(Fault::RedirectOnce),
        Rule::all(Fault::Token {
            realm: format!("http://{listener_addr}/token"),
            service: "myregistry.test".into(),
        }),
        Rule::blobs(Fault::CutBody {
            after: half,
            times: u32::MAX,
        }),
    ]);
    let out = tempfile::tempdir().unwrap();
    let reference = Reference::parse(&format!("{addr}/test/repo:v1@{}", img.digest())).unwrap();
    let mut p = Pull::new(fast_retries(), reference, TokioRuntime.now());
    let mut resumes = 0;
    let mut fallback = false;
    let t = TokioTransport::new(&[]).unwrap();
    let (d, stats) = pull_to_layout(
        &mut p,
        &t,
        &TokioRuntime,
        out.path(),
        &mut |e: &ocireg_core::Event| match e {
            Event::Resumed { .. } => resumes += 1,
            Event::PlainHttpFallback { .. } => fallback = true,
            _ => {}
        },
    )
    .await
    .unwrap();
    assert_eq!(d.digest, img.digest());
    assert!(fallback, "loopback https attempt falls back to http");
    assert!(resumes > 10, "{resumes} resumes");
    assert_eq!(stats.fetched, 3);
    let mut want: Vec<String> = img
        .blobs()
        .map(|b| ocireg_core::Digest::sha256(b).to_string())
        .chain([img.digest().to_string()])
        .collect();
    want.sort();
    assert_eq!(layout_blobs(out.path()), want);
    let log = &reg.lock().unwrap().log;
    let sent: usize = log
        .iter()
        .filter(|s| s.path.contains("/blobs/"))
        .map(|s| s.body_bytes)
        .sum();
    let total: usize = img.blobs().map(|b| b.len()).sum();
    assert_eq!(sent, total, "every blob byte sent exactly once");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_is_detected_and_resumed() {
    let img = image(8, &[500_000], &Platform::host(), false);
    let (addr, _reg, task) = start(
        &img,
        vec![Rule::blobs(Fault::StallBody {
            after: 100_000,
            times: 1,
        })],
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let reference = Reference::parse(&format!("{addr}/test/repo:v1")).unwrap();
    let cfg = Config {
        plain_http: true,
        idle_timeout: Duration::from_millis(300),
        ..fast_retries()
    };
    let mut p = Pull::new(cfg, reference, TokioRuntime.now());
    let t = TokioTransport::new(&[]).unwrap();
    let mut resumed_at = None;
    pull_to_layout(
        &mut p,
        &t,
        &TokioRuntime,
        out.path(),
        &mut |e: &ocireg_core::Event| {
            if let Event::Resumed { offset, .. } = e {
                resumed_at = Some(*offset);
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(resumed_at, Some(100_000));
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_leaves_no_half_written_blob() {
    let img = image(9, &[50_000], &Platform::host(), false);
    let (addr, _reg, task) = start(
        &img,
        vec![Rule::blobs(Fault::CutBody {
            after: 10_000,
            times: u32::MAX,
        })],
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let reference = Reference::parse(&format!("{addr}/test/repo:v1")).unwrap();
    let cfg = Config {
        plain_http: true,
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..Config::default()
    };
    let mut p = Pull::new(cfg, reference, TokioRuntime.now());
    let t = TokioTransport::new(&[]).unwrap();
    let e = pull_to_layout(
        &mut p,
        &t,
        &TokioRuntime,
        out.path(),
        &mut ocireg_driver::layout::NoObserver,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("GET"), "{e}");
    // the cut layer never appears under blobs/, what does appear is verified, and no
    // index.json was written
    let present = layout_blobs(out.path());
    assert!(!present.contains(&ocireg_core::Digest::sha256(&img.layers[0]).to_string()));
    for d in &present {
        let d = ocireg_core::Digest::parse(d).unwrap();
        ocireg_driver::layout::read_blob(out.path(), &d).unwrap();
    }
    assert!(!out.path().join("index.json").exists());
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_redirected_to_another_origin_arrives_without_authorization() {
    let img = image(10, &[40_000, 90_000], &Platform::host(), false);
    let (cdn_addr, cdn, cdn_task) = start(&img, vec![]).await;
    let (addr, reg, task) = start(&img, vec![]).await;
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
    let reference = Reference::parse(&format!("{addr}/test/repo:v1")).unwrap();
    let mut p = Pull::new(
        Config {
            plain_http: true,
            ..fast_retries()
        },
        reference,
        TokioRuntime.now(),
    );
    let t = TokioTransport::new(&[]).unwrap();
    let (d, _) = pull_to_layout(
        &mut p,
        &t,
        &TokioRuntime,
        out.path(),
        &mut ocireg_driver::layout::NoObserver,
    )
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
    task.abort();
    cdn_task.abort();
}
