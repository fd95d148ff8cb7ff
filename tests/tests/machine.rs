//! The core machine driven over the simulated network: behaviour, faults, invariants.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ocireg_core::{Config, Error, Event, Platform, PlatformChoice, Pull, Reference, RetryPolicy};
use ocireg_registry::images::{image, index, TestImage};
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::sim::{Outcome, Sim};

use ocireg_tests::sim::{test_config as config, ORIGIN};

fn small() -> TestImage {
    image(1, &[1000, 70_000, 5], &Platform::host(), false)
}

fn registry_with(img: &TestImage, rules: Vec<Rule>) -> FaultyRegistry {
    let mut r = Registry::new();
    img.add_to(&mut r, "test/repo", Some("v1"));
    FaultyRegistry::new(r, rules)
}

fn pull(cfg: Config, reference: &str, sim: &mut Sim) -> Outcome {
    let t0 = Instant::now();
    let mut p = Pull::new(cfg, Reference::parse(reference).unwrap(), t0);
    sim.run(&mut p, t0)
}

fn assert_complete(out: &Outcome, img: &TestImage) {
    if let Some(Err(e)) = &out.result {
        panic!("pull failed: {e}");
    }
    let empty = Vec::new();
    let mut got: Vec<&Vec<u8>> = out
        .done
        .iter()
        .map(|b| out.blobs.get(b).unwrap_or(&empty))
        .collect();
    let mut want: Vec<&[u8]> = img.blobs().map(|b| b.as_ref()).collect();
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.as_slice(), w);
    }
    assert_eq!(out.done.len(), img.blobs().count());
}

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
    assert!(nth("Deliver", 0) < nth("BlobDone", 0), "{t:?}");
    assert_eq!(t.last(), Some(&"Done"));
    assert_eq!(
        out.events.len(),
        6,
        "Manifest, Resolved, 2 × BlobQueued, 2 × BlobDone: {:?}",
        out.events
    );
}

/// The delays of every `Retry` event, in order.
fn retry_delays(out: &Outcome) -> Vec<Duration> {
    out.events
        .iter()
        .filter_map(|e| match e {
            Event::Retry { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect()
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
        .filter(|e| matches!(e, Event::Resumed { .. }))
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
fn retry_after_is_honoured_and_capped() {
    let img = small();
    let rules = vec![Rule::all(Fault::RateLimit {
        times: 1,
        retry_after: "2".into(),
    })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    assert!(out.elapsed >= Duration::from_secs(2), "{:?}", out.elapsed);
    let delays = retry_delays(&out);
    assert!(
        delays.iter().all(|d| *d >= Duration::from_secs(2)),
        "{delays:?}"
    );

    let rules = vec![Rule::all(Fault::RateLimit {
        times: 1,
        retry_after: "3600".into(),
    })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::RetryAfterTooLong { .. }), "{e}");
    assert!(e.to_string().contains("3600"), "{e}");
    assert!(out.elapsed < Duration::from_secs(1));
}

#[test]
fn attempts_are_bounded() {
    let img = small();
    let rules = vec![Rule::all(Fault::FailFirst {
        times: 100,
        status: 502,
    })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let mut cfg = config();
    cfg.retry.max_attempts = 3;
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::GaveUp { attempts: 3, .. }), "{e}");
    assert_eq!(e.status(), Some(502));
    assert_eq!(out.requests.len(), 3);
    // retries off
    let mut cfg = config();
    cfg.retry = RetryPolicy::none();
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    assert_eq!(out.result.unwrap().unwrap_err().status(), Some(502));
    assert_eq!(out.requests.len(), 1);
}

#[test]
fn deadline_gives_up_early() {
    let img = small();
    let rules = vec![Rule::all(Fault::RateLimit {
        times: 1,
        retry_after: "30".into(),
    })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let t0 = Instant::now();
    let mut cfg = config();
    cfg.deadline = Some(t0 + Duration::from_secs(10));
    let mut p = Pull::new(cfg, Reference::parse("reg.test/test/repo:v1").unwrap(), t0);
    let out = sim.run(&mut p, t0);
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::Deadline { .. }), "{e}");
    assert!(out.elapsed < Duration::from_secs(1));
}

#[test]
fn cross_origin_redirect_drops_authorization() {
    let img = small();
    let cdn = "http://cdn.test";
    let rules = vec![
        Rule::all(Fault::Token {
            realm: format!("{ORIGIN}/token"),
            service: "svc".into(),
        }),
        Rule::blobs(Fault::RedirectTo { base: cdn.into() }),
    ];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    sim.servers.insert(cdn.into(), registry_with(&img, vec![]));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    let cdn_reqs: Vec<_> = out.requests.iter().filter(|r| r.0 == cdn).collect();
    assert_eq!(cdn_reqs.len(), img.blobs().count());
    assert!(
        cdn_reqs.iter().all(|r| !r.3),
        "Authorization leaked to the CDN"
    );
    assert!(sim.servers[cdn].log.iter().all(|s| s.auth_scheme.is_none()));
    assert!(out
        .requests
        .iter()
        .filter(|r| r.0 == ORIGIN && r.2.contains("/blobs/"))
        .all(|r| r.3));
}

#[test]
fn downgrade_and_loops_are_refused() {
    let img = small();
    let mut r = Registry::new();
    img.add_to(&mut r, "test/repo", Some("v1"));
    let rules = vec![Rule::all(Fault::RedirectTo {
        base: "http://reg.test".into(),
    })];
    let mut sim = Sim::new("https://reg.test", FaultyRegistry::new(r, rules));
    let mut cfg = config();
    cfg.plain_http = false;
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(
        matches!(e, Error::Redirect { .. }) && e.to_string().contains("https to plain http"),
        "{e}"
    );

    let rules = vec![Rule::all(Fault::RedirectTo {
        base: ORIGIN.into(),
    })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(e.to_string().contains("too many redirects"), "{e}");
    assert_eq!(out.requests.len(), 11);
}

#[test]
fn range_ignored_wrong_or_unsatisfiable() {
    let img = small();
    let cut = Rule::blobs(Fault::CutBody {
        after: 30_000,
        times: 1,
    });
    // 200 to a range request: skip what we have
    let mut sim = Sim::new(
        ORIGIN,
        registry_with(&img, vec![cut.clone(), Rule::blobs(Fault::IgnoreRange)]),
    );
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    // a Content-Range that does not start where we asked: permanent
    let mut sim = Sim::new(
        ORIGIN,
        registry_with(
            &img,
            vec![cut.clone(), Rule::blobs(Fault::WrongContentRange)],
        ),
    );
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::InvalidContentRange { .. }), "{e}");
    // 416: start over once, and say so
    let mut sim = Sim::new(
        ORIGIN,
        registry_with(&img, vec![cut, Rule::blobs(Fault::RangeNotSatisfiable)]),
    );
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, Event::Restarted { .. })));
}

