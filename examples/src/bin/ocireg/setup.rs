//! Setting up an operation: credentials (flags, environment, Docker's config), TLS roots,
//! the core's configuration, and the HTTP client and clock of the chosen runtime.

use std::io::Read;
use std::time::{Duration, Instant};

use ocireg_core::{Config, Credentials, RetryPolicy, Secret};
use ocireg_driver::proxy::Proxies;
use ocireg_driver::tls::{HostTls, TlsConfigs, TlsSetup};
use ocireg_driver::{Runtime, Transport};
use rustls::pki_types::CertificateDer;

use crate::args::{ConnectArgs, RuntimeChoice};

/// Explicit flags (or `OCIREG_USERNAME`/`OCIREG_PASSWORD`) win; else Docker's config.
pub(crate) fn credentials(c: &ConnectArgs, registry: &str) -> Result<Credentials, String> {
    let Some(username) = c.username.clone() else {
        return docker_credentials(registry);
    };
    let password = if c.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("reading the password from stdin: {e}"))?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Ok(p) = std::env::var("OCIREG_PASSWORD") {
        p
    } else {
        return Err("--username needs --password-stdin or OCIREG_PASSWORD".into());
    };
    Ok(Credentials::Basic {
        username,
        password: Secret::new(password),
    })
}

pub(crate) fn extra_cas(c: &ConnectArgs) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut cas = Vec::new();
    for f in &c.ca_files {
        cas.extend(
            ocireg_driver::tls::load_certs(f)
                .map_err(|e| format!("--ca-file {}: {e}", f.display()))?,
        );
    }
    Ok(cas)
}

/// The library's client for a command: the runtime's transport and clock (`--runtime`,
/// the TLS flags), the core's configuration from the flags (`tune` adds the command's
/// own), the explicit credentials (`--username`, read once) for each of `registries`
/// (else Docker's, looked up by the client per registry and per mirror), and the
/// mirrors of `--hosts-dir`.
pub(crate) fn client(
    choice: RuntimeChoice,
    c: &ConnectArgs,
    registries: &[&str],
    tune: impl FnOnce(&mut Config) -> Result<(), String>,
) -> Result<ocireg_driver::client::Client, String> {
    let io = io(choice, c, registries)?;
    let mut cfg = config_without_credentials(c, io.runtime.now());
    tune(&mut cfg)?;
    let mut client = ocireg_driver::client::Client::from_parts(io.transport, io.runtime)
        .config(cfg)
        .allow_skip_verify(c.insecure_skip_tls_verify);
    if c.username.is_some() {
        let explicit = credentials(c, registries.first().copied().unwrap_or_default())?;
        for r in registries {
            client = client.credentials(r, explicit.clone());
        }
    }
    if let Some(dir) = &c.hosts_dir {
        client = client.hosts_dir(dir);
    }
    // a mirror whose entry names a `ca` is reached trusting it (and --ca-file)
    let setup = tls_setup(c, registries)?;
    let http1_only = c.http1_only;
    let proxies = c.proxies()?;
    let factory: ocireg_driver::client::TransportFactory = std::sync::Arc::new(move |host| {
        let mut setup = setup.clone();
        setup.hosts.push(host.clone());
        let configs = with_alpn(setup.configs(&[])?, http1_only);
        Ok(io_over(choice, &configs, proxies.clone()).transport)
    });
    Ok(client.transport_factory(factory))
}

/// The HTTP client and the clock of the runtime the user chose (`--runtime`). The commands
/// are written against these two traits only, so the same code runs on either.
pub(crate) struct Io {
    pub(crate) transport: std::sync::Arc<dyn Transport>,
    pub(crate) runtime: std::sync::Arc<dyn Runtime>,
}

/// What Docker's config holds for `host` (anonymous when nothing): the only credentials
/// a mirror gets (the flags are the registry's).
pub(crate) fn docker_credentials(host: &str) -> Result<Credentials, String> {
    let Some(path) = ocireg_driver::credentials::default_config_path() else {
        return Ok(Credentials::Anonymous);
    };
    match ocireg_driver::credentials::lookup(&path, host) {
        Ok(Some(c)) => {
            tracing::info!("using credentials for {host} from {}", path.display());
            Ok(c)
        }
        Ok(None) => Ok(Credentials::Anonymous),
        Err(e) => Err(e.to_string()),
    }
}

