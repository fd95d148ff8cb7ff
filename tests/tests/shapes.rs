//! Images of every shape, inspection and tag listing, over the simulated network.

use std::time::Instant;

use ocireg_core::manifest::{OCI_INDEX, OCI_MANIFEST};
use ocireg_core::{Config, Event, Machine, ManifestRole, Platform, PlatformChoice, Reference};
use ocireg_registry::images::{image, index};
use ocireg_registry::{FaultyRegistry, Registry};
use ocireg_tests::sim::Sim;

use ocireg_tests::sim::{test_config as config, ORIGIN};

fn nested() -> (
    Registry,
    Vec<ocireg_registry::images::TestImage>,
    bytes::Bytes,
) {
    // top index → { linux/amd64 image, inner index → { linux/arm64/v8, linux/arm/v7 } }
    let amd = Platform::parse("linux/amd64").unwrap();
    let arm64 = Platform::parse("linux/arm64/v8").unwrap();
    let arm = Platform::parse("linux/arm/v7").unwrap();
    let a = image(1, &[100], &amd, false);
    let b = image(2, &[200], &arm64, true);
    let c = image(3, &[300], &arm, false);
    let mut r = Registry::new();
    for i in [&a, &b, &c] {
        i.add_to(&mut r, "x/y", None);
    }
    let inner = index(&[(&b, &arm64), (&c, &arm)]);
    let inner_d = r.add_manifest("x/y", OCI_INDEX, inner.clone(), None);
    let top = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": a.digest().to_string(), "size": a.manifest.len(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_INDEX, "digest": inner_d.to_string(), "size": inner.len(), "platform": {"os": "linux", "architecture": "arm64"}},
        ]
    });
    let top = bytes::Bytes::from(serde_json::to_vec(&top).unwrap());
    r.add_manifest("x/y", OCI_INDEX, top.clone(), Some("v1"));
    (r, vec![a, b, c], top)
}

fn run(pull: &mut Machine, reg: Registry) -> ocireg_tests::sim::Outcome {
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(reg, vec![]));
    sim.run(pull, Instant::now())
}

