//! A token server for the real registry's token auth (distribution token-auth spec):
//! RS256 JWTs whose `kid` is the libtrust key ID of the signing key, anonymous pull
//! allowed or not, Basic credentials, and the OAuth2 POST refresh-token grant.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

/// Issuer name the registry is configured with.
pub const ISSUER: &str = "ocireg-test-issuer";
/// Service name.
pub const SERVICE: &str = "ocireg-test-registry";

/// One request the token server saw.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// GET or POST.
    pub method: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// Authenticated user, if any.
    pub user: Option<String>,
}

/// A running token server (on its own small tokio runtime, so any test can use it).
pub struct TokenServer {
    /// Its realm URL.
    pub realm: String,
    /// Requests seen.
    pub log: Arc<Mutex<Vec<TokenRequest>>>,
    rt: Option<tokio::runtime::Runtime>,
}

struct Keys {
    pair: ring::signature::RsaKeyPair,
    kid: String,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// libtrust key ID: base32 of the first 240 bits of SHA-256(SPKI DER), in groups of 4.
fn libtrust_kid(spki_der: &[u8]) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, spki_der);
    let b = &hash.as_ref()[..30];
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = String::new();
    for &x in b {
        bits = (bits << 8) | u32::from(x);
        n += 8;
        while n >= 5 {
            out.push(A[((bits >> (n - 5)) & 31) as usize] as char);
            n -= 5;
        }
    }
    out.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

/// Writes the signing key and certificate into `dir` (`token.key`, `token.crt`).
fn make_keys(dir: &Path) -> Keys {
    let key = dir.join("token.key");
    let crt = dir.join("token.crt");
    let k = key.to_str().unwrap();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        k,
    ]);
    openssl(&[
        "req",
        "-x509",
        "-key",
        k,
        "-subj",
        "/CN=ocireg-token-signer",
        "-days",
        "2",
        "-out",
        crt.to_str().unwrap(),
    ]);
    let pkcs8 = openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", k, "-outform", "DER"]);
    let spki = openssl(&["pkey", "-in", k, "-pubout", "-outform", "DER"]);
    Keys {
        pair: ring::signature::RsaKeyPair::from_pkcs8(&pkcs8).expect("RSA key"),
        kid: libtrust_kid(&spki),
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

static JTI: AtomicU64 = AtomicU64::new(0);

fn jwt(keys: &Keys, user: &str, scopes: &[String], expires_in: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access: Vec<_> = scopes
        .iter()
        .filter_map(|s| {
            let mut p = s.splitn(3, ':');
            let (t, name, actions) = (p.next()?, p.next()?, p.next()?);
            // anonymous users may pull; authenticated users get what they ask for
            let allowed: Vec<&str> = actions
                .split(',')
                .filter(|a| *a == "pull" || !user.is_empty())
                .collect();
            Some(json!({"type": t, "name": name, "actions": allowed}))
        })
        .collect();
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": keys.kid});
    let claims = json!({"iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + expires_in, "nbf": now - 10, "iat": now, "jti": JTI.fetch_add(1, Ordering::Relaxed).to_string(), "access": access});
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut sig = vec![0u8; keys.pair.public().modulus_len()];
    keys.pair
        .sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut sig,
        )
        .expect("sign");
    format!("{signing_input}.{}", b64(&sig))
}

fn reply(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

impl TokenServer {
    /// Starts on a free loopback port; the key and certificate go into `dir`. `users`
    /// maps user names to passwords; `anonymous` allows pulls without credentials.
    pub fn start(
        dir: &Path,
        users: HashMap<String, String>,
        anonymous: bool,
        expires_in: u64,
    ) -> TokenServer {
        let keys = Arc::new(make_keys(dir));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // bound here, adopted by the server's own runtime (start may run inside another one)
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let users = Arc::new(users);
        let (l2, k2) = (log.clone(), keys.clone());
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, keys, users) = (l2.clone(), k2.clone(), users.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: Request<hyper::body::Incoming>| {
                            let (log, keys, users) = (log.clone(), keys.clone(), users.clone());
                            async move {
                                let method = req.method().to_string();
                                let query = req.uri().query().unwrap_or("").to_string();
                                let auth = req
                                    .headers()
                                    .get("authorization")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_string);
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let params: Vec<(String, String)> = if method == "POST" {
                                    url::form_urlencoded::parse(&body).into_owned().collect()
                                } else {
                                    url::form_urlencoded::parse(query.as_bytes())
                                        .into_owned()
                                        .collect()
                                };
                                let get = |k: &str| {
                                    params.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone())
                                };
                                let scopes: Vec<String> = params
                                    .iter()
                                    .filter(|(k, _)| k == "scope")
                                    .flat_map(|(_, v)| {
                                        v.split(' ').map(str::to_string).collect::<Vec<_>>()
                                    })
                                    .filter(|s| !s.is_empty())
                                    .collect();
                                if get("service").as_deref() != Some(SERVICE) {
                                    return Ok::<_, std::convert::Infallible>(reply(
                                        400,
                                        r#"{"error":"wrong service"}"#.into(),
                                    ));
                                }
                                let mut user = None;
                                if method == "POST" {
                                    match (get("grant_type").as_deref(), get("refresh_token")) {
                                        (Some("refresh_token"), Some(rt)) => {
                                            match rt.strip_prefix("refresh-") {
                                                Some(u) if users.contains_key(u) => {
                                                    user = Some(u.to_string())
                                                }
                                                _ => {
                                                    return Ok(reply(
                                                        401,
                                                        r#"{"error":"invalid_grant"}"#.into(),
                                                    ))
                                                }
                                            }
                                        }
                                        _ => {
                                            return Ok(reply(
                                                400,
                                                r#"{"error":"unsupported_grant_type"}"#.into(),
                                            ))
                                        }
                                    }
                                } else if let Some(a) =
                                    auth.as_deref().and_then(|a| a.strip_prefix("Basic "))
                                {
                                    let raw = base64::engine::general_purpose::STANDARD
                                        .decode(a)
                                        .unwrap_or_default();
                                    let raw = String::from_utf8_lossy(&raw).into_owned();
                                    match raw.split_once(':') {
                                        Some((u, p)) if users.get(u).is_some_and(|x| x == p) => {
                                            user = Some(u.to_string())
                                        }
                                        _ => {
                                            return Ok(reply(
                                                401,
                                                r#"{"error":"bad credentials"}"#.into(),
                                            ))
                                        }
                                    }
                                } else if !anonymous {
                                    return Ok(reply(
                                        401,
                                        r#"{"error":"credentials required"}"#.into(),
                                    ));
                                }
                                log.lock().unwrap().push(TokenRequest {
                                    method,
                                    scopes: scopes.clone(),
                                    user: user.clone(),
                                });
                                let token =
                                    jwt(&keys, user.as_deref().unwrap_or(""), &scopes, expires_in);
                                let mut body = json!({"token": token, "access_token": token, "expires_in": expires_in});
                                if let Some(u) = &user {
                                    body["refresh_token"] = json!(format!("refresh-{u}"));
                                }
                                Ok(reply(200, body.to_string()))
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TokenServer {
            realm,
            log,
            rt: Some(rt),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
