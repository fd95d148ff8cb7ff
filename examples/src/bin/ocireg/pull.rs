//! `ocireg pull`: an image into an OCI image layout, with progress and a summary.

use std::path::Path;

use ocireg_core::{Config, Event, Machine, PlatformChoice, Reference};
use ocireg_driver::layout::{pull_into, LayoutWriter};
use ocireg_driver::{Caller, Runtime, Transport};
use serde_json::json;

use crate::args::{PullArgs, RuntimeChoice};
use crate::progress;
use crate::setup::config;

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
/// reference's tag), whether blobs already there are hashed again, and a directory for
/// the artifact's titled layers as files.
#[derive(Clone, Copy)]
pub(crate) struct Dest<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) name: Option<&'a str>,
    pub(crate) verify_existing: bool,
    /// Blobs are flushed to disk before they are named.
    pub(crate) durable: bool,
    pub(crate) files: Option<&'a Path>,
    /// A failure is not reported as the pull's end (another host may be tried).
    pub(crate) quiet_failure: bool,
}

/// Why [`pull_one`] failed: one line for the user, and the core's error when the
/// protocol failed (which decides whether another host is worth a try).
pub(crate) struct PullFailed {
    pub(crate) message: String,
    pub(crate) error: Option<ocireg_core::Error>,
}

impl From<PullFailed> for String {
    fn from(f: PullFailed) -> String {
        f.message
    }
}

impl From<String> for PullFailed {
    fn from(message: String) -> PullFailed {
        PullFailed {
            message,
            error: None,
        }
    }
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
            quiet_failure: false,
        }
    }
}

