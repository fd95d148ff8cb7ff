//! Authentication in the core: token flow, single flight, renewal, where credentials go.

use std::time::{Duration, Instant};

use ocireg_core::{Config, Credentials, Error, Machine, Platform, Reference, Secret};
use ocireg_registry::images::{image, TestImage};
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::sim::{Outcome, Sim};

use ocireg_tests::sim::{test_config as config, ORIGIN};

fn img() -> TestImage {
    image(1, &[1000, 2000, 3000, 4000, 5000], &Platform::host(), false)
}

fn registry(img: &TestImage, rules: Vec<Rule>) -> FaultyRegistry {
    let mut r = Registry::new();
    img.add_to(&mut r, "test/repo", Some("v1"));
    FaultyRegistry::new(r, rules)
}

fn token_rule(path: &str) -> Rule {
    Rule {
        path_contains: path.into(),
        fault: Fault::Token {
            realm: format!("{ORIGIN}/token"),
            service: "svc".into(),
        },
    }
}

fn run(cfg: Config, sim: &mut Sim) -> Outcome {
    let t0 = Instant::now();
    let mut p = Machine::pull(cfg, Reference::parse("reg.test/test/repo:v1").unwrap(), t0);
    sim.run(&mut p, t0)
}

fn token_requests(out: &Outcome) -> usize {
    out.requests
        .iter()
        .filter(|r| r.2.starts_with("/token"))
        .count()
}

#[test]
fn concurrent_401s_share_one_token_request() {
    let img = img();
    let mut sim = Sim::new(
        ORIGIN,
        registry(&img, vec![token_rule("/blobs/"), token_rule("/token")]),
    );
    let out = run(config(), &mut sim);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    assert_eq!(token_requests(&out), 1);
    // six blobs were refused at once, then each sent once more with the token
    assert_eq!(
        out.requests
            .iter()
            .filter(|r| r.2.contains("/blobs/"))
            .count(),
        12
    );
    let q = &out
        .requests
        .iter()
        .find(|r| r.2.starts_with("/token"))
        .unwrap()
        .2;
    assert!(
        q.contains("service=svc") && q.contains("scope=repository%3Atest%2Frepo%3Apull"),
        "{q}"
    );
}

#[test]
fn refused_tokens_are_renewed_once_then_fail_clearly() {
    let img = img();
    for status in [401, 403] {
        // each token works twice, then the registry calls it expired
        let mut reg = registry(&img, vec![token_rule("")]);
        reg.token_max_uses = Some((2, status));
        let mut sim = Sim::new(ORIGIN, reg);
        // one request at a time, so "a token works twice" is well defined
        let out = run(
            Config {
                max_concurrent: 1,
                max_concurrent_small: 1,
                ..config()
            },
            &mut sim,
        );
        assert!(
            out.result.as_ref().unwrap().is_ok(),
            "{status}: {:?}",
            out.result
        );
        assert!(sim.servers[ORIGIN].tokens_issued() >= 3);
    }
    // every token refused: one renewal, then a typed error naming registry and repository
    let mut reg = registry(&img, vec![token_rule("")]);
    reg.token_max_uses = Some((0, 401));
    let mut sim = Sim::new(ORIGIN, reg);
    let out = run(config(), &mut sim);
    assert_eq!(token_requests(&out), 2);
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(
        e.to_string().contains("test/repo on reg.test") && e.to_string().contains("UNAUTHORIZED"),
        "{e}"
    );
    // the same with 403 and a Bearer challenge (as some registries refuse a token): one
    // renewal, then the failure, never a third token
    let mut reg = registry(&img, vec![token_rule("")]);
    reg.token_max_uses = Some((0, 403));
    let mut sim = Sim::new(ORIGIN, reg);
    let out = run(config(), &mut sim);
    assert_eq!(token_requests(&out), 2);
    let e = out.result.unwrap().unwrap_err();
    assert!(
        matches!(e.kind(), ocireg_core::ErrorKind::Forbidden),
        "{e:?}"
    );
}

