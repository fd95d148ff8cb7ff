//! What a pull asks for and in which order: manifests and indexes, verification, names that do not exist, what is downloaded once.

use super::*;

/// The order that matters, and only that: the manifest is fetched alone and verified
/// before any blob is asked for; each blob is queued before it is sent and delivered
/// before it is done (the ledger checks bytes against `BlobDone`); `Done` comes last.
/// Which blob goes first is free.
#[test]
fn plain_pull_order() {
    let img = image(1, &[10], &Platform::host(), false);
    let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    assert_eq!(out.requests.len(), 3);
    assert!(
        out.requests[0].2.contains("/manifests/v1"),
        "{:?}",
        out.requests
    );
    assert!(out.requests[1..].iter().all(|r| r.2.contains("/blobs/")));
    assert!(
        out.requests.iter().all(|r| !r.3),
        "no Authorization without auth"
    );
    let t = &out.transcript;
    let nth = |name: &str, n: usize| {
        t.iter()
            .enumerate()
            .filter(|(_, s)| **s == name)
            .nth(n)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("no {name} #{n} in {t:?}"))
    };
    assert!(nth("Send", 0) < nth("Manifest", 0), "{t:?}");
    assert!(nth("Manifest", 0) < nth("Resolved", 0), "{t:?}");
    assert!(nth("Resolved", 0) < nth("BlobQueued", 0), "{t:?}");
    assert!(
        nth("BlobQueued", 1) < nth("Send", 1),
        "blobs sent before both queued: {t:?}"
    );
    assert!(nth("Deliver", 0) < nth("BlobFetched", 0), "{t:?}");
    assert_eq!(t.last(), Some(&"Done"));
    assert_eq!(
        out.events.len(),
        6,
        "Manifest, Resolved, 2 × BlobQueued, 2 × BlobDone: {:?}",
        out.events
    );
}

#[test]
fn chunking_does_not_matter() {
    let img = small();
    for chunk in [1, 7, 4096, 1 << 20] {
        let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
        sim.chunk = chunk;
        let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
        assert_complete(&out, &img);
    }
}

#[test]
fn index_selects_host_platform_and_verifies_child() {
    let host = Platform::host();
    let other = Platform::parse("plan9/mips").unwrap();
    let a = image(1, &[100], &host, false);
    let b = image(2, &[200], &other, false);
    let mut r = Registry::new();
    a.add_to(&mut r, "test/repo", None);
    b.add_to(&mut r, "test/repo", None);
    r.add_manifest(
        "test/repo",
        ocireg_core::manifest::OCI_INDEX,
        index(&[(&a, &host), (&b, &other)]),
        Some("v1"),
    );
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![]));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &a);
    let resolved = out.events.iter().find_map(|e| match e {
        Event::Resolved { descriptor } => Some(descriptor.clone()),
        _ => None,
    });
    assert_eq!(resolved.unwrap().digest, a.digest());

    // an explicit platform, and one that does not exist
    let mut cfg = config();
    cfg.platform = PlatformChoice::Exactly(other.clone());
    let out = pull(cfg.clone(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &b);
    cfg.platform = PlatformChoice::Exactly(Platform::parse("linux/s390x").unwrap());
    let out = pull(cfg.clone(), "reg.test/test/repo:v1", &mut sim);
    let err = out.result.unwrap().unwrap_err().to_string();
    assert!(err.contains("plan9/mips"), "{err}");
    // all platforms: both children
    cfg.platform = PlatformChoice::All;
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    assert!(out.result.unwrap().is_ok());
    assert_eq!(out.done.len(), 4);
}

