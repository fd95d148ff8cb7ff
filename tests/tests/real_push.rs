//! Pushing to a real CNCF distribution registry on loopback (open, TLS, basic, token),
//! on every runtime: a multi-layer image and a multi-platform index go in from a layout
//! and come back with the same digests; uploads cut on the way in resume.

use std::path::Path;

use ocireg_core::manifest::OCI_INDEX;
use ocireg_core::{
    Config, Credentials, Event, Machine, Platform, PlatformChoice, Reference, Secret,
};
use ocireg_driver::layout::pull_to_layout;
use ocireg_driver::push::plan_from_layout;
use ocireg_driver::{drive, Error as DriveError, Upload};
use ocireg_registry::images::{image, index};
use ocireg_tests::kit::Kit;
use ocireg_tests::on_every_runtime;
use ocireg_tests::real::{layout_blobs, write_oci_layout, Mode, RealRegistry, PASSWORD, USER};

fn basic() -> Credentials {
    Credentials::Basic {
        username: USER.into(),
        password: Secret::new(PASSWORD),
    }
}

/// Pushes the image named `name` of the layout at `dir` to `addr/target`; the events.
async fn push<K: Kit>(
    addr: &str,
    ca: Option<&Path>,
    dir: &Path,
    name: &str,
    target: &str,
    cfg: Config,
) -> Result<Vec<Event>, DriveError> {
    let cas = ca
        .map(|c| ocireg_tokio::load_certs(c).unwrap())
        .unwrap_or_default();
    let t = K::transport(&cas);
    let rt = K::runtime();
    let (plan, source) = plan_from_layout(dir, Some(name), None).unwrap();
    let target = Reference::parse(&format!("{addr}/{target}")).unwrap();
    let mut p = Machine::push(cfg, target, plan, rt.now());
    let mut events = Vec::new();
    drive(
        &mut p,
        t.as_ref(),
        rt.as_ref(),
        &mut Upload {
            source: &source,
            observer: |e: &Event| events.push(e.clone()),
        },
    )
    .await?;
    Ok(events)
}

/// Pulls `reference` (every platform) into a new layout; its blob digests.
async fn pull_back<K: Kit>(
    addr: &str,
    ca: Option<&Path>,
    reference: &str,
    cfg: Config,
) -> Vec<String> {
    let cas = ca
        .map(|c| ocireg_tokio::load_certs(c).unwrap())
        .unwrap_or_default();
    let t = K::transport(&cas);
    let rt = K::runtime();
    let dir = tempfile::tempdir().unwrap();
    let r = Reference::parse(&format!("{addr}/{reference}")).unwrap();
    let cfg = Config {
        platform: PlatformChoice::All,
        ..cfg
    };
    let mut p = Machine::pull(cfg, r, rt.now());
    pull_to_layout(&mut p, t.as_ref(), rt.as_ref(), dir.path(), &mut ())
        .await
        .unwrap();
    layout_blobs(dir.path())
}

/// A layout with a two-layer image named `v1` and a two-platform index named `multi`.
fn layout() -> tempfile::TempDir {
    let a = image(70, &[5000, 300_000], &Platform::host(), false);
    let other = Platform::parse("linux/riscv64").unwrap();
    let b = image(71, &[7000], &other, false);
    let idx = index(&[(&a, &Platform::host()), (&b, &other)]);
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(
        dir.path(),
        &[(&a, Some("v1")), (&b, None)],
        &[(OCI_INDEX, &idx, "multi")],
    );
    dir
}

async fn push_image_and_index_in_every_auth_mode<K: Kit>() {
    let src = layout();
    for mode in [Mode::Open, Mode::OpenTls, Mode::Basic] {
        let reg = RealRegistry::start(mode);
        let cfg = || Config {
            plain_http: reg.ca.is_none(),
            credentials: if mode == Mode::Basic {
                basic()
            } else {
                Credentials::Anonymous
            },
            ..Config::default()
        };
        let ca = reg.ca.as_deref();
        push::<K>(&reg.addr, ca, src.path(), "v1", "p/app:v1", cfg())
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        push::<K>(&reg.addr, ca, src.path(), "multi", "p/app:multi", cfg())
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        // every blob and manifest of the layout comes back (the index pulls all)
        let back = pull_back::<K>(&reg.addr, ca, "p/app:multi", cfg()).await;
        assert_eq!(back, layout_blobs(src.path()), "{mode:?}");
        let back = pull_back::<K>(&reg.addr, ca, "p/app:v1", cfg()).await;
        assert_eq!(back.len(), 4, "{mode:?}: manifest, config, two layers");
    }
}