#[test]
fn stalled_body_is_aborted_and_resumed() {
    let img = small();
    let rules = vec![Rule::blobs(Fault::StallBody {
        after: 20_000,
        times: 1,
    })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let mut cfg = config();
    cfg.idle_timeout = Duration::from_secs(5);
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    assert!(out.transcript.contains(&"Abort"));
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, Event::Resumed { offset: 20_000, .. })));
    assert!(out.elapsed >= Duration::from_secs(5));
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

/// The most blob exchanges outstanding at once in a pull of `img` with `cfg`.
fn most_blobs_at_once(img: &TestImage, cfg: Config) -> i32 {
    let mut sim = Sim::new(ORIGIN, registry_with(img, vec![]));
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, img);
    // Between BlobDone events, count the blob Sends outstanding (the first is the manifest).
    let mut outstanding = 0i32;
    let mut max = 0;
    let mut sends = 0;
    for t in &out.transcript {
        match *t {
            "Send" => {
                sends += 1;
                if sends > 1 {
                    outstanding += 1;
                }
            }
            "BlobDone" => outstanding -= 1,
            _ => {}
        }
        max = max.max(outstanding);
    }
    max
}

#[test]
fn concurrency_limit_is_kept() {
    let img = image(3, &[5000; 20], &Platform::host(), false);
    let mut cfg = config();
    cfg.max_concurrent = 3;
    cfg.max_concurrent_small = 5;
    // 5000-byte blobs are small: up to 5 at once
    assert_eq!(most_blobs_at_once(&img, cfg.clone()), 5);
    // counted as large, they keep to 3
    cfg.small_blob = 4999;
    assert_eq!(most_blobs_at_once(&img, cfg.clone()), 3);
    // a small-blob limit below the general one does not lower it
    cfg.small_blob = 1 << 20;
    cfg.max_concurrent_small = 1;
    assert_eq!(most_blobs_at_once(&img, cfg), 3);
}

