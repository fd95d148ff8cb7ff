//! Where a request goes, as data: an endpoint of the registry's API, rendered into a URL
//! by one function ([`Endpoint::url`]) that applies the API root (a mirror's
//! `override_path`) and the mirror's query (`ns=`); or a URL a server gave (an upload
//! session's `Location`, a token realm), sent as given.
//!
//! Goals never build a path by hand and never match one as a string: a list's next page
//! is checked by rendering its endpoint and comparing ([`Endpoint::page_query`]).

use url::Url;

use crate::digest::Digest;
use crate::error::Error;

/// An endpoint of the distribution API, relative to a repository (or, for the catalog,
/// to the registry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// The API root itself (`/v2/`): whether the registry speaks the API, and to whom.
    Root,
    /// `manifests/<tag or digest>`.
    Manifest(String),
    /// `blobs/<digest>`.
    Blob(Digest),
    /// `blobs/uploads/`: opens an upload session.
    UploadStart,
    /// `blobs/uploads/?mount=<digest>&from=<repository>`: mounts a blob of another
    /// repository of the same registry.
    UploadMount {
        /// The blob.
        digest: Digest,
        /// The repository it is mounted from.
        from: String,
    },
    /// `blobs/uploads/?digest=<digest>`: the whole blob in one `POST`.
    UploadWhole(Digest),
    /// `tags/list`, with a page's query (`n=`, `last=`).
    Tags(Option<String>),
    /// `/_catalog` of the registry, with a page's query.
    Catalog(Option<String>),
    /// `referrers/<digest>`, with a page's query (`artifactType=` on the first).
    Referrers {
        /// The subject.
        subject: Digest,
        /// The page's query.
        query: Option<String>,
    },
}

impl Endpoint {
    /// The path below the API root and the endpoint's own query.
    fn path_and_query(&self, repository: &str) -> (String, Option<String>) {
        let pairs = |pairs: &[(&str, &str)]| {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs {
                s.append_pair(k, v);
            }
            Some(s.finish())
        };
        let in_repo = |rest: &str| format!("/{repository}/{rest}");
        match self {
            Endpoint::Root => ("/".to_string(), None),
            Endpoint::Manifest(r) => (in_repo(&format!("manifests/{r}")), None),
            Endpoint::Blob(d) => (in_repo(&format!("blobs/{d}")), None),
            Endpoint::UploadStart => (in_repo("blobs/uploads/"), None),
            Endpoint::UploadMount { digest, from } => (
                in_repo("blobs/uploads/"),
                pairs(&[("mount", &digest.to_string()), ("from", from)]),
            ),
            Endpoint::UploadWhole(d) => (
                in_repo("blobs/uploads/"),
                pairs(&[("digest", &d.to_string())]),
            ),
            Endpoint::Tags(q) => (in_repo("tags/list"), q.clone()),
            Endpoint::Catalog(q) => ("/_catalog".to_string(), q.clone()),
            Endpoint::Referrers { subject, query } => {
                (in_repo(&format!("referrers/{subject}")), query.clone())
            }
        }
    }

    /// The first page of `subject`'s referrers, of `artifact_type` only when given.
    pub(crate) fn referrers(subject: Digest, artifact_type: Option<&str>) -> Endpoint {
        let query = artifact_type.map(|t| {
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("artifactType", t)
                .finish()
        });
        Endpoint::Referrers { subject, query }
    }

    /// The endpoint's URL on the registry at `base` (`scheme://host[:port]/`): the API
    /// root (`/v2`, or a mirror's path), the endpoint's path and query, then `extra`
    /// pairs (a mirror's `ns=`) not already in the query.
    pub(crate) fn url(
        &self,
        base: &Url,
        repository: &str,
        api_root: &str,
        extra: &[(String, String)],
    ) -> Result<Url, Error> {
        let (path, query) = self.path_and_query(repository);
        let full = format!("{}{path}", api_root.trim_end_matches('/'));
        let mut url = base.join(&full).map_err(|e| Error::InvalidUrl {
            url: full.chars().take(200).collect(),
            reason: e.to_string(),
        })?;
        url.set_query(query.as_deref());
        let missing: Vec<_> = extra
            .iter()
            .filter(|(k, _)| !url.query_pairs().any(|(have, _)| have == k.as_str()))
            .collect();
        if !missing.is_empty() {
            url.query_pairs_mut().extend_pairs(missing);
        }
        Ok(url)
    }

