//! Referrers over the simulated network: listed by the registry's referrers API
//! (filtered by the registry, or by the client when the registry did not say it
//! filtered), or, when the registry has no such API, from the referrers tag; and a push
//! of a manifest with a `subject` keeps that tag when the registry does not.

use std::time::Instant;

use ocireg_core::referrers::fallback_tag;
use ocireg_core::{Descriptor, Event, Machine, Manifest, Platform, Reference, ReferrersVia};
use ocireg_registry::images::push_plan as plan;
use ocireg_registry::images::{artifact, image, TestImage};
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::sim::{test_config as config, Outcome, Sim, ORIGIN};

const SIG: &str = "application/vnd.example.signature.v1";
const SBOM: &str = "application/vnd.example.sbom.v1+json";

/// An image and two artifacts that refer to it (a signature, an SBOM).
fn image_and_referrers() -> (TestImage, TestImage, TestImage) {
    let img = image(80, &[100, 200], &Platform::host(), false);
    let sig = artifact(SIG, &[("sig.bin", b"signed")], Some(&img));
    let sbom = artifact(SBOM, &[("sbom.json", b"{\"packages\":[]}")], Some(&img));
    (img, sig, sbom)
}

/// Lists the referrers of `reference` with `filter`; the outcome and the pages.
fn list(
    sim: &mut Sim,
    reference: &str,
    filter: Option<&str>,
) -> (Outcome, Vec<(Vec<Descriptor>, ReferrersVia)>) {
    let t0 = Instant::now();
    let mut p = Machine::list_referrers(
        config(),
        Reference::parse(reference).unwrap(),
        filter.map(str::to_string),
        t0,
    );
    let out = sim.run(&mut p, t0);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    let pages = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Referrers { referrers, via, .. } => Some((referrers.clone(), *via)),
            _ => None,
        })
        .collect();
    (out, pages)
}

/// Pushes `a` (by digest) into the repository `app`; it must succeed.
fn push_to_app(sim: &mut Sim, a: &TestImage) -> Outcome {
    let (p, source) = plan(&[a], None, &[]);
    sim.upload_source = source;
    let t0 = Instant::now();
    let mut push = Machine::push(config(), Reference::parse("reg.test/app").unwrap(), p, t0);
    let out = sim.run(&mut push, t0);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    out
}

fn digests(ds: &[Descriptor]) -> Vec<String> {
    let mut v: Vec<String> = ds.iter().map(|d| d.digest.to_string()).collect();
    v.sort();
    v
}

fn sorted(imgs: &[&TestImage]) -> Vec<String> {
    let mut v: Vec<String> = imgs.iter().map(|i| i.digest().to_string()).collect();
    v.sort();
    v
}

#[test]
fn the_api_lists_referrers_and_filters_by_artifact_type() {
    let (img, sig, sbom) = image_and_referrers();
    let mut r = Registry::new();
    img.add_to(&mut r, "app", Some("v1"));
    sig.add_to(&mut r, "app", None);
    sbom.add_to(&mut r, "app", None);
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![]));
    // by tag: the tag is resolved, then the API asked for its digest
    let (out, pages) = list(&mut sim, "reg.test/app:v1", None);
    assert_eq!(pages.len(), 1);
    assert_eq!(digests(&pages[0].0), sorted(&[&sig, &sbom]));
    assert_eq!(pages[0].1, ReferrersVia::Api { filtered: false });
    let paths: Vec<&str> = out.requests.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v2/app/manifests/v1".to_string(),
            format!("/v2/app/referrers/{}", img.digest())
        ]
    );
    // each entry carries its artifact type and annotations
    let s = pages[0]
        .0
        .iter()
        .find(|d| d.digest == sig.digest())
        .unwrap();
    assert_eq!(s.artifact_type.as_deref(), Some(SIG));
    assert!(s
        .annotations
        .as_ref()
        .unwrap()
        .contains_key("org.opencontainers.image.created"));
    // filtered by the registry, which says so
    let by_digest = format!("reg.test/app@{}", img.digest());
    let (out, pages) = list(&mut sim, &by_digest, Some(SBOM));
    assert_eq!(digests(&pages[0].0), sorted(&[&sbom]));
    assert_eq!(pages[0].1, ReferrersVia::Api { filtered: true });
    assert_eq!(out.requests.len(), 1, "a digest needs no resolving");
    assert!(out.requests[0]
        .2
        .contains("artifactType=application%2Fvnd.example.sbom.v1%2Bjson"));
}

