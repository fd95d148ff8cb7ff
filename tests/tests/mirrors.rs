//! Pulling through mirrors over the simulated network: the core's host plan decides which
//! host is asked next, and each attempt is an ordinary pull against that host. A mirror
//! that is down, one that answers 404, one that serves a wrong blob (rejected by its
//! digest) each give way to the next host; a tag is resolved only on resolve hosts, and
//! everything is then pulled by the digest the resolving host gave.

use std::time::Instant;

use ocireg_core::mirrors::{Capabilities, Host, HostPlan, Purpose};
use ocireg_core::{Digest, Error, Event, Machine, Platform, Reference};
use ocireg_registry::images::{image, TestImage};
use ocireg_registry::{FaultyRegistry, Registry};
use ocireg_tests::sim::{test_config as config, Sim, ORIGIN};

/// A mirror at `origin` (`http://…`).
fn mirror(origin: &str, capabilities: Capabilities) -> Host {
    Host {
        url: url::Url::parse(origin).unwrap(),
        capabilities,
        override_path: false,
        headers: vec![("x-mirror".into(), "yes".into())],
        upstream: false,
    }
}

/// What a pull through hosts did: each attempt (host origin, purpose, ok), the blob
/// bytes delivered by the successful pull, and how it ended.
struct Through {
    attempts: Vec<(String, Purpose, bool)>,
    blobs: Vec<Vec<u8>>,
    result: Result<(), Error>,
}

/// Drives `plan` to its end over `sim`, as the CLI does over a real network.
fn pull_through(sim: &mut Sim, mut plan: HostPlan) -> Through {
    let t0 = Instant::now();
    let mut attempts = Vec::new();
    while let Some(a) = plan.next_attempt() {
        let host = &plan.hosts()[a.host];
        let origin = host.url.origin().ascii_serialization();
        let mut cfg = config();
        host.configure(&mut cfg, plan.reference());
        let mut pull = match a.purpose {
            Purpose::Resolve => Machine::inspect(cfg, a.reference.clone(), t0),
            Purpose::Pull => Machine::pull(cfg, a.reference.clone(), t0),
        };
        let out = sim.run(&mut pull, t0);
        // a mirror's headers go to it, and only to it
        for r in &out.requests {
            assert!(r.0 == origin, "{} asked of {origin}'s pull", r.0);
            // a mirror is told which upstream the image comes from; the upstream is not
            let ns = format!("ns={}", plan.reference().registry());
            let told = r.2.split(['?', '&']).any(|p| p == ns);
            assert_eq!(told, !host.upstream, "{} {}", r.1, r.2);
        }
        let result = out.result.expect("the pull ended");
        attempts.push((origin, a.purpose, result.is_ok()));
        match (result, a.purpose) {
            (Ok(()), Purpose::Resolve) => {
                let digest = out
                    .events
                    .iter()
                    .find_map(|e| match e {
                        Event::Manifest { digest, .. } => Some(digest.clone()),
                        _ => None,
                    })
                    .expect("a resolved manifest");
                plan.resolved(digest);
            }
            (Ok(()), Purpose::Pull) => {
                plan.pulled();
                return Through {
                    attempts,
                    blobs: out.blobs.into_values().collect(),
                    result: Ok(()),
                };
            }
            (Err(e), _) => {
                if !plan.failed(&e) {
                    return Through {
                        attempts,
                        blobs: vec![],
                        result: Err(e),
                    };
                }
            }
        }
    }
    unreachable!("a plan ends with a success or the last failure")
}

fn registry_with(img: &TestImage) -> FaultyRegistry {
    let mut r = Registry::new();
    img.add_to(&mut r, "team/app", Some("v1"));
    FaultyRegistry::new(r, vec![])
}

#[test]
fn down_404_and_wrong_blob_mirrors_give_way_and_every_byte_is_verified() {
    let img = image(81, &[3000, 5000], &Platform::host(), false);
    let mut sim = Sim::new(ORIGIN, registry_with(&img));
    // a mirror with nothing (404), a mirror whose second layer is wrong bytes under the
    // right digest; "http://down.test" has no server at all
    sim.servers.insert(
        "http://empty.test".into(),
        FaultyRegistry::new(Registry::new(), vec![]),
    );
    let mut bad = Registry::new();
    for b in [&img.config, &img.layers[0]] {
        bad.add_blob("team/app", b.clone());
    }
    bad.add_blob_with_digest(
        "team/app",
        Digest::sha256(&img.layers[1]),
        vec![0u8; img.layers[1].len()],
    );
    bad.add_manifest(
        "team/app",
        &img.media_type,
        img.manifest.clone(),
        Some("v1"),
    );
    sim.servers
        .insert("http://bad.test".into(), FaultyRegistry::new(bad, vec![]));
    let reference = Reference::parse("reg.test/team/app:v1").unwrap();
    let pull_only = Capabilities {
        pull: true,
        resolve: false,
        push: false,
    };
    let plan = HostPlan::new(
        vec![
            mirror("http://down.test", Capabilities::ALL),
            mirror("http://empty.test", pull_only),
            mirror("http://bad.test", pull_only),
        ],
        Host::upstream(&reference, true),
        reference,
    );
    let through = pull_through(&mut sim, plan);
    assert!(through.result.is_ok(), "{:?}", through.result);
    let tried: Vec<(&str, Purpose, bool)> = through
        .attempts
        .iter()
        .map(|(o, p, ok)| (o.as_str(), *p, *ok))
        .collect();
    assert_eq!(
        tried,
        [
            // the tag: the down mirror, then the upstream (the others may not resolve)
            ("http://down.test", Purpose::Resolve, false),
            (ORIGIN, Purpose::Resolve, true),
            // the content, by digest: down, empty, wrong, then the upstream
            ("http://down.test", Purpose::Pull, false),
            ("http://empty.test", Purpose::Pull, false),
            ("http://bad.test", Purpose::Pull, false),
            (ORIGIN, Purpose::Pull, true),
        ]
    );
    let mut want: Vec<Vec<u8>> = img.blobs().map(|b| b.to_vec()).collect();
    let mut got = through.blobs;
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn a_mirror_that_has_the_image_serves_it_all() {
    let img = image(82, &[3000], &Platform::host(), false);
    // the upstream answers 404 to everything: whatever it is asked, the pull would fail
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(Registry::new(), vec![]));
    sim.servers
        .insert("http://mirror.test".into(), registry_with(&img));
    let reference = Reference::parse("reg.test/team/app:v1").unwrap();
    let plan = HostPlan::new(
        vec![mirror("http://mirror.test", Capabilities::ALL)],
        Host::upstream(&reference, true),
        reference,
    );
    let through = pull_through(&mut sim, plan);
    assert!(through.result.is_ok(), "{:?}", through.result);
    assert!(through.attempts.iter().all(|a| a.0 == "http://mirror.test"));
    assert_eq!(through.blobs.len(), 2);
}

#[test]
fn when_every_host_fails_the_upstreams_error_is_the_pulls() {
    let reference = Reference::parse("reg.test/team/app:v1").unwrap();
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(Registry::new(), vec![]));
    let plan = HostPlan::new(
        vec![mirror("http://down.test", Capabilities::ALL)],
        Host::upstream(&reference, true),
        reference,
    );
    let through = pull_through(&mut sim, plan);
    let e = through.result.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    assert_eq!(through.attempts.len(), 2);
}
