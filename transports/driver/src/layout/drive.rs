//! Driving a pull into a layout: [`pull_to_layout`] and [`pull_into`], with an observer
//! (any [`Caller`]: a closure over events, `()` for none) that sees what happens
//! (progress, logs) after the layout has taken it.

use std::io;
use std::path::Path;

use bytes::Bytes;
use ocireg_core::manifest::Descriptor;
use ocireg_core::{BlobId, Event, Machine, QueuedBlob};

use super::{LayoutWriter, Stats};
use crate::Caller;

/// Pulls into the layout at `dir` (tagging with the reference's tag) and records the
/// image in `index.json` once everything is verified. Returns the resolved descriptor
/// and the counters.
pub async fn pull_to_layout<T, R>(
    pull: &mut Machine,
    transport: &T,
    runtime: &R,
    dir: &Path,
    observer: &mut (dyn Caller + Send),
) -> Result<(Descriptor, Stats), crate::Error>
where
    T: crate::Transport + ?Sized,
    R: crate::Runtime + ?Sized,
{
    let tag = pull.reference().tag().map(str::to_string);
    let writer = LayoutWriter::create(dir, tag).map_err(crate::Error::Sink)?;
    pull_into(pull, transport, runtime, writer, observer).await
}

/// [`pull_to_layout`] with a writer set up by the caller (e.g. with
/// [`LayoutWriter::verify_existing`]).
pub async fn pull_into<T, R>(
    pull: &mut Machine,
    transport: &T,
    runtime: &R,
    writer: LayoutWriter,
    observer: &mut (dyn Caller + Send),
) -> Result<(Descriptor, Stats), crate::Error>
where
    T: crate::Transport + ?Sized,
    R: crate::Runtime + ?Sized,
{
    let root = writer.root.clone();
    // a filesystem error names the layout when it names no path of its own
    let at_root = |e: io::Error| {
        let text = e.to_string();
        if text.contains(&*root.to_string_lossy()) {
            e
        } else {
            io::Error::new(e.kind(), format!("{}: {text}", root.display()))
        }
    };
    let mut sink = Observed { writer, observer };
    crate::drive(pull, transport, runtime, &mut sink)
        .await
        .map_err(|e| match e {
            crate::Error::Sink(io) => crate::Error::Sink(at_root(io)),
            other => other,
        })?;
    sink.writer
        .commit()
        .map_err(|e| crate::Error::Sink(at_root(e)))?;
    let desc = sink
        .writer
        .resolved()
        .cloned()
        .ok_or(crate::Error::Internal(
            "the pull ended with no manifest resolved",
        ))?;
    Ok((desc, sink.writer.stats.clone()))
}

/// A layout writer that also shows what happens to an observer (progress, logs).
struct Observed<'a> {
    writer: LayoutWriter,
    observer: &'a mut (dyn Caller + Send),
}

impl Caller for Observed<'_> {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.writer.event(event)?;
        self.observer.event(event)
    }

    fn blob_queued(&mut self, queued: QueuedBlob<'_>, descriptor: &Descriptor) -> io::Result<()> {
        self.writer.blob_queued(queued, descriptor)
    }

    fn deliver(&mut self, blob: BlobId, offset: u64, bytes: &Bytes) -> io::Result<()> {
        self.writer.deliver(blob, offset, bytes)?;
        self.observer.deliver(blob, offset, bytes)
    }

    fn idle(&mut self) -> io::Result<()> {
        self.writer.idle()?;
        self.observer.idle()
    }
}
