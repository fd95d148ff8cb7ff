//! When a pull tries again and when it gives up: backoff, `Retry-After`, attempts, budgets, deadlines and timeouts.

use super::*;

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
    let mut p = Machine::pull(cfg, Reference::parse("reg.test/test/repo:v1").unwrap(), t0);
    let out = sim.run(&mut p, t0);
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::Deadline { .. }), "{e}");
    assert!(out.elapsed < Duration::from_secs(1));
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

/// A server whose clock is an hour off (behind, or ahead): its HTTP-date `Retry-After`
/// is read against its own `Date`, so the wait is the three seconds it meant, not
/// nothing (behind) nor an hour (ahead) as this machine's clock would place it.
#[test]
fn an_http_date_retry_after_from_a_skewed_server_clock_is_its_own_delay() {
    let img = small();
    let hour = Duration::from_secs(3600);
    let now = std::time::SystemTime::now();
    for server_now in [now - hour, now + hour] {
        let rules = vec![
            Rule::all(Fault::Headers(vec![(
                "date".into(),
                httpdate::fmt_http_date(server_now),
            )])),
            Rule {
                path_contains: "/manifests/".into(),
                fault: Fault::RateLimit {
                    times: 1,
                    retry_after: httpdate::fmt_http_date(server_now + Duration::from_secs(3)),
                },
            },
        ];
        let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
        let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
        assert_complete(&out, &img);
        let delays = retry_delays(&out);
        assert_eq!(delays.len(), 1, "{delays:?}");
        // one-second resolution of HTTP-dates
        assert!(
            delays[0] >= Duration::from_secs(2) && delays[0] <= Duration::from_secs(4),
            "{delays:?}"
        );
    }
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
        .any(|e| matches!(e, Event::DownloadResumed { offset: 20_000, .. })));
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
        .any(|e| matches!(e, Event::DownloadResumed { offset: 20_000, .. })));
    assert!(out.elapsed >= Duration::from_secs(5));
}
