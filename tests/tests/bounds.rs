//! The numbers the README promises for what a server controls, each pinned in the
//! simulated network: the token body limit (1 MiB) and a manifest's (4 MiB), whether the
//! response declares its length or streams past it; manifests per pull (10,000); the
//! waiting budget of one operation (300 s).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use ocireg_core::{Action, Config, Error, Machine, Platform, Reference, RetryPolicy};
use ocireg_registry::images::image;
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::sim::{test_config as config, Sim, ORIGIN};

fn head(status: u16, headers: &[(&str, String)]) -> Response<()> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    b.body(()).unwrap()
}

/// Feeds `body` to exchange `id` in 64 KiB chunks until the machine ends; its error.
fn feed_until_failed(
    p: &mut Machine,
    id: ocireg_core::RequestId,
    body: usize,
    t0: Instant,
) -> Error {
    let chunk = Bytes::from(vec![b'{'; 64 << 10]);
    let mut fed = 0;
    while fed < body {
        p.handle_chunk(id, chunk.clone(), t0);
        fed += chunk.len();
        if let Some(e) = failed(p, t0) {
            return e;
        }
    }
    p.handle_end(id, t0);
    failed(p, t0).unwrap_or_else(|| panic!("a body of {body} bytes was taken whole"))
}

fn failed(p: &mut Machine, t0: Instant) -> Option<Error> {
    for _ in 0..100 {
        match p.poll_action(t0) {
            Action::Failed(e) => return Some(e),
            Action::Wait { .. } | Action::Done => return None,
            _ => {}
        }
    }
    None
}

/// The token request after a registry's Bearer challenge.
fn token_exchange(t0: Instant) -> (Machine, ocireg_core::RequestId) {
    let mut p = Machine::inspect(config(), Reference::parse("reg.test/x/y:v1").unwrap(), t0);
    let Action::Send { id, .. } = p.poll_action(t0) else {
        panic!("no request")
    };
    let challenge = r#"Bearer realm="http://reg.test/token",service="s""#.to_string();
    p.handle_head(id, head(401, &[("www-authenticate", challenge)]), t0);
    p.handle_end(id, t0);
    loop {
        match p.poll_action(t0) {
            Action::Send { id, request } => {
                assert!(request.uri().path().starts_with("/token"));
                return (p, id);
            }
            Action::Failed(e) => panic!("{e}"),
            _ => {}
        }
    }
}

#[test]
fn a_token_body_past_one_mebibyte_is_refused_declared_or_streamed() {
    let limit = Config::default().token_limit;
    assert_eq!(limit, 1 << 20);
    let t0 = Instant::now();
    // declared: refused from the head
    let (mut p, id) = token_exchange(t0);
    let declared = (limit + 1).to_string();
    p.handle_head(id, head(200, &[("content-length", declared)]), t0);
    let e = failed(&mut p, t0).expect("a declared 1 MiB + 1 token body is refused");
    assert!(matches!(e, Error::BodyTooLarge { .. }), "{e}");
    // streamed without a length: refused once past it
    let (mut p, id) = token_exchange(t0);
    p.handle_head(id, head(200, &[]), t0);
    let e = feed_until_failed(&mut p, id, (limit as usize) + (256 << 10), t0);
    assert!(matches!(e, Error::BodyTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("token"), "{e}");
}

#[test]
fn a_manifest_past_four_mebibytes_without_a_declared_length_is_refused() {
    let limit = Config::default().manifest_limit;
    assert_eq!(limit, 4 << 20);
    let t0 = Instant::now();
    let mut p = Machine::inspect(config(), Reference::parse("reg.test/x/y:v1").unwrap(), t0);
    let Action::Send { id, .. } = p.poll_action(t0) else {
        panic!("no request")
    };
    let oci = "application/vnd.oci.image.manifest.v1+json".to_string();
    p.handle_head(id, head(200, &[("content-type", oci)]), t0);
    let e = feed_until_failed(&mut p, id, (limit as usize) + (1 << 20), t0);
    assert!(matches!(e, Error::BodyTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("manifest"), "{e}");
}

#[test]
fn manifests_per_pull_are_bounded() {
    assert_eq!(Config::default().max_manifests, 10_000);
    // an index of five platforms against a bound of four (the index counts too)
    let platforms: Vec<_> = [
        "linux/amd64",
        "linux/arm64",
        "linux/s390x",
        "linux/ppc64le",
        "linux/386",
    ]
    .iter()
    .map(|p| ocireg_core::Platform::parse(p).unwrap())
    .collect();
    let imgs: Vec<_> = platforms
        .iter()
        .enumerate()
        .map(|(i, p)| image(300 + i as u64, &[100], p, false))
        .collect();
    let children: Vec<_> = imgs.iter().zip(&platforms).collect();
    let index = ocireg_registry::images::index(&children);
    let pull = |max_manifests: u32| {
        let mut r = Registry::new();
        for i in &imgs {
            i.add_to(&mut r, "x/y", None);
        }
        r.add_manifest(
            "x/y",
            ocireg_core::manifest::OCI_INDEX,
            index.clone(),
            Some("v1"),
        );
        let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![]));
        let cfg = Config {
            max_manifests,
            platform: ocireg_core::PlatformChoice::All,
            ..config()
        };
        let t0 = Instant::now();
        let mut p = Machine::pull(cfg, Reference::parse("reg.test/x/y:v1").unwrap(), t0);
        sim.run(&mut p, t0).result.unwrap()
    };
    assert!(pull(6).is_ok());
    let e = pull(4).unwrap_err();
    assert!(e.to_string().contains("manifests"), "{e}");
}

