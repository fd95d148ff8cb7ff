//! `ocireg`: pull, push and copy OCI images, inspect manifests, list tags and
//! repositories, serve layouts, and a self-contained demo.
//!
//! Exit status: 0 on success, 1 on failure (one line on stderr naming the cause),
//! 2 on a usage error.

// Doc comments on the arguments are clap's help text (`[host[:port]/]…`), not rustdoc links.
#![allow(rustdoc::broken_intra_doc_links)]

mod admin;
mod args;
mod authoring;
mod blob;
mod copy;
mod explain;
mod inspect;
mod progress;
mod pull;
mod push;
mod referrers;
mod serve;
mod setup;
mod tags;

use std::future::Future;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::args::{
    ArtifactCommand, AttachArgs, BlobArgs, CatalogArgs, CopyArgs, DeleteArgs, DemoArgs, DigestArgs,
    IndexCommand, InspectArgs, LoginArgs, LogoutArgs, ManifestArgs, PullArgs, PushArgs,
    ReferrersArgs, RuntimeChoice, ServeArgs, TagArgs, TagsArgs,
};

const EXIT_CODES: &str =
    "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error.";

#[derive(Parser)]
#[command(
    name = "ocireg",
    version,
    about = "Pull, push and copy OCI images and artifacts between registries and OCI image layouts"
)]
#[command(after_help = EXIT_CODES)]
struct Cli {
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Print nothing but errors: no progress, no summary (the exit status says how it went).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// The async runtime every command runs on (same protocol core either way).
    #[arg(long, value_enum, default_value = "tokio", global = true)]
    runtime: RuntimeChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pull an image into an OCI image layout directory (created or added to).
    #[command(after_help = concat!("Examples:\n  ocireg pull docker.io/library/alpine:3.20 ./alpine\n  ocireg pull --plain-http 127.0.0.1:5000/demo/hello:v1 ./out\n  ocireg pull --platform linux/arm64 --progress json ghcr.io/org/app:1 ./app\n  ocireg pull --all-platforms --ca-file ca.crt registry.internal:5000/app@sha256:… ./app\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Pull(PullArgs),
    /// Push an image of an OCI image layout to a repository (blobs first, then manifests).
    #[command(after_help = concat!("Examples:\n  ocireg push ./alpine registry.internal:5000/library/alpine:3.20\n  ocireg push --platform linux/arm64 ./multi:v2 127.0.0.1:5000/team/app:v2-arm64\n  ocireg push --tag latest --mount-from base/alpine ./app 127.0.0.1:5000/team/app:1\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Push(PushArgs),
    /// Copy an image (every platform of an index, unless --platform) to another repository.
    #[command(after_help = concat!("Examples:\n  ocireg copy docker.io/library/alpine:3.20 registry.internal:5000/mirror/alpine\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Copy(CopyArgs),
    /// Show a manifest or index: digest, size, media type, platforms, or the raw JSON.
    #[command(after_help = concat!("Examples:\n  ocireg inspect docker.io/library/alpine:3.20\n  ocireg inspect --raw --plain-http 127.0.0.1:5000/demo/hello:v1 | jq .\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Inspect(InspectArgs),
    /// Push files as an artifact (oras push).
    #[command(subcommand, after_help = concat!("Examples:\n  ocireg artifact push --artifact-type application/vnd.example.config registry.internal:5000/team/config:v1 app.yaml:application/yaml\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Artifact(ArtifactCommand),
    /// Push files as an artifact that refers to an image (a signature, an SBOM: oras attach).
    #[command(after_help = concat!("Examples:\n  ocireg attach --artifact-type application/spdx+json registry.internal:5000/team/app:v1 sbom.json:application/spdx+json\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Attach(AttachArgs),
    /// Create or extend an image index from manifests of its repository.
    #[command(subcommand, after_help = concat!("Examples:\n  ocireg index create registry.internal:5000/team/app:v1 --manifest registry.internal:5000/team/app:v1-amd64 --manifest registry.internal:5000/team/app:v1-arm64\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Index(IndexCommand),
    /// Check credentials against a registry, then store them in Docker's config.json (or
    /// its credential helper), where docker, podman, skopeo and crane find them.
    #[command(after_help = concat!("Examples:\n  echo \"$TOKEN\" | ocireg login --username me --password-stdin ghcr.io\n\nA password is never taken on the command line.\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Login(LoginArgs),
    /// Remove a registry's credentials from Docker's config.json (or its helper).
    #[command(after_help = concat!("Examples:\n  ocireg logout ghcr.io\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Logout(LogoutArgs),
    /// Put an existing manifest under more tags (no blob moves; the digest is unchanged).
    #[command(after_help = concat!("Examples:\n  ocireg tag registry.internal:5000/team/app:v1 latest stable\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Tag(TagArgs),
    /// Print the digest of the manifest a reference names.
    #[command(after_help = concat!("Examples:\n  ocireg digest docker.io/library/alpine:3.20\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Digest(DigestArgs),
    /// Delete a manifest (by digest; a tag's after confirmation or --yes), a tag alone
    /// (--tag-only), or a blob (--blob).
    #[command(after_help = concat!("Examples:\n  ocireg delete registry.internal:5000/team/app@sha256:…\n  ocireg delete --yes registry.internal:5000/team/app:old\n  ocireg delete --tag-only registry.internal:5000/team/app:old\n  ocireg delete --blob registry.internal:5000/team/app@sha256:…\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Delete(DeleteArgs),
    /// Write a blob's bytes to stdout (or -o FILE), verified against its digest; or a
    /// part of it (--range).
    #[command(after_help = concat!("Examples:\n  ocireg blob registry.internal:5000/team/app@sha256:… -o layer.tar.gz\n  ocireg blob --range 0-1023 --plain-http 127.0.0.1:5000/demo/hello@sha256:… | xxd\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause; nothing is left at -o), 2 usage error."))]
    Blob(BlobArgs),
    /// Write a manifest's (or index's) bytes exactly as served, verified, to stdout.
    #[command(after_help = concat!("Examples:\n  ocireg manifest docker.io/library/alpine:3.20 | jq .\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Manifest(ManifestArgs),
    /// List every tag of a repository, one per line (follows pagination).
    #[command(after_help = concat!("Examples:\n  ocireg tags docker.io/library/alpine\n  ocireg tags --plain-http 127.0.0.1:5000/demo/hello\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Tags(TagsArgs),
    /// List the repositories of a registry, one per line (follows pagination; many
    /// registries refuse it).
    #[command(after_help = concat!("Examples:\n  ocireg catalog --plain-http 127.0.0.1:5000\n  ocireg catalog --format json registry.internal:5000\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Catalog(CatalogArgs),
    /// List the artifacts that refer to an image (signatures, SBOMs, attestations):
    /// the registry's referrers API, or the referrers tag where it has none.
    #[command(after_help = concat!("Examples:\n  ocireg referrers registry.internal:5000/team/app:v1\n  ocireg referrers --artifact-type application/spdx+json --format json ghcr.io/org/app@sha256:…\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Referrers(ReferrersArgs),
    /// Serve an OCI image layout over plain http (read-only unless --allow-push; for tests and demos).
    #[command(after_help = concat!("Every image of the layout is served: an index.json entry whose ref.name is a tag\ngoes to --repository with that tag; one whose ref.name is a full reference goes to\nits repository.\n\nExamples:\n  ocireg serve ./alpine\n  ocireg serve --addr 127.0.0.1:5001 --repository library/alpine ./alpine\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Serve(ServeArgs),
    /// Start a registry in-process with a generated image and pull it into ./ocireg-demo.
    #[command(after_help = concat!("Examples:\n  ocireg demo\n  ocireg demo --dir /tmp/demo\n\n", "Exit status: 0 success, 1 failure (one line on stderr naming the cause), 2 usage error."))]
    Demo(DemoArgs),
}

