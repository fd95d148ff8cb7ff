//! The list goals: a repository's tags (`/v2/<name>/tags/list`) or the registry's
//! repositories (`/v2/_catalog`), one page at a time, following `Link` on the registry
//! only, with a bound on the number of pages.

use std::collections::HashSet;

use http::{header, HeaderMap};
use url::Url;

use crate::engine::{Engine, Fetched};
use crate::error::{redact_url, Error};
use crate::types::{Action, Event};

/// What is listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// The tags of the reference's repository: one [`Event::Tags`] per page.
    Tags,
    /// The repositories of the registry: one [`Event::Repositories`] per page.
    Catalog,
}

impl ListKind {
    /// What a page is called in messages.
    fn name(self) -> &'static str {
        match self {
            ListKind::Tags => "tag list",
            ListKind::Catalog => "catalog",
        }
    }

    /// Whether `path` is a page of this list (a `Link` elsewhere is not followed).
    fn is_page(self, path: &str) -> bool {
        match self {
            ListKind::Tags => path.ends_with("/tags/list"),
            ListKind::Catalog => path == "/v2/_catalog",
        }
    }
}

/// The pages of one list asked for so far: a `Link` back to one of them is a loop, and
/// more than `max_tag_pages` of them is an error.
#[derive(Debug, Default)]
pub(crate) struct Pages {
    seen: HashSet<String>,
}

impl Pages {
    /// Records `path` as asked for.
    pub(crate) fn ask(&mut self, path: &str) {
        self.seen.insert(path.to_string());
    }

    /// The page the response at `base` links to next (`Link: <…>; rel="next"`), as a
    /// registry path and query: `Ok(None)` at the end of the list. A link that leaves the
    /// registry, is not a page of this list (`is_page` of its path), loops or goes past
    /// the page bound is an error (`what`/`of` name the list in it).
    pub(crate) fn next(
        &self,
        engine: &Engine,
        base: &Url,
        headers: &HeaderMap,
        what: &'static str,
        of: &str,
        is_page: impl Fn(&str) -> bool,
    ) -> Result<Option<String>, Error> {
        let problem = |problem: String| Error::List {
            what,
            url: redact_url(base),
            problem,
        };
        let links = headers.get_all(header::LINK);
        let Some(next) = crate::link::next_link(links.iter().map(|v| v.as_bytes())) else {
            return Ok(None);
        };
        let url = match base.join(&next) {
            Ok(u) if engine.is_registry_origin(&u) && is_page(u.path()) => u,
            _ => {
                return Err(problem(format!(
                    "the next page's link {:?} leaves the {what}",
                    next.chars().take(200).collect::<String>(),
                )))
            }
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let max = engine.config().max_tag_pages;
        if self.seen.len() >= max as usize {
            return Err(Error::TooMany {
                what: format!("{what} pages of {of}"),
                limit: u64::from(max),
                hint: "raise the page bound (--max-pages) if there really are that many".into(),
            });
        }
        if self.seen.contains(&path) {
            return Err(problem("its pages link back to a page already read".into()));
        }
        Ok(Some(path))
    }
}

/// Lists tags or repositories, page by page.
#[derive(Debug)]
pub(crate) struct List {
    kind: ListKind,
    pages: Pages,
}

impl List {
    pub(crate) fn start(engine: &mut Engine, kind: ListKind) -> List {
        let mut path = match kind {
            ListKind::Tags => format!("/v2/{}/tags/list", engine.reference().repository()),
            ListKind::Catalog => "/v2/_catalog".to_string(),
        };
        if let Some(n) = engine.config().tag_page_size {
            path.push_str(&format!("?n={n}"));
        }
        let mut goal = List {
            kind,
            pages: Pages::default(),
        };
        goal.ask(engine, path);
        goal
    }

    fn ask(&mut self, engine: &mut Engine, path: String) {
        self.pages.ask(&path);
        let limit = engine.config().manifest_limit;
        let what = format!("{} {path}", self.kind.name());
        engine.fetch(path, what, "application/json", self.kind.name(), limit);
    }

    pub(crate) fn on_fetched(&mut self, engine: &mut Engine, fetched: Fetched) {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let kind = self.kind;
        let page: Page = match serde_json::from_slice(&fetched.body) {
            Ok(l) => l,
            Err(e) => {
                return engine.fail(Error::List {
                    what: kind.name(),
                    url: redact_url(&fetched.url),
                    problem: format!("not a {}: {e}", kind.name()),
                })
            }
        };
        engine.emit(Action::Event(match kind {
            ListKind::Tags => Event::Tags {
                tags: page.tags.unwrap_or_default(),
            },
            ListKind::Catalog => Event::Repositories {
                names: page.repositories.unwrap_or_default(),
            },
        }));
        let of = match kind {
            ListKind::Tags => engine.reference().repository().to_string(),
            ListKind::Catalog => engine.reference().registry().to_string(),
        };
        // Only pages of this list on the registry itself are followed.
        let next = self.pages.next(
            engine,
            &fetched.url,
            &fetched.headers,
            kind.name(),
            &of,
            |p| kind.is_page(p),
        );
        match next {
            Ok(Some(path)) => self.ask(engine, path),
            Ok(None) => {}
            Err(e) => engine.fail(e),
        }
    }
}
