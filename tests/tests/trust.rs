//! Trust boundaries in the core, in the simulated network: which origin may receive which
//! credential, and bounds on everything a server controls (lifetimes, error bodies, tag
//! pages, index nesting, retries of every kind).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use ocireg_core::manifest::OCI_INDEX;
use ocireg_core::{
    Action, Config, Credentials, Digest, Error, Event, Machine, Platform, Reference, Secret,
};
use ocireg_registry::images::{image, TestImage};
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::sim::{test_config as config, Outcome, Sim};

const REG: &str = "https://reg.test";
const CDN: &str = "https://cdn.test";

fn img() -> TestImage {
    image(11, &[1000, 2000, 3000], &Platform::host(), false)
}

fn registry(img: &TestImage, rules: Vec<Rule>) -> FaultyRegistry {
    let mut r = Registry::new();
    img.add_to(&mut r, "test/repo", Some("v1"));
    FaultyRegistry::new(r, rules)
}

fn basic() -> Credentials {
    Credentials::Basic {
        username: "user".into(),
        password: Secret::new("hunter2"),
    }
}

fn https_config(credentials: Credentials) -> Config {
    Config {
        plain_http: false,
        credentials,
        ..config()
    }
}

fn run(cfg: Config, sim: &mut Sim) -> Outcome {
    let t0 = Instant::now();
    let mut p = Machine::pull(cfg, Reference::parse("reg.test/test/repo:v1").unwrap(), t0);
    sim.run(&mut p, t0)
}

/// A registry that redirects its blobs to [`CDN`], and a CDN that refuses every request
/// (`times`) with `status` and a bearer challenge naming its own token service.
fn redirect_to_refusing_cdn(img: &TestImage, status: u16, times: u32) -> Sim {
    let reg = registry(
        img,
        vec![Rule::blobs(Fault::RedirectTo { base: CDN.into() })],
    );
    let cdn = registry(
        img,
        vec![Rule::all(Fault::Challenge {
            times,
            status,
            www_authenticate: format!(r#"Bearer realm="{CDN}/token",service="cdn""#),
        })],
    );
    let mut sim = Sim::new(REG, reg);
    sim.servers.insert(CDN.into(), cdn);
    sim
}

/// The credential rule, on a finished run: `Authorization` only to the registry, and
/// nothing at all to the token service a foreign origin named.
fn assert_no_credential_left_the_registry(out: &Outcome) {
    for (i, (origin, method, path, auth)) in out.requests.iter().enumerate() {
        if origin != REG {
            assert!(!auth, "Authorization sent to {origin} {method} {path}");
            assert!(
                !path.starts_with("/token"),
                "the token service a redirect target named was asked: {method} {path}"
            );
            let body = String::from_utf8_lossy(&out.bodies[i]);
            assert!(
                !body.contains("refresh"),
                "a refresh token went to {origin}"
            );
        }
    }
}

#[test]
fn a_redirect_targets_challenge_never_receives_credentials() {
    for creds in [
        basic(),
        Credentials::IdentityToken {
            token: Secret::new("refresh-me"),
        },
        Credentials::Anonymous,
    ] {
        for status in [401, 403] {
            let img = img();
            let mut sim = redirect_to_refusing_cdn(&img, status, u32::MAX);
            let out = run(https_config(creds.clone()), &mut sim);
            assert_no_credential_left_the_registry(&out);
            let e = out.result.unwrap().unwrap_err();
            match &e {
                Error::ForeignOrigin {
                    origin, status: s, ..
                } => {
                    assert_eq!(origin, CDN);
                    assert_eq!(*s, status);
                }
                other => panic!("{other}"),
            }
            assert_eq!(e.kind(), ocireg_core::ErrorKind::Forbidden);
            // one blob: registry → CDN refusal → registry again → CDN refusal → fail
            // (every blob in flight at the same time does the same, at most)
            let to_cdn = out.requests.iter().filter(|r| r.0 == CDN).count();
            let blobs = img.blobs().count();
            assert!(
                (2..=2 * blobs).contains(&to_cdn),
                "{to_cdn} requests to the CDN: {:?}",
                out.requests
            );
        }
    }
}

#[test]
fn an_expired_signed_url_starts_again_at_the_registry_once() {
    let img = img();
    // the CDN refuses the first request of each path (an expired signature), then serves
    let mut sim = redirect_to_refusing_cdn(&img, 403, 1);
    let out = run(https_config(basic()), &mut sim);
    assert!(out.result.as_ref().unwrap().is_ok(), "{:?}", out.result);
    assert_no_credential_left_the_registry(&out);
    let blob_path = format!(
        "/v2/test/repo/blobs/{}",
        Digest::sha256(img.blobs().nth(1).unwrap())
    );
    let to_registry = out
        .requests
        .iter()
        .filter(|r| r.0 == REG && r.2 == blob_path)
        .count();
    assert_eq!(to_registry, 2, "started again at the registry URL once");
    assert!(out.events.iter().any(|e| matches!(
        e,
        Event::Retry {
            error: Error::ForeignOrigin { .. },
            ..
        }
    )));
}

#[test]
fn a_plain_http_registry_redirecting_to_its_https_origin_ends() {
    // The honest trigger of the old loop: plain http registry, blobs redirected to the
    // https origin of the same host, which challenges.
    let img = img();
    let http = "http://reg.test";
    let reg = registry(
        &img,
        vec![Rule::blobs(Fault::RedirectTo { base: REG.into() })],
    );
    let https = registry(
        &img,
        vec![Rule::all(Fault::Challenge {
            times: u32::MAX,
            status: 401,
            www_authenticate: format!(r#"Bearer realm="{REG}/token",service="reg""#),
        })],
    );
    let mut sim = Sim::new(http, reg);
    sim.servers.insert(REG.into(), https);
    sim.max_steps = 100_000;
    let out = run(
        Config {
            credentials: basic(),
            ..config()
        },
        &mut sim,
    );
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::ForeignOrigin { .. }), "{e}");
    assert!(out.requests.len() < 40, "{} requests", out.requests.len());
    assert!(out.requests.iter().all(|r| r.0 == http || !r.3));
}