#[test]
fn expired_tokens_are_renewed_before_use() {
    let img = image(2, &[1000], &Platform::host(), false);
    let mut sim = Sim::new(
        ORIGIN,
        registry(
            &img,
            vec![
                token_rule(""),
                Rule::blobs(Fault::RateLimit {
                    times: 1,
                    retry_after: "400".into(),
                }),
            ],
        ),
    );
    let mut cfg = config();
    cfg.retry.max_retry_after = Duration::from_secs(1000);
    cfg.retry.budget = Duration::from_secs(1000);
    let out = run(cfg, &mut sim);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    // the 300 s token expired during the 400 s wait: a new one was fetched before the
    // retry, not after a 401
    assert_eq!(token_requests(&out), 2);
    assert!(sim.servers[ORIGIN]
        .log
        .iter()
        .all(|s| s.status != 401 || s.auth_scheme.is_none()));
}

#[test]
fn insufficient_scope_asks_for_both_scopes() {
    let img = image(3, &[1000], &Platform::host(), false);
    let challenge = format!(
        r#"Bearer realm="{ORIGIN}/token",service="svc",scope="repository:other/repo:pull",error="insufficient_scope""#
    );
    let rules = vec![
        token_rule(""),
        Rule::blobs(Fault::Challenge {
            times: 1,
            status: 401,
            www_authenticate: challenge,
        }),
    ];
    let mut sim = Sim::new(ORIGIN, registry(&img, rules));
    let out = run(config(), &mut sim);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    let last_token = out
        .requests
        .iter()
        .rev()
        .find(|r| r.2.starts_with("/token"))
        .unwrap();
    assert!(
        last_token.2.contains("other%2Frepo") && last_token.2.contains("test%2Frepo"),
        "{}",
        last_token.2
    );
}

#[test]
fn plain_http_realm_for_https_registry_is_refused() {
    let img = img();
    let challenge = r#"Bearer realm="http://auth.test/token",service="svc""#.to_string();
    let rules = vec![Rule::all(Fault::Challenge {
        times: 100,
        status: 401,
        www_authenticate: challenge,
    })];
    let mut sim = Sim::new("https://reg.test", registry(&img, rules));
    let cfg = Config {
        plain_http: false,
        ..config()
    };
    let out = run(cfg, &mut sim);
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::Insecure(_)), "{e}");
    assert!(out.requests.iter().all(|r| r.0 != "http://auth.test"));
}

#[test]
fn basic_credentials_go_to_the_realm_only() {
    let img = img();
    let auth = "http://localhost:5001";
    let challenge =
        format!(r#"Bearer realm="{auth}/token",service="svc",scope="repository:test/repo:pull""#);
    // the registry challenges the first manifest request and accepts any token after
    let challenge_rule = Rule {
        path_contains: "/manifests/".into(),
        fault: Fault::Challenge {
            times: 1,
            status: 401,
            www_authenticate: challenge,
        },
    };
    let mut reg = registry(&img, vec![challenge_rule]);
    reg.token_post = false;
    let mut sim = Sim::new(ORIGIN, reg);
    let token_server = registry(
        &img,
        vec![Rule::all(Fault::Token {
            realm: format!("{auth}/token"),
            service: "svc".into(),
        })],
    );
    sim.servers.insert(auth.into(), token_server);
    let cfg = Config {
        credentials: Credentials::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        },
        ..config()
    };
    assert!(
        !format!("{cfg:?}").contains("hunter2"),
        "Debug must not print secrets"
    );
    let out = run(cfg, &mut sim);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    assert_eq!(
        sim.servers[auth]
            .log
            .iter()
            .filter(|s| s.path.starts_with("/token"))
            .count(),
        1
    );
    assert_eq!(
        sim.servers[auth].log[0].auth_scheme.as_deref(),
        Some("Basic")
    );
    assert!(sim.servers[ORIGIN]
        .log
        .iter()
        .all(|s| s.auth_scheme.as_deref() != Some("Basic")));
}

