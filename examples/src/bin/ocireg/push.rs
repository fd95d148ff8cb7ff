//! `ocireg push` (an image of a layout into a repository), and what `ocireg copy` shares
//! with it: the plan from a layout, the progress bars and the summary of a push.

use std::path::Path;

use ocireg_core::{Config, Event, Machine, Platform, PushPlan, Pushed, Reference};
use ocireg_driver::push::{plan_for_manifest, plan_from_layout, referrers_in_layout};
use ocireg_driver::{drive, BlobSource, Runtime, Transport, Upload};
use serde_json::json;

use crate::args::{PushArgs, RuntimeChoice};
use crate::progress::{emit, Mode};
use crate::pull::human;
use crate::setup::{config, io};

/// What a push did, counted from its events, shown as it happens.
#[derive(Default)]
struct Tally {
    uploaded: u64,
    existed: u64,
    mounted: u64,
    bytes: u64,
    retries: u64,
}

impl Tally {
    fn see(&mut self, e: &Event, mode: Mode) {
        match e {
            Event::BlobPushed {
                digest, size, how, ..
            } => {
                let word = match how {
                    Pushed::Uploaded => {
                        self.uploaded += 1;
                        self.bytes += size;
                        "uploaded"
                    }
                    Pushed::Existed => {
                        self.existed += 1;
                        "present"
                    }
                    Pushed::Mounted => {
                        self.mounted += 1;
                        "mounted"
                    }
                };
                match mode {
                    Mode::Json => emit(
                        json!({"event": "blob", "blob": digest.to_string(), "size": size, "how": word}),
                    ),
                    Mode::Plain => eprintln!("{word:<8} {digest} ({})", human(*size)),
                    _ => {}
                }
            }
            Event::ManifestPushed { digest, reference } => match mode {
                Mode::Json => emit(
                    json!({"event": "manifest", "digest": digest.to_string(), "reference": reference}),
                ),
                Mode::Plain => eprintln!("manifest {digest} as {reference}"),
                _ => {}
            },
            Event::Retry {
                what,
                attempt,
                delay,
                error,
            } => {
                self.retries += 1;
                tracing::info!(
                    "{what}: {error}; attempt {attempt} in {:.1}s",
                    delay.as_secs_f64()
                );
                match mode {
                    Mode::Json => emit(
                        json!({"event": "retry", "what": what, "attempt": attempt, "delay_ms": delay.as_millis() as u64, "error": error.to_string()}),
                    ),
                    Mode::Plain | Mode::Bars => {
                        eprintln!("retry    {what}: attempt {attempt}: {error}")
                    }
                    _ => {}
                }
            }
            Event::UploadResumed { blob, offset } => match mode {
                Mode::Json => emit(json!({"event": "resumed", "blob": blob.0, "offset": offset})),
                Mode::Plain | Mode::Bars => eprintln!("resume   blob {} at byte {offset}", blob.0),
                _ => {}
            },
            Event::DownloadRestarted { blob } => match mode {
                Mode::Json => emit(json!({"event": "restarted", "blob": blob.0})),
                Mode::Plain | Mode::Bars => eprintln!("restart  blob {} in a new session", blob.0),
                _ => {}
            },
            _ => {}
        }
    }
}

/// Upload bars: one per blob being sent, and the total, counting the bytes as the
/// transport reads them from the source.
struct Bars {
    multi: indicatif::MultiProgress,
    total: indicatif::ProgressBar,
    blobs: std::sync::Mutex<std::collections::HashMap<usize, indicatif::ProgressBar>>,
    sizes: Vec<(String, u64)>,
}

