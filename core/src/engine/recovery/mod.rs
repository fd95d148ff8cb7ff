//! Recovery: what a failed exchange means (transport error, error status, redirect,
//! refusal) and what happens next (redirect, authenticate, restart, retry, fail).

use std::time::{Duration, Instant};

use http::{header, HeaderMap, Method};
use url::Url;

use crate::auth::parse_www_authenticate;
use crate::error::{
    is_temporary_status, parse_registry_errors, redact_url, Error, StatusError, TransportError,
    TransportErrorKind,
};
use crate::reference::is_loopback_host;
use crate::retry::parse_retry_after;
use crate::time::later;

use super::op::{Exchange, OnRetry, OpId, OpState};
use super::origin::{host_port, origin_of};
use super::Engine;
use super::{Due, History};
use crate::{Action, Event};

/// Whom a request was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RequestKind {
    /// The registry (or a redirect target of it).
    Registry,
    /// The token service, by `GET` (Basic credentials, or none).
    TokenGet,
    /// The token service, by the OAuth2 `POST` (a refresh token).
    TokenPost,
}

/// What was sent, and what the operation went through before: the facts recovery
/// decides on.
#[derive(Debug)]
pub(super) struct Sent {
    /// What is being fetched (for messages).
    pub(super) what: String,
    /// The request's method.
    pub(super) method: Method,
    /// Where it went.
    pub(super) url: Url,
    /// Whether that URL is the registry's origin.
    pub(super) to_registry: bool,
    /// Whether the operation was at its starting URL (not following a redirect).
    pub(super) at_start: bool,
    /// Whom the request was for: the registry, or the token service (and how).
    pub(super) kind: RequestKind,
    /// A blob download that continued from an offset and has not started over yet.
    pub(super) resumed_blob: bool,
    /// Redirect hops followed in this attempt.
    pub(super) hops: u8,
    /// Registry error codes that mean, for this request, that the registry has not caught
    /// up yet (retried as a `503` is).
    pub(super) catching_up: &'static [&'static str],
    /// Failures in a row so far.
    pub(super) failures: u32,
    /// Whether a refusal by a foreign origin already sent it back to the registry.
    pub(super) foreign_restarted: bool,
}

/// What came back instead of a success.
#[derive(Debug)]
pub(super) enum Came<'a> {
    /// An error status (3xx, 4xx, 5xx) with its headers and the start of its body.
    Status {
        /// The status code.
        status: u16,
        /// The headers.
        headers: &'a HeaderMap,
        /// The body, up to the error body limit.
        body: &'a [u8],
    },
    /// The transport failed.
    Transport(TransportError),
}

/// The configured limits recovery respects.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub(super) max_redirects: u8,
    pub(super) max_retry_after: Duration,
    pub(super) max_attempts: u32,
}

/// How an operation starts again without waiting.
#[derive(Debug, PartialEq)]
pub(super) enum Restart {
    /// The loopback registry (`host`) does not speak TLS: plain http from now on.
    PlainHttp {
        /// `host[:port]` of the registry.
        host: String,
    },
    /// A foreign origin refused: back to the registry URL (counts an attempt).
    AtRegistry(Error),
    /// A `416` on a resumed blob: from byte 0, once.
    FromZero,
    /// The token service has no OAuth2 `POST`: ask with `GET`.
    TokenByGet,
}

/// What to do about a failed exchange. The engine applies it in one place,
/// `Engine::apply`.
#[derive(Debug)]
pub(super) enum Recovery {
    /// Follow the redirect to this URL.
    Redirect(Url),
    /// The registry refused: answer its challenges (the auth session decides how).
    Authenticate {
        /// The parsed `WWW-Authenticate` challenges.
        challenges: Vec<crate::auth::Challenge>,
        /// The refusal, for the error if authentication cannot help.
        refusal: StatusError,
    },
    /// Start again at once.
    Restart(Restart),
    /// Try again after the retry policy's delay, and not before `after`.
    Retry {
        /// The server's `Retry-After`.
        after: Option<Duration>,
        /// Why.
        error: Error,
    },
    /// Give up with this error.
    Fail(Error),
}

