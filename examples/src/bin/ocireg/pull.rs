//! `ocireg pull`: an image into an OCI image layout, with progress and a summary.

use std::path::Path;

use ocireg_core::{Event, PlatformChoice, Reference};
use ocireg_driver::client::{Client, Pulled};
use ocireg_driver::Caller;
use serde_json::json;

use crate::args::{PullArgs, RuntimeChoice};
use crate::progress;

/// Logs what the pull does (at info/warn), then passes events on.
pub(crate) struct Logged<'a>(&'a mut (dyn Caller + Send));

impl Caller for Logged<'_> {
    fn event(&mut self, e: &Event) -> std::io::Result<()> {
        match e {
            Event::Retry {
                what,
                attempt,
                delay,
                error,
            } => {
                tracing::info!(
                    "{what}: {error}; attempt {attempt} in {:.1}s",
                    delay.as_secs_f64()
                )
            }
            Event::DownloadResumed { blob, offset } => {
                tracing::info!("blob {} resumes at byte {offset}", blob.0)
            }
            Event::DownloadRestarted { blob } => {
                tracing::info!("blob {} starts over from byte 0", blob.0)
            }
            Event::PlainHttpFallback { host } => {
                tracing::info!("{host} does not speak TLS; using plain http")
            }
            Event::BlobFetched { digest, size, .. } => {
                tracing::debug!("{digest}: {size} bytes verified")
            }
            _ => {}
        }
        self.0.event(e)
    }

    fn deliver(
        &mut self,
        blob: ocireg_core::BlobId,
        offset: u64,
        bytes: &bytes::Bytes,
    ) -> std::io::Result<()> {
        self.0.deliver(blob, offset, bytes)
    }
}

/// Where a pull writes: the layout, the name its `index.json` entry gets (default: the
/// reference's tag), whether blobs already there are hashed again, whether blobs are
/// flushed before they are named, a directory for the artifact's titled layers as files,
/// and whether the image's referrers come along.
#[derive(Clone, Copy)]
pub(crate) struct Dest<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) name: Option<&'a str>,
    pub(crate) verify_existing: bool,
    pub(crate) durable: bool,
    pub(crate) files: Option<&'a Path>,
    pub(crate) include_referrers: bool,
}