impl Bars {
    fn new(plan: &PushPlan) -> Bars {
        use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
        let multi =
            indicatif::MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(10));
        let sizes: Vec<(String, u64)> = plan
            .blobs
            .iter()
            .map(|d| (d.digest.hex().chars().take(12).collect(), d.len()))
            .collect();
        let total = multi.add(ProgressBar::new(sizes.iter().map(|s| s.1).sum()));
        total.set_style(
            ProgressStyle::with_template(
                "{prefix:>12.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        total.set_prefix("upload");
        Bars {
            multi,
            total,
            blobs: Default::default(),
            sizes,
        }
    }

    fn bar(&self, blob: usize) -> indicatif::ProgressBar {
        let mut blobs = self.blobs.lock().expect("bars");
        blobs
            .entry(blob)
            .or_insert_with(|| {
                let (name, size) = self.sizes.get(blob).cloned().unwrap_or_default();
                let b = self.multi.add(indicatif::ProgressBar::new(size));
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix:>12} [{bar:30}] {bytes}/{total_bytes}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                b.set_prefix(name);
                b
            })
            .clone()
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        for b in self.blobs.lock().expect("bars").values() {
            b.finish_and_clear();
        }
        self.total.finish_and_clear();
    }
}

/// A blob source whose reads move the bars.
struct Counted<'a> {
    inner: &'a dyn BlobSource,
    bars: &'a Bars,
}

impl BlobSource for Counted<'_> {
    fn read(
        &self,
        blob: ocireg_core::BlobId,
        offset: u64,
        len: u64,
    ) -> std::io::Result<futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>> {
        use futures::StreamExt;
        let chunks = self.inner.read(blob, offset, len)?;
        let bar = self.bars.bar(blob.0);
        // a range read again (a resumed upload) starts where it starts
        bar.set_position(offset);
        let total = self.bars.total.clone();
        Ok(chunks
            .inspect(move |c| {
                if let Ok(c) = c {
                    bar.inc(c.len() as u64);
                    total.inc(c.len() as u64);
                }
            })
            .boxed())
    }
}

/// Pushes `plan` to `target`; the summary line (empty in JSON mode).
pub(crate) async fn push_plan<T: Transport + ?Sized, R: Runtime + ?Sized>(
    target: Reference,
    cfg: Config,
    plan: PushPlan,
    source: &dyn BlobSource,
    t: &T,
    runtime: &R,
    mode: Mode,
) -> Result<String, String> {
    let started = runtime.now();
    let top = plan
        .manifests
        .last()
        .map(|m| m.descriptor.digest.to_string())
        .unwrap_or_default();
    let mut tally = Tally::default();
    let bars = (mode == Mode::Bars).then(|| Bars::new(&plan));
    let source: &dyn BlobSource = match &bars {
        Some(b) => &Counted {
            inner: source,
            bars: b,
        },
        None => source,
    };
    let credentials = cfg.credentials.clone();
    let mut push = Machine::push(cfg, target.clone(), plan, started);
    let mut upload = Upload {
        source,
        observer: |e: &Event| tally.see(e, mode),
    };
    let result = drive(&mut push, t, runtime, &mut upload).await;
    if let Err(e) = result {
        let e = crate::explain::pull_error(&e, &target, &credentials);
        if mode == Mode::Json {
            emit(json!({"event": "failed", "error": e}));
        }
        return Err(e);
    }
    let secs = started.elapsed().as_secs_f64();
    if mode == Mode::Json {
        emit(json!({
            "event": "summary", "reference": target.to_string(), "digest": top,
            "uploaded": tally.uploaded, "present": tally.existed, "mounted": tally.mounted,
            "bytes": tally.bytes, "retries": tally.retries, "seconds": secs,
        }));
        return Ok(String::new());
    }
    Ok(format!(
        "pushed {target} → {top}\n  blobs: {} uploaded, {} already there, {} mounted; {} in {secs:.2}s{}",
        tally.uploaded,
        tally.existed,
        tally.mounted,
        human(tally.bytes),
        if tally.retries > 0 { format!(", {} retries", tally.retries) } else { String::new() }
    ))
}

pub(crate) fn layout_plan(
    dir: &Path,
    name: Option<&str>,
    platform: Option<&Platform>,
) -> Result<(PushPlan, ocireg_driver::push::LayoutSource), String> {
    plan_from_layout(dir, name, platform).map_err(|e| format!("{}: {e}", dir.display()))
}

