//! The command-line arguments of each command (clap), with the bounds every value must
//! respect: a value that cannot be represented is a usage error (exit 2), never a panic.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::progress;

mod connect;
pub(crate) use connect::ConnectArgs;

#[derive(Args)]
pub(crate) struct PullArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Blob downloads in parallel (1 to 256); blobs of 1 MiB or less run up to four
    /// times as many at once (at most 64), their cost being round trips. 1 downloads one
    /// blob at a time.
    #[arg(long, default_value_t = default_concurrency(), value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) concurrency: u16,
    /// Hash blobs over 1 MiB on this many threads of their own instead of on the thread
    /// that receives them (0, the default: where they arrive). Measured no faster on a
    /// 2-core machine that also runs the registry (BENCHMARKS.md); for more cores and
    /// faster networks, where one core's SHA-256 is the limit.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=16))]
    pub(crate) hash_threads: u8,
    /// Re-hash blobs already in the layout instead of trusting their names; a blob that
    /// does not match is downloaded again.
    #[arg(long)]
    pub(crate) verify_existing: bool,
    /// Do not flush blobs to disk before naming them. Faster where the disk is slow to
    /// flush; every blob is still verified before it is named, but a power loss (not a
    /// killed pull) may leave a named blob whose data never reached the disk. For
    /// layouts that can be pulled again, such as CI caches.
    #[arg(long)]
    pub(crate) no_fsync: bool,
    /// Also write each layer that has a title (`org.opencontainers.image.title`, as oras
    /// sets it) as a file of that name under this directory. Titles that climb out of it,
    /// symlinks on the way and files with other content are refused.
    #[arg(long, value_name = "DIR")]
    pub(crate) files: Option<PathBuf>,
    /// Also pull every referrer of the image (signatures, SBOMs, and their own
    /// referrers) into the layout, where push and copy find them again.
    #[arg(long)]
    pub(crate) include_referrers: bool,
    /// Platform to pick from an index: os/arch[/variant] (default: this host).
    #[arg(long, conflicts_with = "all_platforms", value_parser = platform)]
    pub(crate) platform: Option<ocireg_core::Platform>,
    /// Pull every platform of an index.
    #[arg(long)]
    pub(crate) all_platforms: bool,
    /// Progress output: bars (on a terminal), plain lines on stderr, JSON lines on stdout.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) progress: progress::Mode,
    /// Image reference: [host[:port]/]repository[:tag][@digest]
    #[arg(value_parser = image_reference)]
    pub(crate) reference: String,
    /// OCI image layout directory.
    pub(crate) dir: PathBuf,
}

/// The async runtime every command runs on (`--runtime`, for every command).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RuntimeChoice {
    /// tokio with hyper-util over hyper-rustls.
    Tokio,
    /// async-std with hyper-util over futures-rustls.
    AsyncStd,
    /// smol with hyper-util over futures-rustls.
    Smol,
}

#[derive(Args)]
pub(crate) struct PushArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Uploads in parallel (1 to 256).
    #[arg(long, default_value_t = default_concurrency(), value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) concurrency: u16,
    /// The image of the layout to push, by its ref.name (needed when it holds several;
    /// the same as `LAYOUT:NAME`).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Push only this platform's image of an index: os/arch[/variant].
    #[arg(long, conflicts_with = "all_platforms", value_parser = platform)]
    pub(crate) platform: Option<ocireg_core::Platform>,
    /// Push the whole index with every platform (the default; every platform's blobs
    /// must be in the layout).
    #[arg(long)]
    pub(crate) all_platforms: bool,
    /// More tags for the pushed image (repeatable).
    #[arg(long = "tag")]
    pub(crate) tags: Vec<String>,
    /// A repository of the same registry to mount blobs from instead of uploading them.
    #[arg(long, value_parser = repository_name)]
    pub(crate) mount_from: Option<String>,
    /// Also push the layout's referrers of the image (what `pull --include-referrers`
    /// recorded), each by digest, after it.
    #[arg(long)]
    pub(crate) include_referrers: bool,
    /// Blobs up to this many MiB go in one request; larger ones in chunks of this size.
    #[arg(long, value_name = "MIB", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub(crate) chunk_size: u64,
    /// Progress output: plain lines on stderr, JSON lines on stdout, or none.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) progress: progress::Mode,
    /// OCI image layout directory, optionally with the ref.name of the image to push:
    /// LAYOUT[:NAME]
    pub(crate) dir: String,
    /// Target: [host[:port]/]repository[:tag] (without a tag, the image is pushed by digest).
    #[arg(value_parser = image_reference)]
    pub(crate) reference: String,
}