async fn push_with_a_token_service<K: Kit>() {
    use ocireg_tests::token_server::TokenServer;
    let keys = tempfile::tempdir().unwrap();
    let users = [(USER.to_string(), PASSWORD.to_string())]
        .into_iter()
        .collect();
    let ts = TokenServer::start(keys.path(), users, true, 300);
    let reg = RealRegistry::start_token(&ts.realm, keys.path());
    let src = layout();
    let cfg = || Config {
        plain_http: true,
        credentials: basic(),
        ..Config::default()
    };
    let before = ts.log.lock().unwrap().len();
    push::<K>(&reg.addr, None, src.path(), "v1", "t/app:v1", cfg())
        .await
        .unwrap();
    // tokens asked for with push scope, once per scope set, not per request
    let log = ts.log.lock().unwrap()[before..].to_vec();
    assert!(
        log.iter()
            .any(|t| t.scopes.iter().any(|s| s.ends_with("pull,push"))),
        "{log:?}"
    );
    assert!(log.len() <= 2, "{} token requests: {log:?}", log.len());
    let back = pull_back::<K>(&reg.addr, None, "t/app:v1", cfg()).await;
    assert_eq!(back.len(), 4);
    // anonymous users may not push: a typed refusal
    let e = push::<K>(
        &reg.addr,
        None,
        src.path(),
        "v1",
        "t/other:v1",
        Config {
            plain_http: true,
            ..Config::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("refused") || e.to_string().contains("denied"),
        "{e}"
    );
}

/// A layout with one image (`v1`) of one `size`-byte layer.
fn one_layer(seed: u64, size: usize) -> (ocireg_registry::images::TestImage, tempfile::TempDir) {
    let img = image(seed, &[size], &Platform::host(), false);
    let src = tempfile::tempdir().unwrap();
    write_oci_layout(src.path(), &[(&img, Some("v1"))], &[]);
    (img, src)
}

/// The generator of cut points: seeded by `OCIREG_CUT_SEED` when set (to replay a
/// failure), else by `default`.
fn cut_rng(default: u64) -> (u64, ocireg_core::retry::Rng) {
    let seed = std::env::var("OCIREG_CUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (seed, ocireg_core::retry::Rng::new(seed))
}

/// Through a proxy that cuts four upload bodies at seeded points, a 64 MiB layer pushed in
/// 16 MiB chunks still arrives whole; what was sent again is measured and bounded.
/// docker-registry 2.8 cancels a session whose `PATCH` was cut (the bytes it kept no
/// longer match the offset in the session's `_state`), so here each cut restarts the
/// blob in a new session; a registry that keeps what it received resumes instead (see
/// `cut_uploads_cost_under_one_percent`).
async fn cut_uploads_resume<K: Kit>() {
    use ocireg_tests::hostile::{Answer, Hostile};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    let reg = RealRegistry::start(Mode::Open);
    let size = 64usize << 20;
    let (img, src) = one_layer(72, size);
    let (seed, mut rng) = cut_rng(0x0c07_5eed);
    let cuts: Vec<usize> = (0..4)
        .map(|_| (rng.next_u64() % (15 << 20)) as usize + 4096)
        .collect();
    eprintln!("cut points (seed {seed}): {cuts:?}");
    let cuts = Mutex::new(cuts.into_iter());
    let sent = Arc::new(AtomicU64::new(0));
    // cuts made, and upload bodies without a length (which this proxy cannot cut)
    let made = Arc::new(AtomicU64::new(0));
    let unsized_bodies = Arc::new(AtomicU64::new(0));
    let (target, sent_by_proxy) = (reg.addr.clone(), sent.clone());
    let (made_by_proxy, unsized_seen) = (made.clone(), unsized_bodies.clone());
    let proxy = Hostile::start(move |req, _| {
        let len: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let upload = req.method == "PATCH" || req.method == "PUT";
        if upload && req.header("transfer-encoding").is_some() {
            unsized_seen.fetch_add(1, Ordering::Relaxed);
        }
        if upload && len > (1 << 20) {
            if let Some(after) = cuts.lock().unwrap().next() {
                made_by_proxy.fetch_add(1, Ordering::Relaxed);
                sent_by_proxy.fetch_add(after.min(len) as u64, Ordering::Relaxed);
                return Answer::ForwardCut {
                    to: target.clone(),
                    after,
                };
            }
        }
        if upload {
            sent_by_proxy.fetch_add(len as u64, Ordering::Relaxed);
        }
        Answer::Forward {
            to: target.clone(),
            stall_after: None,
        }
    });
    let cfg = Config {
        plain_http: true,
        upload_chunk_size: 16 << 20,
        ..Config::default()
    };
    let events = push::<K>(
        &proxy.addr,
        None,
        src.path(),
        "v1",
        "cut/app:v1",
        cfg.clone(),
    )
    .await
    .unwrap();
    let back = pull_back::<K>(&reg.addr, None, "cut/app:v1", cfg).await;
    assert_eq!(back, layout_blobs(src.path()));
    let uploaded = sent.load(Ordering::Relaxed);
    let content: u64 = img.blobs().map(|b| b.len() as u64).sum();
    let count = |f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
    let resumed = count(|e| matches!(e, Event::UploadResumed { .. }));
    let restarted = count(|e| matches!(e, Event::UploadRestarted { .. }));
    eprintln!(
        "{uploaded} bytes uploaded for {content} ({:.2}% more), {resumed} resumed from the registry's offset, {restarted} restarted",
        (uploaded as f64 / content as f64 - 1.0) * 100.0
    );
    // the four cuts happened, on bodies the proxy could cut, and each was recovered
    assert_eq!(
        made.load(Ordering::Relaxed),
        4,
        "not every cut point was used"
    );
    assert_eq!(
        unsized_bodies.load(Ordering::Relaxed),
        0,
        "chunked uploads pass uncut"
    );
    assert!(
        resumed + restarted >= 4,
        "{resumed} resumed, {restarted} restarted"
    );
    assert!(uploaded >= content);
    // each cut costs at most what the cut chunk had sent
    assert!(
        uploaded <= content + 4 * (16 << 20),
        "{uploaded} for {content}"
    );
}

/// Through a proxy that cuts the upload stream of a 256 MiB layer at four random points,
/// into a registry that keeps what it received (as the distribution spec describes; the
/// in-process one, over loopback): the push resumes each time from the registry's offset
/// and moves at most 1% more than the layer.
async fn cut_uploads_cost_under_one_percent<K: Kit>() {
    use ocireg_registry::{FaultyRegistry, Registry};
    use ocireg_tests::hostile::Hostile;
    use std::sync::{Arc, Mutex};
    let size = 256u64 << 20;
    let registry = Arc::new(Mutex::new(FaultyRegistry::new(Registry::new(), vec![])));
    let addr = K::serve(registry.clone()).await;
    let (img, src) = one_layer(73, size as usize);
    let (seed, mut rng) = cut_rng(0x256c_0075);
    let mut cuts: Vec<u64> = (0..4).map(|_| rng.next_u64() % size).collect();
    cuts.sort_unstable();
    eprintln!("cut points in the upload stream (seed {seed}): {cuts:?}");
    let (proxy, state) = Hostile::upload_cutter(addr, cuts);
    let cfg = Config {
        plain_http: true,
        ..Config::default()
    };
    let events = push::<K>(&proxy.addr, None, src.path(), "v1", "cut/big:v1", cfg)
        .await
        .unwrap();
    let (moved, left) = state.lock().unwrap().clone();
    assert!(left.is_empty(), "cuts never reached: {left:?}");
    let reg = registry.lock().unwrap();
    for b in img.blobs() {
        assert!(reg
            .inner
            .has_blob("cut/big", &ocireg_core::Digest::sha256(b)));
    }
    let content: u64 = img.blobs().map(|b| b.len() as u64).sum();
    let resumed = events
        .iter()
        .filter(|e| matches!(e, Event::UploadResumed { .. }))
        .count();
    eprintln!(
        "{moved} body bytes moved for {content} ({:.4}% more), {resumed} resumed from the registry's offset",
        (moved as f64 / content as f64 - 1.0) * 100.0
    );
    assert_eq!(resumed, 4, "{events:?}");
    assert!(moved >= content);
    assert!(moved * 100 <= content * 101, "{moved} for {content}");
}

/// With a platform, the plan of an index is the plan of that platform's image alone;
/// a platform the index lacks is an error that lists the ones it has.
#[test]
fn a_platform_of_an_index_is_pushed_alone() {
    let src = layout();
    let other = Platform::parse("linux/riscv64").unwrap();
    let (whole, _) = plan_from_layout(src.path(), Some("multi"), None).unwrap();
    assert_eq!(whole.manifests.len(), 3);
    let (one, _) = plan_from_layout(src.path(), Some("multi"), Some(&other)).unwrap();
    let riscv = image(71, &[7000], &other, false);
    let digests: Vec<_> = one
        .manifests
        .iter()
        .map(|m| m.descriptor.digest.clone())
        .collect();
    assert_eq!(digests, [riscv.digest()]);
    assert_eq!(one.blobs.len(), 2, "config and layer");
    // an image manifest is pushed as it is, whatever the platform
    let (same, _) = plan_from_layout(src.path(), Some("v1"), Some(&other)).unwrap();
    assert_eq!(same.manifests.len(), 1);
    let e = plan_from_layout(
        src.path(),
        Some("multi"),
        Some(&Platform::parse("windows/arm64").unwrap()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("windows/arm64") && e.contains("linux/riscv64"),
        "{e}"
    );
}

on_every_runtime!(
    push_image_and_index_in_every_auth_mode,
    push_with_a_token_service,
    cut_uploads_resume,
    cut_uploads_cost_under_one_percent,
);
