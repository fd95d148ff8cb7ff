//! Every runtime adapter against a real CNCF distribution registry on loopback: one
//! set of cases, run once per runtime.

use std::path::Path;

use ocireg_core::{
    Config, Credentials, Error, Machine, Platform, PlatformChoice, Reference, Secret,
};
use ocireg_driver::layout::pull_to_layout;
use ocireg_driver::Error as DriveError;
use ocireg_registry::images::{image, index, TestImage};
use ocireg_tests::kit::Kit;
use ocireg_tests::on_every_runtime;
use ocireg_tests::real::{
    layout_blobs, skopeo_roundtrip, write_oci_layout, Mode, RealRegistry, PASSWORD, USER,
};

async fn pull<K: Kit>(
    reg: &RealRegistry,
    reference: &str,
    cfg: Config,
    dir: &Path,
) -> Result<ocireg_core::Descriptor, DriveError> {
    pull_via::<K>(&reg.addr, reg.ca.as_deref(), reference, cfg, dir, &mut ()).await
}

async fn pull_via<K: Kit>(
    addr: &str,
    ca: Option<&Path>,
    reference: &str,
    cfg: Config,
    dir: &Path,
    observer: &mut (dyn ocireg_driver::Caller + Send),
) -> Result<ocireg_core::Descriptor, DriveError> {
    let cas = ca
        .map(|c| ocireg_tokio::load_certs(c).unwrap())
        .unwrap_or_default();
    let t = K::transport(&cas);
    let rt = K::runtime();
    let r = Reference::parse(&format!("{addr}/{reference}")).unwrap();
    let mut p = Machine::pull(cfg, r, rt.now());
    pull_to_layout(&mut p, t.as_ref(), rt.as_ref(), dir, observer)
        .await
        .map(|(d, _)| d)
}

fn expected_blobs(imgs: &[&TestImage], extra: &[&[u8]]) -> Vec<String> {
    let mut v: Vec<String> = imgs
        .iter()
        .flat_map(|i| ocireg_tests::sim::image_digests(i))
        .chain(
            extra
                .iter()
                .map(|e| ocireg_core::Digest::sha256(e).to_string()),
        )
        .collect();
    v.sort();
    v.dedup();
    v
}

fn plain() -> Config {
    Config {
        plain_http: true,
        ..Config::default()
    }
}

async fn open_registry_oci_docker_and_index<K: Kit>() {
    let reg = RealRegistry::start(Mode::Open);
    let host = Platform::host();
    let oci = image(11, &[4096, 300_000, 2 << 20], &host, false);
    let docker = image(12, &[5000, 70_000], &host, true);
    reg.push(&oci, "ocireg/oci", "v1");
    reg.push(&docker, "ocireg/docker", "v1");

    // OCI image: exactly its blobs, and skopeo reads the layout back with the same digest
    let out = tempfile::tempdir().unwrap();
    let d = pull::<K>(&reg, "ocireg/oci:v1", plain(), out.path())
        .await
        .unwrap();
    assert_eq!(d.digest, oci.digest());
    assert_eq!(layout_blobs(out.path()), expected_blobs(&[&oci], &[]));
    assert_eq!(skopeo_roundtrip(out.path(), "v1"), oci.digest().to_string());

    // pinned by digest, into the same layout: nothing new, still valid
    let d = pull::<K>(
        &reg,
        &format!("ocireg/oci@{}", oci.digest()),
        plain(),
        out.path(),
    )
    .await
    .unwrap();
    assert_eq!(d.digest, oci.digest());

    // Docker schema2: identical digests (skopeo 1.9 cannot read Docker-typed oci: entries
    // back, so the digests are compared directly)
    let out = tempfile::tempdir().unwrap();
    let d = pull::<K>(&reg, "ocireg/docker:v1", plain(), out.path())
        .await
        .unwrap();
    assert_eq!(d.digest, docker.digest());
    assert_eq!(d.media_type, ocireg_core::manifest::DOCKER_MANIFEST);
    assert_eq!(layout_blobs(out.path()), expected_blobs(&[&docker], &[]));

    // an index: the host's platform is pulled; every platform with All
    let other = Platform::parse("linux/riscv64").unwrap();
    let a = image(13, &[1000], &host, false);
    let b = image(14, &[2000], &other, false);
    let idx = index(&[(&a, &host), (&b, &other)]);
    let src = tempfile::tempdir().unwrap();
    write_oci_layout(
        src.path(),
        &[(&a, None), (&b, None)],
        &[(ocireg_core::manifest::OCI_INDEX, &idx, "multi")],
    );
    reg.push_layout(src.path(), "multi", "ocireg/multi", "v1");
    let out = tempfile::tempdir().unwrap();
    let d = pull::<K>(&reg, "ocireg/multi:v1", plain(), out.path())
        .await
        .unwrap();
    assert_eq!(d.digest, a.digest());
    assert_eq!(layout_blobs(out.path()), expected_blobs(&[&a], &[]));
    let out = tempfile::tempdir().unwrap();
    let cfg = Config {
        platform: PlatformChoice::All,
        ..plain()
    };
    let d = pull::<K>(&reg, "ocireg/multi:v1", cfg, out.path())
        .await
        .unwrap();
    assert_eq!(d.digest, ocireg_core::Digest::sha256(&idx));
    assert_eq!(layout_blobs(out.path()), expected_blobs(&[&a, &b], &[&idx]));
    assert_eq!(skopeo_roundtrip(out.path(), "v1"), d.digest.to_string());

    // unknown tag: a typed 404 carrying the registry's code
    let out = tempfile::tempdir().unwrap();
    let e = pull::<K>(&reg, "ocireg/oci:nope", plain(), out.path())
        .await
        .unwrap_err();
    let DriveError::Registry(e) = e else {
        panic!("{e}")
    };
    assert_eq!(e.status(), Some(404));
    assert!(e.to_string().contains("MANIFEST_UNKNOWN"), "{e}");
    assert!(!out.path().join("index.json").exists());
}