impl<'a> Dest<'a> {
    /// `dir`, named by the reference's tag, trusting what is there.
    pub(crate) fn dir(dir: &'a Path) -> Dest<'a> {
        Dest {
            dir,
            name: None,
            verify_existing: false,
            durable: true,
            files: None,
            include_referrers: false,
        }
    }
}

/// Pulls `reference` with `client` into `into` (the library does the work: mirrors,
/// referrers, nothing left behind by a first pull that fails), showing progress; the
/// summary (empty in JSON mode) and what was pulled.
pub(crate) async fn pull_and_say(
    client: &Client,
    username: Option<&str>,
    reference: &str,
    platform: Option<PlatformChoice>,
    into: Dest<'_>,
    mode: progress::Mode,
) -> Result<(String, Pulled), String> {
    let written = Reference::parse(reference).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let wanted = match &platform {
        Some(PlatformChoice::Exactly(p)) => Some(p.clone()),
        _ => None,
    };
    let mut pull = client
        .pull(reference)
        .verify_existing(into.verify_existing)
        .durable(into.durable)
        .include_referrers(into.include_referrers);
    if let Some(p) = platform {
        pull = pull.platform(p);
    }
    if let Some(n) = into.name {
        pull = pull.name(n);
    }
    let mut progress = progress::Progress::new(mode);
    let pulled = match pull
        .to_layout_observed(into.dir, &mut Logged(&mut progress))
        .await
    {
        Ok(p) => p,
        Err(e) => {
            let message = crate::explain::client_error(&e, &written, username);
            progress.failed(&message);
            return Err(message);
        }
    };
    progress.finish();
    let desc = &pulled.descriptor;
    let stats = &pulled.stats;
    let dir = into.dir;
    if let Some(found) = wanted.as_ref().and_then(|w| other_platform(dir, desc, w)) {
        // as docker does: the image is pulled as it is, and the user is told
        eprintln!(
            "warning: {written} is an image for {found} only, not {}: it was pulled as it is",
            wanted.as_ref().map(|w| w.to_string()).unwrap_or_default()
        );
    }
    let files = into.files;
    let written_files = match files {
        Some(to) => ocireg_driver::files::write_titled_files(dir, desc, to)
            .map_err(|e| format!("writing the artifact's files: {e}"))?,
        None => Vec::new(),
    };
    let files_line = match (files, written_files.len()) {
        (None, _) => String::new(),
        (Some(to), 0) => format!("\n  files: none (no layer has a title) in {}", to.display()),
        (Some(to), n) => format!(
            "\n  files: {n} in {} ({} already there)",
            to.display(),
            written_files.iter().filter(|f| f.present).count()
        ),
    };
    let referrers_line = if into.include_referrers {
        format!(
            "\nreferrers: {} pulled into {}",
            pulled.referrers.len(),
            dir.display()
        )
    } else {
        String::new()
    };
    let secs = started.elapsed().as_secs_f64();
    let platform = desc.platform.as_ref().map(|p| p.to_string());
    if mode == progress::Mode::Json {
        progress::emit(json!({
            "event": "summary", "reference": written.to_string(), "digest": desc.digest.to_string(),
            "media_type": desc.media_type, "platform": platform, "fetched": stats.fetched, "skipped": stats.skipped,
            "resumed": stats.resumed, "retries": stats.retries, "bytes": stats.bytes, "seconds": secs,
            "sync_seconds": stats.sync.as_secs_f64(), "durable": into.durable,
            "files": written_files.iter().map(|f| f.path.display().to_string()).collect::<Vec<_>>(),
            "referrers": pulled.referrers.len(),
        }));
        return Ok((String::new(), pulled));
    }
    let summary = format!(
        "pulled {written} → {}\n  manifest {}{}, {}\n  blobs: {} fetched, {} already present, {} resumed; {} in {:.2}s ({}/s){}{files_line}{referrers_line}",
        dir.display(),
        desc.digest,
        platform.map(|p| format!(" ({p})")).unwrap_or_default(),
        desc.media_type,
        stats.fetched,
        stats.skipped,
        stats.resumed,
        human(stats.bytes),
        secs,
        human((stats.bytes as f64 / secs.max(1e-9)) as u64),
        if stats.retries > 0 { format!(", {} retries", stats.retries) } else { String::new() }
    );
    Ok((summary, pulled))
}

pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub(crate) async fn cmd_pull(a: PullArgs, rt: RuntimeChoice) -> Result<(), String> {
    let reference = Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    let client = crate::setup::client(rt, &a.connect, &[reference.registry()], |cfg| {
        crate::args::set_downloads(cfg, a.concurrency, a.hash_threads)
    })?;
    let platform = if a.all_platforms {
        PlatformChoice::All
    } else if let Some(p) = a.platform.clone() {
        PlatformChoice::Exactly(p)
    } else {
        PlatformChoice::Host
    };
    let into = Dest {
        dir: &a.dir,
        name: None,
        verify_existing: a.verify_existing,
        durable: !a.no_fsync,
        files: a.files.as_deref(),
        include_referrers: a.include_referrers,
    };
    let mode = a.progress.resolve();
    let (summary, _) = pull_and_say(
        &client,
        a.connect.username.as_deref(),
        &a.reference,
        Some(platform),
        into,
        mode,
    )
    .await?;
    crate::progress::say(&summary);
    Ok(())
}

/// The platform of a single-platform image `desc` in the layout at `dir` (its config's
/// `os`/`architecture`/`variant`), when it is not the `wanted` one. An index was chosen
/// from by platform already; an artifact's config says nothing of platforms.
fn other_platform(
    dir: &Path,
    desc: &ocireg_core::Descriptor,
    wanted: &ocireg_core::Platform,
) -> Option<ocireg_core::Platform> {
    if desc.platform.is_some() {
        return None;
    }
    let bytes = ocireg_driver::layout::read_blob(dir, &desc.digest).ok()?;
    let (ocireg_core::Manifest::Image(m), _) =
        ocireg_core::Manifest::parse(&desc.media_type, &bytes).ok()?
    else {
        return None;
    };
    let config = ocireg_driver::layout::read_blob(dir, &m.config.digest).ok()?;
    let found: ocireg_core::Platform = serde_json::from_slice(&config).ok()?;
    (!found.os.is_empty() && !wanted.matches(&found)).then_some(found)
}
