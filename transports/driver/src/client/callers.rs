//! The callers the client's operations drive machines with: events collected, tag pages
//! sent on, results watched (after which a failing host cannot give way to the next), and
//! events shown to two callers.

use ocireg_core::{Descriptor, Event};

use crate::Caller;

/// A sink that keeps every event (for machines that deliver no blob: inspect, tags,
/// referrers).
#[derive(Debug, Default)]
pub struct Collect(pub Vec<Event>);

impl Caller for Collect {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        self.0.push(event.clone());
        Ok(())
    }
}

/// Sends each page of tags on.
pub(crate) struct TagSender {
    pub(crate) to: futures::channel::mpsc::UnboundedSender<String>,
}

impl Caller for TagSender {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        if let Event::Tags { tags } = event {
            for t in tags {
                // a receiver that went away wants no more: the drive ends with the stream
                let _ = self.to.unbounded_send(t.clone());
            }
        }
        Ok(())
    }
}

/// Passes everything on to `inner`, noting whether a result (a page, a delivered byte)
/// went: after that, a failing host cannot give way to the next.
pub(crate) struct Watched<'a> {
    inner: &'a mut (dyn Caller + Send),
    pub(crate) gave: bool,
}

impl<'a> Watched<'a> {
    pub(crate) fn new(inner: &'a mut (dyn Caller + Send)) -> Watched<'a> {
        Watched { inner, gave: false }
    }
}

impl Caller for Watched<'_> {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        if matches!(
            event,
            Event::Tags { .. } | Event::Referrers { .. } | Event::Repositories { .. }
        ) {
            self.gave = true;
        }
        self.inner.event(event)
    }
    fn blob_queued(
        &mut self,
        blob: ocireg_core::QueuedBlob<'_>,
        descriptor: &Descriptor,
    ) -> std::io::Result<()> {
        self.inner.blob_queued(blob, descriptor)
    }
    fn deliver(
        &mut self,
        blob: ocireg_core::BlobId,
        offset: u64,
        bytes: &bytes::Bytes,
    ) -> std::io::Result<()> {
        self.gave = true;
        self.inner.deliver(blob, offset, bytes)
    }
    fn idle(&mut self) -> std::io::Result<()> {
        self.inner.idle()
    }
}

/// Events to two callers (bytes to neither).
pub(crate) struct Both<'a> {
    pub(crate) first: &'a mut (dyn Caller + Send),
    pub(crate) second: &'a mut (dyn Caller + Send),
}

impl Caller for Both<'_> {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        self.first.event(event)?;
        self.second.event(event)
    }
}