pub(crate) async fn cmd_push(a: PushArgs, rt: RuntimeChoice) -> Result<(), String> {
    let target = Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    if target.digest().is_some() {
        return Err(format!(
            "{target}: push to a tag or a repository, not a digest"
        ));
    }
    for t in &a.tags {
        ocireg_core::reference::validate_tag(t).map_err(|e| format!("--tag {t:?}: {e}"))?;
    }
    let io = io(rt, &a.connect)?;
    let mut cfg = config(&a.connect, target.registry(), io.runtime.now())?;
    cfg.max_concurrent = usize::from(a.concurrency);
    cfg.upload_chunk_size = a.chunk_size << 20;
    let (dir, written_name) = layout_dir(&a.dir);
    let name = match (written_name, a.name) {
        (Some(w), Some(n)) if w != n => {
            return Err(format!("{}: named both {w:?} and --name {n:?}", a.dir))
        }
        (w, n) => w.or(n),
    };
    let (mut plan, source) = layout_plan(&dir, name.as_deref(), a.platform.as_ref())?;
    plan.tags.extend(a.tags);
    plan.mount_from = a.mount_from;
    let top = plan.manifests.last().map(|m| m.descriptor.digest.clone());
    let mode = a.progress.resolve();
    push_and_say(target.clone(), cfg.clone(), plan, &source, &io, mode).await?;
    match top {
        Some(top) if a.include_referrers => {
            push_layout_referrers(&dir, &top, &target, cfg, &io, mode).await
        }
        _ => Ok(()),
    }
}

/// Pushes the referrers of `subject` that the layout at `dir` holds (and theirs), each
/// by digest into `target`'s repository, after the image they refer to.
pub(crate) async fn push_layout_referrers(
    dir: &Path,
    subject: &ocireg_core::Digest,
    target: &Reference,
    cfg: Config,
    io: &crate::setup::Io,
    mode: Mode,
) -> Result<(), String> {
    let found = referrers_in_layout(dir, subject, crate::referrers::MAX_REFERRERS)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let repository = untagged(target)?;
    for d in &found {
        let (plan, source) =
            plan_for_manifest(dir, d).map_err(|e| format!("{}: {e}", dir.display()))?;
        push_and_say(repository.clone(), cfg.clone(), plan, &source, io, mode).await?;
    }
    if mode != Mode::Json {
        crate::progress::say(&format!("referrers: {} pushed", found.len()));
    }
    Ok(())
}

/// `target`'s repository, with no tag: what a push by digest goes to.
pub(crate) fn untagged(target: &Reference) -> Result<Reference, String> {
    Reference::new(target.registry(), target.repository(), None, None).map_err(|e| e.to_string())
}

/// [`push_plan`], then its summary on stdout.
pub(crate) async fn push_and_say(
    target: Reference,
    cfg: Config,
    plan: PushPlan,
    source: &dyn BlobSource,
    io: &crate::setup::Io,
    mode: Mode,
) -> Result<(), String> {
    let summary = push_plan(
        target,
        cfg,
        plan,
        source,
        &*io.transport,
        &*io.runtime,
        mode,
    )
    .await?;
    crate::progress::say(&summary);
    Ok(())
}

/// `DIR[:NAME]`: a layout directory and the `ref.name` of an image in it. A directory
/// that exists under the whole text is taken as it is (its name may contain ':');
/// otherwise a name is what follows the last ':' when that is not part of a path.
pub(crate) fn layout_dir(s: &str) -> (std::path::PathBuf, Option<String>) {
    if Path::new(s).is_dir() {
        return (s.into(), None);
    }
    match s.rsplit_once(':') {
        Some((dir, name)) if !name.contains('/') && !name.is_empty() && !dir.is_empty() => {
            (dir.into(), Some(name.to_string()))
        }
        _ => (s.into(), None),
    }
}
