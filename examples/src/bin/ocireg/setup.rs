//! Setting up an operation: credentials (flags, environment, Docker's config), TLS roots,
//! the core's configuration, and the HTTP client and clock of the chosen runtime.

use std::io::Read;
use std::time::{Duration, Instant};

use ocireg_core::{Config, Credentials, RetryPolicy, Secret};
use ocireg_driver::{Runtime, Transport};
use rustls::pki_types::CertificateDer;

use crate::args::{ConnectArgs, RuntimeChoice};

/// Explicit flags (or `OCIREG_USERNAME`/`OCIREG_PASSWORD`) win; else Docker's config.
pub(crate) fn credentials(c: &ConnectArgs, registry: &str) -> Result<Credentials, String> {
    let Some(username) = c.username.clone() else {
        let Some(path) = ocireg_driver::credentials::default_config_path() else {
            return Ok(Credentials::Anonymous);
        };
        return match ocireg_driver::credentials::lookup(&path, registry) {
            Ok(Some(c)) => {
                tracing::info!("using credentials for {registry} from {}", path.display());
                Ok(c)
            }
            Ok(None) => Ok(Credentials::Anonymous),
            Err(e) => Err(e.to_string()),
        };
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
            ocireg_tokio::load_certs(f).map_err(|e| format!("--ca-file {}: {e}", f.display()))?,
        );
    }
    Ok(cas)
}

/// The HTTP client and the clock of the runtime the user chose (`--runtime`). The commands
/// are written against these two traits only, so the same code runs on either.
pub(crate) struct Io {
    pub(crate) transport: std::sync::Arc<dyn Transport>,
    pub(crate) runtime: std::sync::Arc<dyn Runtime>,
}

/// The client of `choice`, trusting the web PKI roots and `c`'s extra CAs.
pub(crate) fn io(choice: RuntimeChoice, c: &ConnectArgs) -> Result<Io, String> {
    io_trusting(choice, &extra_cas(c)?)
}

/// The client of `choice`, trusting the web PKI roots only.
pub(crate) fn io_without_credentials(choice: RuntimeChoice) -> Result<Io, String> {
    io_trusting(choice, &[])
}

fn io_trusting(choice: RuntimeChoice, cas: &[CertificateDer<'static>]) -> Result<Io, String> {
    let tls = |e: rustls::Error| format!("TLS setup: {e}");
    Ok(match choice {
        RuntimeChoice::Tokio => Io {
            transport: std::sync::Arc::new(ocireg_tokio::transport(cas).map_err(tls)?),
            runtime: std::sync::Arc::new(ocireg_tokio::TokioRuntime),
        },
        RuntimeChoice::AsyncStd => Io {
            transport: std::sync::Arc::new(ocireg_async_std::transport(cas).map_err(tls)?),
            runtime: std::sync::Arc::new(ocireg_async_std::AsyncStdRuntime),
        },
    })
}

pub(crate) fn config(c: &ConnectArgs, registry: &str, now: Instant) -> Result<Config, String> {
    Ok(Config {
        plain_http: c.plain_http,
        credentials: credentials(c, registry)?,
        deadline: c
            .timeout
            .map(|s| ocireg_core::time::later(now, Duration::from_secs(s))),
        retry: RetryPolicy {
            max_attempts: c.attempts,
            ..RetryPolicy::default()
        },
        seed: u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15,
        ..Config::default()
    })
}
