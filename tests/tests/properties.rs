//! Property tests: random fault schedules against the core over the simulated network.
//! Every run ends (bounded steps) with the blob ledger's invariants held after every step
//! (`ocireg_fuzz_checks::ledger`), no more requests than the policy allows, and the
//! outcome an oracle predicts from the schedule alone: success when every fault is one the
//! machine recovers from within its budgets, failure (with the status or kind) when a
//! fault cannot be recovered from, and either when the faults interact in ways the
//! oracle does not model (checked then only for a typed error or the exact bytes).

use std::time::{Duration, Instant};

use ocireg_core::{Config, Machine, Platform, Reference, RetryPolicy};
use ocireg_registry::images::{image, TestImage};
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::sim::Sim;
use proptest::prelude::*;

const ORIGIN: &str = "http://reg.test";

/// One rule of a schedule. Faults that act on a pull by themselves (refusals, redirects,
/// cuts, a token flow) are drawn more often than those that act only with another
/// (range faults need a cut to make a range request; rules on `/token` need a token
/// flow), so that most schedules change what the pull meets.
fn fault() -> impl Strategy<Value = Rule> {
    let f = prop_oneof![
        3 => (
            1u32..4,
            prop::sample::select(vec![500u16, 502, 503, 504, 408, 429, 404, 401, 501])
        )
            .prop_map(|(times, status)| Fault::FailFirst { times, status }),
        2 => (
            1u32..3,
            prop::sample::select(vec!["0", "1", "5", "120", "bogus"])
        )
            .prop_map(|(times, ra)| Fault::RateLimit {
                times,
                retry_after: ra.to_string()
            }),
        3 => (1usize..5000, 1u32..6).prop_map(|(after, times)| Fault::CutBody { after, times }),
        2 => (0usize..3000, 1u32..3).prop_map(|(after, times)| Fault::StallBody { after, times }),
        2 => Just(Fault::RedirectOnce),
        1 => Just(Fault::IgnoreRange),
        1 => Just(Fault::WrongContentRange),
        1 => Just(Fault::RangeNotSatisfiable),
        2 => Just(Fault::Token {
            realm: format!("{ORIGIN}/token"),
            service: "svc".into()
        }),
    ];
    let path = prop_oneof![
        3 => Just(""),
        3 => Just("/blobs/"),
        3 => Just("/manifests/"),
        1 => Just("/token"),
    ];
    (f, path).prop_map(|(fault, p)| Rule {
        path_contains: p.to_string(),
        fault,
    })
}

/// What a fault schedule must lead to.
#[derive(Debug, PartialEq)]
enum Expect {
    Succeed,
    /// Fail; with this status when the schedule's only unrecoverable fault says so, or
    /// with a temporary kind when retries run out.
    Fail(Option<FailCheck>),
    /// The oracle does not decide (faults that interact: range faults after a cut, …).
    Either,
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum FailCheck {
    Status(u16),
    RetriesExhausted,
}

/// The kinds of request a pull of the test image makes.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Path {
    Manifest,
    Blob,
    Token,
}

fn matches(rule: &Rule, p: Path) -> bool {
    match rule.path_contains.as_str() {
        "" => true,
        "/blobs/" => p == Path::Blob,
        "/manifests/" => p == Path::Manifest,
        "/token" => p == Path::Token,
        other => unreachable!("path {other}"),
    }
}

