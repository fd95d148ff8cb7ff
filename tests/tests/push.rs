//! The push machine over the simulated network, against the test registry's push side:
//! what it sends, in which order, and how it recovers.

use std::time::Instant;

use ocireg_core::{Config, Error, Event, Machine, Platform, PushPlan, Pushed, Reference};
use ocireg_registry::images::push_plan as plan;
use ocireg_registry::images::{image, index, TestImage};
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::sim::{test_config as config, Outcome, Sim, ORIGIN};

const CHUNK: u64 = 64 << 10;

fn push_config() -> Config {
    Config {
        upload_chunk_size: CHUNK,
        ..config()
    }
}

fn run(sim: &mut Sim, cfg: Config, target: &str, plan: PushPlan) -> Outcome {
    let t0 = Instant::now();
    let mut p = Machine::push(cfg, Reference::parse(target).unwrap(), plan, t0);
    sim.run(&mut p, t0)
}

fn pushed(out: &Outcome) -> Vec<Pushed> {
    out.events
        .iter()
        .filter_map(|e| match e {
            Event::BlobPushed { how, .. } => Some(*how),
            _ => None,
        })
        .collect()
}

fn registry(sim: &Sim) -> &Registry {
    &sim.servers[ORIGIN].inner
}

fn sim_for(source: Vec<bytes::Bytes>, reg: Registry, rules: Vec<Rule>) -> Sim {
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(reg, rules));
    sim.upload_source = source;
    sim
}

/// Methods and paths (no query) of the requests sent.
fn calls(out: &Outcome) -> Vec<(String, String)> {
    out.requests
        .iter()
        .map(|r| (r.1.clone(), r.2.split('?').next().unwrap().to_string()))
        .collect()
}

/// Single `POST ?digest=` uploads sent.
fn whole_posts(out: &Outcome) -> usize {
    out.requests
        .iter()
        .filter(|r| r.1 == "POST" && r.2.contains("digest="))
        .count()
}

fn small_and_big() -> TestImage {
    // a blob in one PUT, a blob of 3.5 chunks
    image(
        90,
        &[1000, (CHUNK * 7 / 2) as usize],
        &Platform::host(),
        false,
    )
}

#[test]
fn an_image_goes_in_blobs_first_then_its_manifest_under_its_tag() {
    let img = small_and_big();
    let (plan, source) = plan(&[&img], None, &[]);
    let mut sim = sim_for(source, Registry::new(), vec![]);
    let out = run(&mut sim, push_config(), "reg.test/test/repo:v1", plan);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    assert_eq!(pushed(&out), vec![Pushed::Uploaded; 3]);
    let reg = registry(&sim);
    for b in img.blobs() {
        assert!(reg.has_blob("test/repo", &ocireg_core::Digest::sha256(b)));
    }
    let (mt, bytes) = reg.manifest("test/repo", "v1").expect("tagged");
    assert_eq!(
        (mt.as_str(), &bytes),
        (img.media_type.as_str(), &img.manifest)
    );
    assert_eq!(reg.open_uploads(), 0, "no session left open");
    // the big blob: four chunks, then the closing PUT; of the two small ones, the first
    // tries a single POST (which this registry takes) while the other goes by POST and
    // PUT, not yet knowing
    assert_eq!(whole_posts(&out), 1, "{:?}", out.requests);
    let calls = calls(&out);
    let patches = calls.iter().filter(|c| c.0 == "PATCH").count();
    assert_eq!(patches, 4, "{calls:?}");
    let puts = calls
        .iter()
        .filter(|c| c.0 == "PUT" && c.1.contains("/uploads/"))
        .count();
    assert_eq!(puts, 2, "{calls:?}");
    // the manifest is the very last request
    assert_eq!(
        calls.last().unwrap(),
        &("PUT".to_string(), "/v2/test/repo/manifests/v1".to_string())
    );
    assert!(out.events.iter().any(|e| matches!(
        e,
        Event::ManifestPushed { reference, .. } if reference == "v1"
    )));
}

#[test]
fn a_second_push_sends_no_blob_and_more_tags_cost_one_put_each() {
    let img = small_and_big();
    let (plan1, source) = plan(&[&img], None, &[]);
    let mut sim = sim_for(source, Registry::new(), vec![]);
    let out = run(&mut sim, push_config(), "reg.test/test/repo:v1", plan1);
    assert!(out.result.unwrap().is_ok());
    let (plan2, _) = plan(&[&img], None, &["v2", "latest"]);
    let out = run(&mut sim, push_config(), "reg.test/test/repo:v1", plan2);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    assert_eq!(pushed(&out), vec![Pushed::Existed; 3]);
    let calls = calls(&out);
    assert_eq!(calls.iter().filter(|c| c.0 == "HEAD").count(), 3);
    let manifest_puts: Vec<&str> = calls
        .iter()
        .filter(|c| c.0 == "PUT")
        .map(|c| c.1.as_str())
        .collect();
    assert_eq!(
        manifest_puts,
        [
            "/v2/test/repo/manifests/v1",
            "/v2/test/repo/manifests/v2",
            "/v2/test/repo/manifests/latest"
        ]
    );
    assert_eq!(calls.len(), 6, "{calls:?}");
}

