//! Driving a pull into a layout: [`pull_to_layout`] and [`pull_into`], with an
//! [`Observer`] that sees what happens (progress, logs).

use std::io;
use std::path::Path;

use bytes::Bytes;
use ocireg_core::manifest::Descriptor;
use ocireg_core::{BlobId, Event, Pull, QueuedBlob};

use super::{LayoutWriter, Stats};
use crate::Sink;

/// Watches a pull written into a layout: events (a blob already in the layout is
/// [`Event::BlobSkipped`]) and bytes.
pub trait Observer {
    /// An event of the pull.
    fn event(&mut self, _event: &Event) {}
    /// `n` more bytes of `blob` were written.
    fn delivered(&mut self, _blob: BlobId, _n: u64) {}
}

impl<F: FnMut(&Event)> Observer for F {
    fn event(&mut self, event: &Event) {
        self(event)
    }
}

/// Pulls into the layout at `dir` (tagging with the reference's tag) and records the
/// image in `index.json` once everything is verified. Returns the resolved descriptor
/// and the counters.
pub async fn pull_to_layout<T, R>(
    pull: &mut Pull,
    transport: &T,
    runtime: &R,
    dir: &Path,
    observer: &mut (dyn Observer + Send),
) -> Result<(Descriptor, Stats), crate::PullError>
where
    T: crate::Transport + ?Sized,
    R: crate::Runtime + ?Sized,
{
    let tag = pull.reference().tag().map(str::to_string);
    let writer = LayoutWriter::create(dir, tag)?;
    pull_into(pull, transport, runtime, writer, observer).await
}

/// [`pull_to_layout`] with a writer set up by the caller (e.g. with
/// [`LayoutWriter::verify_existing`]).
pub async fn pull_into<T, R>(
    pull: &mut Pull,
    transport: &T,
    runtime: &R,
    writer: LayoutWriter,
    observer: &mut (dyn Observer + Send),
) -> Result<(Descriptor, Stats), crate::PullError>
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
            crate::PullError::Io(io) => crate::PullError::Io(at_root(io)),
            other => other,
        })?;
    sink.writer.commit().map_err(at_root)?;
    let desc = sink
        .writer
        .resolved()
        .cloned()
        .ok_or_else(|| io::Error::other("no manifest resolved"))?;
    Ok((desc, sink.writer.stats.clone()))
}

/// A layout writer that also shows what happens to an observer (progress, logs).
struct Observed<'a> {
    writer: LayoutWriter,
    observer: &'a mut (dyn Observer + Send),
}

impl Sink for Observed<'_> {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        self.writer.event(event)?;
        self.observer.event(event);
        Ok(())
    }

    fn blob_queued(&mut self, queued: QueuedBlob<'_>, descriptor: &Descriptor) -> io::Result<()> {
        self.writer.blob_queued(queued, descriptor)
    }

    fn deliver(&mut self, blob: BlobId, offset: u64, bytes: &Bytes) -> io::Result<()> {
        self.writer.deliver(blob, offset, bytes)?;
        self.observer.delivered(blob, bytes.len() as u64);
        Ok(())
    }

    fn idle(&mut self) -> io::Result<()> {
        self.writer.idle()
    }
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}
