//! The pull machine: one image reference in, requests out, verified bytes delivered.
//!
//! A [`Pull`] is the engine (`engine/`: exchanges, timers, recovery, auth) driven
//! toward one goal: the image, its top manifest alone ([`Pull::inspect`]), the
//! repository's tags ([`Pull::list_tags`]) or the registry's repositories
//! ([`Pull::catalog`]). This file is only the public surface; the
//! work is in `engine/` and `goals/`.

use std::time::Instant;

use bytes::Bytes;
use http::Response;

use crate::digest::Verifier;
use crate::engine::Engine;
use crate::error::TransportError;
use crate::goals::image::ImagePull;
use crate::goals::inspect::Inspect;
use crate::goals::lists::{List, ListKind};
use crate::goals::referrers::Referrers;
use crate::manifest::Descriptor;
use crate::reference::Reference;

pub use crate::types::{
    Action, BlobId, Config, Event, Input, ManifestRole, PlatformChoice, RequestId, ResumeRefused,
};

#[allow(clippy::large_enum_variant)] // one per machine
/// What a [`Pull`] is for.
#[derive(Debug)]
enum Goal {
    Image(ImagePull),
    Inspect(Inspect),
    List(List),
    Referrers(Referrers),
    /// One blob, known by its descriptor: nothing to fetch but the blob itself.
    Blob,
}

/// The pull state machine. See the crate documentation for the driving contract.
pub struct Pull {
    engine: Engine,
    goal: Goal,
}

impl std::fmt::Debug for Pull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pull")
            .field("reference", self.engine.reference())
            .field("goal", &self.goal)
            .finish()
    }
}

impl Pull {
    /// Starts a pull of `reference`: its manifests (platform selection included) and
    /// every blob.
    pub fn new(config: Config, reference: Reference, now: Instant) -> Pull {
        let mut engine = Engine::new(config, reference, now);
        let goal = Goal::Image(ImagePull::start(&mut engine, true));
        Pull { engine, goal }
    }

    /// Fetches and verifies the manifests of the image, as [`Pull::new`] would (indexes,
    /// the chosen platforms), without any blob: [`Event::Manifest`] for each, then `Done`.
    /// For a copy within one registry, whose blobs are mounted rather than moved.
    pub fn manifests(config: Config, reference: Reference, now: Instant) -> Pull {
        let mut engine = Engine::new(config, reference, now);
        let goal = Goal::Image(ImagePull::start(&mut engine, false));
        Pull { engine, goal }
    }

    /// Downloads one blob of the reference's repository, known by its descriptor: its
    /// bytes delivered as [`BlobId`] 0 and verified against the digest at the end (a copy
    /// streams them on to another registry).
    pub fn blob(
        config: Config,
        reference: Reference,
        descriptor: Descriptor,
        now: Instant,
    ) -> Pull {
        let mut engine = Engine::new(config, reference, now);
        match descriptor.validate() {
            Ok(embedded) => {
                engine.download(descriptor, embedded);
            }
            Err(e) => engine.fail(e.into()),
        }
        Pull {
            engine,
            goal: Goal::Blob,
        }
    }

    /// Fetches and verifies only the manifest (or index) the reference names: one
    /// [`Event::Manifest`], then `Done`. For `ocireg inspect`.
    pub fn inspect(config: Config, reference: Reference, now: Instant) -> Pull {
        let mut engine = Engine::new(config, reference, now);
        let goal = Goal::Inspect(Inspect::start(&mut engine));
        Pull { engine, goal }
    }

    /// Lists the tags of the reference's repository (its tag and digest are ignored),
    /// following `Link` pagination: one [`Event::Tags`] per page, then `Done`.
    pub fn list_tags(config: Config, reference: Reference, now: Instant) -> Pull {
        let mut engine = Engine::new(config, reference, now);
        let goal = Goal::List(List::start(&mut engine, ListKind::Tags));
        Pull { engine, goal }
    }

    /// Lists the referrers of the manifest `reference` names (a tag is resolved to its
    /// digest first): the registry's referrers API, or, when it answers `404`, the
    /// referrers tag. With `artifact_type`, only referrers of that type (filtered by the
    /// client when the registry did not). One [`Event::Referrers`] per page, then `Done`.
    pub fn referrers(
        config: Config,
        reference: Reference,
        artifact_type: Option<String>,
        now: Instant,
    ) -> Pull {
        let mut engine = Engine::new(config, reference, now);
        let goal = Goal::Referrers(Referrers::start(&mut engine, artifact_type, false));
        Pull { engine, goal }
    }

    /// Lists every referrer of the manifest `reference` names, and theirs (signatures of
    /// SBOMs), breadth first, each manifest once, as [`Pull::referrers`] lists one: one
    /// [`Event::Referrers`] per page, its `subject` saying whose. More than
    /// [`MAX_REFERRERS_FOLLOWED`](crate::referrers::MAX_REFERRERS_FOLLOWED) fails. For
    /// `ocireg pull --include-referrers` and `copy --include-referrers`.
    pub fn referrers_closure(config: Config, reference: Reference, now: Instant) -> Pull {
        let mut engine = Engine::new(config, reference, now);
        let goal = Goal::Referrers(Referrers::start(&mut engine, None, true));
        Pull { engine, goal }
    }

