//! The one machine: the engine driven toward one goal.
//!
//! Every operation of this crate is a [`Machine`]: a pull ([`Machine::pull`]), a push
//! ([`Machine::push`]), an inspect, a tag or catalog listing, a referrers listing, one
//! blob. What differs is the goal (`goals/`), which asks the engine for exchanges and
//! reacts to what they bring; the shell is the same for all, so every machine drains its
//! engine the same way and a driver drives them all with one loop (quinn-proto has one
//! `Connection` whatever the application does with its streams).
//!
//! A new operation is one goal file (the goal, and its constructor on [`Machine`]), one
//! `Client` method in the driver, and its command.

use std::fmt::Debug;
use std::time::Instant;

use bytes::Bytes;
use http::Response;

use crate::digest::Verifier;
use crate::engine::{Due, Engine, Fetched};
use crate::error::{Error, TransportError};
use crate::reference::Reference;
use crate::{Action, BlobId, Config, Input, RequestId, ResumeRefused};

/// What a machine is for: asks the engine for operations and reacts to their outcomes.
/// It never sends a request, retries or chooses a credential itself.
pub(crate) trait Goal: Debug + Send {
    /// An operation of this goal was answered.
    fn on_fetched(&mut self, engine: &mut Engine, fetched: Fetched);

    /// An operation of this goal that retries through it ([`OnRetry::AskGoal`]) is due
    /// again: the goal sends what comes next. A goal that asks for no such operation
    /// never sees one; by default the machine ends with the failure.
    ///
    /// [`OnRetry::AskGoal`]: crate::engine::OnRetry::AskGoal
    fn on_due(&mut self, engine: &mut Engine, due: Due) {
        engine.fail(due.error);
    }
}

/// The state machine of one operation. See the crate documentation for the driving
/// contract; the constructors say what each operation emits.
pub struct Machine {
    engine: Engine,
    /// `None` when the operation failed before it could start (the engine holds why).
    goal: Option<Box<dyn Goal>>,
}

impl Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("reference", self.engine.reference())
            .field("goal", &self.goal)
            .finish()
    }
}

impl Machine {
    /// A machine of `reference`'s registry and repository whose goal `start` builds (it
    /// may already ask the engine for operations). An operation that cannot start (its
    /// input is not one it can work with) fails at the first poll with `start`'s error.
    pub(crate) fn start<G: Goal + 'static>(
        config: Config,
        reference: Reference,
        now: Instant,
        start: impl FnOnce(&mut Engine) -> Result<G, Error>,
    ) -> Machine {
        let mut engine = Engine::new(config, reference, now);
        let goal = match start(&mut engine) {
            Ok(g) => Some(Box::new(g) as Box<dyn Goal>),
            Err(e) => {
                engine.fail(e);
                None
            }
        };
        Machine { engine, goal }
    }

    /// The reference the machine works on (the image, the repository, the target).
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

    /// Stops the machine: every open exchange is aborted and it ends with
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
        let action = self.engine.poll_action(now);
        // A retry that fell due in this poll is the goal's to send.
        if matches!(action, Action::Wait { .. }) && self.settle() {
            return self.engine.poll_action(now);
        }
        action
    }

    /// The earliest time at which [`Machine::poll_action`] has work without new input.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.engine.next_timeout()
    }

    /// Hands what the engine finished to the goal, which may ask for more. True when
    /// there was something.
    fn settle(&mut self) -> bool {
        let Some(goal) = self.goal.as_mut() else {
            return false;
        };
        let mut any = false;
        loop {
            if let Some(fetched) = self.engine.take_fetched() {
                goal.on_fetched(&mut self.engine, fetched);
            } else if let Some(due) = self.engine.take_due() {
                goal.on_due(&mut self.engine, due);
            } else {
                return any;
            }
            any = true;
        }
    }

    /// The hash over the bytes of `blob` delivered so far: another machine fetching the
    /// same blob can continue from it ([`QueuedBlob::resume`]) without those bytes, and
    /// still verify the whole blob. A copy keeps such checkpoints to answer an upload
    /// resumed mid-blob. `None` when the blob is not downloading, or its hash is
    /// offloaded ([`Config::hashing`]).
    pub fn hashed_prefix(&self, blob: BlobId) -> Option<Verifier> {
        self.engine.hashed_prefix(blob)
    }

    /// The answer to [`Event::BlobQueued`](crate::Event::BlobQueued): a handle on the
    /// queued blob, to skip it or continue it from the caller's prefix. `None` once the
    /// blob has started (or is unknown).
    pub fn queued(&mut self, blob: BlobId) -> Option<QueuedBlob<'_>> {
        if self.engine.ended() || !self.engine.is_queued(blob) {
            return None;
        }
        Some(QueuedBlob {
            machine: self,
            blob,
        })
    }
}

/// A blob that waits for its download to start ([`Machine::queued`]). Dropping the
/// handle lets the download go ahead from byte 0.
#[derive(Debug)]
pub struct QueuedBlob<'a> {
    machine: &'a mut Machine,
    blob: BlobId,
}

impl QueuedBlob<'_> {
    /// The blob.
    pub fn id(&self) -> BlobId {
        self.blob
    }

    /// The caller already has this blob, verified: it is not downloaded, and
    /// [`Event::BlobSkipped`](crate::Event::BlobSkipped) says so.
    pub fn skip(self) {
        self.machine.engine.skip_download(self.blob);
    }

    /// The caller has the first `verifier.len()` bytes of the blob (it hashed them into
    /// `verifier`): the download continues there, and
    /// [`Event::DownloadResumed`](crate::Event::DownloadResumed) says so. Refused (and
    /// nothing changes) when the blob's content is embedded in its descriptor, or the
    /// prefix is not shorter than the blob or of another digest algorithm: the download
    /// then starts from byte 0.
    pub fn resume(self, verifier: Verifier) -> Result<(), ResumeRefused> {
        self.machine.engine.resume_download(self.blob, verifier)
    }
}
