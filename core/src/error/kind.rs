//! [`ErrorKind`]: what a caller branches on (not found, unauthorized, rate limited, …),
//! and which failures are worth another attempt.

use std::time::Duration;

use super::{Error, StatusError};

/// What kind of failure an [`Error`] is, for a caller to branch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// What was asked for does not exist (HTTP 404: an unknown tag, manifest, blob or
    /// repository).
    NotFound,
    /// The registry wants credentials: none were given, or those given were rejected.
    Unauthorized {
        /// Credentials were given (and rejected).
        credentials_given: bool,
    },
    /// The credentials do not allow this (HTTP 403, or a redirect target that refused).
    Forbidden,
    /// The registry limits the rate of requests (HTTP 429); when to come back, if it said.
    RateLimited {
        /// The wait the registry asked for.
        retry_after: Option<Duration>,
    },
    /// The network failed: no connection, a name that does not resolve, TLS, a broken or
    /// stalled exchange.
    Network,
    /// The registry failed (HTTP 5xx).
    Server,
    /// Content did not match its digest or size.
    Integrity,
    /// What the caller gave is not usable: a malformed reference or digest, credentials
    /// that would travel in clear text.
    InvalidInput,
    /// The registry answered what a registry must not (an unusable manifest, list,
    /// range, token or redirect), or went past a bound.
    Protocol,
    /// The deadline passed, or the caller cancelled.
    Stopped,
    /// A part on this side failed: a file or directory (a layout, a blob source), the
    /// credentials file. Never a core error: a driver's.
    Local,
}

impl ErrorKind {
    /// Whether trying again later may succeed.
    pub fn is_temporary(self) -> bool {
        matches!(
            self,
            ErrorKind::Network | ErrorKind::Server | ErrorKind::RateLimited { .. }
        )
    }
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Status(s) => status_kind(s),
            Error::RetryAfterTooLong { after, .. } => ErrorKind::RateLimited {
                retry_after: Some(*after),
            },
            Error::Unauthorized { source, .. } if source.status == 403 => ErrorKind::Forbidden,
            Error::Unauthorized {
                credentials_given, ..
            } => ErrorKind::Unauthorized {
                credentials_given: *credentials_given,
            },
            Error::ForeignOrigin { .. } => ErrorKind::Forbidden,
            Error::Transport { .. } => ErrorKind::Network,
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. } => ErrorKind::Integrity,
            Error::Reference(_) | Error::Digest(_) | Error::Insecure(_) => ErrorKind::InvalidInput,
            Error::GaveUp { last, .. } => last.kind(),
            Error::Deadline { .. } | Error::Cancelled => ErrorKind::Stopped,
            Error::Blob { .. } => ErrorKind::Protocol,
            Error::InvalidRange { .. } => ErrorKind::InvalidInput,
            _ => ErrorKind::Protocol,
        }
    }

    /// True when a retry may help (a certificate that fails verification, or a name
    /// that does not resolve, is a network failure a retry does not mend).
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Transport { error, .. } => error.kind.is_temporary(),
            // 501, 505 and 511 are server errors no retry mends
            Error::Status(s) => s.is_temporary(),
            Error::GaveUp { last, .. } => last.is_temporary(),
            _ => self.kind().is_temporary(),
        }
    }

    /// The HTTP status behind this error, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status(s) | Error::Unauthorized { source: s, .. } => Some(s.status),
            Error::RetryAfterTooLong { source, .. } => Some(source.status),
            Error::GaveUp { last, .. } => last.status(),
            Error::Deadline { last, .. } => last.as_ref().and_then(|l| l.status()),
            _ => None,
        }
    }
}

/// The kind of an error status.
fn status_kind(s: &StatusError) -> ErrorKind {
    match s.status {
        404 => ErrorKind::NotFound,
        401 => ErrorKind::Unauthorized {
            credentials_given: false,
        },
        403 => ErrorKind::Forbidden,
        429 => ErrorKind::RateLimited {
            retry_after: s.retry_after,
        },
        500..=599 => ErrorKind::Server,
        408 | 425 | 499 => ErrorKind::Network,
        _ => ErrorKind::Protocol,
    }
}