/// Decides what a failed exchange means. Pure: the same facts give the same answer.
///
/// The origin rule lives here: only a refusal from the registry's origin leads to
/// [`Recovery::Authenticate`]; a `401`/`403` from any other origin (a redirect target)
/// sends the operation back to the registry once, then fails naming that origin.
pub(super) fn recover(sent: &Sent, came: Came<'_>, limits: Limits) -> Recovery {
    let redacted = redact_url(&sent.url);
    let (status, headers, body) = match came {
        Came::Transport(error) => {
            let u = &sent.url;
            // Only the registry's own URL falls back to plain http, and only while the op
            // is there: a redirect to an https URL that does not speak TLS is an ordinary
            // failure (it consumes an attempt instead of looping).
            if error.kind == TransportErrorKind::NotTls
                && u.scheme() == "https"
                && sent.at_start
                && sent.to_registry
                && is_loopback_host(&host_port(u))
            {
                return Recovery::Restart(Restart::PlainHttp { host: host_port(u) });
            }
            let error = Error::Transport {
                method: sent.method.to_string(),
                url: redacted,
                error,
            };
            if !error.is_temporary() {
                return Recovery::Fail(error);
            }
            return Recovery::Retry { after: None, error };
        }
        Came::Status {
            status,
            headers,
            body,
        } => (status, headers, body),
    };
    if matches!(status, 301 | 302 | 303 | 307 | 308) {
        if let Some(location) = headers.get(header::LOCATION) {
            return redirect(sent, location.as_bytes(), limits);
        }
    }
    let errors = parse_registry_errors(body).unwrap_or_default();
    let retry_after = headers.get(header::RETRY_AFTER).and_then(|v| {
        parse_retry_after(
            v.as_bytes(),
            headers.get(header::DATE).map(|d| d.as_bytes()),
        )
    });
    let refusal = StatusError {
        method: sent.method.to_string(),
        url: redacted,
        status,
        body: if errors.is_empty() {
            String::from_utf8_lossy(body).into_owned()
        } else {
            String::new()
        },
        errors,
        retry_after,
        rate_limit: crate::RateLimit::from_headers(headers),
    };
    // Only a proxy answers 407 (to a request it forwards for a plain-http origin; a
    // tunnel's refusal comes from the transport): the same refusal, in the same words.
    if status == 407 {
        return Recovery::Fail(Error::Transport {
            method: sent.method.to_string(),
            url: redact_url(&sent.url),
            error: TransportError::new(
                TransportErrorKind::ProxyRefused,
                "the proxy refused to carry the request without credentials (407 Proxy \
                 Authentication Required): give them in the proxy URL \
                 (http://user:password@proxy:port, in --proxy or HTTP_PROXY)",
            ),
        });
    }
    let registry_request = sent.kind == RequestKind::Registry;
    if registry_request && !sent.to_registry && matches!(status, 401 | 403) {
        let err = Error::ForeignOrigin {
            what: sent.what.clone(),
            origin: origin_of(&sent.url),
            status,
        };
        let attempt_left = sent.failures + 1 < limits.max_attempts;
        if sent.foreign_restarted || !attempt_left {
            return Recovery::Fail(err);
        }
        return Recovery::Restart(Restart::AtRegistry(err));
    }
    let challenges = parse_www_authenticate(
        headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.as_bytes()),
    );
    let bearer_challenge = challenges.iter().any(|c| c.is("bearer"));
    if status == 401 || (status == 403 && bearer_challenge) {
        return Recovery::Authenticate {
            challenges,
            refusal,
        };
    }
    if status == 404 && sent.kind == RequestKind::TokenPost {
        return Recovery::Restart(Restart::TokenByGet);
    }
    if status == 416 && sent.resumed_blob {
        return Recovery::Restart(Restart::FromZero);
    }
    if is_temporary_status(status) {
        if let Some(ra) = retry_after.filter(|ra| *ra > limits.max_retry_after) {
            return Recovery::Fail(Error::RetryAfterTooLong {
                after: ra,
                cap: limits.max_retry_after,
                source: Box::new(refusal),
            });
        }
    }
    let catching_up = refusal
        .errors
        .iter()
        .any(|e| sent.catching_up.contains(&e.code.as_str()));
    let error = Error::Status(Box::new(refusal));
    if !error.is_temporary() && !catching_up {
        return Recovery::Fail(error);
    }
    Recovery::Retry {
        after: retry_after,
        error,
    }
}

