//! # ocireg-registry: an OCI registry for tests, sans-IO
//!
//! [`Registry`] maps a request to a complete response ([`Reply`]): `GET`/`HEAD` of
//! `/v2/`, manifests by tag or digest, blobs, tag lists with `n`/`last` paging and a
//! `Link` header, single `Range` requests (206/416), `If-None-Match` (304), and the
//! registry error JSON (`NAME_UNKNOWN`, `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`); and pushes
//! (`uploads.rs`): upload sessions (`POST`, chunked `PATCH` with `Content-Range`, status
//! `GET`, `PUT ?digest=`, `DELETE`), cross-repository mounts, single-`POST` uploads, and
//! manifest `PUT`s that must reference content already there. It does no I/O: an adapter
//! serves it on a socket.
//!
//! [`faults::FaultyRegistry`] wraps it with configurable failures for tests: refused
//! first tries, `429 Retry-After`, cut or stalled bodies, redirects, ignored or wrong
//! ranges, 416, and bearer-token auth on every request.
//!
//! ```
//! use ocireg_core::Platform;
//! use ocireg_registry::{images::image, Registry};
//!
//! let mut registry = Registry::new();
//! let img = image(1, &[100], &Platform::host(), false);
//! img.add_to(&mut registry, "team/app", Some("v1"));
//! let get = http::Request::get("/v2/team/app/manifests/v1").body(()).unwrap();
//! let reply = registry.handle(&get);
//! assert_eq!(reply.status(), 200);
//! assert_eq!(reply.body, img.manifest);
//! ```

pub mod faults;
pub mod images;
mod referrers;
mod routes;
mod uploads;

pub use faults::{Fault, FaultyRegistry, Rule};
pub use routes::{Registry, Reply};
