//! The push machine: a plan (blobs and manifests) in, requests out, the repository
//! holding every piece at the end.
//!
//! A [`Push`] is the engine driven toward the push goal (`goals/push.rs`). It asks for
//! blob bytes by range ([`Action::Upload`]) and never holds a blob; manifests travel in
//! the plan (they are small and bounded).

use std::collections::HashSet;
use std::time::Instant;

use crate::engine::Engine;
use crate::error::Error;
use crate::goals::push::Push as PushGoal;
use crate::manifest::Manifest;
use crate::reference::Reference;
use crate::types::{Action, Config, Input, RequestId};

pub use crate::goals::push::{PushManifest, PushPlan};

/// The repository a copy from `source` to `target` mounts its blobs from: the source's,
/// when both are on one registry and the repositories differ. None otherwise: a blob
/// cannot be mounted from another registry, and a copy into its own repository finds
/// every blob present.
pub fn mount_source(source: &Reference, target: &Reference) -> Option<String> {
    (source.registry() == target.registry() && source.repository() != target.repository())
        .then(|| source.repository().to_string())
}

/// The push state machine. Driven like [`Pull`](crate::Pull), plus
/// [`Action::Upload`]: start the exchange with the named range of the blob as its body.
pub struct Push {
    engine: Engine,
    goal: Option<PushGoal>,
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Push")
            .field("target", self.engine.reference())
            .finish()
    }
}

impl Push {
    /// Starts pushing `plan` to `target`'s repository (its tag, if any, is added to the
    /// plan's tags). A plan that cannot be pushed as given (a manifest whose bytes do not
    /// match its descriptor, a blob listed twice, a manifest before what it references)
    /// fails at the first poll.
    pub fn new(config: Config, target: Reference, mut plan: PushPlan, now: Instant) -> Push {
        if let Some(t) = target.tag() {
            if !plan.tags.iter().any(|x| x == t) {
                plan.tags.insert(0, t.to_string());
            }
        }
        let mut engine = Engine::new(config, target, now);
        let goal = match check(&plan) {
            Ok(()) => Some(PushGoal::start(&mut engine, plan)),
            Err(e) => {
                engine.fail(e);
                None
            }
        };
        Push { engine, goal }
    }

    /// The target.
    pub fn reference(&self) -> &Reference {
        self.engine.reference()
    }

    /// Something happened to exchange `id`.
    pub fn handle_input(&mut self, id: RequestId, input: Input, now: Instant) {
        self.engine.handle_input(id, input, now);
        self.settle();
    }

    fn settle(&mut self) {
        let Some(goal) = self.goal.as_mut() else {
            return;
        };
        loop {
            if let Some(f) = self.engine.take_fetched() {
                goal.on_fetched(&mut self.engine, f);
            } else if let Some(d) = self.engine.take_due() {
                goal.on_due(&mut self.engine, d);
            } else {
                return;
            }
        }
    }

    /// Stops the push: every open exchange is aborted, and it ends with
    /// [`Error::Cancelled`].
    pub fn cancel(&mut self, now: Instant) {
        self.engine.cancel(now);
    }

    /// The next thing to do (as [`Pull::poll_action`](crate::Pull::poll_action)).
    pub fn poll_action(&mut self, now: Instant) -> Action {
        self.settle();
        let a = self.engine.poll_action(now);
        // A retry that fell due in this poll is the goal's to send.
        if matches!(a, Action::Wait { .. }) {
            self.settle();
            return self.engine.poll_action(now);
        }
        a
    }

    /// The earliest time at which [`Push::poll_action`] has work without new input.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.engine.next_timeout()
    }
}

/// What makes a plan pushable: manifests that are what their descriptors say, every
/// blob once, and every reference pushed before what refers to it.
fn check(plan: &PushPlan) -> Result<(), Error> {
    let mut blobs = HashSet::new();
    for b in &plan.blobs {
        b.validate()?;
        if !blobs.insert(&b.digest) {
            return Err(Error::Upload {
                digest: b.digest.clone(),
                problem: "the plan lists this blob twice".into(),
            });
        }
    }
    let mut earlier = HashSet::new();
    for m in &plan.manifests {
        let d = &m.descriptor;
        let actual = crate::digest::Digest::of(d.digest.algorithm(), &m.bytes);
        if actual != d.digest || m.bytes.len() as u64 != d.len() {
            return Err(Error::DigestMismatch {
                what: "a manifest of the push plan".into(),
                expected: d.digest.clone(),
                actual,
            });
        }
        let (manifest, _) = Manifest::parse(&d.media_type, &m.bytes)?;
        let missing = match &manifest {
            Manifest::Image(im) => im
                .blobs()
                .find(|b| b.data.is_none() && b.size > 0 && !blobs.contains(&b.digest))
                .map(|b| (b.digest.clone(), "a blob it lists is not in the plan")),
            Manifest::Index(ix) => ix
                .manifests
                .iter()
                .find(|c| !earlier.contains(&c.digest))
                .map(|c| {
                    (
                        c.digest.clone(),
                        "a manifest it lists is not pushed before it",
                    )
                }),
        };
        if let Some((digest, problem)) = missing {
            return Err(Error::Upload {
                digest,
                problem: format!("{problem} (manifest {})", d.digest),
            });
        }
        earlier.insert(d.digest.clone());
    }
    if plan.manifests.is_empty() && plan.blobs.is_empty() {
        return Err(Error::Upload {
            digest: crate::digest::Digest::sha256(b""),
            problem: "the plan is empty".into(),
        });
    }
    Ok(())
}

impl crate::types::Machine for Push {
    fn handle_input(&mut self, id: RequestId, input: Input, now: Instant) {
        Push::handle_input(self, id, input, now)
    }
    fn poll_action(&mut self, now: Instant) -> Action {
        Push::poll_action(self, now)
    }
    fn next_timeout(&self) -> Option<Instant> {
        Push::next_timeout(self)
    }
    fn cancel(&mut self, now: Instant) {
        Push::cancel(self, now)
    }
}
