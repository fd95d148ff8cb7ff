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

/// A rustls client configuration that accepts any server certificate: the server is not
/// authenticated at all (the handshake's signatures are still checked against the
/// certificate it shows). For `--insecure-skip-tls-verify` only, which the user must ask
/// for and is warned about; never a default.
pub fn insecure_client_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth(),
    )
}

/// Accepts every server certificate (see [`insecure_client_config`]).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client certificate (with its chain) and its private key, read from PEM files and
/// checked to belong together: what a registry that asks for client certificates
/// (mutual TLS) is shown, and only that registry.
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// Reads the certificate chain in `cert` and the private key in `key` (PEM: PKCS#8,
    /// PKCS#1 or SEC1), and checks that the key is the certificate's. The error names
    /// the file at fault.
    pub fn load(cert: &Path, key: &Path) -> Result<ClientIdentity, String> {
        let chain = load_certs(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        let pem = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
        let key_der = rustls_pemfile::private_key(&mut pem.as_slice())
            .map_err(|e| format!("{}: {e}", key.display()))?
            .ok_or_else(|| format!("{}: no PEM private key found", key.display()))?;
        let provider = rustls::crypto::ring::default_provider();
        rustls::sign::CertifiedKey::from_der(chain.clone(), key_der.clone_key(), &provider)
            .map_err(|e| {
                format!(
                    "{} and {} do not belong together ({e})",
                    key.display(),
                    cert.display()
                )
            })?;
        Ok(ClientIdentity {
            chain,
            key: key_der,
        })
    }
}