#[test]
fn without_the_api_the_referrers_tag_is_read_and_filtered_by_the_client() {
    let (img, sig, sbom) = image_and_referrers();
    let mut r = Registry::new();
    r.set_referrers_api(false);
    img.add_to(&mut r, "app", Some("v1"));
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![]));
    // nothing under the tag yet: no referrers
    let (out, pages) = list(&mut sim, "reg.test/app:v1", None);
    assert_eq!(pages, [(vec![], ReferrersVia::TagSchema)]);
    assert_eq!(
        out.requests.last().unwrap().2,
        format!("/v2/app/manifests/{}", fallback_tag(&img.digest()))
    );
    // pushed by ocireg: each push adds its manifest to the tag's index (once)
    for (i, a) in [&sig, &sbom, &sig].into_iter().enumerate() {
        let out = push_to_app(&mut sim, a);
        // the third push finds its manifest listed already and writes nothing
        let updated = out
            .events
            .iter()
            .any(|e| matches!(e, Event::ReferrersTagUpdated { .. }));
        assert_eq!(updated, i < 2, "{:?}", out.requests);
    }
    let (_, pages) = list(&mut sim, "reg.test/app:v1", None);
    assert_eq!(digests(&pages[0].0), sorted(&[&sig, &sbom]));
    assert_eq!(pages[0].1, ReferrersVia::TagSchema);
    let (_, pages) = list(&mut sim, "reg.test/app:v1", Some(SIG));
    assert_eq!(digests(&pages[0].0), sorted(&[&sig]));
    // the tag holds an index of both, each listed once
    let reg = &sim.servers[ORIGIN].inner;
    let (_, bytes) = reg.manifest("app", &fallback_tag(&img.digest())).unwrap();
    let Manifest::Index(ix) = Manifest::parse("", &bytes).unwrap().0 else {
        panic!("an index")
    };
    assert_eq!(ix.manifests.len(), 2);
}

#[test]
fn a_registry_with_the_api_keeps_no_referrers_tag() {
    let (img, sig, _) = image_and_referrers();
    let mut r = Registry::new();
    img.add_to(&mut r, "app", Some("v1"));
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![]));
    let out = push_to_app(&mut sim, &sig);
    assert!(!out
        .events
        .iter()
        .any(|e| matches!(e, Event::ReferrersTagUpdated { .. })));
    assert!(sim.servers[ORIGIN]
        .inner
        .manifest("app", &fallback_tag(&img.digest()))
        .is_none());
    let (_, pages) = list(&mut sim, "reg.test/app:v1", None);
    assert_eq!(digests(&pages[0].0), sorted(&[&sig]));
}

/// What the API answers is checked: an image manifest where an index belongs fails
/// the listing with a message that says so.
#[test]
fn a_referrers_answer_that_is_not_an_index_fails() {
    let (img, _, _) = image_and_referrers();
    let mut r = Registry::new();
    img.add_to(&mut r, "app", Some("v1"));
    r.set_referrers_api(false);
    // the referrers tag points at an image manifest
    img.add_to(&mut r, "app", Some(&fallback_tag(&img.digest())));
    let mut sim = Sim::new(
        ORIGIN,
        FaultyRegistry::new(r, vec![Rule::all(Fault::RedirectOnce)]),
    );
    let t0 = Instant::now();
    let mut p = Machine::list_referrers(
        config(),
        Reference::parse("reg.test/app:v1").unwrap(),
        None,
        t0,
    );
    let out = sim.run(&mut p, t0);
    let e = out.result.unwrap().unwrap_err().to_string();
    assert!(e.contains("not an index"), "{e}");
}

