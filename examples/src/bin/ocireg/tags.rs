//! `ocireg tags`: every tag of a repository, printed page by page as the pages arrive.

use ocireg_core::{Event, Pull, Reference};
use ocireg_driver::{PullError, Sink};

use crate::args::{RuntimeChoice, TagsArgs};
use crate::setup::{config, io};

pub(crate) async fn cmd_tags(a: TagsArgs, rt: RuntimeChoice) -> Result<(), String> {
    let reference = Reference::parse(&a.repository).map_err(|e| e.to_string())?;
    let io = io(rt, &a.connect)?;
    let mut cfg = config(&a.connect, reference.registry(), io.runtime.now())?;
    cfg.max_tag_pages = a.max_pages;
    cfg.tag_page_size = a.page_size;
    let mut pull = Pull::list_tags(cfg, reference, io.runtime.now());
    ocireg_driver::drive(&mut pull, &*io.transport, &*io.runtime, &mut PrintTags)
        .await
        .map_err(|e: PullError| e.to_string())
}

/// Prints each page of tags as it arrives (a long listing shows at once, and memory does
/// not grow with the number of pages).
pub(crate) struct PrintTags;

impl Sink for PrintTags {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        use std::io::Write;
        if let Event::Tags { tags } = event {
            let mut out = std::io::stdout().lock();
            for tag in tags {
                writeln!(out, "{tag}")?;
            }
            out.flush()?;
        }
        Ok(())
    }

    fn deliver(&mut self, _: ocireg_core::BlobId, _: u64, _: &bytes::Bytes) -> std::io::Result<()> {
        Ok(())
    }
}