/// A rustls client configuration as [`client_config`] makes it, that also shows
/// `identity` to a server that asks for a client certificate.
pub fn client_config_with(
    extra_cas: &[CertificateDer<'static>],
    identity: Option<&ClientIdentity>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let Some(identity) = identity else {
        return client_config(extra_cas);
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for ca in extra_cas {
        roots.add(ca.clone())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
}

/// The TLS configuration for every host, and those of hosts that have their own (extra
/// CAs, a client certificate): a client certificate given for a host is in that host's
/// configuration alone, so no other origin (a redirect target, a token service, a
/// mirror, a proxy) is ever shown it.
#[derive(Clone)]
pub struct TlsConfigs {
    default: rustls::ClientConfig,
    hosts: Vec<(String, rustls::ClientConfig, Option<std::time::Duration>)>,
    asks: Arc<CertificateAsks>,
}

/// When a server last asked for a client certificate that its host has none of. With
/// TLS 1.3 the server's refusal comes after the client's side of the handshake is over,
/// and over HTTP/2 it reaches the request only as "connection closed": a request whose
/// connection closed right after such an ask is told why ([`crate::hyper`]).
#[derive(Debug, Default)]
pub struct CertificateAsks(std::sync::Mutex<Option<std::time::Instant>>);

impl CertificateAsks {
    /// Whether a server asked (and was shown nothing) at `since` or later.
    pub fn asked_since(&self, since: std::time::Instant) -> bool {
        self.0
            .lock()
            .map(|t| t.is_some_and(|t| t >= since))
            .unwrap_or(false)
    }
}

/// The client-certificate resolver of a configuration that has none: it shows nothing,
/// and notes that it was asked.
#[derive(Debug)]
struct ShowsNothing(Arc<CertificateAsks>);

impl rustls::client::ResolvesClientCert for ShowsNothing {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        if let Ok(mut t) = self.0 .0.lock() {
            *t = Some(std::time::Instant::now());
        }
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

impl TlsConfigs {
    /// `default` for every host.
    pub fn new(default: rustls::ClientConfig) -> TlsConfigs {
        TlsConfigs {
            default,
            hosts: Vec::new(),
            asks: Arc::default(),
        }
    }

    /// Where the configurations without a client certificate note that a server asked
    /// for one (for the transport's messages).
    pub fn asks(&self) -> Arc<CertificateAsks> {
        self.asks.clone()
    }

    /// `config` for the host `authority` (`host[:port]`, port 443 when none) alone.
    pub fn host(mut self, authority: &str, config: rustls::ClientConfig) -> TlsConfigs {
        self.hosts
            .push((authority_key(authority, 443), config, None));
        self
    }

    /// [`TlsConfigs::host`], with a time limit on making a connection to it (hosts.toml's
    /// `dial_timeout`) instead of the usual one.
    pub fn host_with_timeout(
        mut self,
        authority: &str,
        config: rustls::ClientConfig,
        connect_timeout: Option<std::time::Duration>,
    ) -> TlsConfigs {
        self.hosts
            .push((authority_key(authority, 443), config, connect_timeout));
        self
    }

    /// Applies `f` to every configuration (ALPN protocols, say).
    pub fn each(mut self, f: impl Fn(&mut rustls::ClientConfig)) -> TlsConfigs {
        f(&mut self.default);
        for (_, c, _) in &mut self.hosts {
            f(c);
        }
        self
    }

    /// The connector `make` builds for each configuration and connect time limit, chosen
    /// per destination.
    pub fn connector<C>(
        &self,
        make: impl Fn(rustls::ClientConfig, std::time::Duration) -> C,
    ) -> PerHostConnector<C> {
        let usual = crate::hyper::CONNECT_TIMEOUT;
        let watched = |c: &rustls::ClientConfig| {
            let mut c = c.clone();
            if !c.client_auth_cert_resolver.has_certs() {
                c.client_auth_cert_resolver = Arc::new(ShowsNothing(self.asks.clone()));
            }
            c
        };
        PerHostConnector {
            default: make(watched(&self.default), usual),
            hosts: Arc::new(
                self.hosts
                    .iter()
                    .map(|(k, c, t)| (k.clone(), make(watched(c), t.unwrap_or(usual))))
                    .collect(),
            ),
        }
    }
}

/// `host:port` in lowercase, with `default_port` when none is written.
fn authority_key(authority: &str, default_port: u16) -> String {
    let a = authority.to_ascii_lowercase();
    let has_port = match a.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        a
    } else {
        format!("{a}:{default_port}")
    }
}

/// A connector per TLS configuration ([`TlsConfigs::connector`]): each destination
/// goes through its host's own, else the default.
#[derive(Clone)]
pub struct PerHostConnector<C> {
    default: C,
    hosts: Arc<std::collections::HashMap<String, C>>,
}

impl<C> tower_service::Service<http::Uri> for PerHostConnector<C>
where
    C: tower_service::Service<http::Uri> + Clone,
{
    type Response = C::Response;
    type Error = C::Error;
    type Future = C::Future;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // each connector is made ready where it is called (they are always ready)
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: http::Uri) -> Self::Future {
        let default_port = if dst.scheme_str() == Some("https") {
            443
        } else {
            80
        };
        let key = dst
            .authority()
            .map(|a| authority_key(a.as_str(), default_port))
            .unwrap_or_default();
        let mut c = self.hosts.get(&key).unwrap_or(&self.default).clone();
        c.call(dst)
    }
}

/// What a client trusts and shows, from which each host's TLS configuration is made:
/// extra CAs for every host, and hosts with CAs or a client certificate of their own.
#[derive(Clone, Debug, Default)]
pub struct TlsSetup {
    /// Trusted by every host's configuration, besides the web PKI roots.
    pub extra_cas: Vec<CertificateDer<'static>>,
    /// Hosts with their own additions.
    pub hosts: Vec<HostTls>,
}

/// A host's own TLS additions.
#[derive(Clone, Debug)]
pub struct HostTls {
    /// `host[:port]` (port 443 when none).
    pub authority: String,
    /// CAs trusted for this host alone.
    pub cas: Vec<CertificateDer<'static>>,
    /// The client certificate shown to this host alone.
    pub identity: Option<ClientIdentity>,
    /// The time limit on making a connection to it (hosts.toml's `dial_timeout`), when
    /// not the usual one.
    pub connect_timeout: Option<std::time::Duration>,
}

impl TlsSetup {
    /// Every host's configuration, each trusting `more` CAs as well (a mirror's).
    pub fn configs(&self, more: &[CertificateDer<'static>]) -> Result<TlsConfigs, rustls::Error> {
        let mut base = self.extra_cas.clone();
        base.extend_from_slice(more);
        let mut configs = TlsConfigs::new(client_config(&base)?);
        for h in &self.hosts {
            let mut cas = base.clone();
            cas.extend_from_slice(&h.cas);
            let config = client_config_with(&cas, h.identity.as_ref())?;
            configs = configs.host_with_timeout(&h.authority, config, h.connect_timeout);
        }
        Ok(configs)
    }
}
