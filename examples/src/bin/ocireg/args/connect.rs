//! The flags every command that talks to a registry shares: TLS (CAs, client
//! certificates), credentials, proxies, mirrors, time limits and attempts; and what clap
//! cannot check about them (exit 2, naming the flag or the file).

use std::path::PathBuf;

use clap::Args;

use super::MAX_TIMEOUT_SECS;

#[derive(Args, Clone)]
pub(crate) struct ConnectArgs {
    /// Talk plain http to the registry (loopback registries fall back to it by themselves).
    #[arg(long)]
    pub(crate) plain_http: bool,
    /// Extra CA certificate (PEM) to trust; repeatable.
    #[arg(long = "ca-file", value_name = "PEM")]
    pub(crate) ca_files: Vec<PathBuf>,
    /// User name for the registry (else OCIREG_USERNAME, else Docker's config.json).
    #[arg(long, env = "OCIREG_USERNAME")]
    pub(crate) username: Option<String>,
    /// Read the password from standard input (else OCIREG_PASSWORD).
    #[arg(long, requires = "username")]
    pub(crate) password_stdin: bool,
    /// Give up when the whole operation takes longer than this many seconds (at most ten
    /// years).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub(crate) timeout: Option<u64>,
    /// Accept any TLS certificate: the registry is not authenticated at all. Never the
    /// default; warned about on every run. Trust a private CA with --ca-file instead.
    #[arg(long)]
    pub(crate) insecure_skip_tls_verify: bool,
    /// Speak HTTP/1.1 only, even to a registry that offers HTTP/2 over TLS (for a proxy
    /// that mishandles HTTP/2, or to compare the two).
    #[arg(long = "http1.1")]
    pub(crate) http1_only: bool,
    /// Attempts per request (1 disables retries; at most 100).
    #[arg(long, default_value_t = ocireg_core::RetryPolicy::default().max_attempts, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) attempts: u32,
    /// Read through the mirrors of containerd's host configuration in this directory
    /// (`<DIR>/<registry>/hosts.toml`, else `<DIR>/_default/hosts.toml`): pulls, inspect,
    /// manifests, tags, referrers, blobs, and the source of a copy.
    #[arg(long, value_name = "DIR")]
    pub(crate) hosts_dir: Option<PathBuf>,
    /// Reach every origin through this http:// proxy (`http://user:password@host:port`
    /// when it asks for credentials) instead of HTTPS_PROXY, HTTP_PROXY and ALL_PROXY;
    /// https registries through a CONNECT tunnel.
    #[arg(long, value_name = "URL")]
    pub(crate) proxy: Option<String>,
    /// Hosts reached without the proxy, as NO_PROXY lists them (host, .domain, *, IP,
    /// CIDR, each with or without :port); default: NO_PROXY.
    #[arg(long, value_name = "LIST")]
    pub(crate) no_proxy: Option<String>,
    /// Client certificate (PEM, with its chain) shown to the registry alone, for
    /// registries that ask for one (mutual TLS); with --key.
    #[arg(long, value_name = "PEM", requires = "key")]
    pub(crate) cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub(crate) key: Option<PathBuf>,
    /// A directory as Docker's and skopeo's certs.d keep one per registry: `*.crt` CAs
    /// trusted for the registry, and a `*.cert` with the `*.key` of the same name shown
    /// to it as the client certificate.
    #[arg(long, value_name = "DIR", conflicts_with = "cert")]
    pub(crate) cert_dir: Option<PathBuf>,
}

impl ConnectArgs {
    /// What clap cannot check: a user name needs a password from stdin or the
    /// environment.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.username.is_some()
            && !self.password_stdin
            && std::env::var_os("OCIREG_PASSWORD").is_none()
        {
            return Err("--username needs --password-stdin or OCIREG_PASSWORD".into());
        }
        if self.insecure_skip_tls_verify && (self.cert.is_some() || self.cert_dir.is_some()) {
            return Err(
                "--insecure-skip-tls-verify cannot be combined with a client certificate: \
                 trust the registry's CA with --ca-file or --cert-dir instead"
                    .into(),
            );
        }
        self.client_tls()?;
        self.proxies().map(drop)
    }

    /// The registry's own CAs and client certificate: `--cert`/`--key`, or what
    /// `--cert-dir` holds. An unreadable file, a key that is not the certificate's, a
    /// `*.cert` without its `*.key`: an error that names the file.
    pub(crate) fn client_tls(
        &self,
    ) -> Result<
        (
            Vec<rustls::pki_types::CertificateDer<'static>>,
            Option<ocireg_driver::tls::ClientIdentity>,
        ),
        String,
    > {
        use ocireg_driver::tls::{load_certs, ClientIdentity};
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            return Ok((Vec::new(), Some(ClientIdentity::load(cert, key)?)));
        }
        let Some(dir) = &self.cert_dir else {
            return Ok((Vec::new(), None));
        };
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("--cert-dir {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        let mut cas = Vec::new();
        let mut identity = None;
        for path in &names {
            match path.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    cas.extend(load_certs(path).map_err(|e| format!("{}: {e}", path.display()))?)
                }
                Some("cert") => {
                    let key = path.with_extension("key");
                    if !key.exists() {
                        return Err(format!(
                            "{}: no {} beside it (a client certificate needs its key)",
                            path.display(),
                            key.display()
                        ));
                    }
                    if identity.is_none() {
                        identity = Some(ClientIdentity::load(path, &key)?);
                    }
                }
                _ => {}
            }
        }
        Ok((cas, identity))
    }

    /// The proxies the flags and the environment give: `--proxy` (with `--no-proxy`,
    /// else NO_PROXY) over the environment's.
    pub(crate) fn proxies(&self) -> Result<ocireg_driver::proxy::Proxies, String> {
        let Some(proxy) = &self.proxy else {
            return Ok(match &self.no_proxy {
                Some(list) => {
                    let list = list.clone();
                    ocireg_driver::proxy::Proxies::from_vars(move |name| match name {
                        "NO_PROXY" | "no_proxy" => Some(list.clone()),
                        _ => std::env::var(name).ok(),
                    })
                }
                None => ocireg_driver::proxy::Proxies::from_env(),
            });
        };
        let no_proxy = self.no_proxy.clone().unwrap_or_else(|| {
            std::env::var("NO_PROXY")
                .or_else(|_| std::env::var("no_proxy"))
                .unwrap_or_default()
        });
        ocireg_driver::proxy::Proxies::explicit(proxy, &no_proxy).map_err(|e| e.to_string())
    }
}