impl Command {
    /// The connection flags of a command that talks to a registry.
    fn connect(&self) -> Option<&args::ConnectArgs> {
        match self {
            Command::Pull(a) => Some(&a.connect),
            Command::Push(a) => Some(&a.connect),
            Command::Copy(a) => Some(&a.connect),
            Command::Inspect(a) => Some(&a.connect),
            Command::Blob(a) => Some(&a.connect),
            Command::Login(a) => Some(&a.connect),
            Command::Artifact(ArtifactCommand::Push(a)) => Some(&a.connect),
            Command::Attach(a) => Some(&a.connect),
            Command::Index(IndexCommand::Create(a) | IndexCommand::Append(a)) => Some(&a.connect),
            Command::Tag(a) => Some(&a.connect),
            Command::Digest(a) => Some(&a.connect),
            Command::Delete(a) => Some(&a.connect),
            Command::Manifest(a) => Some(&a.connect),
            Command::Tags(a) => Some(&a.connect),
            Command::Catalog(a) => Some(&a.connect),
            Command::Referrers(a) => Some(&a.connect),
            Command::Serve(_) | Command::Demo(_) | Command::Logout(_) => None,
        }
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    if cli.quiet {
        progress::set_quiet();
    }
    if let Some(Err(message)) = cli.command.connect().map(args::ConnectArgs::check) {
        // a usage error: clap's form, exit 2
        <Cli as clap::CommandFactory>::command()
            .error(clap::error::ErrorKind::MissingRequiredArgument, message)
            .exit();
    }
    init_logging(cli.verbose);
    let rt = cli.runtime;
    let result = match cli.command {
        Command::Pull(a) => run(rt, pull::cmd_pull(a, rt)),
        Command::Push(a) => run(rt, push::cmd_push(a, rt)),
        Command::Copy(a) => run(rt, copy::cmd_copy(a, rt)),
        Command::Inspect(a) => run(rt, inspect::cmd_inspect(a, rt)),
        Command::Blob(a) => run(rt, blob::cmd_blob(a, rt)),
        Command::Login(a) => run(rt, admin::cmd_login(a, rt)),
        Command::Artifact(ArtifactCommand::Push(a)) => run(rt, authoring::cmd_artifact_push(a, rt)),
        Command::Attach(a) => run(rt, authoring::cmd_attach(a, rt)),
        Command::Index(IndexCommand::Create(a)) => run(rt, authoring::cmd_index(a, false, rt)),
        Command::Index(IndexCommand::Append(a)) => run(rt, authoring::cmd_index(a, true, rt)),
        Command::Logout(a) => run(rt, admin::cmd_logout(a, rt)),
        Command::Tag(a) => run(rt, admin::cmd_tag(a, rt)),
        Command::Digest(a) => run(rt, admin::cmd_digest(a, rt)),
        Command::Delete(a) => run(rt, admin::cmd_delete(a, rt)),
        Command::Manifest(a) => run(rt, blob::cmd_manifest(a, rt)),
        Command::Tags(a) => run(rt, tags::cmd_tags(a, rt)),
        Command::Catalog(a) => run(rt, tags::cmd_catalog(a, rt)),
        Command::Referrers(a) => run(rt, referrers::cmd_referrers(a, rt)),
        Command::Serve(a) => run(rt, serve::cmd_serve(a, rt)),
        Command::Demo(a) => run(rt, serve::cmd_demo(a, rt)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("ocireg: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Runs a command to its end on the chosen runtime's executor.
fn run(
    choice: RuntimeChoice,
    command: impl Future<Output = Result<(), String>>,
) -> Result<(), String> {
    match choice {
        // One thread is enough: the drive loop receives and hashes, the layout's writer
        // thread writes. A multi-thread runtime was no faster here (every blob's bytes
        // meet in the one drive loop anyway) and held ~10 MiB more: its workers'
        // buffers and cross-thread wake-ups per chunk.
        RuntimeChoice::Tokio => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?
            .block_on(command),
        RuntimeChoice::AsyncStd => async_std::task::block_on(command),
        RuntimeChoice::Smol => smol::block_on(command),
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

/// glibc hands freed memory at the top of its heap back to the system as soon as 128 KiB
/// of it is free, and adapts when it maps large blocks on its own. An HTTP/2 download
/// frees and allocates frame buffers all the time, so each one came back as fresh pages:
/// 180,000 page faults in a 1 GiB pull over HTTP/2 (21% slower than HTTP/1.1), 1,100 with
/// fixed limits (within 5%), and no higher peak RSS (BENCHMARKS.md, TLS rows).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets the allocator's parameters; it is called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
