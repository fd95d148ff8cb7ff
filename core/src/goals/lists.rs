//! The list goals: a repository's tags (`/v2/<name>/tags/list`) or the registry's
//! repositories (`/v2/_catalog`), one page at a time, following `Link` on the registry
//! only, with a bound on the number of pages.

use std::collections::HashSet;

use http::{header, HeaderMap};
use url::Url;

use std::time::Instant;

use crate::endpoint::Endpoint;
use crate::engine::{Engine, Fetched};
use crate::error::{redact_url, Error};
use crate::machine::{Goal, Machine};
use crate::reference::Reference;
use crate::Config;
use crate::Event;

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
}

/// The pages of one list asked for so far: a `Link` back to one of them is a loop, and
/// more than `max_tag_pages` of them is an error.
#[derive(Debug, Default)]
pub(crate) struct Pages {
    seen: HashSet<String>,
}

impl Pages {
    /// Records `page` as asked for.
    pub(crate) fn ask(&mut self, engine: &Engine, page: &Endpoint) {
        self.seen
            .insert(page.describe(engine.reference().repository()));
    }

    /// The page the response to `current` at `base` links to next (`Link: <…>;
    /// rel="next"`): `Ok(None)` at the end of the list. A link that leaves the registry,
    /// is not a page of the same list under the API root, loops or goes past the page
    /// bound is an error (`what`/`of` name the list in it).
    pub(crate) fn next(
        &self,
        engine: &Engine,
        current: &Endpoint,
        base: &Url,
        headers: &HeaderMap,
        what: &'static str,
        of: &str,
    ) -> Result<Option<Endpoint>, Error> {
        let problem = |problem: String| Error::List {
            what,
            url: redact_url(base),
            problem,
        };
        let links = headers.get_all(header::LINK);
        let Some(next) = crate::link::next_link(links.iter().map(|v| v.as_bytes())) else {
            return Ok(None);
        };
        let repository = engine.reference().repository();
        let query = match base.join(&next) {
            Ok(u) if engine.is_registry_origin(&u) => {
                current.page_query(&u, repository, &engine.config().api_root)
            }
            _ => None,
        };
        let Some(query) = query else {
            return Err(problem(format!(
                "the next page's link {:?} leaves the {what}",
                next.chars().take(200).collect::<String>(),
            )));
        };
        let page = current.with_page(query);
        let max = engine.config().max_tag_pages;
        if self.seen.len() >= max as usize {
            return Err(Error::TooMany {
                what: format!("{what} pages of {of}"),
                limit: u64::from(max),
                hint: "raise the page bound (--max-pages) if there really are that many".into(),
            });
        }
        if self.seen.contains(&page.describe(repository)) {
            return Err(problem("its pages link back to a page already read".into()));
        }
        Ok(Some(page))
    }
}

/// Lists tags or repositories, page by page.
#[derive(Debug)]
pub(crate) struct List {
    kind: ListKind,
    pages: Pages,
    /// The page asked for last.
    current: Endpoint,
}

impl List {
    pub(crate) fn start(engine: &mut Engine, kind: ListKind) -> List {
        let query = engine.config().tag_page_size.map(|n| format!("n={n}"));
        let first = match kind {
            ListKind::Tags => Endpoint::Tags(query),
            ListKind::Catalog => Endpoint::Catalog(query),
        };
        let mut goal = List {
            kind,
            pages: Pages::default(),
            current: first.clone(),
        };
        goal.ask(engine, first);
        goal
    }

    fn ask(&mut self, engine: &mut Engine, page: Endpoint) {
        self.pages.ask(engine, &page);
        let limit = engine.config().list_page_limit;
        let what = format!(
            "{} {}",
            self.kind.name(),
            page.describe(engine.reference().repository())
        );
        self.current = page.clone();
        engine.fetch(page, what, "application/json", self.kind.name(), limit);
    }
}

impl Goal for List {
    fn on_fetched(&mut self, engine: &mut Engine, fetched: Fetched) {
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
        engine.emit(match kind {
            ListKind::Tags => Event::Tags {
                tags: page.tags.unwrap_or_default(),
            },
            ListKind::Catalog => Event::Repositories {
                names: page.repositories.unwrap_or_default(),
            },
        });
        let of = match kind {
            ListKind::Tags => engine.reference().repository().to_string(),
            ListKind::Catalog => engine.reference().registry().to_string(),
        };
        // Only pages of this list on the registry itself are followed.
        let next = self.pages.next(
            engine,
            &self.current,
            &fetched.url,
            &fetched.headers,
            kind.name(),
            &of,
        );
        match next {
            Ok(Some(page)) => self.ask(engine, page),
            Ok(None) => {}
            Err(e) => engine.fail(e),
        }
    }
}

impl Machine {
    /// Lists the tags of `repository` (a reference whose tag and digest are ignored),
    /// following `Link` pagination: one [`Event::Tags`] per page, then `Done`.
    pub fn list_tags(config: Config, repository: Reference, now: Instant) -> Machine {
        Machine::start(config, repository, now, |e| {
            Ok(List::start(e, ListKind::Tags))
        })
    }

    /// Lists the repositories of `registry` (`/v2/_catalog`), following `Link`
    /// pagination: one [`Event::Repositories`] per page, then `Done`. Many registries
    /// refuse it (401, 403, 404 or `UNSUPPORTED`): the machine then fails with that
    /// status.
    pub fn catalog(config: Config, registry: Reference, now: Instant) -> Machine {
        let registry = Reference::registry_root(registry.registry()).unwrap_or(registry);
        Machine::start(config, registry, now, |e| {
            Ok(List::start(e, ListKind::Catalog))
        })
    }
}