    /// For a list endpoint (tags, catalog): when `link` (a URL the registry gave as the
    /// next page) is a page of this same list under `api_root`, its query; `None` for
    /// any other path.
    pub(crate) fn page_query(
        &self,
        link: &Url,
        repository: &str,
        api_root: &str,
    ) -> Option<Option<String>> {
        let (path, _) = self.path_and_query(repository);
        let expected = format!("{}{path}", api_root.trim_end_matches('/'));
        // compare as the URL parser normalises paths (percent-encoding)
        let expected = Url::parse("http://x/").ok()?.join(&expected).ok()?;
        (link.path() == expected.path()).then(|| link.query().map(str::to_string))
    }

    /// The same list endpoint at another page.
    pub(crate) fn with_page(&self, query: Option<String>) -> Endpoint {
        match self {
            Endpoint::Tags(_) => Endpoint::Tags(query),
            Endpoint::Catalog(_) => Endpoint::Catalog(query),
            Endpoint::Referrers { subject, .. } => Endpoint::Referrers {
                subject: subject.clone(),
                query,
            },
            other => other.clone(),
        }
    }

    /// How the endpoint is named in messages: its path and query below the API root.
    pub(crate) fn describe(&self, repository: &str) -> String {
        match self.path_and_query(repository) {
            (p, Some(q)) => format!("{p}?{q}"),
            (p, None) => p,
        }
    }
}

/// Where an operation's requests go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// An endpoint of the registry's API.
    Api(Endpoint),
    /// A URL the registry gave (an upload session's `Location`), sent as given: no API
    /// root, no mirror query.
    Given(Url),
    /// A token realm, as the challenge named it (the token query is the auth session's).
    Realm(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://r.example/").unwrap()
    }

    #[test]
    fn endpoints_render_under_the_api_root_with_the_mirror_query() {
        let d = Digest::sha256(b"x");
        let ns = vec![("ns".to_string(), "docker.io".to_string())];
        let u = Endpoint::Blob(d.clone())
            .url(&base(), "a/b", "/v2", &[])
            .unwrap();
        assert_eq!(u.as_str(), format!("https://r.example/v2/a/b/blobs/{d}"));
        let u = Endpoint::Tags(Some("n=2".into()))
            .url(&base(), "a", "/mirror/v2/", &ns)
            .unwrap();
        assert_eq!(
            u.as_str(),
            "https://r.example/mirror/v2/a/tags/list?n=2&ns=docker.io"
        );
        let u = Endpoint::UploadMount {
            digest: d.clone(),
            from: "x/y".into(),
        }
        .url(&base(), "a", "/v2", &[])
        .unwrap();
        assert_eq!(
            u.as_str(),
            format!(
                "https://r.example/v2/a/blobs/uploads/?mount=sha256%3A{}&from=x%2Fy",
                d.hex()
            )
        );
        // a pair the query already has is not added twice
        let u = Endpoint::Catalog(Some("n=1&ns=docker.io".into()))
            .url(&base(), "", "/v2", &ns)
            .unwrap();
        assert_eq!(u.as_str(), "https://r.example/v2/_catalog?n=1&ns=docker.io");
    }

    #[test]
    fn a_page_link_counts_only_under_the_same_list_and_root() {
        let catalog = Endpoint::Catalog(None);
        let link = Url::parse("https://r.example/custom/_catalog?n=2&last=b").unwrap();
        assert_eq!(
            catalog.page_query(&link, "", "/custom"),
            Some(Some("n=2&last=b".into()))
        );
        assert_eq!(catalog.page_query(&link, "", "/v2"), None);
        let tags = Endpoint::Tags(None);
        let link = Url::parse("https://r.example/v2/a/tags/list").unwrap();
        assert_eq!(tags.page_query(&link, "a", "/v2"), Some(None));
        assert_eq!(tags.page_query(&link, "b", "/v2"), None);
    }
}
