//! The administration and part goals over the simulated network: deletes, tags, digests,
//! credential checks and ranged reads, with the refusals, retries and authentication a
//! registry puts in their way.

use std::time::Instant;

use ocireg_core::{Credentials, Digest, ErrorKind, Event, Machine, Platform, Reference, Secret};
use ocireg_registry::images::image;
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::sim::{test_config as config, Outcome, Sim, ORIGIN};

fn sim(rules: Vec<Rule>) -> (Sim, ocireg_registry::images::TestImage) {
    let img = image(120, &[3000, 5000], &Platform::host(), false);
    let mut r = Registry::new();
    img.add_to(&mut r, "team/app", Some("v1"));
    (Sim::new(ORIGIN, FaultyRegistry::new(r, rules)), img)
}

fn run(sim: &mut Sim, m: impl FnOnce(Instant) -> Machine) -> Outcome {
    let t0 = Instant::now();
    let mut machine = m(t0);
    sim.run(&mut machine, t0)
}

fn at(r: &str) -> Reference {
    Reference::parse(&format!("reg.test/{r}")).unwrap()
}

fn methods(out: &Outcome, method: &str) -> usize {
    out.requests.iter().filter(|r| r.1 == method).count()
}

#[test]
fn a_delete_is_retried_through_server_errors_and_answers_a_challenge() {
    let (mut sim, img) = sim(vec![
        Rule::all(Fault::FailFirst {
            times: 2,
            status: 503,
        }),
        Rule::all(Fault::Basic {
            username: "u".into(),
            password: "p".into(),
        }),
    ]);
    let cfg = ocireg_core::Config {
        credentials: Credentials::Basic {
            username: "u".into(),
            password: Secret::new("p"),
        },
        ..config()
    };
    let out = run(&mut sim, |t0| {
        Machine::delete_manifest(cfg, at(&format!("team/app@{}", img.digest())), t0)
    });
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, Event::Deleted { what } if what.contains(&img.digest().to_string()))));
    assert!(methods(&out, "DELETE") >= 1);
    assert!(sim.servers[ORIGIN]
        .inner
        .manifest("team/app", "v1")
        .is_none());
}

#[test]
fn a_refused_delete_fails_once_with_the_registrys_status() {
    let (mut sim, _) = sim(vec![Rule {
        path_contains: "/manifests/".into(),
        fault: Fault::FailFirst {
            times: u32::MAX,
            status: 405,
        },
    }]);
    // a tag alone: one DELETE, refused, not retried
    let out = run(&mut sim, |t0| {
        Machine::delete_tag(config(), at("team/app:v1"), t0)
    });
    let e = out.result.unwrap().unwrap_err();
    assert_eq!(e.status(), Some(405), "{e}");
    assert_eq!(out.requests.len(), 1, "{:?}", out.requests);
    assert_eq!(out.requests[0].1, "DELETE");
    // by tag: refused before any request (a manifest is deleted by digest)
    let out = run(&mut sim, |t0| {
        Machine::delete_manifest(config(), at("team/app:v1"), t0)
    });
    let e = out.result.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(out.requests.is_empty());
}

#[test]
fn a_tag_puts_the_manifest_bytes_and_moves_no_blob() {
    let (mut sim, img) = sim(vec![Rule::all(Fault::FailFirst {
        times: 1,
        status: 502,
    })]);
    let out = run(&mut sim, |t0| {
        Machine::tag(
            config(),
            at("team/app:v1"),
            vec!["a".into(), "b".into()],
            t0,
        )
    });
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    let put: Vec<&str> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ManifestPushed { reference, digest } if *digest == img.digest() => {
                Some(reference.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(put, ["a", "b"]);
    assert!(out.requests.iter().all(|r| !r.2.contains("/blobs/")));
    let reg = &sim.servers[ORIGIN].inner;
    assert_eq!(reg.manifest("team/app", "b").unwrap().1, img.manifest);
}

#[test]
fn a_digest_is_a_head() {
    let (mut sim, img) = sim(vec![]);
    let out = run(&mut sim, |t0| {
        Machine::resolve(config(), at("team/app:v1"), t0)
    });
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    let found = out.events.iter().find_map(|e| match e {
        Event::Resolved { descriptor } => Some(descriptor.clone()),
        _ => None,
    });
    let d = found.expect("a descriptor");
    assert_eq!(d.digest, img.digest());
    assert_eq!(d.len(), img.manifest.len() as u64);
    assert_eq!(methods(&out, "HEAD"), 1);
    assert_eq!(methods(&out, "GET"), 0);
}

#[test]
fn credentials_are_checked_through_a_token() {
    let (mut sim, _) = sim(vec![Rule::all(Fault::Token {
        realm: format!("{ORIGIN}/token"),
        service: "sim.test".into(),
    })]);
    let out = run(&mut sim, |t0| {
        Machine::check_credentials(config(), at("x/y"), t0)
    });
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, Event::CredentialsChecked { needed: true })));
    // the API root, the token, the API root again with it
    let paths: Vec<&str> = out
        .requests
        .iter()
        .map(|r| r.2.split('?').next().unwrap())
        .collect();
    assert_eq!(paths, ["/v2/", "/token", "/v2/"]);
}

#[test]
fn a_part_is_one_ranged_request_and_a_whole_answer_is_refused() {
    let (mut sim, img) = sim(vec![]);
    let layer = &img.layers[1];
    let d = ocireg_core::Descriptor::new(
        "application/octet-stream",
        Digest::sha256(layer),
        layer.len() as u64,
    );
    let out = run(&mut sim, |t0| {
        Machine::fetch_blob_range(config(), at("team/app"), d.clone(), 100, 50, t0)
    });
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    let got = out.events.iter().find_map(|e| match e {
        Event::BlobPart { offset, bytes, .. } => Some((*offset, bytes.clone())),
        _ => None,
    });
    assert_eq!(got, Some((100, layer.slice(100..150))));
    assert_eq!(out.requests.len(), 1);
    // a registry that ignores Range: refused, saying so
    sim.servers
        .get_mut(ORIGIN)
        .unwrap()
        .set_rules(vec![Rule::blobs(Fault::IgnoreRange)]);
    let out = run(&mut sim, |t0| {
        Machine::fetch_blob_range(config(), at("team/app"), d.clone(), 100, 50, t0)
    });
    let e = out.result.unwrap().unwrap_err();
    assert!(e.to_string().contains("ignores range requests"), "{e}");
}