#[test]
fn identity_token_uses_oauth2_post_and_falls_back_to_get() {
    let img = image(4, &[1000], &Platform::host(), false);
    for post in [true, false] {
        let mut reg = registry(&img, vec![token_rule("")]);
        reg.token_post = post;
        let mut sim = Sim::new(ORIGIN, reg);
        let cfg = Config {
            credentials: Credentials::IdentityToken {
                token: Secret::new("refresh-me"),
            },
            ..config()
        };
        let out = run(cfg, &mut sim);
        assert!(
            out.result.as_ref().unwrap().is_ok(),
            "post={post}: {:?}",
            out.result
        );
        let posts: Vec<usize> = (0..out.requests.len())
            .filter(|&i| out.requests[i].1 == "POST")
            .collect();
        assert_eq!(posts.len(), 1);
        let body = String::from_utf8_lossy(&out.bodies[posts[0]]).into_owned();
        assert!(
            body.contains("grant_type=refresh_token")
                && body.contains("refresh_token=refresh-me")
                && body.contains("service=svc"),
            "{body}"
        );
        let gets = out
            .requests
            .iter()
            .filter(|r| r.1 == "GET" && r.2.starts_with("/token"))
            .count();
        assert_eq!(gets, if post { 0 } else { 1 });
    }
}

#[test]
fn debug_output_carries_no_secret() {
    let img = image(5, &[1000], &Platform::host(), false);
    let mut reg = registry(&img, vec![token_rule("")]);
    reg.token_post = true;
    let mut sim = Sim::new(ORIGIN, reg);
    let cfg = Config {
        credentials: Credentials::IdentityToken {
            token: Secret::new("very-secret-refresh"),
        },
        ..config()
    };
    assert!(!format!("{cfg:?}").contains("very-secret"));
    let t0 = Instant::now();
    let mut p = Machine::pull(cfg, Reference::parse("reg.test/test/repo:v1").unwrap(), t0);
    // the pull itself succeeds with the identity token (the POST flow)
    let out = sim.run(&mut p, t0);
    assert!(out.result.as_ref().unwrap().is_ok());
    let t0 = Instant::now();
    let cfg = Config {
        credentials: Credentials::IdentityToken {
            token: Secret::new("very-secret-refresh"),
        },
        ..config()
    };
    let mut p = Machine::pull(cfg, Reference::parse("reg.test/test/repo:v1").unwrap(), t0);
    let mut printed = String::new();
    // first the manifest request, answered with a challenge, then the token POST
    let ocireg_core::Action::Send { id, .. } = p.poll_action(t0) else {
        panic!()
    };
    let challenge =
        format!(r#"Bearer realm="{ORIGIN}/token",service="svc",scope="repository:test/repo:pull""#);
    p.handle_head(
        id,
        http::Response::builder()
            .status(401)
            .header("www-authenticate", challenge)
            .body(())
            .unwrap(),
        t0,
    );
    p.handle_end(id, t0);
    for _ in 0..5 {
        let a = p.poll_action(t0);
        printed += &format!("{a:?}\n");
        if let ocireg_core::Action::Send { request, .. } = &a {
            if request.method() == http::Method::POST {
                assert!(String::from_utf8_lossy(request.body()).contains("very-secret-refresh"));
            }
        }
    }
    assert!(printed.contains("POST"), "{printed}");
    assert!(!printed.contains("very-secret"), "{printed}");
}

/// `issued_at` counts during a pull: a token issued 250 s before the response's `Date`
/// has 50 s of its 300 left, so after a 60 s wait it is renewed before the retry; the
/// same token without `issued_at` would still be good.
#[test]
fn issued_at_shortens_a_token_during_the_pull() {
    let img = image(2, &[1000], &Platform::host(), false);
    let tokens = |issued_ago: Option<u64>| {
        let mut reg = registry(
            &img,
            vec![
                token_rule(""),
                Rule::blobs(Fault::RateLimit {
                    times: 1,
                    retry_after: "60".into(),
                }),
            ],
        );
        reg.token_issued_ago = issued_ago;
        let mut sim = Sim::new(ORIGIN, reg);
        let out = run(config(), &mut sim);
        assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
        token_requests(&out)
    };
    assert_eq!(tokens(None), 1);
    assert_eq!(tokens(Some(250)), 2);
}