pub(crate) async fn pull_one<T: Transport + ?Sized, R: Runtime + ?Sized>(
    reference: Reference,
    cfg: Config,
    t: &T,
    runtime: &R,
    into: Dest<'_>,
    mode: progress::Mode,
) -> Result<(String, ocireg_core::Digest), PullFailed> {
    let Dest {
        dir,
        name,
        verify_existing,
        durable,
        files,
        quiet_failure,
    } = into;
    let started = runtime.now();
    let credentials = cfg.credentials.clone();
    let wanted = match &cfg.platform {
        PlatformChoice::Exactly(p) => Some(p.clone()),
        _ => None,
    };
    let mut pull = Machine::pull(cfg, reference.clone(), started);
    let mut progress = progress::Progress::new(mode);
    let tag = name.or(reference.tag()).map(str::to_string);
    // a first pull that fails leaves nothing behind (see remove_skeleton)
    let first = !dir.join("oci-layout").exists() && !dir.join("index.json").exists();
    let dir_existed = dir.exists();
    let writer = LayoutWriter::create(dir, tag)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .verify_existing(verify_existing)
        .durable(durable);
    let result = pull_into(&mut pull, t, runtime, writer, &mut Logged(&mut progress)).await;
    let (desc, stats) = match result {
        Ok(r) => r,
        Err(e) => {
            let message = crate::explain::pull_error(&e, &reference, &credentials);
            if quiet_failure {
                progress.finish();
            } else {
                progress.failed(&message);
            }
            let error = match e {
                ocireg_driver::Error::Registry(e) => Some(e),
                _ => None,
            };
            if first {
                remove_skeleton(dir, dir_existed);
            }
            return Err(PullFailed { message, error });
        }
    };
    progress.finish();
    if let Some(found) = wanted.as_ref().and_then(|w| other_platform(dir, &desc, w)) {
        // as docker does: the image is pulled as it is, and the user is told
        eprintln!(
            "warning: {reference} is an image for {found} only, not {}: it was pulled as it is",
            wanted.as_ref().map(|w| w.to_string()).unwrap_or_default()
        );
    }
    let written = match files {
        Some(to) => ocireg_driver::files::write_titled_files(dir, &desc, to)
            .map_err(|e| format!("writing the artifact's files: {e}"))?,
        None => Vec::new(),
    };
    let files_line = match (files, written.len()) {
        (None, _) => String::new(),
        (Some(to), 0) => format!("\n  files: none (no layer has a title) in {}", to.display()),
        (Some(to), n) => format!(
            "\n  files: {n} in {} ({} already there)",
            to.display(),
            written.iter().filter(|f| f.present).count()
        ),
    };
    let secs = started.elapsed().as_secs_f64();
    let platform = desc.platform.as_ref().map(|p| p.to_string());
    if mode == progress::Mode::Json {
        progress::emit(json!({
            "event": "summary", "reference": reference.to_string(), "digest": desc.digest.to_string(),
            "media_type": desc.media_type, "platform": platform, "fetched": stats.fetched, "skipped": stats.skipped,
            "resumed": stats.resumed, "retries": stats.retries, "bytes": stats.bytes, "seconds": secs,
            "sync_seconds": stats.sync.as_secs_f64(), "durable": durable,
            "files": written.iter().map(|f| f.path.display().to_string()).collect::<Vec<_>>(),
        }));
        return Ok((String::new(), desc.digest));
    }
    let summary = format!(
        "pulled {reference} → {}\n  manifest {}{}, {}\n  blobs: {} fetched, {} already present, {} resumed; {} in {:.2}s ({}/s){}{files_line}",
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
    Ok((summary, desc.digest))
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
    // mirrors: the registry's hosts.toml, when the directory has one
    let hosts = match &a.hosts_dir {
        Some(d) => ocireg_driver::hosts::load(d, &reference, a.connect.plain_http)
            .map_err(|e| format!("--hosts-dir: {e}"))?,
        None => None,
    };
    if let Some(h) = &hosts {
        if let Some(host) = h.skip_verify.first() {
            if !a.connect.insecure_skip_tls_verify {
                return Err(format!(
                    "{}: skip_verify = true for {host} is refused: TLS verification stays on \
                     unless --insecure-skip-tls-verify is given too (trust its CA with `ca` instead)",
                    h.file.display()
                ));
            }
        }
    }
    // the upstream's own `ca` (under `server`) is the base client's; a mirror's is trusted
    // for that mirror's attempts only
    let upstream_cas = hosts
        .as_ref()
        .map(|h| h.cas_of(&h.upstream))
        .unwrap_or_default();
    let io = crate::setup::io_with_cas(rt, &a.connect, &upstream_cas)?;
    let mut cfg = config(&a.connect, reference.registry(), io.runtime.now())?;
    crate::args::set_downloads(&mut cfg, a.concurrency, a.hash_threads)?;
    cfg.platform = if a.all_platforms {
        PlatformChoice::All
    } else if let Some(p) = a.platform {
        PlatformChoice::Exactly(p)
    } else {
        PlatformChoice::Host
    };
    let mode = a.progress.resolve();
    let dir = a.dir.clone();
    let into = Dest {
        dir: &dir,
        name: None,
        verify_existing: a.verify_existing,
        durable: !a.no_fsync,
        files: a.files.as_deref(),
        quiet_failure: false,
    };
    let (summary, digest) = match hosts {
        Some(h) => {
            pull_through_hosts(&reference, &cfg, h, (rt, &a.connect, &io), into, mode).await?
        }
        None => {
            pull_one(
                reference.clone(),
                cfg.clone(),
                &*io.transport,
                &*io.runtime,
                into,
                mode,
            )
            .await?
        }
    };
    crate::progress::say(&summary);
    if a.include_referrers {
        let into = Dest {
            files: None,
            ..into
        };
        pull_referrers(&reference, digest, &cfg, &io, into, mode).await?;
    }
    Ok(())
}

/// Pulls `reference` through the hosts of its `hosts.toml`: the core's plan names each
/// attempt (resolve the tag on a resolve host, then pull by that digest on a pull host,
/// the upstream last) and whether a failure gives way to the next host. Each host gets
/// its own credentials (Docker's for a mirror, never the registry's), API root and
/// headers. Blobs a failed host left complete or partial in the layout are skipped or
/// continued by the next.
async fn pull_through_hosts(
    reference: &Reference,
    cfg: &Config,
    hosts: ocireg_driver::hosts::HostsConfig,
    (rt, connect, upstream_io): (RuntimeChoice, &crate::args::ConnectArgs, &crate::setup::Io),
    into: Dest<'_>,
    mode: progress::Mode,
) -> Result<(String, ocireg_core::Digest), String> {
    use ocireg_core::mirrors::{HostPlan, Purpose};
    // a client per mirror that names a CA, trusting it for that mirror alone
    let mut mirror_ios = std::collections::HashMap::new();
    for m in &hosts.mirrors {
        let cas = hosts.cas_of(m);
        if !cas.is_empty() && !connect.insecure_skip_tls_verify {
            let io = crate::setup::io_with_cas(rt, connect, &cas)?;
            mirror_ios.insert(m.authority(), io);
        }
    }
    let mut plan = HostPlan::new(hosts.mirrors, hosts.upstream, reference.clone());
    // the layout names the image as the user wrote it, whichever host served it
    let tag = into.name.or(reference.tag()).map(str::to_string);
    while let Some(attempt) = plan.next_attempt() {
        let host = plan.hosts()[attempt.host].clone();
        let io = match mirror_ios.get(&host.authority()) {
            Some(io) if !host.upstream => io,
            _ => upstream_io,
        };
        let mut c = cfg.clone();
        host.configure(&mut c, reference);
        if !host.upstream {
            c.credentials = crate::setup::docker_credentials(&host.authority())?;
        }
        let what = match attempt.purpose {
            Purpose::Resolve => "resolving",
            Purpose::Pull => "pulling",
        };
        tracing::info!("{what} {} at {}", attempt.reference, host.url);
        let failure = match attempt.purpose {
            Purpose::Resolve => {
                let pull = Machine::inspect(c, attempt.reference.clone(), io.runtime.now());
                match crate::inspect::run_pull(pull, io).await {
                    Ok(digest) => {
                        plan.resolved(digest);
                        continue;
                    }
                    Err(PullFailed { error: Some(e), .. }) => e,
                    Err(f) => return Err(f.message),
                }
            }
            Purpose::Pull => {
                let dest = Dest {
                    name: tag.as_deref(),
                    quiet_failure: true,
                    ..into
                };
                let pulled = pull_one(
                    attempt.reference.clone(),
                    c,
                    &*io.transport,
                    &*io.runtime,
                    dest,
                    mode,
                )
                .await;
                match pulled {
                    Ok(done) => {
                        plan.pulled();
                        return Ok(done);
                    }
                    Err(PullFailed { error: Some(e), .. }) => e,
                    Err(f) => return Err(f.message),
                }
            }
        };
        let message = format!("{what} at {}: {failure}", host.url);
        if !plan.failed(&failure) {
            if mode == progress::Mode::Json {
                progress::emit(json!({"event": "failed", "error": message}));
            }
            return Err(message);
        }
        match mode {
            progress::Mode::Json => progress::emit(
                json!({"event": "fallback", "host": host.url.to_string(), "error": failure.to_string()}),
            ),
            progress::Mode::None => {}
            _ => eprintln!("fallback {message}; trying the next host"),
        }
    }
    Err(format!(
        "{reference}: no host of {} may serve it",
        reference.registry()
    ))
}

/// Pulls the referrers of `subject` in `reference`'s repository (and theirs), each by
/// digest with every platform, into the layout of `into` (unnamed entries, found again
/// by their `subject`).
pub(crate) async fn pull_referrers(
    reference: &Reference,
    subject: ocireg_core::Digest,
    cfg: &Config,
    io: &crate::setup::Io,
    into: Dest<'_>,
    mode: progress::Mode,
) -> Result<(), String> {
    let found = crate::referrers::closure(reference, subject, cfg, io).await?;
    for d in &found {
        let every = Config {
            platform: PlatformChoice::All,
            ..cfg.clone()
        };
        let one = Dest {
            files: None,
            ..into
        };
        let (summary, _) = pull_one(
            crate::referrers::at_digest(reference, &d.digest)?,
            every,
            &*io.transport,
            &*io.runtime,
            one,
            mode,
        )
        .await?;
        crate::progress::say(&summary);
    }
    if mode != progress::Mode::Json {
        progress::say(&format!(
            "referrers: {} pulled into {}",
            found.len(),
            into.dir.display()
        ));
    }
    Ok(())
}

/// After a failed first pull into `dir`: removes the layout skeleton the pull created
/// (`oci-layout`, empty `blobs/` and `ingest/`, and `dir` itself when the pull made it)
/// when it holds nothing worth keeping: no blob, no partial download to continue.
fn remove_skeleton(dir: &Path, dir_existed: bool) {
    fn holds_a_file(p: &Path, depth: u8) -> bool {
        let Ok(entries) = std::fs::read_dir(p) else {
            return false;
        };
        entries.flatten().any(|e| match e.file_type() {
            Ok(t) if t.is_dir() => depth > 0 && holds_a_file(&e.path(), depth - 1),
            Ok(_) => true,
            Err(_) => true,
        })
    }
    if holds_a_file(&dir.join("blobs"), 2) || holds_a_file(&dir.join("ingest"), 2) {
        return;
    }
    if !dir_existed {
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    let _ = std::fs::remove_file(dir.join("oci-layout"));
    for sub in ["blobs", "ingest"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
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
