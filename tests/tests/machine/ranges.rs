//! Resuming by range: ignored, wrong or unsatisfiable ranges, redirected downloads, and what skipping may cost.

use super::*;

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
        .any(|e| matches!(e, Event::DownloadRestarted { .. })));
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
        if let Event::DownloadRestarted { blob } = e {
            *restarts.entry(*blob).or_insert(0) += 1;
        }
    }
    assert!(!restarts.is_empty());
    assert!(restarts.values().all(|n| *n == 1), "{restarts:?}");
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
