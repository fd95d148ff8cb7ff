//! The tag-list goal: one page at a time, following `Link` on the registry only, with a
//! bound on the number of pages.

use std::collections::HashSet;

use http::header;

use crate::engine::{Engine, Fetched};
use crate::error::{redact_url, Error};
use crate::types::{Action, Event};

/// Lists a repository's tags: one [`Event::Tags`] per page.
#[derive(Debug)]
pub(crate) struct TagList {
    /// Pages asked for (a `Link` back to one of them is a loop).
    pages: HashSet<String>,
}

impl TagList {
    pub(crate) fn start(engine: &mut Engine) -> TagList {
        let mut path = format!("/v2/{}/tags/list", engine.reference().repository());
        if let Some(n) = engine.config().tag_page_size {
            path.push_str(&format!("?n={n}"));
        }
        let mut goal = TagList {
            pages: HashSet::new(),
        };
        goal.ask(engine, path);
        goal
    }

    fn ask(&mut self, engine: &mut Engine, path: String) {
        self.pages.insert(path.clone());
        let limit = engine.config().manifest_limit;
        let what = format!("tag list {path}");
        engine.fetch(path, what, "application/json", "tag list", limit);
    }

    pub(crate) fn on_fetched(&mut self, engine: &mut Engine, fetched: Fetched) {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        // Only pages on the registry itself are followed.
        let base = fetched.url;
        let problem = |problem: String| Error::TagList {
            url: redact_url(&base),
            problem,
        };
        let page: Page = match serde_json::from_slice(&fetched.body) {
            Ok(l) => l,
            Err(e) => return engine.fail(problem(format!("not a tag list: {e}"))),
        };
        engine.emit(Action::Event(Event::Tags {
            tags: page.tags.unwrap_or_default(),
        }));
        let links = fetched.headers.get_all(header::LINK);
        let Some(next) = crate::link::next_link(links.iter().map(|v| v.as_bytes())) else {
            return;
        };
        match base.join(&next) {
            Ok(u) if engine.is_registry_origin(&u) && u.path().ends_with("/tags/list") => {
                let path = match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_string(),
                };
                let max = engine.config().max_tag_pages;
                if self.pages.len() >= max as usize {
                    return engine.fail(Error::TooMany {
                        what: format!("tag list pages of {}", engine.reference().repository()),
                        limit: u64::from(max),
                        hint: "raise the page bound (--max-pages) if the repository really has that many tags".into(),
                    });
                }
                if self.pages.contains(&path) {
                    return engine
                        .fail(problem("its pages link back to a page already read".into()));
                }
                self.ask(engine, path);
            }
            _ => engine.fail(problem(format!(
                "the next page's link {:?} leaves the registry",
                next.chars().take(200).collect::<String>()
            ))),
        }
    }
}
