//! The faults a [`FaultyRegistry`](super::FaultyRegistry) can inject, and the rules
//! that say on which paths.

/// One kind of misbehaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer the first `times` tries of each path with this status.
    FailFirst {
        /// How many tries fail.
        times: u32,
        /// The status (503, 500, …).
        status: u16,
    },
    /// Answer the first `times` tries with 429 and this `Retry-After` value.
    RateLimit {
        /// How many tries.
        times: u32,
        /// The header value (seconds or HTTP-date).
        retry_after: String,
    },
    /// Send at most `after` body bytes per response, then break the connection.
    CutBody {
        /// Bytes sent before the cut.
        after: usize,
        /// How many responses per path are cut (`u32::MAX`: all).
        times: u32,
    },
    /// Send `after` body bytes, then nothing more (the connection stays open).
    StallBody {
        /// Bytes sent before the stall.
        after: usize,
        /// How many responses per path stall.
        times: u32,
    },
    /// Answer the first `times` tries of each path with `status` and this
    /// `WWW-Authenticate` value.
    Challenge {
        /// How many tries.
        times: u32,
        /// The status (401, 403).
        status: u16,
        /// The header value.
        www_authenticate: String,
    },
    /// Redirect each path once (307) to the same path under [`REDIRECTED_PREFIX`](super::REDIRECTED_PREFIX).
    RedirectOnce,
    /// Redirect every request (307) to `base` + path (another origin).
    RedirectTo {
        /// Origin to send clients to, e.g. `http://127.0.0.1:5001`.
        base: String,
    },
    /// Answer ranged requests with the whole content (200).
    IgnoreRange,
    /// Keep `by` bytes fewer of a `PATCH` body than were sent, and say so in the answer's
    /// `Range` (a registry that took less than the whole chunk); `times` per path.
    ShortRange {
        /// Bytes dropped from the end of the chunk.
        by: usize,
        /// How many chunks per path.
        times: u32,
    },
    /// Answer a mount request by opening an upload session (`202`) instead of mounting.
    RefuseMount,
    /// Answer a single `POST ?digest=` with its body by opening an empty upload session
    /// (`202`), as a registry without single-`POST` uploads does (`docker-registry`).
    IgnoreSinglePost,
    /// Take only the first `after` bytes of a request body (an upload), keep them, and
    /// break the connection before answering; `times` such requests per path.
    CutUpload {
        /// Body bytes that arrive.
        after: usize,
        /// How many requests per path are cut.
        times: u32,
    },
    /// Answer ranged requests with a `Content-Range` that starts one byte early.
    WrongContentRange,
    /// Answer ranged requests with 416.
    RangeNotSatisfiable,
    /// Require HTTP Basic credentials on every request.
    Basic {
        /// Accepted user.
        username: String,
        /// Accepted password.
        password: String,
    },
    /// Another client writes this image index under a tag just before a manifest `PUT`
    /// to it (between the client's read and its write); `times` per path.
    RacingWriter {
        /// The other client's index (its children must be in the repository).
        index: Vec<u8>,
        /// How many `PUT`s per path are overtaken.
        times: u32,
    },
    /// Another client's older copy of a tag lands just after a manifest `PUT` to it (the
    /// tag points where it did before); `times` per path.
    StaleWriter {
        /// How many `PUT`s per path are undone.
        times: u32,
    },
    /// Adds these headers to every answer (a registry's rate-limit announcements, on
    /// successes and refusals alike).
    Headers(Vec<(String, String)>),
    /// Require `Authorization: Bearer` on every request, issued by `/token`.
    Token {
        /// `realm` in the challenge (absolute URL of this server's `/token`).
        realm: String,
        /// Required `service` parameter.
        service: String,
    },
}

/// A fault applied to paths containing `path_contains` (empty: every path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Substring of the request path.
    pub path_contains: String,
    /// The fault.
    pub fault: Fault,
}

impl Rule {
    /// A rule for every path.
    pub fn all(fault: Fault) -> Rule {
        Rule {
            path_contains: String::new(),
            fault,
        }
    }

    /// A rule for blob paths only.
    pub fn blobs(fault: Fault) -> Rule {
        Rule {
            path_contains: "/blobs/".into(),
            fault,
        }
    }
}
