//! `ocireg`: pull OCI images into image layouts, inspect manifests, list tags, serve
//! layouts, and a self-contained demo.
//!
//! Exit status: 0 on success, 1 on failure (one line on stderr naming the cause),
//! 2 on a usage error.

// Doc comments on the arguments are clap's help text (`[host[:port]/]…`), not rustdoc links.
#![allow(rustdoc::broken_intra_doc_links)]

mod progress;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use ocireg_core::{
    Config, Credentials, Event, Manifest, Platform, PlatformChoice, Pull, Reference, RetryPolicy,
    Secret,
};
use ocireg_driver::layout::{pull_into, LayoutWriter, Observer};
use ocireg_driver::server::load_into;
use ocireg_driver::{PullError, Runtime, Sink};
use ocireg_registry::{FaultyRegistry, Registry};
use ocireg_tokio::{load_certs, serve, TokioRuntime, TokioTransport};
use rustls::pki_types as rustls_pki;
use serde_json::json;

const EXIT_CODES: &str =
    "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error.";

#[derive(Parser)]
#[command(
    name = "ocireg",
    version,
    about = "Pull OCI images and artifacts from registries into OCI image layouts"
)]
#[command(after_help = EXIT_CODES)]
struct Cli {
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pull an image into an OCI image layout directory (created or added to).
    #[command(after_help = concat!("Examples:\n  ocireg pull docker.io/library/alpine:3.20 ./alpine\n  ocireg pull --plain-http 127.0.0.1:5000/demo/hello:v1 ./out\n  ocireg pull --platform linux/arm64 --progress json ghcr.io/org/app:1 ./app\n  ocireg pull --all-platforms --ca-file ca.crt registry.internal:5000/app@sha256:… ./app\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Pull(PullArgs),
    /// Show a manifest or index: digest, size, media type, platforms, or the raw JSON.
    #[command(after_help = concat!("Examples:\n  ocireg inspect docker.io/library/alpine:3.20\n  ocireg inspect --raw --plain-http 127.0.0.1:5000/demo/hello:v1 | jq .\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Inspect(InspectArgs),
    /// List every tag of a repository, one per line (follows pagination).
    #[command(after_help = concat!("Examples:\n  ocireg tags docker.io/library/alpine\n  ocireg tags --plain-http 127.0.0.1:5000/demo/hello\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Tags(TagsArgs),
    /// Serve an OCI image layout read-only over plain http (for tests and demos).
    #[command(after_help = concat!("Every image of the layout is served: an index.json entry whose ref.name is a tag\ngoes to --repository with that tag; one whose ref.name is a full reference goes to\nits repository.\n\nExamples:\n  ocireg serve ./alpine\n  ocireg serve --addr 127.0.0.1:5001 --repository library/alpine ./alpine\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Serve(ServeArgs),
    /// Start a registry in-process with a generated image and pull it into ./ocireg-demo.
    #[command(after_help = concat!("Examples:\n  ocireg demo\n  ocireg demo --dir /tmp/demo\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Demo(DemoArgs),
}

#[derive(Args, Clone)]
struct ConnectArgs {
    /// Talk plain http to the registry (loopback registries fall back to it by themselves).
    #[arg(long)]
    plain_http: bool,
    /// Extra CA certificate (PEM) to trust; repeatable.
    #[arg(long = "ca-file", value_name = "PEM")]
    ca_files: Vec<PathBuf>,
    /// User name for the registry (else OCIREG_USERNAME, else Docker's config.json).
    #[arg(long, env = "OCIREG_USERNAME")]
    username: Option<String>,
    /// Read the password from standard input (else OCIREG_PASSWORD).
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// Give up when the whole operation takes longer than this many seconds (at most ten
    /// years).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    timeout: Option<u64>,
    /// Attempts per request (1 disables retries; at most 100).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100))]
    attempts: u32,
}

#[derive(Args)]
struct PullArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Blob downloads in parallel (1 to 256).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Re-hash blobs already in the layout instead of trusting their names; a blob that
    /// does not match is downloaded again.
    #[arg(long)]
    verify_existing: bool,
    /// Platform to pick from an index: os/arch[/variant] (default: this host).
    #[arg(long, conflicts_with = "all_platforms")]
    platform: Option<String>,
    /// Pull every platform of an index.
    #[arg(long)]
    all_platforms: bool,
    /// Progress output: bars (on a terminal), plain lines on stderr, JSON lines on stdout.
    #[arg(long, value_enum, default_value = "auto")]
    progress: progress::Mode,
    /// The async runtime that drives the pull (same protocol core either way).
    #[arg(long, value_enum, default_value = "tokio")]
    runtime: RuntimeChoice,
    /// Image reference: [host[:port]/]repository[:tag][@digest]
    reference: String,
    /// OCI image layout directory.
    dir: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RuntimeChoice {
    /// tokio with hyper-util over hyper-rustls.
    Tokio,
    /// async-std with hyper-util over futures-rustls.
    AsyncStd,
}

