//! `ocireg blob REPO@DIGEST` (a blob's verified bytes, whole or a part) and
//! `ocireg manifest REF` (a manifest's bytes as served). The reads are the library's
//! (`Client::blob`, `Client::read_range`, `Client::manifest`); this file parses, writes
//! and names the output only once the bytes are verified.

use std::io::Write;
use std::path::Path;

use futures::StreamExt;
use ocireg_core::Reference;

use crate::args::{BlobArgs, ManifestArgs, RuntimeChoice};

/// `START-END` (inclusive, as HTTP ranges are): the first byte and the length.
fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("--range {s:?}: expected START-END, the first and last byte (inclusive)");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (start, end): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if end < start {
        return Err(bad());
    }
    Ok((start, end - start + 1))
}

pub(crate) async fn cmd_blob(a: BlobArgs, rt: RuntimeChoice) -> Result<(), String> {
    let reference = Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    if reference.digest().is_none() {
        return Err(format!(
            "{reference}: a blob is named by its digest (repository@sha256:…)"
        ));
    }
    let range = a.range.as_deref().map(parse_range).transpose()?;
    let client = crate::setup::client(rt, &a.connect, &[reference.registry()], |_| Ok(()))?;
    let explain = |e: ocireg_driver::Error| {
        crate::explain::client_error(&e, &reference, a.connect.username.as_deref())
    };
    let descriptor = client
        .blob_descriptor(&a.reference)
        .await
        .map_err(explain)?;
    let mut out = Output::open(a.output.as_deref())?;
    match range {
        Some((offset, len)) => {
            let bytes = client
                .read_range(&a.reference, &descriptor, offset, len)
                .await
                .map_err(explain)?;
            out.write(&bytes)?;
        }
        None => {
            let mut stream = client.blob(&a.reference, descriptor).map_err(explain)?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| match ocireg_driver::registry_error_of(&e) {
                    Some(core) => explain(ocireg_driver::Error::Registry(core.clone())),
                    None => format!("{reference}: {e}"),
                })?;
                out.write(&chunk)?;
            }
        }
    }
    out.finish()
}

pub(crate) async fn cmd_manifest(a: ManifestArgs, rt: RuntimeChoice) -> Result<(), String> {
    let reference = Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    let client = crate::setup::client(rt, &a.connect, &[reference.registry()], |_| Ok(()))?;
    let m = client
        .manifest(&a.reference)
        .await
        .map_err(|e| crate::explain::client_error(&e, &reference, a.connect.username.as_deref()))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&m.bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("writing to stdout: {e}"))
}

/// Where the bytes go: stdout, or a private file beside `-o FILE` that is named FILE
/// only once every byte arrived and the digest matched (dropped otherwise).
enum Output<'a> {
    Stdout(std::io::StdoutLock<'static>),
    File {
        temp: tempfile::NamedTempFile,
        to: &'a Path,
    },
}

impl<'a> Output<'a> {
    fn open(to: Option<&'a Path>) -> Result<Output<'a>, String> {
        let Some(to) = to else {
            return Ok(Output::Stdout(std::io::stdout().lock()));
        };
        let dir = match to.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".ocireg-blob-")
            .tempfile_in(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Output::File { temp, to })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Output::Stdout(s) => s
                .write_all(bytes)
                .map_err(|e| format!("writing to stdout: {e}")),
            Output::File { temp, .. } => temp
                .write_all(bytes)
                .map_err(|e| format!("{}: {e}", temp.path().display())),
        }
    }

    fn finish(self) -> Result<(), String> {
        match self {
            Output::Stdout(mut s) => s.flush().map_err(|e| format!("writing to stdout: {e}")),
            Output::File { temp, to } => {
                temp.as_file()
                    .sync_all()
                    .map_err(|e| format!("{}: {e}", temp.path().display()))?;
                // a rename replaces the name itself: a symlink at `to` is not followed
                temp.persist(to)
                    .map_err(|e| format!("{}: {}", to.display(), e.error))?;
                Ok(())
            }
        }
    }
}