/// Runs the recursive walk from `reference`; the subjects listed, in order, with the
/// digests listed for each.
fn walk(sim: &mut Sim, reference: &str) -> (Outcome, Vec<(String, Vec<String>)>) {
    let t0 = Instant::now();
    let mut p = Machine::list_referrers_closure(config(), Reference::parse(reference).unwrap(), t0);
    let out = sim.run(&mut p, t0);
    let listed = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Referrers {
                subject, referrers, ..
            } => Some((subject.to_string(), digests(referrers))),
            _ => None,
        })
        .collect();
    (out, listed)
}

/// The walk lists the referrers of the image, then theirs (a signature of the SBOM),
/// then theirs (none), through the API or through the referrers tags alike.
#[test]
fn the_walk_follows_referrers_of_referrers() {
    let (img, _, sbom) = image_and_referrers();
    let sig_of_sbom = artifact(SIG, &[("sbom.sig", b"signed sbom")], Some(&sbom));
    for api in [true, false] {
        let mut r = Registry::new();
        r.set_referrers_api(api);
        img.add_to(&mut r, "app", Some("v1"));
        let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![]));
        // pushed, so that a registry without the API gets its referrers tags
        for a in [&sbom, &sig_of_sbom] {
            push_to_app(&mut sim, a);
        }
        let (out, listed) = walk(&mut sim, "reg.test/app:v1");
        assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
        assert_eq!(
            listed,
            [
                (img.digest().to_string(), sorted(&[&sbom])),
                (sbom.digest().to_string(), sorted(&[&sig_of_sbom])),
                (sig_of_sbom.digest().to_string(), vec![]),
            ],
            "api: {api}"
        );
    }
}

/// A walk is bounded: more referrers than it follows fail it, with a message that says
/// so, instead of listing without end.
#[test]
fn the_walk_stops_at_its_bound() {
    let (img, _, _) = image_and_referrers();
    let mut r = Registry::new();
    img.add_to(&mut r, "app", Some("v1"));
    let bound = ocireg_core::referrers::MAX_REFERRERS_FOLLOWED;
    for i in 0..=bound {
        let sig = artifact(SIG, &[("sig.bin", i.to_string().as_bytes())], Some(&img));
        sig.add_to(&mut r, "app", None);
    }
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![]));
    let (out, _) = walk(&mut sim, "reg.test/app:v1");
    let e = out.result.unwrap().unwrap_err().to_string();
    assert!(e.contains(&format!("more than {bound} referrers")), "{e}");
}

/// The referrers tag of `img` as the registry holds it now: the digests it lists.
fn tag_lists(sim: &Sim, img: &TestImage) -> Vec<String> {
    let reg = &sim.servers[ORIGIN].inner;
    let (_, bytes) = reg.manifest("app", &fallback_tag(&img.digest())).unwrap();
    let Manifest::Index(ix) = Manifest::parse("", &bytes).unwrap().0 else {
        panic!("an index")
    };
    digests(&ix.manifests)
}

/// Writes to the referrers tag that the registry answered, as (method, status).
fn tag_writes(sim: &Sim, img: &TestImage) -> Vec<(String, u16)> {
    let tag = fallback_tag(&img.digest());
    sim.servers[ORIGIN]
        .log
        .iter()
        .filter(|s| s.path.ends_with(&tag))
        .map(|s| (s.method.clone(), s.status))
        .collect()
}

