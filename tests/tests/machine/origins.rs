//! Redirects and credentials: what crosses an origin, and what is refused.

use super::*;

#[test]
fn cross_origin_redirect_drops_authorization() {
    let img = small();
    let cdn = "http://cdn.test";
    let rules = vec![
        Rule::all(Fault::Token {
            realm: format!("{ORIGIN}/token"),
            service: "svc".into(),
        }),
        Rule::blobs(Fault::RedirectTo { base: cdn.into() }),
    ];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    sim.servers.insert(cdn.into(), registry_with(&img, vec![]));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    let cdn_reqs: Vec<_> = out.requests.iter().filter(|r| r.0 == cdn).collect();
    assert_eq!(cdn_reqs.len(), img.blobs().count());
    assert!(
        cdn_reqs.iter().all(|r| !r.3),
        "Authorization leaked to the CDN"
    );
    assert!(sim.servers[cdn].log.iter().all(|s| s.auth_scheme.is_none()));
    assert!(out
        .requests
        .iter()
        .filter(|r| r.0 == ORIGIN && r.2.contains("/blobs/"))
        .all(|r| r.3));
}

#[test]
fn downgrade_and_loops_are_refused() {
    let img = small();
    let mut r = Registry::new();
    img.add_to(&mut r, "test/repo", Some("v1"));
    let rules = vec![Rule::all(Fault::RedirectTo {
        base: "http://reg.test".into(),
    })];
    let mut sim = Sim::new("https://reg.test", FaultyRegistry::new(r, rules));
    let mut cfg = config();
    cfg.plain_http = false;
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(
        matches!(e, Error::Redirect { .. }) && e.to_string().contains("https to plain http"),
        "{e}"
    );

    let rules = vec![Rule::all(Fault::RedirectTo {
        base: ORIGIN.into(),
    })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(e.to_string().contains("too many redirects"), "{e}");
    assert_eq!(out.requests.len(), 11);
}

#[test]
fn basic_challenge_uses_credentials_once() {
    let img = small();
    let rules = vec![Rule::all(Fault::Basic {
        username: "u".into(),
        password: "p".into(),
    })];
    let mut sim = Sim::new(ORIGIN, registry_with(&img, rules));
    // without credentials: a typed Unauthorized naming registry and repository
    let out = pull(config(), "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("test/repo on reg.test"), "{e}");
    // with them: one 401, then Basic on every request
    let mut cfg = config();
    cfg.credentials = ocireg_core::Credentials::Basic {
        username: "u".into(),
        password: ocireg_core::Secret::new("p"),
    };
    let out = pull(cfg.clone(), "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    assert_eq!(out.requests.len(), 1 + 1 + img.blobs().count());
    // wrong password: refused once more, then a clear error
    cfg.credentials = ocireg_core::Credentials::Basic {
        username: "u".into(),
        password: ocireg_core::Secret::new("bad"),
    };
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(!format!("{e:?}").contains("bad"));
    assert_eq!(out.requests.len(), 2);
}