#[derive(Args)]
struct InspectArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Print the manifest bytes exactly as served.
    #[arg(long)]
    raw: bool,
    /// Image reference.
    reference: String,
}

#[derive(Args)]
struct TagsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Give up after this many pages of tags (a registry that links page after page
    /// without end is stopped there).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_pages: u32,
    /// Repository: [host[:port]/]repository
    repository: String,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (loopback recommended).
    #[arg(long, default_value = "127.0.0.1:5000")]
    addr: SocketAddr,
    /// Repository for images whose ref.name is only a tag.
    #[arg(long, default_value = "image", value_parser = repository_name)]
    repository: String,
    /// OCI image layout directory.
    dir: PathBuf,
}

#[derive(Args)]
struct DemoArgs {
    /// Where to pull the demo image.
    #[arg(long, default_value = "ocireg-demo")]
    dir: PathBuf,
}

/// The largest `--timeout`: the core adds it to the clock, so it must stay representable.
const MAX_TIMEOUT_SECS: u64 = 10 * 365 * 24 * 3600;

/// A repository name as the distribution spec allows it (a usage error otherwise).
fn repository_name(s: &str) -> Result<String, String> {
    ocireg_core::reference::validate_repository(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ocireg: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Pull(a) => cmd_pull(a).await,
            Command::Inspect(a) => cmd_inspect(a).await,
            Command::Tags(a) => cmd_tags(a).await,
            Command::Serve(a) => cmd_serve(a).await,
            Command::Demo(a) => cmd_demo(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("ocireg: {msg}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Explicit flags (or `OCIREG_USERNAME`/`OCIREG_PASSWORD`) win; else Docker's config.
fn credentials(c: &ConnectArgs, registry: &str) -> Result<Credentials, String> {
    let Some(username) = c.username.clone() else {
        let Some(path) = ocireg_driver::credentials::default_config_path() else {
            return Ok(Credentials::Anonymous);
        };
        return match ocireg_driver::credentials::lookup(&path, registry) {
            Ok(Some(c)) => {
                tracing::info!("using credentials for {registry} from {}", path.display());
                Ok(c)
            }
            Ok(None) => Ok(Credentials::Anonymous),
            Err(e) => Err(e.to_string()),
        };
    };
    let password = if c.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("reading the password from stdin: {e}"))?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Ok(p) = std::env::var("OCIREG_PASSWORD") {
        p
    } else {
        return Err("--username needs --password-stdin or OCIREG_PASSWORD".into());
    };
    Ok(Credentials::Basic {
        username,
        password: Secret::new(password),
    })
}

fn extra_cas(c: &ConnectArgs) -> Result<Vec<rustls_pki::CertificateDer<'static>>, String> {
    let mut cas = Vec::new();
    for f in &c.ca_files {
        cas.extend(load_certs(f).map_err(|e| format!("--ca-file {}: {e}", f.display()))?);
    }
    Ok(cas)
}

fn transport(c: &ConnectArgs) -> Result<TokioTransport, String> {
    ocireg_tokio::transport(&extra_cas(c)?).map_err(|e| format!("TLS setup: {e}"))
}

fn config(c: &ConnectArgs, registry: &str, now: Instant) -> Result<Config, String> {
    Ok(Config {
        plain_http: c.plain_http,
        credentials: credentials(c, registry)?,
        deadline: c
            .timeout
            .map(|s| ocireg_core::time::later(now, Duration::from_secs(s))),
        retry: RetryPolicy {
            max_attempts: c.attempts,
            ..RetryPolicy::default()
        },
        seed: u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15,
        ..Config::default()
    })
}

/// Logs what the pull does (at info/warn), then passes events on.
struct Logged<'a>(&'a mut (dyn Observer + Send));

impl Observer for Logged<'_> {
    fn event(&mut self, e: &Event) {
        match e {
            Event::Retry {
                what,
                attempt,
                delay,
                error,
            } => {
                tracing::warn!(
                    "{what}: {error}; attempt {attempt} in {:.1}s",
                    delay.as_secs_f64()
                )
            }
            Event::Resumed { blob, offset } => {
                tracing::info!("blob {} resumes at byte {offset}", blob.0)
            }
            Event::Restarted { blob } => {
                tracing::warn!("blob {} starts over (range not satisfiable)", blob.0)
            }
            Event::PlainHttpFallback { host } => {
                tracing::info!("{host} does not speak TLS; using plain http")
            }
            Event::BlobDone { digest, size, .. } => {
                tracing::debug!("{digest}: {size} bytes verified")
            }
            _ => {}
        }
        self.0.event(e)
    }

    fn delivered(&mut self, blob: ocireg_core::BlobId, n: u64) {
        self.0.delivered(blob, n)
    }

    fn skipped(&mut self, blob: ocireg_core::BlobId, d: &ocireg_core::Descriptor) {
        self.0.skipped(blob, d)
    }
}

