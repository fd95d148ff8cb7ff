//! The one error type, its classification, registry error bodies and URL redaction.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::digest::{Digest, DigestError};
use crate::manifest::ManifestError;
use crate::reference::ReferenceError;

/// Error bodies are read up to this many bytes.
pub const ERROR_BODY_LIMIT: usize = 2048;

/// What kind of failure a transport (adapter) saw. The core decides what to do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportErrorKind {
    /// The connection could not be made (refused, unreachable).
    Connect,
    /// The host name does not resolve (DNS). Permanent: a name that does not resolve
    /// now is not worth retrying within one operation.
    NameNotResolved,
    /// The server answered the TLS handshake with something that is not TLS
    /// (it speaks plain HTTP). Only this kind allows the loopback fallback to `http`.
    NotTls,
    /// TLS failed for another reason (certificate verification, protocol). Permanent.
    Tls,
    /// The connection broke (reset, early EOF, protocol error mid-body).
    Broken,
    /// A time limit kept by the core ran out (head or body idle).
    Timeout,
    /// A proxy refused to carry the connection (`407` to a `CONNECT`, or another
    /// refusal). Permanent: the proxy settings must change.
    ProxyRefused,
    /// Anything else the adapter could not classify.
    Other,
}

impl TransportErrorKind {
    /// Whether a retry may help.
    pub fn is_temporary(self) -> bool {
        !matches!(
            self,
            TransportErrorKind::Tls
                | TransportErrorKind::NameNotResolved
                | TransportErrorKind::ProxyRefused
        )
    }
}

/// A failure reported by the adapter for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    /// Its kind.
    pub kind: TransportErrorKind,
    /// A human-readable description (must not contain secrets).
    pub message: String,
}

impl TransportError {
    /// Builds one.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> TransportError {
        TransportError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// One `{"code":…,"message":…}` entry of a registry error body.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RegistryErrorEntry {
    /// The error code (`MANIFEST_UNKNOWN`, `UNAUTHORIZED`, …).
    #[serde(default)]
    pub code: String,
    /// The message.
    #[serde(default)]
    pub message: String,
}

#[derive(Deserialize)]
struct RegistryErrors {
    errors: Vec<RegistryErrorEntry>,
}

/// Parses `{"errors":[…]}`; `None` when the body is not that shape.
pub fn parse_registry_errors(body: &[u8]) -> Option<Vec<RegistryErrorEntry>> {
    serde_json::from_slice::<RegistryErrors>(body)
        .ok()
        .map(|e| e.errors)
}

/// An unsuccessful HTTP response, with what the registry said about it.
#[derive(Clone, PartialEq, Eq)]
pub struct StatusError {
    /// Request method.
    pub method: String,
    /// Redacted request URL.
    pub url: String,
    /// Status code.
    pub status: u16,
    /// The registry's error entries, when the body parsed.
    pub errors: Vec<RegistryErrorEntry>,
    /// The raw body (up to [`ERROR_BODY_LIMIT`] bytes, lossy UTF-8) when it did not parse.
    pub body: String,
    /// `Retry-After`, as a delay from the response.
    pub retry_after: Option<Duration>,
    /// The rate limit the response announced (Docker Hub's `ratelimit-*`, the IETF
    /// draft's `RateLimit*`), if any.
    pub rate_limit: Option<crate::RateLimit>,
}

impl StatusError {
    /// Temporary per the seed's list: 5xx except 501, 505, 511; plus 408, 425, 429, 499.
    pub fn is_temporary(&self) -> bool {
        is_temporary_status(self.status)
    }
}

/// The retry classification of a status code.
pub fn is_temporary_status(status: u16) -> bool {
    match status {
        501 | 505 | 511 => false,
        500..=599 => true,
        408 | 425 | 429 | 499 => true,
        _ => false,
    }
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        write!(
            f,
            "{} {}: HTTP {} {}",
            self.method, self.url, self.status, reason
        )?;
        if !self.errors.is_empty() {
            f.write_str(": ")?;
            for (i, e) in self.errors.iter().enumerate() {
                if i > 0 {
                    f.write_str("; ")?;
                }
                write!(f, "{}: {}", e.code, e.message)?;
            }
        } else if !self.body.is_empty() {
            write!(f, ": {:?}", self.body)?;
        }
        if let Some(limit) = &self.rate_limit {
            write!(f, " (rate limit: {limit})")?;
        }
        Ok(())
    }
}

