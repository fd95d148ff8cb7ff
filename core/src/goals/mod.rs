//! Goals: what a machine is for, built on the [engine](crate::engine). A goal asks the
//! engine for operations and reacts to what they bring; it never sends a request,
//! retries, or chooses a credential itself. Each file holds one goal and its
//! constructor on [`Machine`](crate::Machine).
//! - `blob.rs`: one blob, known by its descriptor;
//! - `delete.rs`: a manifest (and its entry in its subject's referrers tag), a tag, a blob;
//! - `login.rs`: credentials checked against the API root;
//! - `tag.rs`: more tags for a manifest, and the digest a reference names;
//! - `manifest.rs`: fetching and verifying one manifest (shared);
//! - `image.rs`: the image pull (manifests, platforms, blobs);
//! - `inspect.rs`: the manifest a reference names, alone;
//! - `lists.rs`: the repository's tags or the registry's repositories, page by page;
//! - `referrers.rs`: the manifests that name a manifest as their subject (the API, else
//!   the referrers tag);
//! - `referrers_tag.rs`: one edit of a referrers tag, safe against concurrent writers
//!   (shared by push and delete);
//! - `range.rs`: a part of a blob (`Range`), and a blob's size (`HEAD`);
//! - `push/`: blobs into a repository (probed, mounted, uploaded, resumed), then its
//!   manifests.

pub(crate) mod blob;
pub(crate) mod delete;
pub(crate) mod image;
pub(crate) mod inspect;
pub(crate) mod lists;
pub(crate) mod login;
pub(crate) mod manifest;
pub(crate) mod push;
pub(crate) mod range;
pub(crate) mod referrers;
pub(crate) mod referrers_tag;
pub(crate) mod tag;