async fn pull_one<T: ocireg_driver::Transport, R: Runtime>(
    reference: Reference,
    cfg: Config,
    t: &T,
    runtime: &R,
    dir: &Path,
    mode: progress::Mode,
    verify_existing: bool,
) -> Result<String, String> {
    let started = runtime.now();
    let mut pull = Pull::new(cfg, reference.clone(), started);
    let mut progress = progress::Progress::new(mode);
    let tag = reference.tag().map(str::to_string);
    let writer = LayoutWriter::create(dir, tag)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .verify_existing(verify_existing);
    let result = pull_into(&mut pull, t, runtime, writer, &mut Logged(&mut progress)).await;
    let (desc, stats) = match result {
        Ok(r) => r,
        Err(e) => {
            progress.failed(&e.to_string());
            return Err(e.to_string());
        }
    };
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    let platform = desc.platform.as_ref().map(|p| p.to_string());
    if mode == progress::Mode::Json {
        progress::emit(json!({
            "event": "summary", "reference": reference.to_string(), "digest": desc.digest.to_string(),
            "media_type": desc.media_type, "platform": platform, "fetched": stats.fetched, "skipped": stats.skipped,
            "resumed": stats.resumed, "retries": stats.retries, "bytes": stats.bytes, "seconds": secs,
            "sync_seconds": stats.sync.as_secs_f64(),
        }));
        return Ok(String::new());
    }
    Ok(format!(
        "pulled {reference} → {}\n  manifest {}{}, {}\n  blobs: {} fetched, {} already present, {} resumed; {} in {:.2}s ({}/s){}",
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
    ))
}

