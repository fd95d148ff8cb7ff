//! Progress output: bars on a terminal (indicatif), plain lines, or JSON events.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ocireg_core::{BlobId, Descriptor, Event};
use ocireg_driver::Caller;
use serde_json::json;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Bars when stdout is a terminal, otherwise nothing.
    Auto,
    /// Bars per blob and in total.
    Bars,
    /// One line per notable event on stderr.
    Plain,
    /// One JSON object per line on stdout.
    Json,
    /// Nothing but the summary.
    None,
}

/// `--quiet`: no progress and no summary, only errors.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns `--quiet` on for the rest of the run.
pub fn set_quiet() {
    QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Prints a command's summary on stdout, unless `--quiet` (or it is empty: JSON mode
/// said it already).
pub fn say(summary: &str) {
    if !summary.is_empty() && !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        println!("{summary}");
    }
}

impl Mode {
    /// `Auto` resolved against the terminal (and `--quiet`, which means `None`).
    pub fn resolve(self) -> Mode {
        if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
            return Mode::None;
        }
        match self {
            Mode::Auto if std::io::IsTerminal::is_terminal(&std::io::stdout()) => Mode::Bars,
            Mode::Auto => Mode::None,
            m => m,
        }
    }
}

struct Blob {
    digest: String,
    size: u64,
    media_type: String,
    done: u64,
    /// Created when the blob's first bytes (or its end) arrive: a blob that is skipped
    /// never shows.
    bar: Option<ProgressBar>,
    announced: bool,
    last_report: u64,
}

/// Turns pull events into the chosen output.
pub struct Progress {
    mode: Mode,
    blobs: HashMap<BlobId, Blob>,
    multi: Option<MultiProgress>,
    total: Option<ProgressBar>,
    started: Instant,
}

fn short(d: &str) -> String {
    d.split_once(':')
        .map(|(_, h)| h.chars().take(12).collect())
        .unwrap_or_default()
}

/// Writes one JSON event line to stdout.
pub fn emit(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
}