/// Another pusher lists its SBOM between this push's read of the referrers tag and its
/// write: the write carries the `ETag` read (`If-Match`), the registry refuses it
/// (`412`), and the push reads again and keeps the SBOM beside its signature. Without
/// the precondition the SBOM would be overwritten.
#[test]
fn a_writer_that_came_first_keeps_its_referrer() {
    let (img, sig, sbom) = image_and_referrers();
    let mut r = Registry::new();
    r.set_referrers_api(false);
    img.add_to(&mut r, "app", Some("v1"));
    sbom.add_to(&mut r, "app", None);
    let theirs = Manifest::parse(&sbom.media_type, &sbom.manifest).unwrap().0;
    let theirs =
        ocireg_core::referrers::referrer_descriptor(&sbom.media_type, &sbom.manifest, &theirs);
    let their_index = ocireg_core::referrers::with_referrer(None, theirs).unwrap();
    let rule = Rule {
        path_contains: fallback_tag(&img.digest()),
        fault: Fault::RacingWriter {
            index: their_index.to_vec(),
            times: 1,
        },
    };
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![rule]));
    let out = push_to_app(&mut sim, &sig);
    assert_eq!(tag_lists(&sim, &img), sorted(&[&sig, &sbom]));
    // the refused write is read again at once, not taken for written: one update, one
    // pause (settle plus at most half of it again) before the read-back
    let updates = out
        .events
        .iter()
        .filter(|e| matches!(e, Event::ReferrersTagUpdated { .. }))
        .count();
    assert_eq!(updates, 1, "{:?}", out.events);
    assert!(
        out.elapsed < config().referrers_tag_settle * 2,
        "{:?}",
        out.elapsed
    );
    let puts: Vec<u16> = tag_writes(&sim, &img)
        .into_iter()
        .filter(|(m, _)| m == "PUT")
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        puts,
        [412, 201],
        "the first write was refused, the second kept both"
    );
}

/// Another pusher's older copy of the referrers tag lands just after this push wrote it
/// (a registry that ignores `If-Match`, as `docker-registry` does): the read-back after
/// the pause finds the signature missing and lists it again.
#[test]
fn an_older_copy_written_after_ours_is_repaired() {
    let (img, sig, sbom) = image_and_referrers();
    let mut r = Registry::new();
    r.set_referrers_api(false);
    img.add_to(&mut r, "app", Some("v1"));
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![]));
    push_to_app(&mut sim, &sbom);
    let server = sim.servers.get_mut(ORIGIN).unwrap();
    server.set_rules(vec![Rule {
        path_contains: fallback_tag(&img.digest()),
        fault: Fault::StaleWriter { times: 1 },
    }]);
    server.log.clear();
    let out = push_to_app(&mut sim, &sig);
    assert_eq!(tag_lists(&sim, &img), sorted(&[&sig, &sbom]));
    let writes = tag_writes(&sim, &img);
    let methods: Vec<&str> = writes.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, ["GET", "PUT", "GET", "PUT", "GET"], "{writes:?}");
    // the read-back waited for other writers to land
    assert!(
        out.elapsed >= config().referrers_tag_settle * 2,
        "{:?}",
        out.elapsed
    );
}

/// Writers that keep replacing the tag stop the push after the configured number of
/// writes, with a message that says so, instead of looping.
#[test]
fn a_tag_that_keeps_being_replaced_ends_the_push() {
    let (img, sig, _) = image_and_referrers();
    let mut r = Registry::new();
    r.set_referrers_api(false);
    img.add_to(&mut r, "app", Some("v1"));
    let rule = Rule {
        path_contains: fallback_tag(&img.digest()),
        fault: Fault::StaleWriter { times: u32::MAX },
    };
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![rule]));
    let (p, source) = plan(&[&sig], None, &[]);
    sim.upload_source = source;
    let t0 = Instant::now();
    let mut push = Machine::push(config(), Reference::parse("reg.test/app").unwrap(), p, t0);
    let out = sim.run(&mut push, t0);
    let e = out.result.unwrap().unwrap_err().to_string();
    assert!(e.contains("kept replacing the referrers tag"), "{e}");
    let puts = tag_writes(&sim, &img)
        .iter()
        .filter(|(m, _)| m == "PUT")
        .count();
    assert_eq!(puts as u32, config().referrers_tag_rounds);
}