#[test]
fn a_plain_http_realm_off_this_machine_is_refused_even_for_a_plain_http_registry() {
    let img = img();
    let reg = registry(
        &img,
        vec![Rule::all(Fault::Challenge {
            times: u32::MAX,
            status: 401,
            www_authenticate: r#"Bearer realm="http://auth.test/token",service="svc""#.into(),
        })],
    );
    let mut sim = Sim::new("http://reg.test", reg);
    let out = run(
        Config {
            credentials: basic(),
            ..config()
        },
        &mut sim,
    );
    let e = out.result.unwrap().unwrap_err();
    assert!(matches!(e, Error::Insecure(_)), "{e}");
    assert!(out.requests.iter().all(|r| r.0 != "http://auth.test"));
}

/// Drives a fresh pull by hand: returns the machine and the first request's id.
fn manual(cfg: Config, reference: &str, t0: Instant) -> (Machine, ocireg_core::RequestId) {
    let mut p = Machine::pull(cfg, Reference::parse(reference).unwrap(), t0);
    let Action::Send { id, .. } = p.poll_action(t0) else {
        panic!("no request")
    };
    // the connection hint for the blobs that follow, if any (it changes nothing here)
    let next = p.poll_action(t0);
    assert!(
        matches!(next, Action::Prepare { .. } | Action::Wait { .. }),
        "{next:?}"
    );
    (p, id)
}

fn head(status: u16, headers: &[(&str, &str)]) -> Response<()> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