impl std::error::Error for StatusError {}

impl fmt::Debug for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What was seen of a body whose size does not fit its descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeSeen {
    /// The response declared a `Content-Length` larger than the bytes still expected.
    DeclaredLength {
        /// The declared length.
        declared: u64,
        /// The bytes still expected from this response.
        expected: u64,
    },
    /// The body ran past the descriptor's size: at least this many bytes in all.
    LongerThan(u64),
}

impl fmt::Display for SizeSeen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeSeen::DeclaredLength { declared, expected } => {
                write!(
                    f,
                    "Content-Length {declared} exceeds the {expected} bytes expected"
                )
            }
            SizeSeen::LongerThan(n) => {
                write!(
                    f,
                    "the body is longer than the descriptor's size (at least {n} bytes)"
                )
            }
        }
    }
}

/// Everything that can go wrong, typed. No variant carries a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// Bad digest string.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// Bad manifest.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The registry answered with an error status.
    #[error("{0}")]
    Status(Box<StatusError>),
    /// Authentication failed even with a fresh token or the given credentials.
    #[error("access to {repository} on {registry} refused ({}): {source}", if *.credentials_given { "the credentials given were rejected" } else { "no credentials were given" })]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// Credentials were configured (and sent, or used for a token) and refused;
        /// otherwise the registry wants credentials and none were given.
        credentials_given: bool,
        /// The final refusal.
        source: Box<StatusError>,
    },
    /// The transport failed.
    #[error("{method} {url}: {error}")]
    Transport {
        /// Method.
        method: String,
        /// Redacted URL.
        url: String,
        /// What happened.
        error: TransportError,
    },
    /// Content hashed to a different digest.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was verified.
        what: String,
        /// Expected digest.
        expected: Digest,
        /// Computed digest.
        actual: Digest,
    },
    /// A body was shorter or longer than its descriptor says.
    #[error("size mismatch for {digest}: expected {expected} bytes, {actual}")]
    SizeMismatch {
        /// Blob digest.
        digest: Digest,
        /// Descriptor size.
        expected: u64,
        /// What was seen.
        actual: SizeSeen,
    },
    /// A body exceeded its limit.
    #[error("{what} body exceeds the limit of {limit} bytes{}", declared.map(|d| format!(" (Content-Length {d})")).unwrap_or_default())]
    BodyTooLarge {
        /// Which body.
        what: String,
        /// The limit.
        limit: u64,
        /// Declared `Content-Length`, when that was the reason.
        declared: Option<u64>,
    },
    /// A `206` with a `Content-Range` that does not fit the request.
    #[error("invalid Content-Range {got:?} from {url}: expected bytes {start}-{end}/{total}")]
    InvalidContentRange {
        /// Redacted URL.
        url: String,
        /// The header value (or empty).
        got: String,
        /// Requested start.
        start: u64,
        /// Requested end (inclusive).
        end: u64,
        /// Total size.
        total: u64,
    },
    /// The server ignores range requests (`200` with the whole blob), and discarding
    /// the bytes already held once more would pass the skip budget
    /// (`Config::skip_budget_percent` of the blob).
    #[error("{url} ignores range requests: discarding the first {offset} bytes again would pass the budget of {budget} bytes discarded for this blob; raise the budget or use a registry that serves ranges")]
    RangeIgnored {
        /// Redacted URL.
        url: String,
        /// Bytes held, which a whole response repeats.
        offset: u64,
        /// Bytes that may be discarded in total for the blob.
        budget: u64,
    },
    /// A push could not place a blob, or its plan is not one that can be pushed.
    #[error("pushing {digest}: {problem}")]
    Upload {
        /// The blob or manifest.
        digest: Digest,
        /// What went wrong.
        problem: String,
    },
    /// A redirect that must not be followed.
    #[error("refused redirect from {from}: {reason}")]
    Redirect {
        /// Redacted URL that redirected.
        from: String,
        /// Why it was refused.
        reason: String,
    },
    /// The registry asked to come back later than the configured cap.
    #[error("{source}; the registry asks to retry after {}s, beyond the limit of {}s", after.as_secs(), cap.as_secs())]
    RetryAfterTooLong {
        /// How long the registry asked to wait.
        after: Duration,
        /// The configured cap.
        cap: Duration,
        /// The response.
        source: Box<StatusError>,
    },
    /// The token service answered something unusable.
    #[error("token from {realm}: {problem}")]
    Token {
        /// Redacted realm URL.
        realm: String,
        /// What was wrong.
        problem: crate::auth::TokenProblem,
    },
    /// Credentials would travel somewhere they must not.
    #[error("refusing to send credentials: {0}")]
    Insecure(String),
    /// A download kept failing without progress.
    #[error("gave up on {what} after {attempts} attempts: {last}")]
    GaveUp {
        /// What was fetched.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<Error>,
    },
    /// The caller's deadline ran out (while waiting to retry after `last`, if any).
    #[error("deadline exceeded while fetching {what}{}", last.as_ref().map(|l| format!(": {l}")).unwrap_or_default())]
    Deadline {
        /// What was fetched.
        what: String,
        /// The failure being retried when the deadline made the retry pointless.
        last: Option<Box<Error>>,
    },
    /// A URL the pull would have to use is not usable (a path that does not join, a
    /// request that cannot be built).
    #[error("unusable URL {url}: {reason}")]
    InvalidUrl {
        /// The URL or path (redacted, at most 200 characters).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A list the registry serves (tags, catalog, referrers) is not usable (not what it
    /// should be, or its `Link` loops or leaves the list).
    #[error("{what} {url}: {problem}")]
    List {
        /// Which list ("tag list", "catalog", "referrers").
        what: &'static str,
        /// The page's URL (redacted).
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// A host the registry redirected to refused the request. Credentials are never
    /// offered to it: they belong to the registry and the token realm it named.
    #[error("{what}: the registry redirected to {origin}, which refused with {status}; ocireg sends credentials only to the registry and its token service: check the registry's storage (redirect) configuration")]
    ForeignOrigin {
        /// What was fetched.
        what: String,
        /// `scheme://host[:port]` of the redirect target.
        origin: String,
        /// Its status (401 or 403).
        status: u16,
    },
    /// More pages, manifests or levels than the configured bound.
    #[error("{what}: more than {limit}; {hint}")]
    TooMany {
        /// What was counted.
        what: String,
        /// The bound.
        limit: u64,
        /// What to do about it.
        hint: String,
    },
    /// The operation was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
    /// A blob read that the registry answered wrongly (a part of another range or
    /// length, a size not declared).
    #[error("blob {digest}: {problem}")]
    Blob {
        /// The blob.
        digest: Digest,
        /// What was wrong.
        problem: String,
    },
    /// A part of a blob that cannot be asked for: empty, past the blob's end, or larger
    /// than one read may hold.
    #[error("bytes {offset}+{len} of the {size}-byte blob {digest} cannot be read: a part is 1 to {max} bytes within the blob")]
    InvalidRange {
        /// The blob.
        digest: Digest,
        /// The first byte asked.
        offset: u64,
        /// The bytes asked.
        len: u64,
        /// The blob's size.
        size: u64,
        /// The largest part.
        max: u64,
    },
}

mod kind;
pub use kind::ErrorKind;

/// Query parameters that stay readable in redacted URLs.
const KEEP_PARAMS: &[&str] = &["scope", "service", "n", "last", "digest", "ns"];

/// Redacts a URL for errors and logs: user info is removed, and every query value is
/// replaced by `REDACTED` except harmless ones (`scope`, `service`, `n`, `last`, …).
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if KEEP_PARAMS.contains(&k.as_ref()) {
                    v.into_owned()
                } else {
                    "REDACTED".to_string()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests;