/// A redirect to `location`, if it may be followed.
fn redirect(sent: &Sent, location: &[u8], limits: Limits) -> Recovery {
    let refuse = |reason: &str| {
        Recovery::Fail(Error::Redirect {
            from: redact_url(&sent.url),
            reason: reason.to_string(),
        })
    };
    if sent.hops >= limits.max_redirects {
        return refuse("too many redirects");
    }
    // A delete removes exactly what it names: a redirect would make it delete whatever
    // the Location names instead (no registry redirects one).
    if sent.method == Method::DELETE {
        return refuse("a DELETE is not redirected");
    }
    let target = std::str::from_utf8(location)
        .ok()
        .and_then(|l| sent.url.join(l.trim()).ok());
    let Some(target) = target else {
        return refuse("unusable Location header");
    };
    if !matches!(target.scheme(), "http" | "https") || target.host_str().is_none() {
        return refuse("Location is not an http(s) URL");
    }
    if sent.url.scheme() == "https" && target.scheme() == "http" {
        return refuse("redirect from https to plain http");
    }
    Recovery::Redirect(target)
}

impl Engine {
    /// The facts about op `op`'s last request that recovery decides on.
    fn sent(&self, op: OpId) -> Option<Sent> {
        let o = self.ops.get(&op)?;
        let url = o.sent.url.clone()?;
        Some(Sent {
            what: o.what.clone(),
            method: o.method(),
            to_registry: self.origin.contains(&url),
            url,
            at_start: o.route.redirect.is_none(),
            kind: match o.exchange {
                Exchange::Token { post: true, .. } => RequestKind::TokenPost,
                Exchange::Token { post: false, .. } => RequestKind::TokenGet,
                _ => RequestKind::Registry,
            },
            resumed_blob: matches!(&o.exchange, Exchange::Download { dl, .. } if !dl.restarted && dl.offset > 0),
            hops: o.route.hops,
            catching_up: match &o.exchange {
                Exchange::Call(c) => c.catching_up,
                _ => &[],
            },
            failures: o.history.failures,
            foreign_restarted: o.route.foreign_restarted,
        })
    }

    fn limits(&self) -> Limits {
        Limits {
            max_redirects: self.config.max_redirects,
            max_retry_after: self.config.retry.max_retry_after,
            max_attempts: self.config.retry.max_attempts,
        }
    }

    pub(super) fn on_transport_error(&mut self, op: OpId, error: TransportError, now: Instant) {
        let Some(sent) = self.sent(op) else { return };
        let r = recover(&sent, Came::Transport(error), self.limits());
        self.apply(op, r, now);
    }

    pub(super) fn on_error_status(&mut self, op: OpId, now: Instant) {
        let Some(o) = self.ops.get_mut(&op) else {
            return;
        };
        let incoming = std::mem::take(&mut o.incoming);
        let Some(sent) = self.sent(op) else { return };
        let came = Came::Status {
            status: incoming.status,
            headers: &incoming.headers,
            body: &incoming.body,
        };
        let r = recover(&sent, came, self.limits());
        self.apply(op, r, now);
    }

    fn op_mut(&mut self, op: OpId) -> &mut super::op::Op {
        self.ops.get_mut(&op).expect("a recovering op is live")
    }

