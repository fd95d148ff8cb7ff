//! Rate limits a registry announces, over the simulated network: what each manifest
//! answer leaves is an event, and a `429` that outlasts the attempts ends with an error
//! that names the limit, what remains and when it resets.

use std::time::{Duration, Instant};

use ocireg_core::{ErrorKind, Event, Machine, Platform, RateLimit, Reference};
use ocireg_registry::images::image;
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::sim::{test_config as config, Sim, ORIGIN};

/// Docker Hub's announcement: 100 pulls per six hours, `left` of them left.
fn hub(left: u32) -> Rule {
    Rule::all(Fault::Headers(vec![
        ("ratelimit-limit".into(), "100;w=21600".into()),
        ("ratelimit-remaining".into(), format!("{left};w=21600")),
    ]))
}

fn inspect(rules: Vec<Rule>) -> ocireg_tests::sim::Outcome {
    let img = image(140, &[1000], &Platform::host(), false);
    let mut r = Registry::new();
    img.add_to(&mut r, "library/app", Some("v1"));
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, rules));
    let t0 = Instant::now();
    let mut m = Machine::inspect(
        config(),
        Reference::parse("reg.test/library/app:v1").unwrap(),
        t0,
    );
    sim.run(&mut m, t0)
}

#[test]
fn each_manifest_answer_says_what_is_left() {
    let out = inspect(vec![hub(76)]);
    assert!(out.result.unwrap().is_ok());
    let limits: Vec<RateLimit> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::RateLimit { limit, .. } => Some(*limit),
            _ => None,
        })
        .collect();
    assert_eq!(
        limits,
        [RateLimit {
            limit: Some(100),
            window: Some(Duration::from_secs(21600)),
            remaining: Some(76),
            reset: None,
        }]
    );
}

#[test]
fn a_refusal_names_the_limit_what_remains_and_the_reset() {
    let out = inspect(vec![
        hub(0),
        Rule::all(Fault::Headers(vec![(
            "ratelimit-reset".into(),
            "5400".into(),
        )])),
        Rule::all(Fault::FailFirst {
            times: 100,
            status: 429,
        }),
    ]);
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::RateLimited { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("100 requests per 6h, 0 remaining, resets in 1h 30m"),
        "{text}"
    );
}
