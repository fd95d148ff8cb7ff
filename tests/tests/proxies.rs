//! Through a forward proxy, on every runtime: a TLS registry (`docker-registry`) is
//! reached through `CONNECT` tunnels only, with TLS inside (the proxy never sees the
//! registry's traffic in the clear); a plain registry through absolute-form requests;
//! the proxy's credentials go to the proxy; a token service on another origin goes
//! through it too; a proxy that wants credentials refuses with a message that says so;
//! `NO_PROXY` (with a port) bypasses it.

use std::sync::Arc;

use ocireg_core::{Config, ErrorKind, Platform};
use ocireg_driver::client::Client;
use ocireg_driver::proxy::Proxies;
use ocireg_registry::images::image;
use ocireg_registry::{FaultyRegistry, Registry};
use ocireg_tests::forward_proxy::ForwardProxy;
use ocireg_tests::kit::Kit;
use ocireg_tests::on_every_runtime;
use ocireg_tests::real::{layout_blobs, write_oci_layout, Mode, RealRegistry};

fn client<K: Kit>(ca: Option<&std::path::Path>, proxies: Proxies) -> Client {
    let cas = ca
        .map(|c| ocireg_driver::tls::load_certs(c).unwrap())
        .unwrap_or_default();
    Client::from_parts(
        Arc::from(K::transport_through(&cas, proxies)),
        Arc::from(K::runtime()),
    )
    .docker_config(None)
}

async fn tls_registry_through_connect_tunnels<K: Kit>() {
    let reg = RealRegistry::start(Mode::OpenTls);
    let img = image(120, &[3000, 70_000], &Platform::host(), false);
    reg.push(&img, "proxied/app", "v1");
    let proxy = ForwardProxy::start(None, vec!["/v2/".into(), "proxied/app".into()]);
    let proxies = Proxies::explicit(&proxy.url(None), "").unwrap();
    let client = client::<K>(reg.ca.as_deref(), proxies);
    let at = |r: &str| format!("{}/{r}", reg.addr);
    // pull, push and copy
    let work = tempfile::tempdir().unwrap();
    let pulled = client
        .pull(&at("proxied/app:v1"))
        .to_layout(work.path().join("out"))
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, img.digest());
    let want = layout_blobs(&work.path().join("out"));
    let src = work.path().join("src");
    write_oci_layout(&src, &[(&img, Some("v2"))], &[]);
    client
        .push(&src, None, &at("proxied/pushed:v2"))
        .await
        .unwrap();
    let copied = client
        .copy(&at("proxied/app:v1"), &at("proxied/copied:v1"))
        .await
        .unwrap();
    assert_eq!(copied.digest, img.digest());
    assert!(!want.is_empty());
    // every connection was a tunnel to the registry, TLS from its first byte, and no
    // path of the API crossed the proxy in the clear
    let seen = proxy.seen();
    assert!(!seen.is_empty(), "nothing went through the proxy");
    for s in &seen {
        assert_eq!(s.method, "CONNECT", "{s:?}");
        assert_eq!(s.target, reg.addr, "{s:?}");
        assert_eq!(s.first_tunnel_byte, Some(0x16), "not TLS: {s:?}");
    }
    assert!(!proxy.saw_secret.load(std::sync::atomic::Ordering::Relaxed));
}

async fn plain_registry_through_absolute_form_with_proxy_credentials<K: Kit>() {
    let reg = Arc::new(std::sync::Mutex::new(FaultyRegistry::new(
        Registry::new(),
        vec![],
    )));
    let addr = K::serve(reg.clone()).await;
    let img = image(121, &[5000], &Platform::host(), false);
    img.add_to(&mut reg.lock().unwrap().inner, "plain/app", Some("v1"));
    let creds = Some(("proxyuser", "proxy pass"));
    let proxy = ForwardProxy::start(creds, vec![]);
    // the password's space is percent-encoded in the URL
    let url = format!("http://proxyuser:proxy%20pass@{}", proxy.addr);
    let client = client::<K>(None, Proxies::explicit(&url, "").unwrap()).config(Config {
        plain_http: true,
        ..Config::default()
    });
    let work = tempfile::tempdir().unwrap();
    let pulled = client
        .pull(&format!("{addr}/plain/app:v1"))
        .to_layout(work.path().join("out"))
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, img.digest());
    let src = work.path().join("src");
    write_oci_layout(&src, &[(&img, Some("v2"))], &[]);
    client
        .push(&src, None, &format!("{addr}/plain/pushed:v2"))
        .await
        .unwrap();
    let copied = client
        .copy(
            &format!("{addr}/plain/app:v1"),
            &format!("{addr}/plain/copied:v1"),
        )
        .await
        .unwrap();
    assert_eq!(copied.digest, img.digest());
    assert!(reg
        .lock()
        .unwrap()
        .inner
        .manifest("plain/copied", "v1")
        .is_some());
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    for s in &seen {
        assert!(
            s.target.starts_with(&format!("http://{addr}/v2/")),
            "not absolute form: {s:?}"
        );
        assert_eq!(s.status, 0, "refused: {s:?}");
    }
}