#[test]
fn blobs_of_another_repository_are_mounted_not_sent() {
    let img = small_and_big();
    let mut reg = Registry::new();
    img.add_to(&mut reg, "test/base", Some("v1"));
    let (mut plan, source) = plan(&[&img], None, &[]);
    plan.mount_from = Some("test/base".into());
    let mut sim = sim_for(source, reg, vec![]);
    let out = run(&mut sim, push_config(), "reg.test/test/app:v1", plan);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    assert_eq!(pushed(&out), vec![Pushed::Mounted; 3]);
    assert!(
        out.bodies.iter().all(|b| b.len() < 10_000),
        "no blob bytes sent"
    );
    assert!(out
        .requests
        .iter()
        .any(|r| r.2.contains("mount=") && r.2.contains("from=test%2Fbase")));
}

#[test]
fn a_cut_chunk_continues_from_the_registrys_offset() {
    let img = small_and_big();
    let (plan, source) = plan(&[&img], None, &[]);
    // the second chunk of the big blob arrives only in part: 10,000 of its bytes
    let rules = vec![Rule {
        path_contains: "/blobs/uploads/u".into(),
        fault: Fault::CutUpload {
            after: 10_000,
            times: 1,
        },
    }];
    let mut sim = sim_for(source, Registry::new(), rules);
    let out = run(&mut sim, push_config(), "reg.test/test/repo:v1", plan);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    let reg = registry(&sim);
    assert!(reg.has_blob("test/repo", &ocireg_core::Digest::sha256(&img.layers[1])));
    // after the cut: the status request, and the upload goes on where the registry is
    let resumed: Vec<u64> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::UploadResumed { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect();
    assert_eq!(resumed, [10_000], "{:?}", out.events);
    // and the next chunk starts there: the registry refuses (416) a chunk that does not
    // start at its size, which would have started the blob over
    assert!(!out
        .events
        .iter()
        .any(|e| matches!(e, Event::UploadRestarted { .. })));
    let status_gets = out
        .requests
        .iter()
        .filter(|r| r.1 == "GET" && r.2.contains("/blobs/uploads/"))
        .count();
    assert_eq!(status_gets, 1);
    assert!(out.events.iter().any(|e| matches!(e, Event::Retry { .. })));
}

#[test]
fn a_lost_session_starts_the_blob_over_once_then_fails() {
    // a layer larger than a chunk opens a session (the config goes in a single POST)
    let img = image(91, &[(CHUNK + 3000) as usize], &Platform::host(), false);
    let (p, source) = plan(&[&img], None, &[]);
    // sessions are numbered u1, u2, … in the order they open (one blob at a time here)
    let lose = |sessions: &[&str]| -> Vec<Rule> {
        sessions
            .iter()
            .map(|s| Rule {
                path_contains: format!("/blobs/uploads/{s}"),
                fault: Fault::FailFirst {
                    times: 1,
                    status: 404,
                },
            })
            .collect()
    };
    let cfg = Config {
        max_concurrent: 1,
        ..push_config()
    };
    let mut sim = sim_for(source.clone(), Registry::new(), lose(&["u1"]));
    let out = run(&mut sim, cfg.clone(), "reg.test/test/repo:v1", p.clone());
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    assert_eq!(
        out.events
            .iter()
            .filter(|e| matches!(e, Event::UploadRestarted { .. }))
            .count(),
        1
    );
    // the new session is lost too: the blob does not start over a second time
    let mut sim = sim_for(source, Registry::new(), lose(&["u1", "u2"]));
    let out = run(&mut sim, cfg, "reg.test/test/repo:v1", p);
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::Upload { .. }), "{e}");
    assert!(e.to_string().contains("again"), "{e}");
}

