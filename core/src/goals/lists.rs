//! The list goals: a repository's tags (`/v2/<name>/tags/list`) or the registry's
//! repositories (`/v2/_catalog`), one page at a time, following `Link` on the registry
//! only, with a bound on the number of pages.

use std::collections::HashSet;

use http::header;

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

/// Lists tags or repositories, page by page.
#[derive(Debug)]
pub(crate) struct List {
    kind: ListKind,
    /// Pages asked for (a `Link` back to one of them is a loop).
    pages: HashSet<String>,
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
            pages: HashSet::new(),
        };
        goal.ask(engine, path);
        goal
    }

    fn ask(&mut self, engine: &mut Engine, path: String) {
        self.pages.insert(path.clone());
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
        // Only pages on the registry itself are followed.
        let base = fetched.url;
        let problem = |problem: String| Error::TagList {
            url: redact_url(&base),
            problem,
        };
        let page: Page = match serde_json::from_slice(&fetched.body) {
            Ok(l) => l,
            Err(e) => return engine.fail(problem(format!("not a {}: {e}", self.kind.name()))),
        };
        engine.emit(Action::Event(match self.kind {
            ListKind::Tags => Event::Tags {
                tags: page.tags.unwrap_or_default(),
            },
            ListKind::Catalog => Event::Repositories {
                names: page.repositories.unwrap_or_default(),
            },
        }));
        let links = fetched.headers.get_all(header::LINK);
        let Some(next) = crate::link::next_link(links.iter().map(|v| v.as_bytes())) else {
            return;
        };
        match base.join(&next) {
            Ok(u) if engine.is_registry_origin(&u) && self.kind.is_page(u.path()) => {
                let path = match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_string(),
                };
                let max = engine.config().max_tag_pages;
                if self.pages.len() >= max as usize {
                    let of = match self.kind {
                        ListKind::Tags => {
                            format!("tag list pages of {}", engine.reference().repository())
                        }
                        ListKind::Catalog => {
                            format!("catalog pages of {}", engine.reference().registry())
                        }
                    };
                    return engine.fail(Error::TooMany {
                        what: of,
                        limit: u64::from(max),
                        hint: "raise the page bound (--max-pages) if there really are that many"
                            .into(),
                    });
                }
                if self.pages.contains(&path) {
                    return engine
                        .fail(problem("its pages link back to a page already read".into()));
                }
                self.ask(engine, path);
            }
            _ => engine.fail(problem(format!(
                "the next page's link {:?} leaves the {}",
                next.chars().take(200).collect::<String>(),
                self.kind.name()
            ))),
        }
    }
}
