//! # ocireg-core: a sans-IO OCI Distribution client
//!
//! This crate holds the distribution protocol (pull, push, inspect, tag and catalog
//! listings, referrers) as a value you feed and drain. It opens no
//! socket and no file, spawns nothing, reads no clock and draws no random number: the
//! caller passes `now` into every call (and a seed for backoff jitter in [`Config`]),
//! performs the HTTP exchanges the machine asks for, and reports what happened. The same
//! inputs always give the same outputs, so every behaviour is testable without a network.
//!
//! One file per protocol concern: [`reference`](mod@reference), [`digest`], [`manifest`], [`auth`]
//! (the `WWW-Authenticate` grammar, credentials, token responses), [`retry`] (backoff and
//! `Retry-After`), [`range`] (`Content-Range`), [`error`] (the typed error and URL
//! redaction). Above them, an engine (private: operations, timers, recovery, the origin
//! and credential model, tokens, requests as typed endpoints) runs exchanges for goals
//! (the image pull, the push, inspect, listings, referrers, one blob). Every operation is
//! one [`Machine`]: the engine and one goal behind one shell, built by the constructor
//! that names the operation ([`Machine::pull`], [`Machine::push`],
//! [`Machine::inspect`], [`Machine::list_tags`], [`Machine::catalog`],
//! [`Machine::list_referrers`], [`Machine::fetch_blob`], …).
//!
//! ## The driving contract
//!
//! 1. Build a [`Machine`], for example with [`Machine::pull`].
//! 2. Call [`Machine::poll_action`] repeatedly and act on each [`Action`] until it returns
//!    [`Action::Wait`], [`Action::Done`] or [`Action::Failed`]:
//!    - `Send { id, request }`: start the exchange (without following redirects or
//!      retrying: the machine decides those). Its response-head timer starts now: a
//!      driver that cannot start exchanges at once sets `Config::max_concurrent` and
//!      `Config::max_concurrent_small` to what it can run (1 for one at a time), so no
//!      request waits in its queue. Report its head with
//!      [`Machine::handle_head`], each body chunk with [`Machine::handle_chunk`], the end with
//!      [`Machine::handle_end`], or a failure with [`Machine::handle_error`] (or pass each as
//!      an [`Input`] to [`Machine::handle_input`]).
//!    - `Abort { id }`: drop that exchange; later input for it is ignored anyway.
//!    - `Prepare { origin, connections }`: a hint that that many requests to `origin`
//!      follow soon; a pooled transport may open connections now, any other ignores it.
//!    - `Deliver { blob, offset, bytes }`: append the bytes to that blob's content.
//!    - `Event(e)`: log it, show progress; on [`Event::DownloadRestarted`] truncate the blob's
//!      content; on [`Event::BlobQueued`] optionally answer through [`Machine::queued`]
//!      ([`QueuedBlob::skip`] or [`QueuedBlob::resume`]) before polling again.
//! 3. Wait for the next exchange input or until `Wait::until`, whichever comes first,
//!    then feed the input (if any) and go to 2. Pass the current time, never the deadline.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use ocireg_core::{Action, Config, Machine, Reference};
//!
//! let t0 = Instant::now(); // the only clock read, and it is the caller's
//! let reference: Reference = "localhost:5000/demo/hello:v1".parse().unwrap();
//! let mut pull = Machine::pull(Config::default(), reference, t0);
//! // The first action is the manifest request.
//! let Action::Send { id, request } = pull.poll_action(t0) else { panic!() };
//! assert_eq!(request.uri(), "https://localhost:5000/v2/demo/hello/manifests/v1");
//! // The registry says the tag does not exist: a 404 is not retried, the pull fails.
//! pull.handle_head(id, http::Response::builder().status(404).body(()).unwrap(), t0);
//! pull.handle_end(id, t0 + Duration::from_millis(1));
//! match pull.poll_action(t0 + Duration::from_millis(1)) {
//!     Action::Failed(e) => assert_eq!(e.status(), Some(404)),
//!     other => panic!("{other:?}"),
//! }
//! # let _ = Bytes::new();
//! ```
//!
//! ## Trust: who may receive which credential
//!
//! The machine knows three kinds of origin (scheme, host, port):
//! - **the registry**: the reference's host, over the scheme chosen for it (https, or
//!   plain http with `Config::plain_http` or the loopback fallback);
//! - **a token realm**: an origin named by a `WWW-Authenticate` challenge *that the
//!   registry origin sent*;
//! - **everything else**, notably redirect targets (a CDN or blob store).
//!
//! Basic credentials and bearer tokens go only to the registry; Basic credentials and a
//! refresh token go to a realm only when the registry named it, and never over plain http
//! to a host off this machine. A `401`/`403` from any other origin is never answered
//! with credentials and its challenge is never read: the request starts again at the
//! registry URL once (a signed URL may have expired, counting an attempt), then fails
//! with [`Error::ForeignOrigin`] naming that origin. The machine fuzz target checks this
//! after every step of arbitrary response sequences.
//!
//! ## Bounds
//!
//! Every quantity a server controls is bounded: body sizes (manifests, tokens; error
//! bodies are dropped at [`error::ERROR_BODY_LIMIT`] and the exchange aborted), counts
//! (`Config::max_tag_pages`, `Config::max_manifests`, `Config::max_index_depth`, redirect
//! hops, authentication rounds per operation), durations (token lifetimes capped at a
//! day, `Retry-After` capped, every `Instant` addition saturating through
//! [`time::later`]), and retries of every kind (each restart consumes the attempt
//! budget or has a fixed bound).
#![warn(missing_docs)]
#![warn(unreachable_pub)]

mod actions;
pub mod auth;
mod blob;
mod config;
pub mod digest;
mod endpoint;
mod engine;
pub mod error;
mod events;
mod goals;
#[cfg(feature = "oci-spec")]
pub mod interop;
pub mod link;
mod machine;
pub mod manifest;
pub mod mirrors;
pub mod offload;
pub mod push;
pub mod range;
pub mod ratelimit;
pub mod reference;
pub mod referrers;
pub mod retry;
pub mod time;

pub use actions::{Action, BlobId, Input, RequestId};
pub use auth::{Credentials, Secret};
pub use config::{Config, PlatformChoice};
pub use digest::{Algorithm, Digest, Verifier};
pub use error::{Error, ErrorKind, TransportError, TransportErrorKind};
pub use events::{Event, ManifestRole, Pushed, ReferrersVia, ResumeRefused};
pub use goals::range::MAX_RANGE;
pub use machine::{Machine, QueuedBlob};
pub use manifest::{Descriptor, Manifest, Platform};
pub use push::{PushManifest, PushPlan};
pub use ratelimit::RateLimit;
pub use reference::Reference;
pub use retry::RetryPolicy;