#[test]
fn nested_indexes_and_platform_normalisation() {
    let (_, imgs, _) = nested();
    // aarch64 finds the arm64 entry (an index), then v8 inside it: a Docker manifest
    for (want, img) in [("linux/aarch64", &imgs[1]), ("linux/x86_64", &imgs[0])] {
        let (reg, _, _) = nested();
        let cfg = Config {
            platform: PlatformChoice::Exactly(Platform::parse(want).unwrap()),
            ..config()
        };
        let t0 = Instant::now();
        let mut p = Machine::pull(cfg, Reference::parse("reg.test/x/y:v1").unwrap(), t0);
        let out = run(&mut p, reg);
        assert!(
            out.result.as_ref().unwrap().is_ok(),
            "{want}: {:?}",
            out.result
        );
        let resolved = out
            .events
            .iter()
            .find_map(|e| match e {
                Event::Resolved { descriptor } => Some(descriptor.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(resolved.digest, img.digest(), "{want}");
        assert_eq!(out.done.len(), 2);
        let selectors = out
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Manifest {
                        role: ManifestRole::Selector,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(selectors, if want.ends_with("aarch64") { 2 } else { 1 });
    }
    // all platforms: every manifest and blob of the tree
    let (reg, imgs, top) = nested();
    let cfg = Config {
        platform: PlatformChoice::All,
        ..config()
    };
    let mut p = Machine::pull(
        cfg,
        Reference::parse("reg.test/x/y:v1").unwrap(),
        Instant::now(),
    );
    let out = run(&mut p, reg);
    assert!(out.result.as_ref().unwrap().is_ok());
    assert_eq!(
        out.done.len(),
        imgs.iter().map(|i| i.blobs().count()).sum::<usize>()
    );
    let manifests = out
        .events
        .iter()
        .filter(|e| matches!(e, Event::Manifest { .. }))
        .count();
    assert_eq!(manifests, 5, "top, inner index, three images");
    let resolved = out
        .events
        .iter()
        .find_map(|e| match e {
            Event::Resolved { descriptor } => Some(descriptor.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(resolved.digest, ocireg_core::Digest::sha256(&top));
}

#[test]
fn inspect_fetches_only_the_named_manifest() {
    let (reg, _, top) = nested();
    let mut p = Machine::inspect(
        config(),
        Reference::parse("reg.test/x/y:v1").unwrap(),
        Instant::now(),
    );
    let out = run(&mut p, reg);
    assert!(out.result.as_ref().unwrap().is_ok());
    assert_eq!(out.requests.len(), 1);
    let bytes = out
        .events
        .iter()
        .find_map(|e| match e {
            Event::Manifest { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(bytes, top);
}

#[test]
fn tags_follow_link_pages() {
    let mut r = Registry::new();
    let img = image(9, &[10], &Platform::host(), false);
    let mut want = Vec::new();
    for i in 0..25 {
        let t = format!("t{i:02}");
        img.add_to(&mut r, "x/y", Some(&t));
        want.push(t);
    }
    r.set_tag_page_size(10);
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![]));
    let t0 = Instant::now();
    let mut p = Machine::list_tags(config(), Reference::parse("reg.test/x/y").unwrap(), t0);
    let out = sim.run(&mut p, t0);
    assert!(out.result.as_ref().unwrap().is_ok());
    let got: Vec<String> = out
        .events
        .iter()
        .flat_map(|e| match e {
            Event::Tags { tags } => tags.clone(),
            _ => vec![],
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        out.events
            .iter()
            .filter(|e| matches!(e, Event::Tags { .. }))
            .count(),
        3
    );
    assert_eq!(out.requests.len(), 3);
}

/// The catalog: every repository, page by page by `Link`, as `Event::Repositories`.
#[test]
fn catalog_follows_link_pages_and_only_catalog_pages() {
    let mut r = Registry::new();
    let img = image(10, &[10], &Platform::host(), false);
    let want: Vec<String> = (0..7).map(|i| format!("team/app{i}")).collect();
    for name in &want {
        img.add_to(&mut r, name, Some("v1"));
    }
    r.set_tag_page_size(3);
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![]));
    let t0 = Instant::now();
    let registry = Reference::registry_root("reg.test").unwrap();
    assert_eq!(registry.to_string(), "reg.test");
    let mut p = Machine::catalog(config(), registry, t0);
    let out = sim.run(&mut p, t0);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    let pages: Vec<Vec<String>> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Repositories { names } => Some(names.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), want);
    let paths: Vec<&str> = out.requests.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(paths[0], "/v2/_catalog");
    assert!(
        paths[1].contains("/v2/_catalog?n=3&last=team%2Fapp2"),
        "{paths:?}"
    );
}

/// A registry whose API lives under another root (a mirror's `override_path`) links its
/// catalog's next page under that root: the page is followed there, and a link to the
/// plain `/v2` catalog (not this registry's list) is refused.
#[test]
fn catalog_pages_under_a_custom_api_root_are_followed() {
    use ocireg_core::Action;
    let t0 = Instant::now();
    let page = |p: &mut Machine, link: &str| {
        let (id, request) = loop {
            match p.poll_action(t0) {
                Action::Send { id, request } => break (id, request),
                Action::Wait { .. } | Action::Done | Action::Failed(_) => panic!("no request"),
                _ => {}
            }
        };
        let path = request.uri().path_and_query().unwrap().to_string();
        let head = http::Response::builder()
            .status(200)
            .header("link", link)
            .body(())
            .unwrap();
        p.handle_head(id, head, t0);
        p.handle_chunk(id, bytes::Bytes::from(r#"{"repositories":["a"]}"#), t0);
        p.handle_end(id, t0);
        path
    };
    let mut cfg = config();
    cfg.api_root = "/mirror/v2".into();
    let registry = Reference::registry_root("reg.test").unwrap();
    let mut p = Machine::catalog(cfg.clone(), registry.clone(), t0);
    let first = page(&mut p, r#"</mirror/v2/_catalog?n=1&last=a>; rel="next""#);
    assert_eq!(first, "/mirror/v2/_catalog");
    let second = page(&mut p, "");
    assert_eq!(second, "/mirror/v2/_catalog?n=1&last=a");

    let mut p = Machine::catalog(cfg, registry, t0);
    page(&mut p, r#"</v2/_catalog?n=1&last=a>; rel="next""#);
    let failed = loop {
        match p.poll_action(t0) {
            Action::Failed(e) => break e,
            Action::Send { .. } => panic!("a page outside the API root was asked for"),
            Action::Done => panic!("the link was ignored"),
            _ => {}
        }
    };
    assert!(
        failed.to_string().contains("leaves the catalog"),
        "{failed}"
    );
}
