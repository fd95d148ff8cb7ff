//! `ocireg push` (an image of a layout into a repository) and `ocireg copy` (an image
//! from one repository to another, through a temporary layout).

use std::path::Path;

use ocireg_core::{Config, Event, Platform, PlatformChoice, Push, PushPlan, Pushed, Reference};
use ocireg_driver::push::plan_from_layout;
use ocireg_driver::{drive_push, BlobSource, Runtime, Transport};
use serde_json::json;

use crate::args::{CopyArgs, PushArgs, RuntimeChoice};
use crate::progress::{emit, Mode};
use crate::pull::{human, pull_one};
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
                    Mode::Plain | Mode::Bars => eprintln!("{word:<8} {digest} ({})", human(*size)),
                    _ => {}
                }
            }
            Event::ManifestPushed { digest, reference } => match mode {
                Mode::Json => emit(
                    json!({"event": "manifest", "digest": digest.to_string(), "reference": reference}),
                ),
                Mode::Plain | Mode::Bars => eprintln!("manifest {digest} as {reference}"),
                _ => {}
            },
            Event::Retry {
                what,
                attempt,
                delay,
                error,
            } => {
                self.retries += 1;
                tracing::warn!(
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
            Event::Restarted { blob } => match mode {
                Mode::Json => emit(json!({"event": "restarted", "blob": blob.0})),
                Mode::Plain | Mode::Bars => eprintln!("restart  blob {} in a new session", blob.0),
                _ => {}
            },
            _ => {}
        }
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
    let mut push = Push::new(cfg, target.clone(), plan, started);
    let result = drive_push(&mut push, t, runtime, source, &mut |e: &Event| {
        tally.see(e, mode)
    })
    .await;
    if let Err(e) = result {
        if mode == Mode::Json {
            emit(json!({"event": "failed", "error": e.to_string()}));
        }
        return Err(e.to_string());
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

fn layout_plan(
    dir: &Path,
    name: Option<&str>,
) -> Result<(PushPlan, ocireg_driver::push::LayoutSource), String> {
    plan_from_layout(dir, name).map_err(|e| format!("{}: {e}", dir.display()))
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
    let (mut plan, source) = layout_plan(&a.dir, a.name.as_deref())?;
    plan.tags.extend(a.tags);
    plan.mount_from = a.mount_from;
    let mode = a.progress.resolve();
    let summary = push_plan(
        target,
        cfg,
        plan,
        &source,
        &*io.transport,
        &*io.runtime,
        mode,
    )
    .await?;
    if !summary.is_empty() {
        println!("{summary}");
    }
    Ok(())
}

pub(crate) async fn cmd_copy(a: CopyArgs, rt: RuntimeChoice) -> Result<(), String> {
    let source = Reference::parse(&a.source).map_err(|e| e.to_string())?;
    let mut target = Reference::parse(&a.target).map_err(|e| e.to_string())?;
    if target.digest().is_some() {
        return Err(format!(
            "{target}: copy to a tag or a repository, not a digest"
        ));
    }
    if target.tag().is_none() {
        if let Some(t) = source.tag() {
            target = Reference::parse(&format!("{}:{t}", a.target)).map_err(|e| e.to_string())?;
        }
    }
    let io = io(rt, &a.connect)?;
    let now = io.runtime.now();
    let mut pull_cfg = config(&a.connect, source.registry(), now)?;
    pull_cfg.max_concurrent = usize::from(a.concurrency);
    pull_cfg.platform = match &a.platform {
        Some(p) => PlatformChoice::Exactly(
            Platform::parse(p)
                .ok_or_else(|| format!("--platform {p:?}: expected os/arch[/variant]"))?,
        ),
        None => PlatformChoice::All,
    };
    let mut push_cfg = config(&a.connect, target.registry(), now)?;
    push_cfg.max_concurrent = usize::from(a.concurrency);
    push_cfg.upload_chunk_size = a.chunk_size << 20;
    let mode = a.progress.resolve();
    let quiet = if mode == Mode::Json {
        Mode::None
    } else {
        mode.min_plain()
    };
    let tmp = tempfile::tempdir().map_err(|e| format!("a temporary layout: {e}"))?;
    pull_one(
        source.clone(),
        pull_cfg,
        &*io.transport,
        &*io.runtime,
        tmp.path(),
        quiet,
        false,
    )
    .await?;
    let (plan, blobs) = layout_plan(tmp.path(), source.tag())?;
    let summary = push_plan(
        target,
        push_cfg,
        plan,
        &blobs,
        &*io.transport,
        &*io.runtime,
        mode,
    )
    .await?;
    if !summary.is_empty() {
        println!("{summary}");
    }
    Ok(())
}