/// Predicts the outcome of pulling `img` under `rules` with `attempts` attempts per
/// operation (the fault layer counts per rule and per path, and a redirect makes a new
/// path, so a redirect can double what a rule does to one operation).
fn expect(rules: &[Rule], img: &TestImage, attempts: u32) -> Expect {
    let token = rules
        .iter()
        .any(|r| matches!(r.fault, Fault::Token { .. }) && r.path_contains.is_empty());
    let challenged_path = rules.iter().any(|r| {
        matches!(r.fault, Fault::Token { .. })
            && !r.path_contains.is_empty()
            && r.path_contains != "/token"
    });
    let token_service = rules
        .iter()
        .any(|r| matches!(r.fault, Fault::Token { .. }) && matches(r, Path::Token));
    if challenged_path && !token_service {
        // a challenge whose token service is not there (`/token` is answered by the
        // registry behind, which has none): no token, so the pull fails
        return Expect::Fail(None);
    }
    if challenged_path {
        return Expect::Either; // challenges on some paths, with the service on another
    }
    let mut requested = vec![Path::Manifest, Path::Blob];
    if token {
        requested.push(Path::Token);
    }
    let blob_cuts = rules.iter().any(|r| {
        matches(r, Path::Blob) && matches!(r.fault, Fault::CutBody { .. } | Fault::StallBody { .. })
    });
    let range_faults = rules.iter().any(|r| {
        matches(r, Path::Blob)
            && matches!(
                r.fault,
                Fault::IgnoreRange | Fault::WrongContentRange | Fault::RangeNotSatisfiable
            )
    });
    if blob_cuts && range_faults {
        return Expect::Either;
    }
    let mut fatal: Vec<FailCheck> = Vec::new();
    let mut recoverable = true;
    // paths whose retries run out for certain, and whether another might run out too
    let (mut certain_exhaustion, mut uncertain_exhaustion) = (false, false);
    for &p in &requested {
        let redirects = rules
            .iter()
            .any(|r| matches(r, p) && matches!(r.fault, Fault::RedirectOnce));
        let factor = if redirects { 2 } else { 1 };
        // failures in a row this operation sees at most (and at least, before redirects)
        let mut streak = 0u32;
        // The token service answers /token itself: rules after it never see those requests.
        let reach = match p {
            Path::Token => rules
                .iter()
                .position(|r| matches!(r.fault, Fault::Token { .. }) && matches(r, Path::Token))
                .unwrap_or(rules.len()),
            _ => rules.len(),
        };
        for r in rules[..reach].iter().filter(|r| matches(r, p)) {
            match &r.fault {
                Fault::FailFirst { status, .. }
                    if !ocireg_core::error::is_temporary_status(*status) =>
                {
                    fatal.push(FailCheck::Status(*status));
                }
                Fault::RateLimit { retry_after, .. } if retry_after == "120" => {
                    fatal.push(FailCheck::Status(429));
                }
                Fault::FailFirst { times, .. } | Fault::RateLimit { times, .. } => streak += times,
                Fault::CutBody { after, times } | Fault::StallBody { after, times } => {
                    let no_progress = match p {
                        Path::Manifest => *after < img.manifest.len(),
                        Path::Token => true,
                        // a blob attempt cut after new bytes resumes with a fresh count
                        Path::Blob => *after == 0,
                    };
                    if no_progress {
                        streak += times;
                    }
                }
                _ => {}
            }
        }
        let progress_resets = u32::from(p == Path::Blob && blob_cuts);
        if factor * streak + progress_resets >= attempts {
            recoverable = false;
            // certain when nothing but refusals meets this path (no redirect, cut or
            // token flow that could change the count) and they outlast the attempts
            let only_refusals = rules
                .iter()
                .filter(|r| matches(r, p))
                .all(|r| matches!(r.fault, Fault::FailFirst { .. } | Fault::RateLimit { .. }));
            if only_refusals && !token && streak >= attempts && p != Path::Token {
                certain_exhaustion = true;
            } else {
                uncertain_exhaustion = true;
            }
        }
    }
    match (fatal.first(), recoverable) {
        (None, true) => Expect::Succeed,
        (Some(&first), _) if fatal.iter().all(|f| *f == first) && recoverable => {
            Expect::Fail(Some(first))
        }
        (Some(_), _) => Expect::Fail(None),
        (None, false) if certain_exhaustion && !uncertain_exhaustion => {
            Expect::Fail(Some(FailCheck::RetriesExhausted))
        }
        (None, false) if certain_exhaustion => Expect::Fail(None),
        (None, false) => Expect::Either,
    }
}

