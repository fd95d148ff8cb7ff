//! The CLI through a forward proxy on loopback: `--proxy` and `HTTPS_PROXY` for a TLS
//! registry (`CONNECT` tunnels only), `NO_PROXY`, a proxy that wants credentials, the
//! route said by `-v` without the proxy's password, and a proxy URL that is a usage
//! error.

use ocireg_tests::forward_proxy::ForwardProxy;

use super::*;

fn tls_registry() -> (RealRegistry, String) {
    let reg = RealRegistry::start(Mode::OpenTls);
    let ca = reg.ca.clone().unwrap().display().to_string();
    (reg, ca)
}

/// Every connection the proxy saw was a TLS tunnel to `addr`.
fn only_tunnels_to(proxy: &ForwardProxy, addr: &str) {
    let seen = proxy.seen();
    assert!(!seen.is_empty(), "nothing went through the proxy");
    for s in seen {
        assert_eq!((s.method.as_str(), s.target.as_str()), ("CONNECT", addr));
        assert_eq!(s.first_tunnel_byte, Some(0x16), "not TLS: {s:?}");
    }
}

#[test]
fn pull_push_and_copy_through_a_proxy() {
    let (reg, ca) = tls_registry();
    let img = image(130, &[4000, 9000], &Platform::host(), false);
    reg.push(&img, "viaproxy/app", "v1");
    let at = |r: &str| format!("{}/{r}", reg.addr);
    let work = tempfile::tempdir().unwrap();
    // --proxy
    let proxy = ForwardProxy::start(None, vec![]);
    ok(ocireg()
        .args(["pull", "--ca-file", &ca, "--proxy", &proxy.url(None)])
        .arg(at("viaproxy/app:v1"))
        .arg(work.path().join("a")));
    only_tunnels_to(&proxy, &reg.addr);
    ok(ocireg()
        .args(["copy", "--ca-file", &ca, "--proxy", &proxy.url(None)])
        .arg(at("viaproxy/app:v1"))
        .arg(at("viaproxy/copied:v1")));
    only_tunnels_to(&proxy, &reg.addr);
    // HTTPS_PROXY
    let env_proxy = ForwardProxy::start(None, vec![]);
    ok(ocireg()
        .env("HTTPS_PROXY", env_proxy.url(None))
        .args(["push", "--ca-file", &ca])
        .arg(work.path().join("a"))
        .arg(at("viaproxy/pushed:v1")));
    only_tunnels_to(&env_proxy, &reg.addr);
    let out = ok(ocireg()
        .env("https_proxy", env_proxy.url(None))
        .args(["digest", "--ca-file", &ca])
        .arg(at("viaproxy/pushed:v1")));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        img.digest().to_string()
    );
    // NO_PROXY: straight to the registry
    let bypassed = ForwardProxy::start(None, vec![]);
    ok(ocireg()
        .env("HTTPS_PROXY", bypassed.url(None))
        .env("NO_PROXY", format!("localhost,{}", reg.addr))
        .args(["inspect", "--ca-file", &ca])
        .arg(at("viaproxy/app:v1")));
    assert!(bypassed.seen().is_empty(), "{:?}", bypassed.seen());
}

#[test]
fn a_proxy_that_wants_credentials() {
    let (reg, ca) = tls_registry();
    let img = image(131, &[2000], &Platform::host(), false);
    reg.push(&img, "viaproxy/locked", "v1");
    let creds = Some(("puser", "ppass-1234"));
    let proxy = ForwardProxy::start(creds, vec![]);
    let target = format!("{}/viaproxy/locked:v1", reg.addr);
    // without them: refused, said in one line, exit 1
    let out = ocireg()
        .args([
            "inspect",
            "--ca-file",
            &ca,
            "--proxy",
            &proxy.url(None),
            &target,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("407") && err.contains("user:password"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // with them, and -v says the route without the password
    let out = ok(ocireg().args([
        "inspect",
        "-v",
        "--ca-file",
        &ca,
        "--proxy",
        &proxy.url(creds),
        &target,
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("CONNECT through http://{}", proxy.addr)),
        "{err}"
    );
    assert!(!err.contains("ppass-1234"), "{err}");
    // a proxy URL ocireg cannot use is a usage error
    let out = ocireg()
        .args(["inspect", "--proxy", "socks5://127.0.0.1:1080", &target])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
