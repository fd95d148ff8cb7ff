//! The tag-list goal: one page at a time, following `Link` on the registry only, with a
//! bound on the number of pages.

use http::header;

use crate::error::{redact_url, Error};

use super::op::{Op, OpKind, OpState};
use super::types::{Action, Event};
use super::Pull;

impl Pull {
    pub(super) fn on_tags(&mut self, ix: usize, body: &[u8]) {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        self.ops[ix].state = OpState::Done;
        // Only pages on the registry itself are followed.
        let base = self.ops[ix]
            .sent_url
            .clone()
            .unwrap_or_else(|| self.registry_url());
        let problem = |problem: String| Error::TagList {
            url: redact_url(&base),
            problem,
        };
        let list: TagList = match serde_json::from_slice(body) {
            Ok(l) => l,
            Err(e) => return self.fail(problem(format!("not a tag list: {e}"))),
        };
        self.out.push_back(Action::Event(Event::Tags {
            tags: list.tags.unwrap_or_default(),
        }));
        let headers = &self.ops[ix].incoming.headers;
        let Some(next) =
            crate::link::next_link(headers.get_all(header::LINK).iter().map(|v| v.as_bytes()))
        else {
            return;
        };
        match base.join(&next) {
            Ok(u) if self.is_registry_origin(&u) && u.path().ends_with("/tags/list") => {
                let path = match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_string(),
                };
                if self.pages.len() >= self.config.max_tag_pages as usize {
                    return self.fail(Error::TooMany {
                        what: format!("tag list pages of {}", self.reference.repository()),
                        limit: u64::from(self.config.max_tag_pages),
                        hint: "raise the page bound (--max-pages) if the repository really has that many tags".into(),
                    });
                }
                if !self.pages.insert(path.clone()) {
                    return self.fail(problem("its pages link back to a page already read".into()));
                }
                self.ops.push(Op::new(OpKind::Tags, path, OpState::Ready));
            }
            _ => self.fail(problem(format!(
                "the next page's link {:?} leaves the registry",
                next.chars().take(200).collect::<String>()
            ))),
        }
    }
}
