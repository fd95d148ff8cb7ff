//! A push under token auth whose scopes grow (pull for probes, pull and push for
//! uploads), driven by hand so that replies can arrive in the orders a loaded machine
//! produces: the scope set a push holds only ever grows, whatever order challenges
//! come back in.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use http::{header, Response};
use ocireg_core::{Action, Config, Credentials, Input, Machine, Reference, RequestId, Secret};
use ocireg_registry::images::push_plan as plan;
use ocireg_registry::images::{image, TestImage};
use ocireg_registry::{FaultyRegistry, Registry, Reply};
use ocireg_tests::sim::{test_config, upload_as_send, ORIGIN};

const REPO: &str = "test/repo";

/// The scopes a request needs, as docker-registry's token access controller asks
/// for them: `pull` to read, `pull,push` for anything else.
fn needed(method: &str) -> String {
    match method {
        "GET" | "HEAD" => format!("repository:{REPO}:pull"),
        _ => format!("repository:{REPO}:pull,push"),
    }
}

/// Does a token granting `granted` (space-separated scopes) cover `need`?
fn covers(granted: &str, need: &str) -> bool {
    let (resource, actions) = need.rsplit_once(':').unwrap();
    actions.split(',').all(|a| {
        granted.split(' ').any(|g| {
            g.rsplit_once(':')
                .is_some_and(|(r, acts)| r == resource && acts.split(',').any(|x| x == a))
        })
    })
}

fn reply(status: u16, headers: &[(header::HeaderName, String)], body: &str) -> Reply {
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, body.len());
    for (k, v) in headers {
        b = b.header(k, v);
    }
    Reply::new(b.body(()).unwrap(), Bytes::from(body.to_string()))
}

/// A registry behind a token service that writes the granted scopes into the token.
struct TokenScoped {
    inner: FaultyRegistry,
}

impl TokenScoped {
    fn answer(&mut self, req: &http::Request<Bytes>) -> (Reply, Kind) {
        let path = req.uri().path().to_string();
        if path == "/token" {
            let scopes: Vec<String> =
                url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                    .filter(|(k, _)| k == "scope")
                    .map(|(_, v)| v.into_owned())
                    .collect();
            let body = format!(r#"{{"token":"{}","expires_in":300}}"#, scopes.join(" "));
            return (reply(200, &[], &body), Kind::Token);
        }
        let need = needed(req.method().as_str());
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let challenge = |error: &str| {
            let v = format!(r#"Bearer realm="{ORIGIN}/token",service="svc",scope="{need}"{error}"#);
            vec![(header::WWW_AUTHENTICATE, v)]
        };
        match bearer {
            None => (reply(401, &challenge(""), ""), Kind::Challenged),
            Some(t) if !covers(t, &need) => (
                reply(401, &challenge(r#",error="insufficient_scope""#), ""),
                Kind::Insufficient,
            ),
            Some(_) => {
                let mut r = http::Request::builder()
                    .method(req.method())
                    .uri(req.uri().path_and_query().unwrap().as_str());
                for (k, v) in req.headers() {
                    r = r.header(k, v);
                }
                let r = r.body(()).unwrap();
                (self.inner.handle_with_body(&r, req.body()), Kind::Served)
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Token,
    Challenged,
    Insufficient,
    Served,
}

fn deliver(m: &mut Machine, id: RequestId, r: Reply, now: Instant) {
    m.handle_input(id, Input::Head(r.head), now);
    if !r.body.is_empty() {
        m.handle_input(id, Input::Chunk(r.body), now);
    }
    m.handle_input(id, Input::End, now);
}

/// Runs a push to its end. Replies go back in the order sent, except that every
/// challenge to an unauthenticated probe after the first is held back until an upload
/// has been refused for its scope: a late `pull` challenge then lands between that
/// refusal and the token it asks for.
fn push_with_late_probe_challenges(img: &TestImage) -> Result<(), ocireg_core::Error> {
    let (plan, source) = plan(&[img], None, &[]);
    let cfg = Config {
        credentials: Credentials::Basic {
            username: "u".into(),
            password: Secret::new("p"),
        },
        ..test_config()
    };
    let now = Instant::now();
    let mut push = Machine::push(
        cfg,
        Reference::parse("reg.test/test/repo:v1").unwrap(),
        plan,
        now,
    );
    let mut server = TokenScoped {
        inner: FaultyRegistry::new(Registry::new(), vec![]),
    };
    let mut queue: VecDeque<(RequestId, Reply, Kind)> = VecDeque::new();
    let mut held: Vec<(RequestId, Reply)> = Vec::new();
    let mut challenged_probes = 0;
    let mut released = false;
    for _ in 0..10_000 {
        match upload_as_send(push.poll_action(now), &source) {
            Action::Send { id, request } => {
                let (r, k) = server.answer(&request);
                queue.push_back((id, r, k));
            }
            Action::Done => return Ok(()),
            Action::Failed(e) => return Err(e),
            Action::Wait { .. } => {
                let Some((id, r, k)) = queue.pop_front() else {
                    panic!("the push waits with nothing in flight");
                };
                if k == Kind::Challenged {
                    challenged_probes += 1;
                    if challenged_probes > 1 && !released {
                        held.push((id, r));
                        continue;
                    }
                }
                deliver(&mut push, id, r, now);
                if k == Kind::Insufficient && !released {
                    released = true;
                    assert!(!held.is_empty(), "no probe challenge was held back");
                    for (id, r) in held.drain(..) {
                        deliver(&mut push, id, r, now);
                    }
                }
            }
            _ => {}
        }
    }
    panic!("no end after 10000 steps");
}

fn two_layers() -> TestImage {
    image(91, &[1000, 2000], &ocireg_core::Platform::host(), false)
}

/// docker-registry answers a probe sent before any token with a `pull` challenge and
/// an upload with a `pull,push` one. A `pull` challenge that arrives after the push
/// scope was asked for must not take the push back to a pull-only token (the upload
/// would then be refused a second time and the push fail, as CI once saw against the
/// real registry under load).
#[test]
fn a_late_pull_challenge_does_not_narrow_the_token() {
    push_with_late_probe_challenges(&two_layers()).unwrap();
}