#[test]
fn seed_scenario() {
    // Every path 503 once, redirected once, token required everywhere, blob bodies cut
    // after half the config's size.
    let img = small();
    let half = img.config.len() / 2;
    let rules = vec![
        Rule::all(Fault::FailFirst {
            times: 1,
            status: 503,
        }),
        Rule::all(Fault::RedirectOnce),
        Rule::all(Fault::Token {
            realm: format!("{ORIGIN}/token"),
            service: "myregistry.test".into(),
        }),
        Rule::blobs(Fault::CutBody {
            after: half,
            times: u32::MAX,
        }),
    ];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let reference = format!("reg.test/test/repo:v1@{}", img.digest());
    let mut cfg = config();
    cfg.retry.max_attempts = 4;
    let out = pull(cfg, &reference, &mut sim);
    assert_complete(&out, &img);
    let server = &sim.servers[ORIGIN];
    assert_eq!(server.tokens_issued(), 1, "one token for the whole pull");
    let resumes = out
        .events
        .iter()
        .filter(|e| matches!(e, Event::DownloadResumed { .. }))
        .count();
    assert!(resumes >= 2, "{resumes} resumes");
    // bytes sent for blobs stay close to their size: each cut costs nothing extra
    let total: usize = img.blobs().map(|b| b.len()).sum();
    assert!(
        out.body_bytes < total + 4096,
        "{} vs {total}",
        out.body_bytes
    );
}

#[test]
fn pinned_digest_mismatch_is_an_integrity_error() {
    let img = small();
    let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
    let wrong = ocireg_core::Digest::sha256(b"other");
    let out = pull(
        config(),
        &format!("reg.test/test/repo:v1@{wrong}"),
        &mut sim,
    );
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    assert_eq!(e.kind(), ocireg_core::ErrorKind::Integrity);
    assert_eq!(out.requests.len(), 1, "no retry for a wrong digest");
}

#[test]
fn unknown_names_fail_without_retry() {
    let img = small();
    let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
    let out = pull(config(), "reg.test/test/nope:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert!(e.to_string().contains("NAME_UNKNOWN"), "{e}");
    assert_eq!(out.requests.len(), 1);
}

#[test]
fn oversize_manifest_is_refused_before_reading() {
    let img = small();
    let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
    let mut cfg = config();
    cfg.manifest_limit = 10;
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            Error::BodyTooLarge {
                declared: Some(_),
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(out.body_bytes, 0);
}

#[test]
fn docker_schema2_and_embedded_data() {
    let img = image(4, &[300, 0], &Platform::host(), true);
    let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    // the empty layer needs no request
    assert_eq!(out.requests.len(), 3);

    // a manifest whose config is embedded
    let cfg_bytes = Bytes::from_static(b"{}");
    let layer = Bytes::from_static(b"layer");
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": ocireg_core::manifest::OCI_MANIFEST,
        "artifactType": "application/x.test",
        "config": {"mediaType": ocireg_core::manifest::OCI_EMPTY, "digest": ocireg_core::Digest::sha256(&cfg_bytes).to_string(), "size": 2, "data": "e30="},
        "layers": [{"mediaType": "application/x.layer", "digest": ocireg_core::Digest::sha256(&layer).to_string(), "size": 5}],
    });
    let mut r = Registry::new();
    r.add_blob("test/repo", layer);
    r.add_manifest(
        "test/repo",
        ocireg_core::manifest::OCI_MANIFEST,
        serde_json::to_vec(&m).unwrap(),
        Some("v1"),
    );
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![]));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    assert!(out.result.as_ref().unwrap().is_ok());
    assert_eq!(out.requests.len(), 2);
    assert_eq!(out.done.len(), 2);
}

/// A layer listed twice is downloaded once: one request per digest.
#[test]
fn each_digest_is_downloaded_once() {
    let base = image(78, &[5_000, 7_000], &Platform::host(), false);
    let mut manifest: serde_json::Value = serde_json::from_slice(&base.manifest).unwrap();
    let first = manifest["layers"][0].clone();
    manifest["layers"].as_array_mut().unwrap().push(first);
    let img = TestImage {
        manifest: Bytes::from(serde_json::to_vec(&manifest).unwrap()),
        layers: vec![
            base.layers[0].clone(),
            base.layers[1].clone(),
            base.layers[0].clone(),
        ],
        ..base
    };
    let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    let blob_requests: Vec<&String> = out
        .requests
        .iter()
        .map(|r| &r.2)
        .filter(|p| p.contains("/blobs/"))
        .collect();
    assert_eq!(blob_requests.len(), 3, "{blob_requests:?}");
    let mut unique = blob_requests.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "{blob_requests:?}");
    assert_eq!(out.done.len(), 3);
}