/// The client of `choice`, trusting the web PKI roots and `c`'s extra CAs (or, with
/// `--insecure-skip-tls-verify`, any certificate, loudly), showing the client
/// certificate of `--cert`/`--key` or `--cert-dir` to `registries` alone.
pub(crate) fn io(
    choice: RuntimeChoice,
    c: &ConnectArgs,
    registries: &[&str],
) -> Result<Io, String> {
    let proxies = c.proxies()?;
    if c.insecure_skip_tls_verify {
        eprintln!(
            "WARNING: --insecure-skip-tls-verify: no server certificate is checked; anyone on \
             the network path can read and change what is sent and received"
        );
        let mut tls =
            ocireg_driver::tls::insecure_client_config().map_err(|e| format!("TLS setup: {e}"))?;
        alpn(&mut tls, c.http1_only);
        return Ok(io_over(choice, &TlsConfigs::new(tls), proxies));
    }
    let configs = tls_setup(c, registries)?
        .configs(&[])
        .map_err(|e| format!("TLS setup: {e}"))?;
    Ok(io_over(choice, &with_alpn(configs, c.http1_only), proxies))
}

/// What the TLS flags say: `--ca-file` for every host; for each of `registries`, the
/// client certificate of `--cert`/`--key`, or the `*.crt` CAs and the `*.cert`/`*.key`
/// pair of `--cert-dir` (Docker's and skopeo's convention).
pub(crate) fn tls_setup(c: &ConnectArgs, registries: &[&str]) -> Result<TlsSetup, String> {
    let mut setup = TlsSetup {
        extra_cas: extra_cas(c)?,
        hosts: Vec::new(),
    };
    let (cas, identity) = c.client_tls()?;
    if cas.is_empty() && identity.is_none() {
        return Ok(setup);
    }
    for r in registries {
        setup.hosts.push(HostTls {
            authority: (*r).to_string(),
            cas: cas.clone(),
            identity: identity.clone(),
            connect_timeout: None,
        });
    }
    Ok(setup)
}

/// `--http1.1`: offer only HTTP/1.1 in ALPN (the adapters then never speak HTTP/2).
fn alpn(tls: &mut rustls::ClientConfig, http1_only: bool) {
    if http1_only {
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
}

/// `configs`, each offering only HTTP/1.1 with `--http1.1`.
fn with_alpn(configs: TlsConfigs, http1_only: bool) -> TlsConfigs {
    configs.each(|c| alpn(c, http1_only))
}

/// The client of `choice` over the TLS configurations `tls`, through `proxies`. `-v`
/// names the transport's type, taken from the value made, so a run shows which runtime's
/// sockets it really uses.
fn io_over(choice: RuntimeChoice, tls: &TlsConfigs, proxies: Proxies) -> Io {
    fn made<T: Transport + 'static>(t: T) -> std::sync::Arc<dyn Transport> {
        tracing::info!("transport: {}", std::any::type_name_of_val(&t));
        std::sync::Arc::new(t)
    }
    match choice {
        RuntimeChoice::Tokio => Io {
            transport: made(ocireg_tokio::transport_for(tls, proxies)),
            runtime: std::sync::Arc::new(ocireg_tokio::TokioRuntime),
        },
        RuntimeChoice::AsyncStd => Io {
            transport: made(ocireg_async_std::transport_for(tls, proxies)),
            runtime: std::sync::Arc::new(ocireg_async_std::AsyncStdRuntime),
        },
        RuntimeChoice::Smol => Io {
            transport: made(ocireg_smol::transport_for(tls, proxies)),
            runtime: std::sync::Arc::new(ocireg_smol::SmolRuntime),
        },
    }
}

/// The client of `choice`, trusting the web PKI roots only.
pub(crate) fn io_with_web_roots(choice: RuntimeChoice) -> Result<Io, String> {
    let tls = ocireg_driver::tls::client_config(&[]).map_err(|e| format!("TLS setup: {e}"))?;
    Ok(io_over(choice, &TlsConfigs::new(tls), Proxies::from_env()))
}

/// The core's configuration the flags give, with no credentials.
fn config_without_credentials(c: &ConnectArgs, now: Instant) -> Config {
    Config {
        plain_http: c.plain_http,
        deadline: c
            .timeout
            .map(|s| ocireg_core::time::later(now, Duration::from_secs(s))),
        retry: RetryPolicy {
            max_attempts: c.attempts,
            ..RetryPolicy::default()
        },
        seed: u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15,
        ..Config::default()
    }
}