    /// Lists the repositories of `registry` (`/v2/_catalog`), following `Link`
    /// pagination: one [`Event::Repositories`] per page, then `Done`. Many registries
    /// refuse it (401, 403, 404 or `UNSUPPORTED`): the pull then fails with that status.
    pub fn catalog(config: Config, registry: Reference, now: Instant) -> Pull {
        let registry = Reference::registry_root(registry.registry()).unwrap_or(registry);
        let mut engine = Engine::new(config, registry, now);
        let goal = Goal::List(List::start(&mut engine, ListKind::Catalog));
        Pull { engine, goal }
    }

    /// The reference being pulled.
    pub fn reference(&self) -> &Reference {
        self.engine.reference()
    }

    /// Something happened to exchange `id`: the one entry point for every input.
    pub fn handle_input(&mut self, id: RequestId, input: Input, now: Instant) {
        self.engine.handle_input(id, input, now);
        self.settle();
    }

    /// The response head of exchange `id` arrived (same as [`Input::Head`]).
    pub fn handle_head(&mut self, id: RequestId, head: Response<()>, now: Instant) {
        self.handle_input(id, Input::Head(head), now)
    }

    /// A chunk of the body of exchange `id` arrived (same as [`Input::Chunk`]).
    pub fn handle_chunk(&mut self, id: RequestId, chunk: Bytes, now: Instant) {
        self.handle_input(id, Input::Chunk(chunk), now)
    }

    /// The body of exchange `id` ended normally (same as [`Input::End`]).
    pub fn handle_end(&mut self, id: RequestId, now: Instant) {
        self.handle_input(id, Input::End, now)
    }

    /// Exchange `id` failed in the transport: connect, TLS, reset, early EOF (same as
    /// [`Input::Error`]).
    pub fn handle_error(&mut self, id: RequestId, error: TransportError, now: Instant) {
        self.handle_input(id, Input::Error(error), now)
    }

    /// Hands what the engine finished to the goal, which may ask for more.
    fn settle(&mut self) {
        while let Some(fetched) = self.engine.take_fetched() {
            match &mut self.goal {
                Goal::Image(g) => g.on_fetched(&mut self.engine, fetched),
                Goal::Inspect(g) => g.on_fetched(&mut self.engine, fetched),
                Goal::List(g) => g.on_fetched(&mut self.engine, fetched),
                Goal::Referrers(g) => g.on_fetched(&mut self.engine, fetched),
                Goal::Blob => {}
            }
        }
    }

    /// Stops the pull: every open exchange is aborted and the pull ends with
    /// [`Error::Cancelled`](crate::Error::Cancelled).
    pub fn cancel(&mut self, now: Instant) {
        self.engine.cancel(now);
    }

    /// The next thing to do. Call after every input, repeatedly, until it returns
    /// [`Action::Wait`] (or `Done`/`Failed`); call again when `Wait::until` passes or a new
    /// input arrives. A call before the wait expires is harmless. After `Done` or `Failed`
    /// it keeps returning the same outcome.
    pub fn poll_action(&mut self, now: Instant) -> Action {
        self.settle();
        self.engine.poll_action(now)
    }

    /// The earliest time at which [`Pull::poll_action`] has work without new input.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.engine.next_timeout()
    }

    /// The hash over the bytes of `blob` delivered so far: another pull of the same
    /// blob can continue from it ([`QueuedBlob::resume`]) without those bytes, and still
    /// verify the whole blob. A copy keeps such checkpoints to answer an upload resumed
    /// mid-blob. `None` when the blob is not downloading, or its hash is offloaded
    /// ([`Config::hashing`]).
    pub fn hashed_prefix(&self, blob: BlobId) -> Option<Verifier> {
        self.engine.hashed_prefix(blob)
    }

    /// The answer to [`Event::BlobQueued`]: a handle on the queued blob, to skip it or
    /// continue it from the caller's prefix. `None` once the blob has started (or is
    /// unknown).
    pub fn queued(&mut self, blob: BlobId) -> Option<QueuedBlob<'_>> {
        if self.engine.ended() || !self.engine.is_queued(blob) {
            return None;
        }
        Some(QueuedBlob { pull: self, blob })
    }
}

/// A blob that waits for its download to start ([`Pull::queued`]). Dropping the handle
/// lets the download go ahead from byte 0.
#[derive(Debug)]
pub struct QueuedBlob<'a> {
    pull: &'a mut Pull,
    blob: BlobId,
}

impl QueuedBlob<'_> {
    /// The blob.
    pub fn id(&self) -> BlobId {
        self.blob
    }

    /// The caller already has this blob, verified: it is not downloaded, and
    /// [`Event::BlobSkipped`] says so.
    pub fn skip(self) {
        self.pull.engine.skip_download(self.blob);
    }

    /// The caller has the first `verifier.len()` bytes of the blob (it hashed them into
    /// `verifier`): the download continues there, and [`Event::Resumed`] says so. Refused
    /// (and nothing changes) when the blob's content is embedded in its descriptor, or the
    /// prefix is not shorter than the blob or of another digest algorithm: the download
    /// then starts from byte 0.
    pub fn resume(self, verifier: Verifier) -> Result<(), ResumeRefused> {
        self.pull.engine.resume_download(self.blob, verifier)
    }
}

impl crate::types::Machine for Pull {
    fn handle_input(&mut self, id: RequestId, input: Input, now: Instant) {
        Pull::handle_input(self, id, input, now)
    }
    fn poll_action(&mut self, now: Instant) -> Action {
        Pull::poll_action(self, now)
    }
    fn next_timeout(&self) -> Option<Instant> {
        Pull::next_timeout(self)
    }
    fn cancel(&mut self, now: Instant) {
        Pull::cancel(self, now)
    }
}
