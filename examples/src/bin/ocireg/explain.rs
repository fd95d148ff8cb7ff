//! What the user reads when an operation fails: one line that names the cause and a next
//! step, by the kind of the failure; the raw detail (URLs, statuses, the registry's error
//! codes) goes to the log, shown with `-v`.

use ocireg_core::{Credentials, Error, ErrorKind, Reference, TransportErrorKind};
use ocireg_driver::Error as DriveError;

/// The line for a failure of the library's client on `reference`: the registry's by its
/// kind (naming the user of `--username`, if any), anything else as it is.
pub(crate) fn client_error(
    e: &DriveError,
    reference: &Reference,
    username: Option<&str>,
) -> String {
    match e {
        DriveError::Registry(core) => {
            let given = match username {
                Some(username) => Credentials::Basic {
                    username: username.to_string(),
                    password: ocireg_core::Secret::new(String::new()),
                },
                None => Credentials::Anonymous,
            };
            core_error(core, reference, &given)
        }
        other => other.to_string(),
    }
}

/// The line for a protocol failure.
pub(crate) fn core_error(e: &Error, reference: &Reference, credentials: &Credentials) -> String {
    tracing::info!("{e}");
    let registry = reference.registry();
    let repository = reference.repository();
    let attempts = match e {
        Error::GaveUp { attempts, .. } if *attempts > 1 => format!(" after {attempts} attempts"),
        _ => String::new(),
    };
    if matches!(e, Error::ForeignOrigin { .. }) {
        // its own text names the origin that refused and what to check
        return e.to_string();
    }
    match e.kind() {
        ErrorKind::NotFound => not_found(e, reference),
        ErrorKind::Unauthorized {
            credentials_given: false,
        } => format!(
            "{registry} wants credentials for {} and none were found: use --username with \
             --password-stdin, or docker login {registry}",
            what(repository)
        ),
        ErrorKind::Unauthorized {
            credentials_given: true,
        } => format!(
            "{} were rejected by {registry}: check them, or log in again (docker login {registry})",
            whose(credentials)
        ),
        ErrorKind::Forbidden => format!(
            "access to {} on {registry} is denied: {} do not allow it",
            what(repository),
            whose(credentials)
        ),
        ErrorKind::RateLimited { retry_after } => format!(
            "{registry} is limiting the rate of requests{}{}: try again later{}, or read through \
             a mirror (--hosts-dir)",
            rate_limit(e).map(|l| format!(" ({l})")).unwrap_or_default(),
            retry_after
                .map(|d| format!(" (it asks to wait {}s)", d.as_secs()))
                .unwrap_or_default(),
            if matches!(credentials, Credentials::Anonymous) {
                ", log in (ocireg login: anonymous pulls are often limited harder)"
            } else {
                ""
            }
        ),
        ErrorKind::Network => network(e, registry, &attempts),
        ErrorKind::Server => format!(
            "{registry} failed (HTTP {}){attempts}: try again later",
            e.status().unwrap_or(500)
        ),
        _ => e.to_string(),
    }
}

fn what(repository: &str) -> String {
    if repository.is_empty() {
        "its catalog".into()
    } else {
        format!("repository {repository}")
    }
}

fn whose(credentials: &Credentials) -> String {
    match credentials {
        Credentials::Basic { username, .. } => format!("the credentials for {username}"),
        Credentials::IdentityToken { .. } => "the identity token".into(),
        _ => "the credentials".into(),
    }
}

/// 404: which thing was not there, by the registry's error code and the URL.
fn not_found(e: &Error, reference: &Reference) -> String {
    let (registry, repository) = (reference.registry(), reference.repository());
    let text = e.to_string();
    if text.contains("NAME_UNKNOWN") {
        return format!("repository {repository} not found on {registry}");
    }
    if text.contains("/manifests/") || text.contains("MANIFEST_UNKNOWN") {
        return match (reference.digest(), reference.tag()) {
            (Some(d), _) => format!("manifest {d} not found in repository {repository} (registry {registry})"),
            (None, Some(t)) => format!(
                "tag {t} not found in repository {repository} (registry {registry}): `ocireg tags {registry}/{repository}` lists the tags"
            ),
            (None, None) => format!("not found in repository {repository} (registry {registry})"),
        };
    }
    format!("{text} (not found on {registry})")
}

/// The rate limit a refusal announced, if any.
fn rate_limit(e: &Error) -> Option<ocireg_core::RateLimit> {
    let mut cur = e;
    loop {
        match cur {
            Error::GaveUp { last, .. } => cur = last,
            Error::RetryAfterTooLong { source, .. } => return source.rate_limit,
            Error::Status(s) => return s.rate_limit,
            _ => return None,
        }
    }
}

/// The network failed: which way, and what to check.
fn network(e: &Error, registry: &str, attempts: &str) -> String {
    let mut cur = e;
    while let Error::GaveUp { last, .. } = cur {
        cur = last;
    }
    let Error::Transport { error, .. } = cur else {
        return e.to_string();
    };
    match error.kind {
        TransportErrorKind::NameNotResolved => format!(
            "the name of {registry} does not resolve ({}): check the registry's name",
            error.message
        ),
        TransportErrorKind::Connect => format!(
            "cannot connect to {registry}{attempts} ({}): is a registry running at {registry}?",
            error.message
        ),
        // the message says which proxy and how to give it credentials
        TransportErrorKind::ProxyRefused => format!("{registry}: {}", error.message),
        TransportErrorKind::Tls if error.message.contains("client certificate") => {
            format!("{registry}: {}", error.message)
        }
        TransportErrorKind::Tls => format!(
            "TLS with {registry} failed ({}): trust its CA with --ca-file, or use --plain-http if it speaks plain http",
            error.message
        ),
        _ => format!(
            "the connection to {registry} failed{attempts} ({}): try again",
            error.message
        ),
    }
}
