//! The proxy rules as curl reads them: which variable serves which scheme, and what
//! `NO_PROXY` bypasses.

use http::Uri;

use super::{Proxies, Route};

fn vars(pairs: &'static [(&'static str, &'static str)]) -> Proxies {
    Proxies::from_vars(move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
}

fn proxy_of(p: &Proxies, dst: &str) -> Option<String> {
    match p.route(&dst.parse::<Uri>().unwrap()) {
        Route::Direct => None,
        Route::Tunnel { proxy, .. } | Route::Forward { proxy, .. } => Some(proxy.to_string()),
    }
}

#[test]
fn each_scheme_has_its_variable_and_all_proxy_fills_in() {
    let p = vars(&[
        ("HTTPS_PROXY", "http://secure.proxy:3128"),
        ("ALL_PROXY", "http://all.proxy:8080"),
    ]);
    assert_eq!(
        proxy_of(&p, "https://reg.example/v2/").as_deref(),
        Some("http://secure.proxy:3128/")
    );
    assert_eq!(
        proxy_of(&p, "http://reg.example/v2/").as_deref(),
        Some("http://all.proxy:8080/")
    );
    // https through a tunnel, plain http forwarded
    let route = p.route(&"https://reg.example/".parse().unwrap());
    assert!(matches!(route, Route::Tunnel { .. }), "{route:?}");
    let route = p.route(&"http://reg.example/".parse().unwrap());
    assert!(matches!(route, Route::Forward { .. }), "{route:?}");
    // lowercase forms are read too; loopback is not bypassed by itself
    let p = vars(&[("https_proxy", "proxy.lower:3128")]);
    assert_eq!(
        proxy_of(&p, "https://127.0.0.1:5000/v2/").as_deref(),
        Some("http://proxy.lower:3128/")
    );
    assert_eq!(proxy_of(&vars(&[]), "https://reg.example/"), None);
}

#[test]
fn uppercase_http_proxy_is_ignored_in_a_cgi_program() {
    let plain = vars(&[("HTTP_PROXY", "http://p:1")]);
    assert!(proxy_of(&plain, "http://reg.example/").is_some());
    let cgi = vars(&[("HTTP_PROXY", "http://p:1"), ("REQUEST_METHOD", "GET")]);
    assert_eq!(proxy_of(&cgi, "http://reg.example/"), None);
}

#[test]
fn no_proxy_names_hosts_domains_addresses_blocks_and_ports() {
    let p = vars(&[
        ("HTTPS_PROXY", "http://p:3128"),
        (
            "NO_PROXY",
            "internal.example, .corp.example, 10.0.0.0/8, 192.168.1.7, 127.0.0.1:5000, [::1]:6000",
        ),
    ]);
    for direct in [
        "https://internal.example/",
        "https://reg.internal.example/",
        "https://corp.example/",
        "https://a.b.corp.example/",
        "https://10.1.2.3/",
        "https://192.168.1.7:443/",
        "https://127.0.0.1:5000/",
        "https://[::1]:6000/",
    ] {
        assert_eq!(proxy_of(&p, direct), None, "{direct}");
    }
    for proxied in [
        "https://notinternal.example/",
        "https://11.0.0.1/",
        "https://192.168.1.8/",
        "https://127.0.0.1:5001/",
        "https://[::1]:6001/",
    ] {
        assert!(proxy_of(&p, proxied).is_some(), "{proxied}");
    }
    let all = vars(&[("HTTPS_PROXY", "http://p:3128"), ("no_proxy", "*")]);
    assert_eq!(proxy_of(&all, "https://anything.example/"), None);
}

#[test]
fn an_explicit_proxy_replaces_the_environment_and_keeps_its_credentials_to_itself() {
    let p = Proxies::explicit("http://user:secret@proxy.example:3128", "skip.example").unwrap();
    let Route::Tunnel { proxy, auth } = p.route(&"https://reg.example/".parse().unwrap()) else {
        panic!("a tunnel")
    };
    // the credentials become Proxy-Authorization, not part of the proxy's address
    assert_eq!(proxy.to_string(), "http://proxy.example:3128/");
    assert_eq!(auth.unwrap(), "Basic dXNlcjpzZWNyZXQ=");
    assert_eq!(proxy_of(&p, "https://skip.example/"), None);
    // said in a log without the password
    let said = p.describe(&"https://reg.example/".parse().unwrap());
    assert!(
        said.contains("proxy.example:3128") && !said.contains("secret"),
        "{said}"
    );
    // only http:// proxies
    for bad in ["socks5://p:1080", "https://p:3128", "http://"] {
        let e = Proxies::explicit(bad, "").unwrap_err().to_string();
        assert!(e.contains("proxy"), "{bad}: {e}");
    }
    let e = Proxies::explicit("https://user:secret@p:3128", "")
        .unwrap_err()
        .to_string();
    assert!(!e.contains("secret"), "{e}");
}