    /// Carries out a recovery decision: the one place where a failed operation's state
    /// changes.
    fn apply(&mut self, op: OpId, recovery: Recovery, now: Instant) {
        match recovery {
            Recovery::Redirect(target) => {
                let o = self.op_mut(op);
                o.route.hops += 1;
                o.route.redirect = Some(target);
                self.set_state(op, Some(OpState::Ready));
            }
            Recovery::Authenticate {
                challenges,
                refusal,
            } => self.authenticate(op, refusal, &challenges),
            Recovery::Restart(Restart::PlainHttp { host }) => {
                if self.origin.fall_back_to_http() {
                    self.out
                        .push_back(Action::Event(Event::PlainHttpFallback { host }));
                }
                self.set_state(op, Some(OpState::Ready));
            }
            Recovery::Restart(Restart::AtRegistry(error)) => {
                let o = self.op_mut(op);
                o.route.foreign_restarted = true;
                o.route.redirect = None;
                o.route.hops = 0;
                self.retry_at_once(op, error);
                self.push_resumed(op);
            }
            Recovery::Restart(Restart::FromZero) => {
                if let Exchange::Download { dl, blob, .. } = &mut self.op_mut(op).exchange {
                    dl.restart();
                    let blob = *blob;
                    self.out
                        .push_back(Action::Event(Event::DownloadRestarted { blob }));
                }
                self.set_state(op, Some(OpState::Ready));
            }
            Recovery::Restart(Restart::TokenByGet) => {
                if let Exchange::Token { post, .. } = &mut self.op_mut(op).exchange {
                    *post = false;
                }
                self.set_state(op, Some(OpState::Ready));
            }
            Recovery::Retry { after, error } => self.retry_or_fail(op, error, after, now),
            Recovery::Fail(error) => self.fail(error),
        }
    }

    /// `recover` decided that `op` may be tried again (a temporary failure, or a registry
    /// catching up): again after the backoff, while attempts are left.
    fn retry_or_fail(&mut self, op: OpId, err: Error, retry_after: Option<Duration>, now: Instant) {
        let o = self.op_mut(op);
        // A download that brought new bytes before it broke resumes at once: the
        // connection broke, the server is fine. Backoff is for failures in a row.
        let progressed = matches!(&o.exchange, Exchange::Download { dl, .. } if dl.progressed());
        if progressed {
            o.history.failures = 0;
        }
        o.history.failures += 1;
        let attempts = o.history.failures;
        let what = o.what.clone();
        let waited = o.history.waited;
        let random = self.rng.next_u64();
        let delay = match self.config.retry.delay(attempts, retry_after, random) {
            Some(_) if progressed && retry_after.is_none() => Some(Duration::ZERO),
            d => d,
        };
        let Some(delay) = delay else {
            return self.fail(if attempts > 1 {
                Error::GaveUp {
                    what,
                    attempts,
                    last: Box::new(err),
                }
            } else {
                err
            });
        };
        let until = later(now, delay);
        if waited.saturating_add(delay) > self.config.retry.budget {
            return self.fail(Error::GaveUp {
                what: format!(
                    "{what} (retry budget of {}s spent)",
                    self.config.retry.budget.as_secs()
                ),
                attempts,
                last: Box::new(err),
            });
        }
        if self.config.deadline.is_some_and(|d| until > d) {
            return self.fail(Error::Deadline {
                what,
                last: Some(Box::new(err)),
            });
        }
        let o = self.op_mut(op);
        o.history.waited = waited.saturating_add(delay);
        o.route.redirect = None;
        o.route.hops = 0;
        o.last_error = Some(err.clone());
        self.set_state(op, Some(OpState::Backoff { until }));
        self.out.push_back(Action::Event(Event::Retry {
            what,
            attempt: attempts + 1,
            delay,
            error: err,
        }));
        self.push_resumed(op);
    }

    /// An op's backoff is over: it is sent again, or, when its goal decides what comes
    /// next ([`OnRetry::AskGoal`]), it ends and its goal is told.
    pub(super) fn backoff_over(&mut self, op: OpId) {
        let Some(o) = self.ops.get_mut(&op) else {
            return;
        };
        let ask = matches!(&o.exchange, Exchange::Call(c) if c.on_retry == OnRetry::AskGoal);
        if !ask {
            return self.set_state(op, Some(OpState::Ready));
        }
        let history = History {
            failures: o.history.failures,
            waited: o.history.waited,
        };
        let error = o.last_error.take().unwrap_or(Error::Cancelled);
        self.set_state(op, None);
        self.due.push_back(Due { op, history, error });
    }

    /// Sends op `op` again at once, counting the failure as an attempt and saying why.
    pub(super) fn retry_at_once(&mut self, op: OpId, error: Error) {
        let o = self.op_mut(op);
        o.history.failures += 1;
        let (what, attempt) = (o.what.clone(), o.history.failures + 1);
        self.set_state(op, Some(OpState::Ready));
        self.out.push_back(Action::Event(Event::Retry {
            what,
            attempt,
            delay: Duration::ZERO,
            error,
        }));
    }
}

#[cfg(test)]
mod tests;