async fn tls_registry_with_ca_file<K: Kit>() {
    let reg = RealRegistry::start(Mode::OpenTls);
    let img = image(21, &[100_000, 1 << 20], &Platform::host(), false);
    reg.push(&img, "ocireg/tls", "v1");
    let out = tempfile::tempdir().unwrap();
    let d = pull::<K>(&reg, "ocireg/tls:v1", Config::default(), out.path())
        .await
        .unwrap();
    assert_eq!(d.digest, img.digest());
    assert_eq!(layout_blobs(out.path()), expected_blobs(&[&img], &[]));
    assert_eq!(skopeo_roundtrip(out.path(), "v1"), img.digest().to_string());

    // without the CA: a certificate error, never a fallback to plain http
    let out = tempfile::tempdir().unwrap();
    let e = pull_via::<K>(
        &reg.addr,
        None,
        "ocireg/tls:v1",
        Config::default(),
        out.path(),
        &mut (),
    )
    .await
    .unwrap_err();
    let DriveError::Registry(e) = e else {
        panic!("{e}")
    };
    assert!(
        matches!(&e, Error::Transport { error, .. } if error.kind == ocireg_core::TransportErrorKind::Tls),
        "{e}"
    );
}

async fn basic_auth_registry<K: Kit>() {
    let reg = RealRegistry::start(Mode::Basic);
    let img = image(31, &[10_000], &Platform::host(), false);
    reg.push(&img, "ocireg/private", "v1");
    let out = tempfile::tempdir().unwrap();
    let e = pull::<K>(&reg, "ocireg/private:v1", plain(), out.path())
        .await
        .unwrap_err();
    let DriveError::Registry(e) = e else {
        panic!("{e}")
    };
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    let cfg = Config {
        credentials: Credentials::Basic {
            username: USER.into(),
            password: Secret::new(PASSWORD),
        },
        ..plain()
    };
    let d = pull::<K>(&reg, "ocireg/private:v1", cfg, out.path())
        .await
        .unwrap();
    assert_eq!(d.digest, img.digest());
}