#[test]
fn one_operation_waits_three_hundred_seconds_at_most() {
    let budget = Config::default().retry.budget;
    assert_eq!(budget, Duration::from_secs(300));
    let img = image(310, &[100], &Platform::host(), false);
    let mut r = Registry::new();
    img.add_to(&mut r, "x/y", Some("v1"));
    // every answer asks to come back in 50 s (under the 60 s cap): the seventh wait
    // would pass the budget
    let rules = vec![Rule::all(Fault::RateLimit {
        times: u32::MAX,
        retry_after: "50".into(),
    })];
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, rules));
    let cfg = Config {
        retry: RetryPolicy {
            max_attempts: 100,
            ..RetryPolicy::default()
        },
        ..config()
    };
    let t0 = Instant::now();
    let mut p = Machine::inspect(cfg, Reference::parse("reg.test/x/y:v1").unwrap(), t0);
    let out = sim.run(&mut p, t0);
    let e = out.result.unwrap().unwrap_err();
    // the waits stop at the budget (the requests themselves take a little simulated time)
    assert!(
        out.elapsed <= budget + Duration::from_secs(1),
        "waited {:?}",
        out.elapsed
    );
    assert!(
        out.elapsed >= budget - Duration::from_secs(50),
        "waited {:?}",
        out.elapsed
    );
    assert!(
        matches!(e.kind(), ocireg_core::ErrorKind::RateLimited { .. }),
        "{e}"
    );
}

/// A tag list's next page on another origin is not followed: the listing fails saying
/// the link leaves the registry (the mutation run found no test for this: a mutant that
/// took every URL for the registry's own survived).
#[test]
fn a_next_page_on_another_origin_is_not_followed() {
    let img = image(320, &[100], &Platform::host(), false);
    let mut r = Registry::new();
    img.add_to(&mut r, "x/y", Some("v1"));
    let rules = vec![Rule {
        path_contains: "/tags/list".into(),
        fault: Fault::Headers(vec![(
            "link".into(),
            r#"<http://elsewhere.test/v2/x/y/tags/list?n=1&last=v1>; rel="next""#.into(),
        )]),
    }];
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, rules));
    let t0 = Instant::now();
    let mut p = Machine::list_tags(config(), Reference::parse("reg.test/x/y").unwrap(), t0);
    let out = sim.run(&mut p, t0);
    let e = out.result.unwrap().unwrap_err();
    assert!(e.to_string().contains("leaves"), "{e}");
    assert!(
        out.requests.iter().all(|r| r.0 == ORIGIN),
        "{:?}",
        out.requests
    );
}