/// Large blobs keep to `max_concurrent` even while small ones use the wider limit: a
/// large one starts only while fewer than `max_concurrent` downloads run.
#[test]
fn large_blobs_wait_for_the_general_limit_among_small_ones() {
    let mut sizes = vec![300; 12];
    sizes.extend([9000; 4]);
    let img = image(5, &sizes, &Platform::host(), false);
    let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
    let mut cfg = config();
    cfg.max_concurrent = 2;
    cfg.max_concurrent_small = 8;
    cfg.small_blob = 1000;
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    let large: Vec<String> = img
        .blobs()
        .filter(|b| b.len() == 9000)
        .map(|b| ocireg_core::Digest::sha256(b).to_string())
        .collect();
    // Walk the transcript: each Send is the next request; BlobDone ends a download.
    let mut requests = out.requests.iter();
    let (mut running, mut most, mut large_sent) = (0i32, 0, 0);
    for t in &out.transcript {
        match *t {
            "Send" => {
                let (_, _, path, _) = requests.next().expect("a request per Send");
                if !path.contains("/blobs/") {
                    continue;
                }
                if large.iter().any(|d| path.ends_with(d.as_str())) {
                    assert!(
                        running < 2,
                        "a large blob started beside {running} downloads"
                    );
                    large_sent += 1;
                }
                running += 1;
                most = most.max(running);
            }
            "BlobDone" => running -= 1,
            _ => {}
        }
    }
    assert_eq!(large_sent, 4);
    // and the small ones did run wider than 2
    assert!(most > 2, "at most {most} at once");
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

#[test]
fn basic_challenge_uses_credentials_once() {
    let img = small();
    let rules = vec![Rule::all(Fault::Basic {
        username: "u".into(),
        password: "p".into(),
    })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    // without credentials: a typed Unauthorized naming registry and repository
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("test/repo on reg.test"), "{e}");
    // with them: one 401, then Basic on every request
    let mut cfg = config();
    cfg.credentials = ocireg_core::Credentials::Basic {
        username: "u".into(),
        password: ocireg_core::Secret::new("p"),
    };
    let out = pull(cfg.clone(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    assert_eq!(out.requests.len(), 1 + 1 + img.blobs().count());
    // wrong password: refused once more, then a clear error
    cfg.credentials = ocireg_core::Credentials::Basic {
        username: "u".into(),
        password: ocireg_core::Secret::new("bad"),
    };
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(!format!("{e:?}").contains("bad"));
    assert_eq!(out.requests.len(), 2);
}

#[test]
fn retry_budget_bounds_total_waiting() {
    let img = small();
    let rules = vec![Rule::all(Fault::RateLimit {
        times: 10,
        retry_after: "50".into(),
    })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let mut cfg = config();
    cfg.retry.max_attempts = 10;
    cfg.retry.budget = Duration::from_secs(120);
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(e.to_string().contains("retry budget"), "{e}");
    assert_eq!(
        out.requests.len(),
        3,
        "waits of 50 s: the third would pass 120 s"
    );
    assert!(out.elapsed <= Duration::from_secs(120));
}

#[test]
fn resume_after_a_redirected_download_starts_at_the_registry() {
    let img = image(5, &[100_000], &Platform::host(), false);
    let cdn = "http://cdn.test";
    let rules = vec![Rule::blobs(Fault::RedirectTo { base: cdn.into() })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    sim.servers.insert(
        cdn.into(),
        registry_with(
            &img,
            vec![Rule::blobs(Fault::CutBody {
                after: 30_000,
                times: 2,
            })],
        ),
    );
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    // every request to the CDN was preceded by one to the registry for the same blob
    for blob in img.blobs() {
        let d = ocireg_core::Digest::sha256(blob).to_string();
        let seq: Vec<&str> = out
            .requests
            .iter()
            .filter(|r| r.2.ends_with(&d))
            .map(|r| r.0.as_str())
            .collect();
        assert!(seq.len() >= 2 && seq.len().is_multiple_of(2), "{seq:?}");
        for pair in seq.chunks(2) {
            assert_eq!(pair, [ORIGIN, cdn], "{seq:?}");
        }
    }
    assert!(out
        .requests
        .iter()
        .any(|r| r.0 == cdn && r.2.contains("/blobs/")));
}

#[test]
fn a_cut_after_progress_resumes_at_once_but_failures_in_a_row_back_off() {
    let img = image(6, &[50_000], &Platform::host(), false);
    let rules = vec![Rule::blobs(Fault::CutBody {
        after: 10_000,
        times: 3,
    })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let mut cfg = config();
    cfg.retry.initial_delay = Duration::from_secs(1);
    let out = pull(cfg.clone(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    let delays = retry_delays(&out);
    assert_eq!(delays, vec![Duration::ZERO; 3]);
    // a 503 (no progress) backs off
    let mut sim = Sim::new(
        ORIGIN,
        registry_with(
            &img,
            vec![Rule::blobs(Fault::FailFirst {
                times: 2,
                status: 503,
            })],
        ),
    );
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    assert!(out.elapsed >= Duration::from_secs(2), "{:?}", out.elapsed);
}

#[test]
fn a_416_starts_over_once_then_fails() {
    // Bodies are cut at 30,000 bytes and ranged requests get 416. Per blob: a cut, a
    // 416 (the blob starts over from byte 0), a cut again, a 416 again, which ends the
    // pull: "start over" happens once per blob, not in a loop. (The cut rule counts the
    // 416s among its first three tries of a path.)
    let img = small();
    let rules = vec![
        Rule::blobs(Fault::CutBody {
            after: 30_000,
            times: 3,
        }),
        Rule::blobs(Fault::RangeNotSatisfiable),
    ];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert_eq!(e.status(), Some(416), "{e}");
    let mut restarts = std::collections::HashMap::new();
    for e in &out.events {
        if let Event::Restarted { blob } = e {
            *restarts.entry(*blob).or_insert(0) += 1;
        }
    }
    assert!(!restarts.is_empty());
    assert!(restarts.values().all(|n| *n == 1), "{restarts:?}");
}

#[test]
fn a_download_without_progress_gives_up_after_exactly_six_attempts() {
    // the default policy: 6 attempts in a row without a new byte
    let img = small();
    let rules = vec![Rule::blobs(Fault::FailFirst {
        times: 100,
        status: 503,
    })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let cfg = config();
    assert_eq!(cfg.retry.max_attempts, 6);
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    let Error::GaveUp { what, attempts, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(*attempts, 6);
    let digest = what.trim_start_matches("blob ");
    let tries = out
        .requests
        .iter()
        .filter(|r| r.2.ends_with(digest))
        .count();
    assert_eq!(tries, 6, "requests for {digest}");
}

/// Backoff jitter comes from the seed and nothing else: the same seed gives the same
/// delays, another seed other delays (so the seed really reaches the jitter).
#[test]
fn the_seed_alone_decides_the_jitter() {
    let img = small();
    let delays = |seed: u64| {
        let rules = vec![Rule::all(Fault::FailFirst {
            times: 3,
            status: 503,
        })];
        let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
        let cfg = Config {
            seed,
            retry: RetryPolicy {
                jitter_percent: 50,
                ..RetryPolicy::default()
            },
            ..config()
        };
        let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
        assert_complete(&out, &img);
        retry_delays(&out)
    };
    let a = delays(1);
    assert!(a.len() >= 3, "{a:?}");
    assert_eq!(a, delays(1));
    assert_ne!(a, delays(2));
}

/// An HTTP-date `Retry-After` is read against the response's own `Date` (which the test
/// registry sends, as real ones do): three seconds ahead means a wait of about three
/// seconds, whatever the two machines' clocks say.
#[test]
fn an_http_date_retry_after_is_placed_by_the_date_header() {
    let img = small();
    let at = std::time::SystemTime::now() + Duration::from_secs(3);
    let rules = vec![Rule {
        path_contains: "/manifests/".into(),
        fault: Fault::RateLimit {
            times: 1,
            retry_after: httpdate::fmt_http_date(at),
        },
    }];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    let delays = retry_delays(&out);
    assert_eq!(delays.len(), 1, "{delays:?}");
    // one-second resolution of HTTP-dates, and the test's own running time
    assert!(
        delays[0] >= Duration::from_secs(1) && delays[0] <= Duration::from_secs(4),
        "{delays:?}"
    );
}

/// A registry that ignores ranges costs the bytes already held once more, within the
/// skip budget: 100% of the blob lets a pull cut at 6,000 of 10,000 bytes finish (the
/// first 6,000 sent twice); 50% does not, and the error says so with the numbers.
#[test]
fn the_skip_budget_bounds_what_an_ignored_range_costs() {
    let img = image(77, &[10_000], &Platform::host(), false);
    let rules = || {
        vec![
            Rule::blobs(Fault::CutBody {
                after: 6_000,
                times: 1,
            }),
            Rule::blobs(Fault::IgnoreRange),
        ]
    };
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules()));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    let content: usize = img.blobs().map(|b| b.len()).sum();
    assert!(
        out.body_bytes >= content + 6_000,
        "{} bytes",
        out.body_bytes
    );

    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules()));
    let cfg = Config {
        skip_budget_percent: 50,
        ..config()
    };
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            Error::RangeIgnored {
                offset: 6_000,
                budget: 5_000,
                ..
            }
        ),
        "{e:?}"
    );
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

/// The response-head timer: a registry slower to answer than `head_timeout` costs every
/// attempt (one request each, then a typed timeout), one that answers within it none.
#[test]
fn the_head_timeout_bounds_the_wait_for_an_answer() {
    let img = small();
    let run = |head_timeout: Duration| {
        let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
        sim.latency = Duration::from_secs(2);
        let cfg = Config {
            head_timeout,
            retry: RetryPolicy {
                max_attempts: 3,
                ..config().retry
            },
            ..config()
        };
        pull(cfg, "reg.test/test/repo:v1", &mut sim)
    };
    let out = run(Duration::from_secs(1));
    let e = out.result.unwrap().unwrap_err();
    assert!(
        e.to_string().contains("no data before the time limit"),
        "{e}"
    );
    assert_eq!(out.requests.len(), 3, "one request per attempt");
    assert!(out.elapsed >= Duration::from_secs(3), "{:?}", out.elapsed);
    let out = run(Duration::from_secs(3));
    assert_complete(&out, &img);
    assert!(retry_delays(&out).is_empty());
}

/// The default silence limit is 30 s: a body that stops is given up on after 30 s of
/// (simulated) silence, not before, and the blob continues from where it stopped.
#[test]
fn a_stalled_body_is_given_up_on_after_the_default_30_seconds() {
    let img = image(79, &[50_000], &Platform::host(), false);
    let rules = vec![Rule::blobs(Fault::StallBody {
        after: 20_000,
        times: 1,
    })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let cfg = Config {
        plain_http: true,
        ..Config::default()
    };
    assert_eq!(cfg.idle_timeout, Duration::from_secs(30));
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    assert!(
        out.elapsed >= Duration::from_secs(30) && out.elapsed < Duration::from_secs(31),
        "{:?}",
        out.elapsed
    );
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, Event::Resumed { offset: 20_000, .. })));
}

/// The blobs' connections are asked for while the manifest is in flight: one hint, for
/// the registry's origin, right after the manifest's request; none for a pull that fetches no
/// blob, and none while a loopback registry's scheme is still being probed.
#[test]
fn the_blob_wave_is_prepared_while_the_manifest_is_in_flight() {
    let img = small();
    let t0 = Instant::now();
    let reference = || Reference::parse("reg.test/test/repo:v1").unwrap();
    // the manifest's request first (its connection is the first one), then the hint
    let mut p = Pull::new(config(), reference(), t0);
    let first = p.poll_action(t0);
    let ocireg_core::Action::Send { request, .. } = &first else {
        panic!("{first:?}")
    };
    assert_eq!(request.uri().path(), "/v2/test/repo/manifests/v1");
    let hint = p.poll_action(t0);
    assert!(
        matches!(&hint, ocireg_core::Action::Prepare { origin, connections: 7 } if origin.as_str() == "http://reg.test/"),
        "{hint:?}"
    );
    // one hint in a whole pull
    let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
    let mut p = Pull::new(config(), reference(), t0);
    let out = sim.run(&mut p, t0);
    assert_complete(&out, &img);
    assert_eq!(out.prepared, vec![("http://reg.test/".to_string(), 7)]);

    let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
    let mut p = Pull::inspect(config(), reference(), t0);
    let out = sim.run(&mut p, t0);
    assert!(
        out.prepared.is_empty(),
        "inspect fetches no blob: {:?}",
        out.prepared
    );

    // a loopback registry probed over https: no hint
    let loopback = Config {
        plain_http: false,
        ..config()
    };
    let reference = Reference::parse("127.0.0.1:5000/test/repo:v1").unwrap();
    let mut p = Pull::new(loopback, reference, t0);
    assert!(matches!(
        p.poll_action(t0),
        ocireg_core::Action::Send { .. }
    ));
    let next = p.poll_action(t0);
    assert!(matches!(next, ocireg_core::Action::Wait { .. }), "{next:?}");
}