/// `e` says that the proxy wanted credentials, and how to give them; a network failure.
fn assert_proxy_refused(e: &ocireg_driver::Error) {
    let text = e.to_string();
    assert!(
        text.contains("407") && text.contains("http://user:password@"),
        "{text}"
    );
    assert_eq!(e.kind(), ErrorKind::Network, "{text}");
}

async fn a_proxy_that_wants_credentials_refuses_and_says_so<K: Kit>() {
    let reg = RealRegistry::start(Mode::OpenTls);
    let proxy = ForwardProxy::start(Some(("u", "p")), vec![]);
    let client = client::<K>(
        reg.ca.as_deref(),
        Proxies::explicit(&proxy.url(None), "").unwrap(),
    );
    let e = client
        .inspect(&format!("{}/proxied/none:v1", reg.addr))
        .await
        .unwrap_err();
    assert_proxy_refused(&e);
    // refused once: a refusal is not retried
    assert_eq!(proxy.seen().len(), 1, "{:?}", proxy.seen());
    // a plain registry: the proxy's 407 answer to the forwarded request, the same way
    let plain = Arc::new(std::sync::Mutex::new(FaultyRegistry::new(
        Registry::new(),
        vec![],
    )));
    let addr = K::serve(plain).await;
    let e = client
        .config(Config {
            plain_http: true,
            ..Config::default()
        })
        .inspect(&format!("{addr}/plain/none:v1"))
        .await
        .unwrap_err();
    assert_proxy_refused(&e);
    assert_eq!(proxy.seen().len(), 2, "{:?}", proxy.seen());
}

async fn no_proxy_with_a_port_bypasses_the_proxy<K: Kit>() {
    let reg = RealRegistry::start(Mode::OpenTls);
    let img = image(122, &[2000], &Platform::host(), false);
    reg.push(&img, "proxied/direct", "v1");
    let proxy = ForwardProxy::start(None, vec![]);
    let client = client::<K>(
        reg.ca.as_deref(),
        Proxies::explicit(&proxy.url(None), &format!("example.com, {}", reg.addr)).unwrap(),
    );
    let inspected = client
        .inspect(&format!("{}/proxied/direct:v1", reg.addr))
        .await
        .unwrap();
    assert_eq!(inspected.digest, img.digest());
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
}

async fn a_token_service_follows_the_same_rules<K: Kit>() {
    use ocireg_tests::real::{PASSWORD, USER};
    use ocireg_tests::token_server::TokenServer;
    let keys = tempfile::tempdir().unwrap();
    let users = [(USER.to_string(), PASSWORD.to_string())]
        .into_iter()
        .collect();
    let ts = TokenServer::start(keys.path(), users, true, 300);
    let reg = RealRegistry::start_token(&ts.realm, keys.path());
    let img = image(123, &[2000], &Platform::host(), false);
    reg.push(&img, "proxied/tok", "v1");
    let proxy = ForwardProxy::start(None, vec![]);
    let client =
        client::<K>(None, Proxies::explicit(&proxy.url(None), "").unwrap()).config(Config {
            plain_http: true,
            ..Config::default()
        });
    let inspected = client
        .inspect(&format!("{}/proxied/tok:v1", reg.addr))
        .await
        .unwrap();
    assert_eq!(inspected.digest, img.digest());
    // the registry and its token service (another origin), both through the proxy
    let realm = ts.realm.trim_start_matches("http://");
    let realm_origin = realm.split('/').next().unwrap();
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .any(|s| s.target.starts_with(&format!("http://{}/", reg.addr))),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.target.starts_with(&format!("http://{realm_origin}/"))),
        "{seen:?}"
    );
}

on_every_runtime!(
    a_token_service_follows_the_same_rules,
    tls_registry_through_connect_tunnels,
    plain_registry_through_absolute_form_with_proxy_credentials,
    a_proxy_that_wants_credentials_refuses_and_says_so,
    no_proxy_with_a_port_bypasses_the_proxy
);