/// A registry that takes a single `POST ?digest=` gets every small blob in one request
/// once the first went in so; one that ignores it (opens a session, drops the body) is
/// asked once, and the blob goes on in that session: one small body sent twice in all.
#[test]
fn small_blobs_go_in_a_single_post_where_the_registry_takes_it() {
    let img = image(94, &[100, 200, 300, 400, 500], &Platform::host(), false);
    let cfg = Config {
        max_concurrent: 2,
        ..push_config()
    };
    for ignored in [false, true] {
        let (p, source) = plan(&[&img], None, &[]);
        let rules = if ignored {
            vec![Rule::all(Fault::IgnoreSinglePost)]
        } else {
            vec![]
        };
        let mut sim = sim_for(source, Registry::new(), rules);
        let out = run(&mut sim, cfg.clone(), "reg.test/test/repo:v1", p);
        assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
        for b in img.blobs() {
            let d = ocireg_core::Digest::sha256(b);
            assert!(registry(&sim).has_blob("test/repo", &d), "{ignored}");
        }
        assert_eq!(registry(&sim).open_uploads(), 0, "no session left open");
        let blob_requests = calls(&out)
            .iter()
            .filter(|c| c.1.contains("/blobs/"))
            .count();
        if ignored {
            assert_eq!(whole_posts(&out), 1, "{:?}", out.requests);
            // each blob: HEAD, POST, PUT
            assert_eq!(blob_requests, 3 * 6, "{:?}", out.requests);
        } else {
            // the first whole POST and the blob beside it (sent before the answer) as
            // before; the other four in one POST each
            assert_eq!(whole_posts(&out), 5, "{:?}", out.requests);
            assert_eq!(blob_requests, 6 + 5 + 2, "{:?}", out.requests);
        }
    }
}

#[test]
fn an_index_goes_after_its_children() {
    let a = image(92, &[500], &Platform::host(), false);
    let other = Platform::parse("linux/riscv64").unwrap();
    let b = image(93, &[600], &other, false);
    let idx = index(&[(&a, &Platform::host()), (&b, &other)]);
    let (plan, source) = plan(&[&a, &b], Some(&idx), &["multi"]);
    let mut sim = sim_for(source, Registry::new(), vec![]);
    let out = run(&mut sim, push_config(), "reg.test/test/repo", plan);
    // the registry refuses an index whose children it does not have: success is the proof
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    let (_, bytes) = registry(&sim).manifest("test/repo", "multi").unwrap();
    assert_eq!(bytes, idx);
}

#[test]
fn a_plan_that_cannot_be_pushed_fails_before_any_request() {
    let img = small_and_big();
    let (mut p, source) = plan(&[&img], None, &[]);
    p.blobs.pop(); // the manifest lists a blob the plan lacks
    let mut sim = sim_for(source, Registry::new(), vec![]);
    let out = run(&mut sim, push_config(), "reg.test/test/repo:v1", p);
    let e = out.result.unwrap().unwrap_err();
    assert!(e.to_string().contains("not in the plan"), "{e}");
    assert!(out.requests.is_empty());
}

/// Several requests go out before the registry's Basic challenge is known: each one
/// refused without credentials is sent again with them (a regression: only the first
/// was, and the push failed).
#[test]
fn concurrent_first_requests_all_get_basic_credentials() {
    let img = small_and_big();
    // the registry wants u/`password`; the client has u/p
    let push = |password: &str| {
        let (plan, source) = plan(&[&img], None, &[]);
        let rules = vec![Rule::all(Fault::Basic {
            username: "u".into(),
            password: password.into(),
        })];
        let mut sim = sim_for(source, Registry::new(), rules);
        let cfg = Config {
            credentials: ocireg_core::Credentials::Basic {
                username: "u".into(),
                password: ocireg_core::Secret::new("p"),
            },
            ..push_config()
        };
        run(&mut sim, cfg, "reg.test/test/repo:v1", plan)
    };
    let out = push("p");
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    let unauthenticated_heads = out
        .requests
        .iter()
        .filter(|r| r.1 == "HEAD" && !r.3)
        .count();
    assert_eq!(
        unauthenticated_heads, 3,
        "the three probes went out at once"
    );
    // with a wrong password, each request is refused once with credentials: a clear failure
    let e = push("other").result.unwrap().unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
}

/// A registry that keeps less of a chunk than was sent says so in `Range`: the next
/// chunk starts there (a chunk that did not would be refused with a 416 and the blob
/// started over, which does not happen).
#[test]
fn a_chunk_kept_short_is_continued_from_the_registrys_range() {
    let img = small_and_big();
    let (plan, source) = plan(&[&img], None, &[]);
    let rules = vec![Rule {
        path_contains: "/blobs/uploads/u".into(),
        fault: Fault::ShortRange { by: 1000, times: 2 },
    }];
    let mut sim = sim_for(source, Registry::new(), rules);
    let out = run(&mut sim, push_config(), "reg.test/test/repo:v1", plan);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    assert!(!out
        .events
        .iter()
        .any(|e| matches!(e, Event::UploadRestarted { .. })));
    assert!(registry(&sim).has_blob("test/repo", &ocireg_core::Digest::sha256(&img.layers[1])));
    // the 2,000 bytes dropped are sent again, no more
    let patched: usize = out
        .requests
        .iter()
        .zip(&out.bodies)
        .filter(|(r, _)| r.1 == "PATCH")
        .map(|(_, b)| b.len())
        .sum();
    assert_eq!(patched, img.layers[1].len() + 2000);
}