fn human(n: u64) -> String {
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

async fn cmd_pull(a: PullArgs) -> Result<(), String> {
    let reference = Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    let now = TokioRuntime.now();
    let mut cfg = config(&a.connect, reference.registry(), now)?;
    cfg.max_concurrent = usize::from(a.concurrency);
    cfg.platform = if a.all_platforms {
        PlatformChoice::All
    } else if let Some(p) = &a.platform {
        PlatformChoice::Exactly(
            Platform::parse(p)
                .ok_or_else(|| format!("--platform {p:?}: expected os/arch[/variant]"))?,
        )
    } else {
        PlatformChoice::Host
    };
    let mode = a.progress.resolve();
    let summary = match a.runtime {
        RuntimeChoice::Tokio => {
            pull_one(
                reference,
                cfg,
                &transport(&a.connect)?,
                &TokioRuntime,
                &a.dir,
                mode,
                a.verify_existing,
            )
            .await?
        }
        RuntimeChoice::AsyncStd => {
            let t = ocireg_async_std::transport(&extra_cas(&a.connect)?)
                .map_err(|e| format!("TLS setup: {e}"))?;
            let dir = a.dir.clone();
            let verify = a.verify_existing;
            // the whole pull runs on async-std's executor; this task only awaits it
            async_std::task::spawn(async move {
                pull_one(
                    reference,
                    cfg,
                    &t,
                    &ocireg_async_std::AsyncStdRuntime,
                    &dir,
                    mode,
                    verify,
                )
                .await
            })
            .await?
        }
    };
    if !summary.is_empty() {
        println!("{summary}");
    }
    Ok(())
}

/// Collects events of a machine that delivers no blob bytes (inspect, tags).
struct Collect(Vec<Event>);

impl Sink for Collect {
    fn event(&mut self, _pull: &mut Pull, event: &Event) -> std::io::Result<()> {
        self.0.push(event.clone());
        Ok(())
    }

    fn deliver(&mut self, _: ocireg_core::BlobId, _: u64, _: &bytes::Bytes) -> std::io::Result<()> {
        Ok(())
    }
}

async fn run_machine(mut pull: Pull, t: &TokioTransport) -> Result<Vec<Event>, String> {
    let mut sink = Collect(Vec::new());
    ocireg_driver::drive(&mut pull, t, &TokioRuntime, &mut sink)
        .await
        .map_err(|e: PullError| e.to_string())?;
    Ok(sink.0)
}

async fn cmd_inspect(a: InspectArgs) -> Result<(), String> {
    let reference = Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    let cfg = config(&a.connect, reference.registry(), TokioRuntime.now())?;
    let t = transport(&a.connect)?;
    let events = run_machine(
        Pull::inspect(cfg, reference.clone(), TokioRuntime.now()),
        &t,
    )
    .await?;
    let Some(Event::Manifest {
        digest,
        media_type,
        bytes,
        manifest,
        ..
    }) = events
        .into_iter()
        .find(|e| matches!(e, Event::Manifest { .. }))
    else {
        return Err("no manifest received".into());
    };
    if a.raw {
        use std::io::Write;
        std::io::stdout()
            .write_all(&bytes)
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    println!("reference   {reference}");
    println!("digest      {digest}");
    println!("media type  {media_type}");
    println!("size        {} bytes", bytes.len());
    match manifest {
        Manifest::Index(i) => {
            if let Some(t) = &i.artifact_type {
                println!("artifact    {t}");
            }
            println!("manifests   {}", i.manifests.len());
            for d in &i.manifests {
                let p = d
                    .platform
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into());
                println!("  {p:<20} {} {:>8}  {}", d.digest, d.size, d.media_type);
            }
        }
        Manifest::Image(m) => {
            if let Some(t) = &m.artifact_type {
                println!("artifact    {t}");
            }
            println!(
                "config      {} {:>10}  {}",
                m.config.digest, m.config.size, m.config.media_type
            );
            let total: i64 = m.layers.iter().map(|l| l.size).sum();
            println!(
                "layers      {} ({})",
                m.layers.len(),
                human(total.max(0) as u64)
            );
            for l in &m.layers {
                println!("  {} {:>10}  {}", l.digest, l.size, l.media_type);
            }
        }
    }
    Ok(())
}

async fn cmd_tags(a: TagsArgs) -> Result<(), String> {
    let reference = Reference::parse(&a.repository).map_err(|e| e.to_string())?;
    let mut cfg = config(&a.connect, reference.registry(), TokioRuntime.now())?;
    cfg.max_tag_pages = a.max_pages;
    let t = transport(&a.connect)?;
    let mut pull = Pull::list_tags(cfg, reference, TokioRuntime.now());
    ocireg_driver::drive(&mut pull, &t, &TokioRuntime, &mut PrintTags)
        .await
        .map_err(|e: PullError| e.to_string())
}

/// Prints each page of tags as it arrives (a long listing shows at once, and memory does
/// not grow with the number of pages).
struct PrintTags;

impl Sink for PrintTags {
    fn event(&mut self, _pull: &mut Pull, event: &Event) -> std::io::Result<()> {
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

async fn cmd_serve(a: ServeArgs) -> Result<(), String> {
    let mut reg = Registry::new();
    let added = load_into(&a.dir, &mut reg, &a.repository)
        .map_err(|e| format!("{}: {e}", a.dir.display()))?;
    let listener = tokio::net::TcpListener::bind(a.addr)
        .await
        .map_err(|e| format!("listen on {}: {e}", a.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("serving {} on http://{addr}", a.dir.display());
    for (repo, tag) in &added {
        match tag {
            Some(t) => println!("  {addr}/{repo}:{t}"),
            None => println!("  {addr}/{repo}@<digest>"),
        }
    }
    serve(
        listener,
        Arc::new(Mutex::new(FaultyRegistry::new(reg, vec![]))),
    )
    .await
    .map_err(|e| e.to_string())
}

async fn cmd_demo(a: DemoArgs) -> Result<(), String> {
    let platform = Platform::host();
    let img = ocireg_registry::images::image(
        42,
        &[8 << 20, 1 << 20, 64 << 10, 3 << 20],
        &platform,
        false,
    );
    let mut reg = Registry::new();
    let digest = img.add_to(&mut reg, "demo/hello", Some("v1"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tokio::spawn(serve(
        listener,
        Arc::new(Mutex::new(FaultyRegistry::new(reg, vec![]))),
    ));
    println!(
        "demo: serving a generated {}-layer image (manifest {digest}) at http://{addr}/demo/hello:v1",
        img.layers.len()
    );
    let reference =
        Reference::parse(&format!("{addr}/demo/hello:v1")).map_err(|e| e.to_string())?;
    let now = TokioRuntime.now();
    // The demo needs no credentials and never reads Docker's config.
    let cfg = Config {
        deadline: Some(now + Duration::from_secs(120)),
        ..Config::default()
    };
    let t = ocireg_tokio::transport(&[]).map_err(|e| format!("TLS setup: {e}"))?;
    let summary = pull_one(
        reference,
        cfg,
        &t,
        &TokioRuntime,
        &a.dir,
        progress::Mode::Auto.resolve(),
        false,
    )
    .await?;
    server.abort();
    println!("{summary}");
    println!(
        "demo: {} is an OCI image layout (oci-layout, index.json, blobs/sha256/…); pull it again and every blob is found already present.",
        a.dir.display()
    );
    Ok(())
}