#[derive(Args)]
pub(crate) struct CopyArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Downloads and uploads in parallel (1 to 256).
    #[arg(long, default_value_t = default_concurrency(), value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) concurrency: u16,
    /// Hash blobs over 1 MiB on this many threads of their own instead of on the thread
    /// that receives them (0, the default: where they arrive). Measured no faster on a
    /// 2-core machine that also runs the registry (BENCHMARKS.md); for more cores and
    /// faster networks, where one core's SHA-256 is the limit.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=16))]
    pub(crate) hash_threads: u8,
    /// Copy every platform of an index (default: the whole index too).
    #[arg(long, conflicts_with = "all_platforms", value_parser = platform)]
    pub(crate) platform: Option<ocireg_core::Platform>,
    /// Copy every platform of an index (the default).
    #[arg(long)]
    pub(crate) all_platforms: bool,
    /// Also copy every referrer of the image (signatures, SBOMs, and theirs), by digest.
    #[arg(long)]
    pub(crate) include_referrers: bool,
    /// From a layout: blobs up to this many MiB go in one request, larger ones in chunks of
    /// this size (between registries each blob goes in one request, as it streams).
    #[arg(long, value_name = "MIB", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub(crate) chunk_size: u64,
    /// Progress output: plain lines on stderr, JSON lines on stdout, or none.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) progress: progress::Mode,
    /// Source: [host[:port]/]repository[:tag][@digest], or oci:DIR[:NAME] (a layout)
    #[arg(value_parser = reference_or_layout)]
    pub(crate) source: String,
    /// Target: [host[:port]/]repository[:tag], or oci:DIR[:NAME] (a layout)
    #[arg(value_parser = reference_or_layout)]
    pub(crate) target: String,
}

#[derive(Args)]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Print the manifest bytes exactly as served.
    #[arg(long, conflicts_with = "format")]
    pub(crate) raw: bool,
    /// Of an index, show this platform's manifest instead: os/arch[/variant].
    #[arg(long, value_parser = platform)]
    pub(crate) platform: Option<ocireg_core::Platform>,
    /// Output: a summary, or one JSON document (digest, media type, size, the manifest).
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: ListFormat,
    /// Image reference.
    #[arg(value_parser = image_reference)]
    pub(crate) reference: String,
}

/// What an artifact says of itself: its type and annotations.
#[derive(Args)]
pub(crate) struct ArtifactMeta {
    /// The artifact's type (`artifactType`), e.g. application/spdx+json.
    #[arg(long, required = true)]
    pub(crate) artifact_type: String,
    /// A manifest annotation, key=value (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub(crate) annotations: Vec<String>,
}

#[derive(Args)]
pub(crate) struct ArtifactPushArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) meta: ArtifactMeta,
    /// Where to push: [host[:port]/]repository:tag
    #[arg(value_parser = image_reference)]
    pub(crate) reference: String,
    /// The files, FILE[:MEDIATYPE], each a layer titled by its path (plain relative).
    #[arg(required = true)]
    pub(crate) files: Vec<String>,
}

#[derive(clap::Subcommand)]
pub(crate) enum ArtifactCommand {
    /// Push files as an artifact (an OCI 1.1 manifest with an empty config).
    Push(ArtifactPushArgs),
}

#[derive(Args)]
pub(crate) struct AttachArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) meta: ArtifactMeta,
    /// The manifest the artifact refers to: [host[:port]/]repository[:tag][@digest]
    #[arg(value_parser = image_reference)]
    pub(crate) subject: String,
    /// The files, FILE[:MEDIATYPE], each a layer titled by its path (plain relative).
    #[arg(required = true)]
    pub(crate) files: Vec<String>,
}