/// A registry that will not mount opens a session instead: the blobs are uploaded.
#[test]
fn a_refused_mount_falls_back_to_an_upload() {
    let img = small_and_big();
    let mut reg = Registry::new();
    img.add_to(&mut reg, "test/base", Some("v1"));
    let (mut plan, source) = plan(&[&img], None, &[]);
    plan.mount_from = Some("test/base".into());
    let mut sim = sim_for(source, reg, vec![Rule::all(Fault::RefuseMount)]);
    let out = run(&mut sim, push_config(), "reg.test/test/app:v1", plan);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    assert_eq!(pushed(&out), vec![Pushed::Uploaded; 3]);
}

mod random_faults {
    use super::*;
    use proptest::prelude::*;

    const ATTEMPTS: u32 = 6;

    fn upload_fault() -> impl Strategy<Value = Rule> {
        let sessions = "/blobs/uploads/u";
        prop_oneof![
            // a session's chunks, or any upload (single POSTs too)
            (
                1usize..100_000,
                1u32..3,
                prop::sample::select(vec![sessions, "/blobs/uploads/"])
            )
                .prop_map(|(after, times, p)| Rule {
                    path_contains: p.into(),
                    fault: Fault::CutUpload { after, times },
                }),
            (1usize..1000, 1u32..3).prop_map(move |(by, times)| Rule {
                path_contains: sessions.into(),
                fault: Fault::ShortRange { by, times },
            }),
            (
                1u32..3,
                prop::sample::select(vec![500u16, 503]),
                prop::sample::select(vec!["", "/blobs/", "/manifests/", "/blobs/uploads/"])
            )
                .prop_map(|(times, status, p)| Rule {
                    path_contains: p.into(),
                    fault: Fault::FailFirst { times, status },
                }),
            prop::sample::select(vec!["", "/blobs/uploads/"]).prop_map(|p| Rule {
                path_contains: p.into(),
                fault: Fault::RedirectOnce,
            }),
            Just(Rule::all(Fault::RefuseMount)),
            Just(Rule::all(Fault::IgnoreSinglePost)),
        ]
    }

    /// Whether every operation of the push sees fewer failures in a row than it has
    /// attempts: each failure-making rule counts its `times` for every request it
    /// matches, doubled when a redirect gives the same request a second path.
    fn recoverable(rules: &[Rule]) -> bool {
        let redirects = rules.iter().any(|r| matches!(r.fault, Fault::RedirectOnce));
        let streak: u32 = rules
            .iter()
            .map(|r| match r.fault {
                Fault::FailFirst { times, .. } | Fault::CutUpload { times, .. } => times,
                _ => 0,
            })
            .sum();
        streak * if redirects { 2 } else { 1 } < ATTEMPTS
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Random upload faults: a push the faults allow to succeed succeeds, with every
        /// blob and the tagged manifest in the registry; any push ends (bounded steps)
        /// with success or a typed error.
        #[test]
        fn random_upload_fault_schedules(
            rules in prop::collection::vec(upload_fault(), 0..4),
            sizes in prop::collection::vec(0usize..200_000, 1..3),
            mount in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let img = image(seed % 1000, &sizes, &Platform::host(), false);
            let (mut p, source) = plan(&[&img], None, &[]);
            let mut reg = Registry::new();
            if mount {
                img.add_to(&mut reg, "test/base", None);
                p.mount_from = Some("test/base".into());
            }
            let mut sim = sim_for(source, reg, rules.clone());
            sim.max_steps = 200_000;
            let cfg = Config {
                seed,
                retry: ocireg_core::RetryPolicy {
                    max_attempts: ATTEMPTS,
                    initial_delay: std::time::Duration::from_millis(5),
                    ..ocireg_core::RetryPolicy::default()
                },
                ..push_config()
            };
            let out = run(&mut sim, cfg, "reg.test/test/repo:v1", p);
            match out.result.unwrap() {
                Ok(()) => {
                    let reg = registry(&sim);
                    for b in img.blobs() {
                        prop_assert!(reg.has_blob("test/repo", &ocireg_core::Digest::sha256(b)));
                    }
                    prop_assert_eq!(reg.manifest("test/repo", "v1").map(|m| m.1), Some(img.manifest.clone()));
                }
                Err(e) => prop_assert!(!recoverable(&rules), "expected success, got: {}", e),
            }
        }
    }
}