/// What the machine sends first `later` after a token whose `expires_in` is as given
/// was issued: the retry of a manifest request the registry answered `503` (with the
/// token), or its failure. The path of that request (`/token` when the token counts as
/// expired) or the error.
fn after_a_token(expires_in: &str, later: Duration) -> Result<String, Error> {
    let t0 = Instant::now();
    let (mut p, id) = manual(config(), "reg.test/x/y:v1", t0);
    p.handle_head(
        id,
        head(
            401,
            &[(
                "www-authenticate",
                r#"Bearer realm="http://reg.test/token",service="s""#,
            )],
        ),
        t0,
    );
    p.handle_end(id, t0);
    let Action::Send { id: tid, request } = p.poll_action(t0) else {
        panic!("no token request")
    };
    assert!(request.uri().path().starts_with("/token"));
    p.handle_head(tid, head(200, &[]), t0);
    let body = format!(r#"{{"token":"t","expires_in":{expires_in}}}"#);
    p.handle_chunk(tid, Bytes::from(body), t0);
    p.handle_end(tid, t0);
    let with_token = loop {
        match p.poll_action(t0) {
            Action::Send { id, request } => {
                assert!(request.headers().contains_key("authorization"));
                break id;
            }
            Action::Failed(e) => return Err(e),
            Action::Wait { .. } | Action::Done => panic!("stuck after the token"),
            _ => {}
        }
    };
    p.handle_head(with_token, head(503, &[]), t0);
    p.handle_end(with_token, t0);
    let at = t0 + later;
    for _ in 0..100 {
        match p.poll_action(at) {
            Action::Send { request, .. } => return Ok(request.uri().path().to_string()),
            Action::Failed(e) => return Err(e),
            _ => {}
        }
    }
    panic!("nothing sent {later:?} later")
}

/// A lifetime beyond what an `i64` holds, or not an integer, is refused as a malformed
/// token response (never a panic, never an overflowed clock); the largest one is kept a
/// day at most: the token is used again 23 hours later and renewed after 25.
#[test]
fn absurd_token_lifetimes_do_not_overflow_the_clock() {
    let hour = Duration::from_secs(3600);
    for unparsable in [u64::MAX.to_string(), "1e300".to_string()] {
        let e = after_a_token(&unparsable, hour).unwrap_err();
        assert!(matches!(e, Error::Token { .. }), "{unparsable}: {e}");
    }
    let largest = i64::MAX.to_string();
    assert_eq!(
        after_a_token(&largest, 23 * hour).unwrap(),
        "/v2/x/y/manifests/v1"
    );
    assert_eq!(after_a_token(&largest, 25 * hour).unwrap(), "/token");
}

#[test]
fn a_caller_deadline_far_in_the_future_does_not_overflow() {
    let t0 = Instant::now();
    // the largest deadline an Instant can hold here: the core adds to it only through
    // saturating arithmetic
    let far = ocireg_core::time::later(t0, Duration::MAX);
    let cfg = Config {
        deadline: Some(far),
        head_timeout: Duration::MAX,
        idle_timeout: Duration::MAX,
        ..config()
    };
    let (mut p, id) = manual(cfg, "reg.test/x/y:v1", t0);
    p.handle_head(id, head(503, &[("retry-after", "5")]), t0);
    p.handle_end(id, t0);
    let mut waited = false;
    for _ in 0..10 {
        if let Action::Wait { until } = p.poll_action(t0) {
            assert!(until.is_some_and(|u| u > t0));
            waited = true;
            break;
        }
    }
    assert!(waited);
}

#[test]
fn an_endless_error_body_is_dropped_at_the_limit() {
    let t0 = Instant::now();
    let (mut p, id) = manual(config(), "reg.test/x/y:v1", t0);
    p.handle_head(id, head(500, &[]), t0);
    let chunk = Bytes::from(vec![b'x'; 512]);
    let mut aborted_after = None;
    for i in 0..10_000 {
        p.handle_chunk(id, chunk.clone(), t0);
        let mut aborted = false;
        loop {
            match p.poll_action(t0) {
                Action::Abort { id: a } if a == id => aborted = true,
                Action::Wait { .. } | Action::Done | Action::Failed(_) => break,
                _ => {}
            }
        }
        if aborted {
            aborted_after = Some((i + 1) * chunk.len());
            break;
        }
    }
    let n = aborted_after.expect("the exchange was never dropped");
    assert!(
        n <= ocireg_core::error::ERROR_BODY_LIMIT + chunk.len(),
        "{n} bytes read"
    );
}

#[test]
fn tag_pages_stream_and_stop_at_the_bound() {
    let t0 = Instant::now();
    let cfg = Config {
        max_tag_pages: 5,
        ..config()
    };
    let mut p = Machine::list_tags(cfg, Reference::parse("reg.test/x/y").unwrap(), t0);
    let mut pages = 0;
    let mut result = None;
    for step in 0..1000u32 {
        match p.poll_action(t0) {
            Action::Send { id, .. } => {
                let link = format!("</v2/x/y/tags/list?last=t{step}>; rel=\"next\"");
                p.handle_head(id, head(200, &[("link", link.as_str())]), t0);
                let body = format!(r#"{{"name":"x/y","tags":["t{step}"]}}"#);
                p.handle_chunk(id, Bytes::from(body), t0);
                p.handle_end(id, t0);
            }
            Action::Event(Event::Tags { tags }) => {
                assert_eq!(tags.len(), 1);
                pages += 1;
            }
            Action::Failed(e) => {
                result = Some(e);
                break;
            }
            Action::Done => panic!("an endless tag list ended"),
            _ => {}
        }
    }
    let e = result.expect("the pull did not end");
    assert!(matches!(e, Error::TooMany { limit: 5, .. }), "{e}");
    assert_eq!(pages, 5, "every page reached the caller as it arrived");
}

/// An index chain `depth` levels deep over one image, tagged `v1`.
fn nested(img: &TestImage, depth: usize) -> Registry {
    let mut r = Registry::new();
    img.add_to(&mut r, "test/repo", None);
    let mut child = (img.media_type.to_string(), img.manifest.clone());
    for level in 0..depth {
        let desc = serde_json::json!({
            "mediaType": child.0,
            "digest": Digest::sha256(&child.1).to_string(),
            "size": child.1.len(),
            "platform": Platform::host(),
        });
        let idx = Bytes::from(
            serde_json::to_vec(
                &serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]}),
            )
            .unwrap(),
        );
        let tag = (level + 1 == depth).then_some("v1");
        r.add_manifest("test/repo", OCI_INDEX, idx.clone(), tag);
        child = (OCI_INDEX.to_string(), idx);
    }
    r
}

