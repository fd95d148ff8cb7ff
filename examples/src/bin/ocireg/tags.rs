//! `ocireg tags` (every tag of a repository) and `ocireg catalog` (every repository of a
//! registry), printed page by page as the pages arrive: a long listing shows at once, and
//! memory does not grow with the number of pages.

use std::io::Write;

use ocireg_core::{Event, Reference};
use ocireg_driver::{Caller, Error as DriveError};

use crate::args::{CatalogArgs, ListFormat, RuntimeChoice, TagsArgs};

pub(crate) async fn cmd_tags(a: TagsArgs, rt: RuntimeChoice) -> Result<(), String> {
    let reference = Reference::parse(&a.repository).map_err(|e| e.to_string())?;
    let client = crate::setup::client(rt, &a.connect, &[reference.registry()], |cfg| {
        cfg.max_tag_pages = a.list.max_pages;
        cfg.tag_page_size = a.list.page_size;
        Ok(())
    })?;
    let mut out = Print::new(a.list.format);
    client
        .tags_observed(&a.repository, &mut out)
        .await
        .map_err(|e| crate::explain::client_error(&e, &reference, a.connect.username.as_deref()))?;
    out.end().map_err(|e| e.to_string())
}

pub(crate) async fn cmd_catalog(a: CatalogArgs, rt: RuntimeChoice) -> Result<(), String> {
    let registry = Reference::registry_root(&a.registry)
        .map_err(|e| format!("{:?} is not a registry (host[:port]): {e}", a.registry))?;
    let client = crate::setup::client(rt, &a.connect, &[registry.registry()], |cfg| {
        cfg.max_tag_pages = a.list.max_pages;
        cfg.tag_page_size = a.list.page_size;
        Ok(())
    })?;
    let mut out = Print::new(a.list.format);
    match client.catalog_observed(registry.registry(), &mut out).await {
        Ok(()) => out.end().map_err(|e| e.to_string()),
        Err(DriveError::Registry(e)) if refused(&e) => Err(format!(
            "{registry} does not list its repositories to this client ({e}); many registries turn \
             the catalog off or limit it to administrators: list the tags of a repository you \
             know with `ocireg tags`"
        )),
        Err(e) => Err(crate::explain::client_error(
            &e,
            &registry,
            a.connect.username.as_deref(),
        )),
    }
}

/// Whether the registry refused the catalog itself (rather than failing on the way).
fn refused(e: &ocireg_core::Error) -> bool {
    matches!(e.status(), Some(401 | 403 | 404 | 405)) || e.to_string().contains("UNSUPPORTED")
}

/// Prints each page of names as it arrives: one per line, or a JSON array written as it
/// grows.
struct Print {
    format: ListFormat,
    /// Names printed so far.
    count: u64,
}

impl Print {
    fn new(format: ListFormat) -> Print {
        Print { format, count: 0 }
    }

    fn names(&mut self, names: &[String]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        for name in names {
            match self.format {
                ListFormat::Text => writeln!(out, "{name}")?,
                ListFormat::Json => {
                    let sep = if self.count == 0 { "[" } else { "," };
                    write!(out, "{sep}\n  {}", serde_json::Value::from(name.as_str()))?;
                }
            }
            self.count += 1;
        }
        out.flush()
    }

    /// Closes the JSON array (an empty listing is `[]`).
    fn end(&mut self) -> std::io::Result<()> {
        if self.format == ListFormat::Json {
            let mut out = std::io::stdout().lock();
            if self.count == 0 {
                writeln!(out, "[]")?;
            } else {
                writeln!(out, "\n]")?;
            }
            out.flush()?;
        }
        Ok(())
    }
}

impl Caller for Print {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::Tags { tags } => self.names(tags),
            Event::Repositories { names } => self.names(names),
            _ => Ok(()),
        }
    }
}
