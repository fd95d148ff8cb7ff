//! `ocireg push` (an image of a layout into a repository), and what `ocireg copy` shares
//! with it: the progress of a push (lines, bars, JSON) and its summary. The push itself
//! (plans, referrers of the layout, the upload) is the library's.

use ocireg_core::{Event, Pushed};
use ocireg_driver::{Body, Caller};
use serde_json::json;

use crate::args::{PushArgs, RuntimeChoice};
use crate::progress::{emit, Mode};
use crate::pull::human;

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
            Event::UploadRestarted { blob } => match mode {
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
}

impl Bars {
    fn new() -> Bars {
        use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
        let multi =
            indicatif::MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(10));
        let total = multi.add(ProgressBar::new(0));
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
        }
    }

    /// The bar of `blob`, at least `end` bytes long (the push asks for ranges: a
    /// blob's length shows as its requests reach it).
    fn bar(&self, blob: usize, end: u64) -> indicatif::ProgressBar {
        let mut blobs = self.blobs.lock().expect("bars");
        let bar = blobs
            .entry(blob)
            .or_insert_with(|| {
                let b = self.multi.add(indicatif::ProgressBar::new(0));
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix:>12} [{bar:30}] {bytes}/{total_bytes}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                b.set_prefix(format!("blob {blob}"));
                b
            })
            .clone();
        let length = bar.length().unwrap_or(0);
        if end > length {
            bar.set_length(end);
            self.total.inc_length(end - length);
        }
        bar
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

/// The progress of a push or a copy: the tally, shown as it happens, and the bars that
/// count each body's bytes as the transport reads them from the source.
pub(crate) struct PushProgress {
    tally: Tally,
    bars: Option<Bars>,
    mode: Mode,
    started: std::time::Instant,
}

impl PushProgress {
    pub(crate) fn new(mode: Mode) -> PushProgress {
        PushProgress {
            tally: Tally::default(),
            bars: (mode == Mode::Bars).then(Bars::new),
            mode,
            started: std::time::Instant::now(),
        }
    }

    /// The summary line of a push of `target` that ended at `top` (empty in JSON mode,
    /// where it is emitted).
    pub(crate) fn summary(self, target: &str, top: &ocireg_core::Digest, more: &str) -> String {
        drop(self.bars);
        let tally = self.tally;
        let secs = self.started.elapsed().as_secs_f64();
        if self.mode == Mode::Json {
            emit(json!({
                "event": "summary", "reference": target, "digest": top.to_string(),
                "uploaded": tally.uploaded, "present": tally.existed, "mounted": tally.mounted,
                "bytes": tally.bytes, "retries": tally.retries, "seconds": secs,
            }));
            return String::new();
        }
        format!(
            "pushed {target} → {top}\n  blobs: {} uploaded, {} already there, {} mounted; {} in {secs:.2}s{}{more}",
            tally.uploaded,
            tally.existed,
            tally.mounted,
            human(tally.bytes),
            if tally.retries > 0 { format!(", {} retries", tally.retries) } else { String::new() }
        )
    }

    /// The line of a push that failed with `message` (emitted in JSON mode).
    pub(crate) fn failed(self, message: String) -> String {
        drop(self.bars);
        if self.mode == Mode::Json {
            emit(json!({"event": "failed", "error": message}));
        }
        message
    }
}

impl Caller for PushProgress {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        self.tally.see(event, self.mode);
        Ok(())
    }

    fn sending(
        &mut self,
        blob: ocireg_core::BlobId,
        offset: u64,
        body: Body,
    ) -> std::io::Result<Body> {
        use futures::StreamExt;
        let Some(bars) = &self.bars else {
            return Ok(body);
        };
        let Body::Stream { len, chunks } = body else {
            return Ok(body);
        };
        let bar = bars.bar(blob.0, offset.saturating_add(len));
        // a range read again (a resumed upload) starts where it starts
        bar.set_position(offset);
        let total = bars.total.clone();
        let chunks = chunks
            .inspect(move |c| {
                if let Ok(c) = c {
                    bar.inc(c.len() as u64);
                    total.inc(c.len() as u64);
                }
            })
            .boxed();
        Ok(Body::Stream { len, chunks })
    }
}

pub(crate) async fn cmd_push(a: PushArgs, rt: RuntimeChoice) -> Result<(), String> {
    let target = ocireg_core::Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    let client = crate::setup::client(rt, &a.connect, &[target.registry()], |cfg| {
        cfg.max_concurrent = usize::from(a.concurrency);
        cfg.upload_chunk_size = a.chunk_size << 20;
        Ok(())
    })?;
    let (dir, written_name) = ocireg_driver::client::layout_dir(&a.dir);
    let name = match (written_name, a.name) {
        (Some(w), Some(n)) if w != n => {
            return Err(format!("{}: named both {w:?} and --name {n:?}", a.dir))
        }
        (w, n) => w.or(n),
    };
    let mode = a.progress.resolve();
    let mut progress = PushProgress::new(mode);
    let pushed = client
        .push(&dir, name.as_deref(), &a.reference)
        .platform(a.platform)
        .tags(a.tags)
        .mount_from(a.mount_from)
        .include_referrers(a.include_referrers)
        .run(&mut progress)
        .await;
    match pushed {
        Ok((top, referrers)) => {
            let more = if a.include_referrers && mode != Mode::Json {
                format!("\nreferrers: {} pushed", referrers.len())
            } else {
                String::new()
            };
            crate::progress::say(&progress.summary(&target.to_string(), &top, &more));
            Ok(())
        }
        Err(e) => Err(progress.failed(crate::explain::client_error(
            &e,
            &target,
            a.connect.username.as_deref(),
        ))),
    }
}
