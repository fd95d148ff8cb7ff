//! Property tests: random fault schedules against the core over the simulated network.
//! Every run must end (bounded steps) in either the exact blob bytes with the right
//! digests or a typed error, with contiguous, never repeated deliveries (checked by the
//! simulator after every step) and no more requests than the policy allows.

use std::time::{Duration, Instant};

use ocireg_core::{Config, Platform, Pull, Reference, RetryPolicy};
use ocireg_registry::images::image;
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::sim::Sim;
use proptest::prelude::*;

const ORIGIN: &str = "http://reg.test";

fn fault() -> impl Strategy<Value = Rule> {
    let f = prop_oneof![
        (
            1u32..4,
            prop::sample::select(vec![500u16, 502, 503, 504, 408, 429, 404, 401, 501])
        )
            .prop_map(|(times, status)| Fault::FailFirst { times, status }),
        (
            1u32..3,
            prop::sample::select(vec!["0", "1", "5", "120", "bogus"])
        )
            .prop_map(|(times, ra)| Fault::RateLimit {
                times,
                retry_after: ra.to_string()
            }),
        (1usize..5000, 1u32..6).prop_map(|(after, times)| Fault::CutBody { after, times }),
        (0usize..3000, 1u32..3).prop_map(|(after, times)| Fault::StallBody { after, times }),
        Just(Fault::RedirectOnce),
        Just(Fault::IgnoreRange),
        Just(Fault::WrongContentRange),
        Just(Fault::RangeNotSatisfiable),
        Just(Fault::Token {
            realm: format!("{ORIGIN}/token"),
            service: "svc".into()
        }),
    ];
    (
        f,
        prop::sample::select(vec!["", "/blobs/", "/manifests/", "/token"]),
    )
        .prop_map(|(fault, p)| Rule {
            path_contains: p.to_string(),
            fault,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn random_fault_schedules(
        rules in prop::collection::vec(fault(), 0..5),
        sizes in prop::collection::vec(0usize..20_000, 1..4),
        chunk in 1usize..9000,
        seed in any::<u64>(),
        attempts in 1u32..7,
    ) {
        let img = image(seed % 1000, &sizes, &Platform::host(), false);
        let mut r = Registry::new();
        img.add_to(&mut r, "test/repo", Some("v1"));
        let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, rules));
        sim.chunk = chunk;
        sim.max_steps = 200_000;
        let cfg = Config {
            plain_http: true,
            seed,
            idle_timeout: Duration::from_secs(2),
            retry: RetryPolicy { max_attempts: attempts, initial_delay: Duration::from_millis(5), ..RetryPolicy::default() },
            ..Config::default()
        };
        let t0 = Instant::now();
        let mut p = Pull::new(cfg, Reference::parse("reg.test/test/repo:v1").unwrap(), t0);
        let out = sim.run(&mut p, t0);
        match out.result.unwrap() {
            Ok(()) => {
                // every blob exactly once, with its content
                let mut want: Vec<Vec<u8>> = img.blobs().map(|b| b.to_vec()).collect();
                want.sort(); want.dedup();
                let empty = Vec::new();
                let mut got: Vec<Vec<u8>> = out.done.iter().map(|b| out.blobs.get(b).unwrap_or(&empty).clone()).collect();
                got.sort();
                prop_assert_eq!(got, want);
            }
            Err(e) => {
                // a typed error with a message; never a panic
                prop_assert!(!e.to_string().is_empty());
            }
        }
        // Requests: each operation gets at most `attempts` failures in a row, each may
        // redirect and authenticate once; progress (new bytes) renews a blob's attempts.
        let ops = img.blobs().count() + 2;
        let progress = out.events.iter().filter(|e| matches!(e, ocireg_core::Event::Resumed { .. } | ocireg_core::Event::Restarted { .. })).count();
        let bound = (ops + progress) * attempts as usize * 4;
        prop_assert!(out.requests.len() <= bound, "{} requests > {}", out.requests.len(), bound);
    }
}

proptest! {
    #[test]
    fn header_parsers_never_panic(raw in prop::collection::vec(any::<u8>(), 0..300), text in "[ -~\t]{0,200}") {
        let _ = ocireg_core::auth::parse_www_authenticate([raw.as_slice(), text.as_bytes()]);
        let _ = ocireg_core::range::parse_content_range(&raw);
        let _ = ocireg_core::retry::parse_retry_after(text.as_bytes(), Some(&raw));
        let _ = ocireg_core::Reference::parse(&text);
        let _ = ocireg_core::Digest::parse(&text);
        let _ = ocireg_core::Manifest::parse(&text, &raw);
        let _ = ocireg_core::auth::parse_token_response(&raw);
        let _ = ocireg_core::auth::parse_rfc3339(&text);
        // a parsed challenge list is never larger than the input
        let c = ocireg_core::auth::parse_www_authenticate([text.as_bytes()]);
        prop_assert!(c.len() <= text.len() + 1);
    }
}
