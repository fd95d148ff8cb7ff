//! The referrers goal: the manifests that name the reference's manifest as their
//! `subject`. The registry's referrers API first; when it answers `404` (no such API),
//! the referrers tag, as the distribution spec's fallback says. A tag reference is
//! resolved to its digest first (a referrers list is keyed by digest). Recursive, it then
//! lists the referrers of each referrer (signatures of SBOMs), breadth first, each
//! manifest once, at most [`MAX_REFERRERS_FOLLOWED`] of them.

use std::collections::{HashSet, VecDeque};

use std::time::Instant;

use crate::digest::Digest;
use crate::endpoint::{Endpoint, Target};
use crate::engine::{Call, Engine, Fetched, History};
use crate::error::{redact_url, Error};
use crate::machine::{Goal, Machine};
use crate::manifest::Descriptor;
use crate::manifest::{Manifest, OCI_INDEX};
use crate::reference::Reference;
use crate::referrers::{fallback_tag, matches_filter, FILTERS_APPLIED, MAX_REFERRERS_FOLLOWED};
use crate::Config;
use crate::{Event, ReferrersVia};

use super::lists::Pages;
use super::manifest::{self, Wanted};

/// Where the goal stands.
#[derive(Debug)]
enum Stage {
    /// Fetching the manifest a tag names, for its digest.
    Resolving(Wanted),
    /// Reading the referrers API's pages.
    Api,
    /// Reading the referrers tag (the API answered 404).
    Tag(Wanted),
}

/// The manifests still to list and those already met, in a recursive walk.
#[derive(Debug, Default)]
struct Walk {
    next: VecDeque<Digest>,
    /// Every manifest met: the first subject and the referrers found.
    seen: HashSet<Digest>,
    /// Referrers found.
    found: usize,
}

/// Lists the referrers of one manifest (and, recursive, of theirs): one
/// [`Event::Referrers`] per page.
#[derive(Debug)]
pub(crate) struct Referrers {
    artifact_type: Option<String>,
    subject: Option<Digest>,
    stage: Stage,
    pages: Pages,
    /// The page of the API asked for last.
    current: Option<Endpoint>,
    walk: Option<Walk>,
}

impl Referrers {
    pub(crate) fn start(
        engine: &mut Engine,
        artifact_type: Option<String>,
        recursive: bool,
    ) -> Referrers {
        let mut goal = Referrers {
            artifact_type: artifact_type.filter(|t| !t.is_empty()),
            subject: None,
            stage: Stage::Api,
            pages: Pages::default(),
            current: None,
            walk: recursive.then(Walk::default),
        };
        match engine.reference().digest().cloned() {
            Some(d) => goal.ask_api(engine, d),
            None => {
                let wanted = Wanted {
                    reference: engine.reference().manifest_path_ref(),
                    expected: None,
                    platform: None,
                };
                manifest::fetch(engine, &wanted);
                goal.stage = Stage::Resolving(wanted);
            }
        }
        goal
    }

    /// A listing of the current subject ended: in a walk, the next manifest's starts.
    fn subject_done(&mut self, engine: &mut Engine) {
        if engine.ended() {
            return;
        }
        if let Some(d) = self.walk.as_mut().and_then(|w| w.next.pop_front()) {
            self.pages = Pages::default();
            self.ask_api(engine, d);
        }
    }

    /// Emits one page of `subject`'s referrers; in a walk, queues those not met yet.
    fn found(
        &mut self,
        engine: &mut Engine,
        subject: Digest,
        referrers: Vec<Descriptor>,
        via: ReferrersVia,
    ) {
        if let Some(w) = self.walk.as_mut() {
            for d in &referrers {
                if w.seen.insert(d.digest.clone()) {
                    w.found += 1;
                    if w.found > MAX_REFERRERS_FOLLOWED {
                        return engine.fail(Error::List {
                            what: "referrers",
                            url: engine.reference().to_string(),
                            problem: format!(
                                "more than {MAX_REFERRERS_FOLLOWED} referrers: not followed"
                            ),
                        });
                    }
                    w.next.push_back(d.digest.clone());
                }
            }
        }
        engine.emit(Event::Referrers {
            subject,
            referrers,
            via,
        });
    }

    fn ask_api(&mut self, engine: &mut Engine, subject: Digest) {
        let first = Endpoint::referrers(subject.clone(), self.artifact_type.as_deref());
        if let Some(w) = self.walk.as_mut() {
            // a registry that lists a manifest among its own referrers is not followed
            w.seen.insert(subject.clone());
        }
        self.subject = Some(subject);
        self.stage = Stage::Api;
        self.ask_page(engine, first);
    }

    fn ask_page(&mut self, engine: &mut Engine, page: Endpoint) {
        self.pages.ask(engine, &page);
        self.current = Some(page.clone());
        let limit = engine.config().list_page_limit;
        let mut call = Call::get(OCI_INDEX, "referrers list", limit);
        // 404: the registry has no referrers API (the spec's signal to fall back)
        call.answers = &[404];
        engine.call(
            Target::Api(page),
            "referrers".into(),
            call,
            History::default(),
        );
    }

