//! The referrers API (`GET /v2/<name>/referrers/<digest>[?artifactType=…]`): an image
//! index of every manifest of the repository whose `subject` is that digest, filtered by
//! artifact type when asked (and saying so in `OCI-Filters-Applied`). A registry told
//! it has no such API ([`Registry::set_referrers_api`]) answers `404`, as registries
//! without it do, and clients fall back to the referrers tag.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use ocireg_core::manifest::{Index, Manifest, OCI_INDEX};
use ocireg_core::referrers::{referrer_descriptor, FILTERS_APPLIED};
use ocireg_core::Digest;

use crate::routes::{error_reply, Registry, Reply};

impl Registry {
    /// Whether the referrers API is served (it is by default); without it, referrers
    /// requests are answered `404` and manifest `PUT`s carry no `OCI-Subject`.
    pub fn set_referrers_api(&mut self, on: bool) {
        self.no_referrers_api = !on;
    }

    /// Whether the referrers API is served.
    pub fn has_referrers_api(&self) -> bool {
        !self.no_referrers_api
    }

    /// The referrers of `subject` in `name`, as the API lists them.
    pub(crate) fn referrers(&self, name: &str, subject: &str, query: &str) -> Reply {
        if self.no_referrers_api {
            return error_reply(StatusCode::NOT_FOUND, "NOT_FOUND", "not a registry path");
        }
        let Ok(subject) = Digest::parse(subject) else {
            return error_reply(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "invalid digest");
        };
        let wanted = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "artifactType")
            .map(|(_, v)| v.into_owned());
        let mut found: Vec<_> = self
            .repos
            .get(name)
            .into_iter()
            .flat_map(|repo| repo.manifests.iter())
            .filter_map(|(digest, (media_type, bytes))| {
                let (m, _) = Manifest::parse(media_type, bytes).ok()?;
                if m.subject().map(|s| &s.digest) != Some(&subject) {
                    return None;
                }
                let mut d = referrer_descriptor(media_type, bytes, &m);
                d.digest = digest.clone();
                Some(d)
            })
            .filter(|d| wanted.is_none() || d.artifact_type == wanted)
            .collect();
        found.sort_by_key(|d| d.digest.to_string());
        let index = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_string()),
            artifact_type: None,
            manifests: found,
            subject: None,
            annotations: None,
        };
        let body = Bytes::from(serde_json::to_vec(&index).expect("an index serializes"));
        let mut b = Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, OCI_INDEX)
            .header(header::CONTENT_LENGTH, body.len());
        if wanted.is_some() {
            b = b.header(FILTERS_APPLIED, "artifactType");
        }
        Reply::new(b.body(()).expect("valid headers"), body)
    }
}