impl Progress {
    /// A progress display in `mode` (already resolved).
    pub fn new(mode: Mode) -> Progress {
        let (multi, total) = if mode == Mode::Bars {
            let m = MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(10));
            let t = m.add(ProgressBar::new(0));
            t.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            t.set_prefix("total");
            (Some(m), Some(t))
        } else {
            (None, None)
        };
        Progress {
            mode,
            blobs: HashMap::new(),
            multi,
            total,
            started: Instant::now(),
        }
    }

    /// Clears the bars (before the summary is printed).
    pub fn finish(&mut self) {
        for b in self.blobs.values() {
            if let Some(bar) = &b.bar {
                bar.finish_and_clear();
            }
        }
        if let Some(t) = &self.total {
            t.finish_and_clear();
        }
    }

    /// Reports a failure (JSON mode prints a `failed` event).
    pub fn failed(&mut self, error: &str) {
        self.finish();
        if self.mode == Mode::Json {
            emit(json!({"event": "failed", "error": error}));
        }
    }

    fn queued(&mut self, blob: BlobId, d: &Descriptor) {
        if let Some(t) = &self.total {
            t.inc_length(d.len());
        }
        self.blobs.insert(
            blob,
            Blob {
                digest: d.digest.to_string(),
                size: d.len(),
                media_type: d.media_type.clone(),
                done: 0,
                bar: None,
                announced: false,
                last_report: 0,
            },
        );
    }

    /// The blob is being fetched: its bar appears, JSON says `started` (once).
    fn announce(&mut self, blob: BlobId) -> Option<&mut Blob> {
        let b = self.blobs.get_mut(&blob)?;
        if !b.announced {
            b.announced = true;
            b.bar = self.multi.as_ref().map(|m| {
                let bar = m.add(ProgressBar::new(b.size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {msg}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(short(&b.digest));
                bar
            });
            if self.mode == Mode::Json {
                emit(
                    json!({"event": "started", "blob": b.digest, "size": b.size, "media_type": b.media_type}),
                );
            }
        }
        Some(b)
    }

    /// The blob is not downloaded: the layout has it.
    fn skipped(&mut self, blob: BlobId) {
        let Some(b) = self.blobs.remove(&blob) else {
            return;
        };
        if let Some(t) = &self.total {
            t.set_length(t.length().unwrap_or(0).saturating_sub(b.size));
        }
        match self.mode {
            Mode::Json => emit(json!({"event": "skipped", "blob": b.digest, "size": b.size})),
            Mode::Plain => eprintln!("present  {}", b.digest),
            _ => {}
        }
    }
}

impl Caller for Progress {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        match event {
            Event::BlobQueued { blob, descriptor } => self.queued(*blob, descriptor),
            Event::BlobSkipped { blob, .. } => self.skipped(*blob),
            Event::BlobFetched { blob, digest, size } => {
                if let Some(b) = self.announce(*blob) {
                    if let Some(bar) = &b.bar {
                        bar.finish_and_clear();
                    }
                }
                match self.mode {
                    Mode::Json => {
                        emit(json!({"event": "done", "blob": digest.to_string(), "size": size}))
                    }
                    Mode::Plain => eprintln!("done     {digest} ({size} bytes)"),
                    _ => {}
                }
            }
            Event::Retry {
                what,
                attempt,
                delay,
                error,
            } => match self.mode {
                Mode::Json => emit(
                    json!({"event": "retry", "what": what, "attempt": attempt, "delay_ms": delay.as_millis() as u64, "error": error.to_string()}),
                ),
                Mode::Plain => eprintln!(
                    "retry    {what}: attempt {attempt} in {:.1}s: {error}",
                    delay.as_secs_f64()
                ),
                Mode::Bars => {
                    if let Some(m) = &self.multi {
                        let _ = m.println(format!(
                            "retry {what}: attempt {attempt} in {:.1}s: {error}",
                            delay.as_secs_f64()
                        ));
                    }
                }
                _ => {}
            },
            Event::DownloadResumed { blob, offset } => {
                let total = self.total.clone();
                let Some(b) = self.announce(*blob) else {
                    return Ok(());
                };
                // From a prefix the layout already had: those bytes count as done.
                if *offset > b.done {
                    let more = offset - b.done;
                    b.done = *offset;
                    b.last_report = *offset;
                    if let Some(bar) = &b.bar {
                        bar.inc(more);
                    }
                    if let Some(t) = total {
                        t.inc(more);
                    }
                }
                let digest = b.digest.clone();
                match self.mode {
                    Mode::Json => {
                        emit(json!({"event": "resumed", "blob": digest, "offset": offset}))
                    }
                    Mode::Plain => eprintln!("resume   {digest} at byte {offset}"),
                    Mode::Bars => {
                        if let Some(bar) = self.blobs.get(blob).and_then(|b| b.bar.as_ref()) {
                            bar.set_message(format!("resumed at {offset}"));
                        }
                    }
                    _ => {}
                }
            }
            Event::DownloadRestarted { blob } => {
                if let Some(b) = self.blobs.get_mut(blob) {
                    if let Some(t) = &self.total {
                        t.set_position(t.position().saturating_sub(b.done));
                    }
                    b.done = 0;
                    b.last_report = 0;
                    if let Some(bar) = &b.bar {
                        bar.set_position(0);
                        bar.set_message("restarted");
                    }
                    if self.mode == Mode::Json {
                        emit(json!({"event": "restarted", "blob": b.digest}));
                    }
                }
            }
            Event::Manifest {
                digest, media_type, ..
            } if self.mode == Mode::Json => emit(
                json!({"event": "manifest", "digest": digest.to_string(), "media_type": media_type}),
            ),
            _ => {}
        }
        Ok(())
    }

    fn deliver(&mut self, blob: BlobId, _: u64, bytes: &bytes::Bytes) -> std::io::Result<()> {
        self.delivered(blob, bytes.len() as u64);
        Ok(())
    }
}

impl Progress {
    fn delivered(&mut self, blob: BlobId, n: u64) {
        let total = self.total.clone();
        let started = self.started;
        let json = self.mode == Mode::Json;
        let Some(b) = self.announce(blob) else {
            return;
        };
        b.done += n;
        if let Some(bar) = &b.bar {
            bar.inc(n);
        }
        if let Some(t) = &total {
            t.inc(n);
        }
        // JSON progress: at most every 5% (or 8 MiB) of a blob
        let step = (b.size / 20).clamp(1, 8 << 20);
        if json && b.done.saturating_sub(b.last_report) >= step && b.done < b.size {
            b.last_report = b.done;
            emit(
                json!({"event": "progress", "blob": b.digest, "bytes": b.done, "size": b.size, "elapsed_ms": started.elapsed().as_millis() as u64}),
            );
        }
    }
}