#[derive(Args)]
pub(crate) struct IndexArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// A manifest to list (repeatable), in the index's repository; its platform is read
    /// from its config.
    #[arg(long = "manifest", value_name = "REF", required = true)]
    pub(crate) manifests: Vec<String>,
    /// An index annotation, key=value (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub(crate) annotations: Vec<String>,
    /// The index: [host[:port]/]repository:tag
    #[arg(value_parser = image_reference)]
    pub(crate) reference: String,
}

#[derive(clap::Subcommand)]
pub(crate) enum IndexCommand {
    /// Create an index from existing manifests (no blob moves).
    Create(IndexArgs),
    /// Add manifests to an existing index.
    Append(IndexArgs),
}

#[derive(Args)]
pub(crate) struct LoginArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// The registry: host[:port]
    #[arg(value_parser = registry_name)]
    pub(crate) registry: String,
}

#[derive(Args)]
pub(crate) struct LogoutArgs {
    /// The registry: host[:port]
    #[arg(value_parser = registry_name)]
    pub(crate) registry: String,
}

#[derive(Args)]
pub(crate) struct TagArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// The manifest to tag: [host[:port]/]repository[:tag][@digest]
    #[arg(value_parser = image_reference)]
    pub(crate) reference: String,
    /// The new tags (in the same repository).
    #[arg(required = true)]
    pub(crate) tags: Vec<String>,
}

#[derive(Args)]
pub(crate) struct DigestArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Image reference.
    #[arg(value_parser = image_reference)]
    pub(crate) reference: String,
}

#[derive(Args)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Delete the manifest a tag names without asking (every tag on it goes too).
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// Delete only the tag, not the manifest (OCI 1.1; not every registry can).
    #[arg(long, conflicts_with = "blob")]
    pub(crate) tag_only: bool,
    /// Delete a blob (REPO@DIGEST) instead of a manifest.
    #[arg(long)]
    pub(crate) blob: bool,
    /// What to delete: REPO@DIGEST, or REPO:TAG.
    #[arg(value_parser = image_reference)]
    pub(crate) reference: String,
}

#[derive(Args)]
pub(crate) struct BlobArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Write to this file (named only once every byte is verified) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Only bytes START to END (inclusive), in one request; a part is checked to be that
    /// range, not against the digest (which covers the whole blob).
    #[arg(long, value_name = "START-END")]
    pub(crate) range: Option<String>,
    /// The blob: [host[:port]/]repository@sha256:…
    #[arg(value_parser = image_reference)]
    pub(crate) reference: String,
}

#[derive(Args)]
pub(crate) struct ManifestArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Image reference (by tag or digest).
    #[arg(value_parser = image_reference)]
    pub(crate) reference: String,
}

#[derive(Args)]
pub(crate) struct TagsArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) list: ListArgs,
    /// Repository: [host[:port]/]repository
    #[arg(value_parser = image_reference)]
    pub(crate) repository: String,
}

#[derive(Args)]
pub(crate) struct CatalogArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) list: ListArgs,
    /// Registry: host[:port]
    #[arg(value_parser = registry_name)]
    pub(crate) registry: String,
}

#[derive(Args)]
pub(crate) struct ReferrersArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    /// Only referrers of this artifact type (e.g. application/vnd.dev.cosign.artifact.sig.v1+json).
    #[arg(long, value_name = "MEDIA_TYPE")]
    pub(crate) artifact_type: Option<String>,
    /// Output: a table (digest, artifact type, size, annotations) or one JSON document.
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: ReferrersFormat,
    /// Image reference: [host[:port]/]repository[:tag][@digest]
    #[arg(value_parser = image_reference)]
    pub(crate) reference: String,
}

/// How referrers are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ReferrersFormat {
    /// One row per referrer.
    Table,
    /// `{"subject", "via", "referrers": [descriptors]}`.
    Json,
}

