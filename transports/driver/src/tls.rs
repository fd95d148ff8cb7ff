//! TLS settings shared by the adapters: trusted roots and extra CA files.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

/// Loads PEM certificates from a file; an error when it holds none.
pub fn load_certs(path: &Path) -> std::io::Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path)?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut data.as_slice()).collect();
    let certs = certs?;
    if certs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: no PEM certificate found", path.display()),
        ));
    }
    Ok(certs)
}

/// A rustls client configuration trusting the web PKI roots plus `extra_cas`, with the
/// `ring` provider and the safe default protocol versions. ALPN is left to the caller.
pub fn client_config(
    extra_cas: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for ca in extra_cas {
        roots.add(ca.clone())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