/// Whether a fault of the schedule can act on a pull of `img` at all: a refusal, a
/// redirect or a cut on a path the pull requests (a cut within the body), a range fault
/// with a cut or stall of a blob to make a range request, a token flow, or a challenge
/// whose token service is missing.
fn acts(rules: &[Rule], img: &TestImage) -> bool {
    let token = rules
        .iter()
        .position(|r| matches!(r.fault, Fault::Token { .. }) && r.path_contains.is_empty());
    let longest_blob = img.blobs().map(|b| b.len()).max().unwrap_or(0);
    let cut_blob = rules.iter().any(|r| {
        matches(r, Path::Blob)
            && matches!(&r.fault, Fault::CutBody { after, .. } | Fault::StallBody { after, .. }
                if *after < longest_blob)
    });
    rules.iter().enumerate().any(|(i, r)| {
        let on_pull = matches(r, Path::Manifest) || matches(r, Path::Blob);
        // rules before the token service's see the token requests
        let on_token = matches(r, Path::Token) && token.is_some_and(|t| i < t);
        match &r.fault {
            Fault::Token { .. } => true,
            Fault::FailFirst { .. } | Fault::RateLimit { .. } | Fault::RedirectOnce => {
                on_pull || on_token
            }
            Fault::CutBody { after, .. } | Fault::StallBody { after, .. } => {
                (matches(r, Path::Manifest) && *after < img.manifest.len())
                    || (matches(r, Path::Blob) && *after < longest_blob)
                    || on_token
            }
            Fault::IgnoreRange | Fault::WrongContentRange | Fault::RangeNotSatisfiable => {
                matches(r, Path::Blob) && cut_blob
            }
            _ => false,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn random_fault_schedules(
        rules in prop::collection::vec(fault(), 1..5),
        sizes in prop::collection::vec(0usize..20_000, 1..4),
        chunk in 1usize..9000,
        seed in any::<u64>(),
        attempts in 1u32..7,
    ) {
        let img = image(seed % 1000, &sizes, &Platform::host(), false);
        let mut r = Registry::new();
        img.add_to(&mut r, "test/repo", Some("v1"));
        let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, rules.clone()));
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
        let mut p = Machine::pull(cfg, Reference::parse("reg.test/test/repo:v1").unwrap(), t0);
        let out = sim.run(&mut p, t0);
        let expected = expect(&rules, &img, attempts);
        let result = out.result.clone().unwrap();
        match (&expected, &result) {
            (Expect::Succeed, Err(e)) => prop_assert!(false, "expected success, got: {e}"),
            (Expect::Fail(_), Ok(())) => prop_assert!(false, "expected a failure, got success"),
            (Expect::Fail(Some(FailCheck::Status(s))), Err(e)) => {
                prop_assert_eq!(e.status(), Some(*s), "{}", e)
            }
            (Expect::Fail(Some(FailCheck::RetriesExhausted)), Err(e)) => prop_assert!(
                e.kind().is_temporary(),
                "expected retries to run out, got: {e}"
            ),
            _ => {}
        }
        match result {
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
        let progress = out.events.iter().filter(|e| matches!(e, ocireg_core::Event::DownloadResumed { .. } | ocireg_core::Event::DownloadRestarted { .. })).count();
        let bound = (ops + progress) * attempts as usize * 3;
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

/// The oracle decides most schedules, and most of those carry a fault that acts on the
/// pull: a property that answered "either" for nearly every case, or predicted success
/// for schedules that change nothing, would check nothing.
#[test]
fn the_oracle_decides_most_schedules() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (prop::collection::vec(fault(), 1..5), 1u32..7);
    let (mut succeed, mut fail, mut either, mut acting_decided, mut exhausted) = (0, 0, 0, 0, 0);
    let img = image(1, &[100, 5000], &Platform::host(), false);
    for _ in 0..1000 {
        let (rules, attempts) = strategy.new_tree(&mut runner).unwrap().current();
        let expected = expect(&rules, &img, attempts);
        match expected {
            Expect::Succeed => succeed += 1,
            Expect::Fail(Some(FailCheck::RetriesExhausted)) => {
                fail += 1;
                exhausted += 1;
            }
            Expect::Fail(_) => fail += 1,
            Expect::Either => either += 1,
        }
        if expected != Expect::Either && acts(&rules, &img) {
            acting_decided += 1;
        }
    }
    let counts = format!(
        "succeed {succeed}, fail {fail} ({exhausted} retries exhausted), either {either}, \
         decided with an acting fault {acting_decided}"
    );
    println!("{counts}");
    assert!(acting_decided >= 650, "{counts}");
    assert!(succeed >= 300 && fail >= 150, "{counts}");
    assert!(exhausted >= 30, "{counts}");
    assert!(either <= 220, "{counts}");
}
