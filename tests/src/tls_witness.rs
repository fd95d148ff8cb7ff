//! A TLS server on loopback that asks every client for a certificate (without requiring
//! one) and records whether it was shown one: the witness that a client certificate
//! configured for one host is never offered to another. It answers every request `404`.
//! Plain threads: it works under any runtime.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A running witness.
pub struct TlsWitness {
    /// `127.0.0.1:port`.
    pub addr: String,
    /// For each handshake, whether the client showed a certificate.
    pub shown: Arc<Mutex<Vec<bool>>>,
}

impl TlsWitness {
    /// Serves with the certificate `cert` and key `key` (PEM), asking for client
    /// certificates of the CA `ca`.
    pub fn start(cert: &Path, key: &Path, ca: &Path) -> TlsWitness {
        let chain = ocireg_driver::tls::load_certs(cert).unwrap();
        let key = rustls_pemfile::private_key(&mut std::fs::read(key).unwrap().as_slice())
            .unwrap()
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in ocireg_driver::tls::load_certs(ca).unwrap() {
            roots.add(c).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shown = Arc::new(Mutex::new(Vec::new()));
        let seen = shown.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(mut tcp) = tcp else { continue };
                let Ok(mut conn) = rustls::ServerConnection::new(config.clone()) else {
                    continue;
                };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    while conn.is_handshaking() {
                        if conn.complete_io(&mut tcp).is_err() {
                            return;
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(conn.peer_certificates().is_some());
                    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf);
                    let _ = tls.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    let _ = tls.flush();
                });
            }
        });
        TlsWitness { addr, shown }
    }
}