async fn cut_connections_resume_with_little_overhead<K: Kit>() {
    let reg = RealRegistry::start(Mode::Open);
    let img = image(41, &[64 << 20], &Platform::host(), false);
    reg.push(&img, "ocireg/cut", "v1");
    // five cuts at pseudo-random points from a fixed seed (OCIREG_CUT_SEED picks
    // another; the seed is printed to reproduce a failure)
    let seed = std::env::var("OCIREG_CUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0c1e);
    let mut rng = ocireg_core::retry::Rng::new(seed);
    let points: Vec<u64> = (0..5)
        .map(|_| (1 << 20) + rng.next_u64() % (12 << 20))
        .collect();
    eprintln!("cut points (seed {seed}): {points:?}");
    let proxy = ocireg_tests::proxy::CuttingProxy::start(reg.addr.clone(), points);
    let cfg = Config {
        max_concurrent: 1,
        max_concurrent_small: 1,
        ..plain()
    };
    let out = tempfile::tempdir().unwrap();
    let mut resumes = 0;
    let d = pull_via::<K>(
        &proxy.addr,
        None,
        "ocireg/cut:v1",
        cfg,
        out.path(),
        &mut |e: &ocireg_core::Event| {
            if matches!(e, ocireg_core::Event::DownloadResumed { .. }) {
                resumes += 1;
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(d.digest, img.digest());
    assert_eq!(layout_blobs(out.path()), expected_blobs(&[&img], &[]));
    let cuts = proxy.cuts.load(std::sync::atomic::Ordering::Relaxed);
    assert!(cuts >= 4, "{cuts} cuts");
    assert!(
        resumes as u64 >= cuts - 1,
        "{resumes} resumes for {cuts} cuts"
    );
    let total: u64 = img.blobs().map(|b| b.len() as u64).sum::<u64>() + img.manifest.len() as u64;
    let moved = proxy
        .downstream_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    // headers of every response plus nothing re-sent: well within 1% of the content
    eprintln!("{cuts} cuts, {resumes} resumes: {moved} bytes moved for {total} bytes of content");
    assert!(
        moved >= total && moved < total + total / 100,
        "{moved} bytes moved for {total}"
    );
}

async fn token_auth_registry<K: Kit>() {
    use ocireg_tests::token_server::TokenServer;
    let keys = tempfile::tempdir().unwrap();
    let users = [(USER.to_string(), PASSWORD.to_string())]
        .into_iter()
        .collect();
    let ts = TokenServer::start(keys.path(), users, true, 300);
    let reg = RealRegistry::start_token(&ts.realm, keys.path());
    let img = image(
        61,
        &[1000, 2000, 3000, 4000, 50_000],
        &Platform::host(),
        false,
    );
    reg.push(&img, "ocireg/tok", "v1");
    let pushes = ts.log.lock().unwrap().len();

    // anonymous: one token for the whole pull, scope taken from the challenge
    let out = tempfile::tempdir().unwrap();
    let d = pull::<K>(&reg, "ocireg/tok:v1", plain(), out.path())
        .await
        .unwrap();
    assert_eq!(d.digest, img.digest());
    let log = ts.log.lock().unwrap()[pushes..].to_vec();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        log[0].scopes,
        vec!["repository:ocireg/tok:pull".to_string()]
    );
    assert_eq!(log[0].user, None);

    // with credentials: Basic goes to the token server, the registry sees only the token
    // (what reaches it is watched by a proxy in front of it)
    let cfg = Config {
        credentials: Credentials::Basic {
            username: USER.into(),
            password: Secret::new(PASSWORD),
        },
        ..plain()
    };
    let target = reg.addr.clone();
    let watch =
        ocireg_tests::hostile::Hostile::start(move |_, _| ocireg_tests::hostile::Answer::Forward {
            to: target.clone(),
            stall_after: None,
        });
    let out = tempfile::tempdir().unwrap();
    pull_via::<K>(&watch.addr, None, "ocireg/tok:v1", cfg, out.path(), &mut ())
        .await
        .unwrap();
    assert_eq!(
        ts.log.lock().unwrap().last().unwrap().user.as_deref(),
        Some(USER)
    );
    let schemes: Vec<String> = watch
        .seen()
        .iter()
        .filter_map(|r| r.header("authorization"))
        .map(|a| a.split(' ').next().unwrap_or("").to_string())
        .collect();
    assert!(!schemes.is_empty(), "no request carried the token");
    assert!(
        schemes.iter().all(|s| s == "Bearer"),
        "the registry saw {schemes:?}"
    );

    // an identity token: OAuth2 POST with the refresh token
    let cfg = Config {
        credentials: Credentials::IdentityToken {
            token: Secret::new(format!("refresh-{USER}")),
        },
        ..plain()
    };
    let out = tempfile::tempdir().unwrap();
    pull::<K>(&reg, "ocireg/tok:v1", cfg, out.path())
        .await
        .unwrap();
    let last = ts.log.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        (last.method.as_str(), last.user.as_deref()),
        ("POST", Some(USER))
    );

    // wrong password: the token service refuses; a typed error, the password nowhere
    let cfg = Config {
        credentials: Credentials::Basic {
            username: USER.into(),
            password: Secret::new("wrong-pw"),
        },
        ..plain()
    };
    let e = pull::<K>(&reg, "ocireg/tok:v1", cfg, out.path())
        .await
        .unwrap_err();
    let DriveError::Registry(e) = e else {
        panic!("{e}")
    };
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(!format!("{e} {e:?}").contains("wrong-pw"));
}

/// The README's resilience claims against the real registry, through a proxy that adds
/// one fault of each kind: the first request for the manifest gets a 503; the first for
/// each blob a 429 with `Retry-After: 1`; the second is passed through but stalls after
/// 256 KiB; every later blob request is redirected to the registry's own address (another
/// origin). The pull must wait out the 429, notice the stall, and finish the stalled layer
/// with a range request that follows the redirect.
async fn faults_in_front_of_a_real_registry<K: Kit>() {
    use ocireg_tests::hostile::{Answer, Hostile};
    use std::collections::HashMap;
    use std::sync::Mutex;
    let reg = RealRegistry::start(Mode::Open);
    let img = image(43, &[4 << 20, 3000], &Platform::host(), false);
    reg.push(&img, "ocireg/faults", "v1");
    let target = reg.addr.clone();
    // where redirects send the client: a relay to the registry, another origin, that
    // shows what the followed requests carry
    let relay_to = reg.addr.clone();
    let relay = Hostile::start(move |_, _| Answer::Forward {
        to: relay_to.clone(),
        stall_after: None,
    });
    let relay_addr = relay.addr.clone();
    let hits: Mutex<HashMap<String, u32>> = Mutex::new(HashMap::new());
    let proxy = Hostile::start(move |req, _| {
        let path = req.path.split('?').next().unwrap_or("").to_string();
        let n = {
            let mut hits = hits.lock().unwrap();
            let n = hits.entry(path.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let pass = |stall_after| Answer::Forward {
            to: target.clone(),
            stall_after,
        };
        match (path.contains("/manifests/"), path.contains("/blobs/"), n) {
            (true, _, 1) => Answer::Full(503, vec![], Vec::new()),
            (_, true, 1) => Answer::Full(429, vec![("retry-after".into(), "1".into())], Vec::new()),
            (_, true, 2) => pass(Some(256 << 10)),
            (_, true, _) => Answer::Full(
                307,
                vec![(
                    "location".into(),
                    format!("http://{relay_addr}{}", req.path),
                )],
                Vec::new(),
            ),
            _ => pass(None),
        }
    });
    let cfg = Config {
        idle_timeout: std::time::Duration::from_secs(2),
        ..plain()
    };
    let out = tempfile::tempdir().unwrap();
    let (mut retries, mut resumes) = (0, 0);
    let mut rate_limited_delays = Vec::new();
    let d = pull_via::<K>(
        &proxy.addr,
        None,
        "ocireg/faults:v1",
        cfg,
        out.path(),
        &mut |e: &ocireg_core::Event| match e {
            ocireg_core::Event::Retry { delay, error, .. } => {
                retries += 1;
                if error.status() == Some(429) {
                    rate_limited_delays.push(*delay);
                }
            }
            ocireg_core::Event::DownloadResumed { .. } => resumes += 1,
            _ => {}
        },
    )
    .await
    .unwrap();
    assert_eq!(d.digest, img.digest());
    assert_eq!(layout_blobs(out.path()), expected_blobs(&[&img], &[]));
    // each 429's own wait is its Retry-After (the stall's, elsewhere, does not count)
    // (one per blob: the config and the two layers)
    assert_eq!(
        rate_limited_delays.len(),
        img.blobs().count(),
        "{rate_limited_delays:?}"
    );
    assert!(
        rate_limited_delays
            .iter()
            .all(|d| *d >= std::time::Duration::from_secs(1)),
        "Retry-After not honoured: {rate_limited_delays:?}"
    );
    let seen = proxy.seen();
    let manifest_hits = seen
        .iter()
        .filter(|r| r.path.contains("/manifests/"))
        .count();
    assert!(manifest_hits >= 2, "the 503 was not retried: {seen:?}");
    let big = ocireg_core::Digest::sha256(&img.layers[0]).to_string();
    let big_requests: Vec<_> = seen.iter().filter(|r| r.path.contains(&big)).collect();
    assert!(big_requests.len() >= 3, "{big_requests:?}");
    assert!(
        big_requests[2]
            .header("range")
            .is_some_and(|r| r.starts_with("bytes=")),
        "the stalled layer did not continue with a range: {big_requests:?}"
    );
    // the redirected request was followed with the same range
    let followed: Vec<_> = relay
        .seen()
        .into_iter()
        .filter(|r| r.path.contains(&big))
        .collect();
    assert!(!followed.is_empty(), "the redirect was not followed");
    assert_eq!(
        followed[0].header("range"),
        big_requests[2].header("range"),
        "{followed:?}"
    );
    // 503, one 429 per blob (3), the stall of the big layer
    assert!(retries >= 5, "{retries} retries");
    assert!(resumes >= 1, "{resumes} resumes");
}

on_every_runtime!(
    open_registry_oci_docker_and_index,
    tls_registry_with_ca_file,
    basic_auth_registry,
    cut_connections_resume_with_little_overhead,
    token_auth_registry,
    faults_in_front_of_a_real_registry,
);