/// How a paged list of names (tags, repositories) is read and printed.
#[derive(Args)]
pub(crate) struct ListArgs {
    /// Give up after this many pages (a registry that links page after page without end
    /// is stopped there).
    #[arg(long, default_value_t = ocireg_core::Config::default().max_tag_pages, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_pages: u32,
    /// Names per page to ask for (`?n=`; default: the registry's choice).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) page_size: Option<u32>,
    /// Output: one name per line, or a JSON array.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: ListFormat,
}

/// How a list of names is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ListFormat {
    /// One name per line.
    Text,
    /// One JSON array of strings.
    Json,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (loopback recommended).
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub(crate) addr: SocketAddr,
    /// Repository for images whose ref.name is only a tag.
    #[arg(long, default_value = "image", value_parser = repository_name)]
    pub(crate) repository: String,
    /// Accept pushes (kept in memory, gone when the server stops); read-only otherwise.
    #[arg(long)]
    pub(crate) allow_push: bool,
    /// OCI image layout directory.
    pub(crate) dir: PathBuf,
}

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Where to pull the demo image.
    #[arg(long, default_value = "ocireg-demo")]
    pub(crate) dir: PathBuf,
}

/// The largest `--timeout`: the core adds it to the clock, so it must stay representable.
pub(crate) const MAX_TIMEOUT_SECS: u64 = 10 * 365 * 24 * 3600;

/// A repository name as the distribution spec allows it (a usage error otherwise).
pub(crate) fn repository_name(s: &str) -> Result<String, String> {
    ocireg_core::reference::validate_repository(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

/// The form an image reference takes, for messages.
const REFERENCE_FORM: &str = "[host[:port]/]repository[:tag][@sha256:<64 hex>]";

/// An image reference as written (a usage error, quoting all of it, otherwise).
/// A registry, `host[:port]` (checked here: a malformed one is a usage error).
pub(crate) fn registry_name(s: &str) -> Result<String, String> {
    ocireg_core::Reference::registry_root(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("{s:?} is not a registry (host[:port]): {e}"))
}

pub(crate) fn image_reference(s: &str) -> Result<String, String> {
    ocireg_core::Reference::parse(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("{s:?} is not an image reference ({e}); expected {REFERENCE_FORM}"))
}

/// An image reference, or `oci:DIR[:NAME]` (a layout).
pub(crate) fn reference_or_layout(s: &str) -> Result<String, String> {
    if s.starts_with("oci:") {
        return Ok(s.to_string());
    }
    image_reference(s).map_err(|e| format!("{e}, or oci:DIR[:NAME] for a layout"))
}

/// A platform as `os/arch[/variant]` (a usage error otherwise).
pub(crate) fn platform(s: &str) -> Result<ocireg_core::Platform, String> {
    ocireg_core::Platform::parse(s).ok_or_else(|| {
        format!("{s:?} is not a platform: expected os/arch[/variant], e.g. linux/amd64")
    })
}

/// How downloads run. `--concurrency N`: `N` downloads at once, and four times
/// as many (at most 64, never fewer than `N`) while the blobs are small; 1 is one blob
/// at a time, small or not.
///
/// `--hash-threads T` above 0: blobs over 1 MiB are hashed on `T` threads of their own,
/// blobs spread over them (the core still compares every digest).
pub(crate) fn set_downloads(
    cfg: &mut ocireg_core::Config,
    n: u16,
    hash_threads: u8,
) -> Result<(), String> {
    let n = usize::from(n);
    cfg.max_concurrent = n;
    cfg.max_concurrent_small = if n == 1 { 1 } else { (4 * n).min(64).max(n) };
    if hash_threads > 0 {
        let threads = ocireg_driver::hashing::HashThreads::start(usize::from(hash_threads))
            .map_err(|e| format!("cannot start the hash threads: {e}"))?;
        cfg.hashing = Some(threads);
    }
    Ok(())
}

/// The core's default concurrency, as the flag's type.
fn default_concurrency() -> u16 {
    u16::try_from(ocireg_core::Config::default().max_concurrent).unwrap_or(8)
}
