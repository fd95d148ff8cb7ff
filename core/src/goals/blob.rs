//! The blob goal: one blob known by its descriptor, nothing to fetch but the blob itself
//! (the engine's download does the rest).

use std::time::Instant;

use crate::engine::{Engine, Fetched};
use crate::machine::{Goal, Machine};
use crate::manifest::Descriptor;
use crate::reference::Reference;
use crate::Config;

/// One blob: the engine's download is the whole operation.
#[derive(Debug)]
struct Blob;

impl Goal for Blob {
    fn on_fetched(&mut self, _: &mut Engine, _: Fetched) {
        // a blob goal asks for no call: nothing is ever fetched for it
    }
}

impl Machine {
    /// Fetches one blob of `repository`, known by its descriptor: its bytes delivered as
    /// [`BlobId`](crate::BlobId) 0 and verified against the digest at the end (a copy
    /// streams them on to another registry; a client reads them as a stream). Embedded
    /// `data` is delivered without a request.
    pub fn fetch_blob(
        config: Config,
        repository: Reference,
        descriptor: Descriptor,
        now: Instant,
    ) -> Machine {
        Machine::start(config, repository, now, |engine| {
            let embedded = descriptor.validate()?;
            engine.download(descriptor, embedded);
            Ok(Blob)
        })
    }
}
