//! Client certificates against `docker-registry` with `http.tls.clientcas`, on every
//! runtime: refused without one, with a message that says so; pull and push with one;
//! and the certificate shown to its host alone (a second TLS server, on the same address
//! but another port, asks every client for one and is never shown it).

use std::sync::Arc;

use ocireg_core::{ErrorKind, Platform};
use ocireg_driver::client::Client;
use ocireg_driver::proxy::Proxies;
use ocireg_driver::tls::{ClientIdentity, HostTls, TlsSetup};
use ocireg_registry::images::image;
use ocireg_tests::kit::Kit;
use ocireg_tests::on_every_runtime;
use ocireg_tests::real::{write_oci_layout, Mode, RealRegistry};
use ocireg_tests::tls_witness::TlsWitness;

fn client<K: Kit>(tls: &TlsSetup) -> Client {
    let _ = K::NAME;
    let transport = K::transport_for(&tls.configs(&[]).unwrap(), Proxies::none());
    Client::from_parts(Arc::from(transport), Arc::from(K::runtime())).docker_config(None)
}

async fn a_client_certificate_for_its_host_alone<K: Kit>() {
    let reg = RealRegistry::start(Mode::MutualTls);
    let img = image(150, &[3000, 20_000], &Platform::host(), false);
    reg.push(&img, "mtls/app", "v1");
    let ca = ocireg_driver::tls::load_certs(reg.ca.as_ref().unwrap()).unwrap();
    let at = |r: &str| format!("{}/{r}", reg.addr);
    // without a certificate: refused, and said so
    let bare = TlsSetup {
        extra_cas: ca.clone(),
        hosts: Vec::new(),
    };
    let e = client::<K>(&bare)
        .inspect(&at("mtls/app:v1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert!(e.to_string().contains("client certificate"), "{e}");
    // with one: pull and push
    let (cert, key) = reg.client.clone().unwrap();
    let with = TlsSetup {
        extra_cas: ca,
        hosts: vec![HostTls {
            authority: reg.addr.clone(),
            cas: Vec::new(),
            identity: Some(ClientIdentity::load(&cert, &key).unwrap()),
            connect_timeout: None,
        }],
    };
    let client = client::<K>(&with);
    let work = tempfile::tempdir().unwrap();
    let pulled = client
        .pull(&at("mtls/app:v1"))
        .to_layout(work.path().join("out"))
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, img.digest());
    let src = work.path().join("src");
    write_oci_layout(&src, &[(&img, Some("v2"))], &[]);
    client
        .push(&src, None, &at("mtls/pushed:v2"))
        .await
        .unwrap();
    // another host (the same address, another port) is never shown it
    let tls = reg.dir.path().join("tls");
    let witness = TlsWitness::start(
        &tls.join("server.crt"),
        &tls.join("server.key"),
        &tls.join("ca.crt"),
    );
    let e = client
        .inspect(&format!("{}/other/app:v1", witness.addr))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let shown = witness.shown.lock().unwrap().clone();
    assert!(!shown.is_empty(), "no handshake with the witness");
    assert!(
        shown.iter().all(|s| !s),
        "a certificate was shown: {shown:?}"
    );
}

on_every_runtime!(a_client_certificate_for_its_host_alone);