#[test]
fn index_nesting_is_bounded() {
    let img = img();
    for (depth, ok) in [(3, true), (8, true), (9, false), (40, false)] {
        let mut sim = Sim::new(
            "http://reg.test",
            FaultyRegistry::new(nested(&img, depth), vec![]),
        );
        let out = run(config(), &mut sim);
        match out.result.unwrap() {
            Ok(()) => assert!(ok, "depth {depth} pulled"),
            Err(e) => {
                assert!(!ok, "depth {depth}: {e}");
                assert!(matches!(e, Error::TooMany { limit: 8, .. }), "{e}");
                assert!(out.requests.len() <= 10, "{}", out.requests.len());
            }
        }
    }
}

#[test]
fn challenges_that_never_end_are_bounded() {
    // A registry that challenges every request with a new scope: each round fetches a
    // token, the next refusal asks for another; the op gives up after a bounded number.
    let t0 = Instant::now();
    let (mut p, mut id) = manual(config(), "reg.test/x/y:v1", t0);
    let mut requests = 1;
    for round in 0..200 {
        let challenge = format!(
            r#"Bearer realm="http://reg.test/token",service="s",scope="repository:x/y:pull",error="insufficient_scope",scope="r{round}""#
        );
        p.handle_head(
            id,
            head(401, &[("www-authenticate", challenge.as_str())]),
            t0,
        );
        p.handle_end(id, t0);
        let next = loop {
            match p.poll_action(t0) {
                Action::Send { id: tid, request } if request.uri().path() == "/token" => {
                    requests += 1;
                    p.handle_head(tid, head(200, &[]), t0);
                    p.handle_chunk(tid, Bytes::from_static(br#"{"token":"t"}"#), t0);
                    p.handle_end(tid, t0);
                }
                Action::Send { id: rid, .. } => {
                    requests += 1;
                    break Some(rid);
                }
                Action::Failed(_) => break None,
                Action::Wait { .. } | Action::Done => panic!("stuck"),
                _ => {}
            }
        };
        match next {
            Some(n) => id = n,
            None => return assert!(requests < 40, "{requests} requests"),
        }
    }
    panic!("the challenges never ended");
}

#[test]
fn no_secret_goes_to_a_plain_http_realm_off_this_machine() {
    // Basic credentials and an identity (refresh) token alike: the realm is refused
    // before anything is sent to it, for an https and a plain-http registry.
    for (origin, plain_http) in [("https://reg.test", false), ("http://reg.test", true)] {
        for credentials in [
            basic(),
            Credentials::IdentityToken {
                token: Secret::new("refresh-me"),
            },
        ] {
            let img = img();
            let reg = registry(
                &img,
                vec![Rule::all(Fault::Challenge {
                    times: u32::MAX,
                    status: 401,
                    www_authenticate: r#"Bearer realm="http://auth.test/token",service="s""#.into(),
                })],
            );
            let mut sim = Sim::new(origin, reg);
            let out = run(
                Config {
                    plain_http,
                    credentials: credentials.clone(),
                    ..config()
                },
                &mut sim,
            );
            let e = out.result.unwrap().unwrap_err();
            assert!(matches!(e, Error::Insecure(_)), "{e}");
            assert!(out.requests.iter().all(|r| r.0 != "http://auth.test"));
            assert!(out
                .bodies
                .iter()
                .all(|b| !String::from_utf8_lossy(b).contains("refresh")));
        }
    }
}