    fn ask_tag(&mut self, engine: &mut Engine, subject: &Digest) {
        let wanted = Wanted {
            reference: fallback_tag(subject),
            expected: None,
            platform: None,
        };
        let target = Target::Api(Endpoint::Manifest(wanted.reference.clone()));
        let limit = engine.config().manifest_limit;
        let mut call = Call::get(OCI_INDEX, "referrers index", limit);
        // 404: no referrers were ever recorded under the tag
        call.answers = &[404];
        let what = format!("referrers tag {}", wanted.reference);
        engine.call(target, what, call, History::default());
        self.stage = Stage::Tag(wanted);
    }

    fn api_page(&mut self, engine: &mut Engine, fetched: Fetched) {
        let Some(subject) = self.subject.clone() else {
            return;
        };
        if fetched.status == 404 {
            return self.ask_tag(engine, &subject);
        }
        let index = match Manifest::parse(OCI_INDEX, &fetched.body) {
            Ok((Manifest::Index(ix), _)) => ix,
            Ok(_) => return engine.fail(not_a_list(&fetched, "an image manifest".into())),
            Err(e) => return engine.fail(not_a_list(&fetched, e.to_string())),
        };
        let filtered = self.artifact_type.is_some()
            && fetched
                .headers
                .get_all(FILTERS_APPLIED)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|f| f.trim() == "artifactType");
        let wanted = self.artifact_type.as_deref();
        let referrers = index
            .manifests
            .into_iter()
            .filter(|d| filtered || matches_filter(d, wanted))
            .collect();
        self.found(
            engine,
            subject.clone(),
            referrers,
            ReferrersVia::Api { filtered },
        );
        if engine.ended() {
            // the walk went past its bound
            return;
        }
        let of = subject.to_string();
        let Some(current) = self.current.clone() else {
            return;
        };
        let next = self.pages.next(
            engine,
            &current,
            &fetched.url,
            &fetched.headers,
            "referrers",
            &of,
        );
        match next {
            Ok(Some(page)) => self.ask_page(engine, page),
            Ok(None) => self.subject_done(engine),
            Err(e) => engine.fail(e),
        }
    }

    fn tag_index(&mut self, engine: &mut Engine, wanted: Wanted, fetched: Fetched) {
        let Some(subject) = self.subject.clone() else {
            return;
        };
        let referrers = if fetched.status == 404 {
            // the spec: no index under the tag means no referrers
            Vec::new()
        } else {
            match manifest::verify(&wanted, fetched) {
                Ok(v) => match v.manifest {
                    Manifest::Index(ix) => ix.manifests,
                    Manifest::Image(_) => {
                        return engine.fail(Error::List {
                            what: "referrers",
                            url: wanted.reference,
                            problem: "the referrers tag holds an image manifest, not an index"
                                .into(),
                        })
                    }
                },
                Err(e) => return engine.fail(e),
            }
        };
        let wanted_type = self.artifact_type.as_deref();
        let referrers = referrers
            .into_iter()
            .filter(|d| matches_filter(d, wanted_type))
            .collect();
        self.found(engine, subject, referrers, ReferrersVia::TagSchema);
        self.subject_done(engine);
    }
}

impl Goal for Referrers {
    fn on_fetched(&mut self, engine: &mut Engine, fetched: Fetched) {
        match std::mem::replace(&mut self.stage, Stage::Api) {
            Stage::Resolving(wanted) => match manifest::verify(&wanted, fetched) {
                Ok(v) => self.ask_api(engine, v.digest),
                Err(e) => engine.fail(e),
            },
            Stage::Api => self.api_page(engine, fetched),
            Stage::Tag(wanted) => self.tag_index(engine, wanted, fetched),
        }
    }
}

impl Machine {
    /// Lists the referrers of the manifest `reference` names (a tag is resolved to its
    /// digest first): the registry's referrers API, or, when it answers `404`, the
    /// referrers tag. With `artifact_type`, only referrers of that type (filtered by the
    /// client when the registry did not). One [`Event::Referrers`] per page, then `Done`.
    pub fn list_referrers(
        config: Config,
        reference: Reference,
        artifact_type: Option<String>,
        now: Instant,
    ) -> Machine {
        Machine::start(config, reference, now, |e| {
            Ok(Referrers::start(e, artifact_type, false))
        })
    }

    /// Lists every referrer of the manifest `reference` names, and theirs (signatures of
    /// SBOMs), breadth first, each manifest once, as [`Machine::list_referrers`] lists
    /// one: one [`Event::Referrers`] per page, its `subject` saying whose. More than
    /// [`MAX_REFERRERS_FOLLOWED`] fails. For `ocireg pull --include-referrers` and
    /// `copy --include-referrers`.
    pub fn list_referrers_closure(config: Config, reference: Reference, now: Instant) -> Machine {
        Machine::start(config, reference, now, |e| {
            Ok(Referrers::start(e, None, true))
        })
    }
}

fn not_a_list(fetched: &Fetched, problem: String) -> Error {
    Error::List {
        what: "referrers",
        url: redact_url(&fetched.url),
        problem: format!("not a referrers index: {problem}"),
    }
}
