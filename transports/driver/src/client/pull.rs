//! Pulls into an OCI image layout ([`Client::pull`]): through mirrors when the client has
//! them, with the image's referrers when asked, and nothing left behind by a first pull
//! that fails.

use std::path::{Path, PathBuf};

use ocireg_core::{Config, Descriptor, Machine, PlatformChoice, Reference};

use super::hosts::Read;
use super::{parse, Client};
use crate::layout::{pull_into, LayoutWriter, Stats};
use crate::{Caller, Error};

/// A pull being set up ([`Client::pull`]). Finish it with [`PullRequest::to_layout`],
/// [`PullRequest::to_layout_observed`] or [`PullRequest::to_sink`].
#[must_use = "a pull does nothing until it is run"]
pub struct PullRequest<'a> {
    client: &'a Client,
    reference: String,
    platform: Option<PlatformChoice>,
    name: Option<String>,
    verify_existing: bool,
    durable: bool,
    include_referrers: bool,
}

/// What a pull into a layout did.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// The manifest recorded for the reference (the platform's, or the index).
    pub descriptor: Descriptor,
    /// Blobs fetched, skipped and resumed, bytes, retries (of the image itself).
    pub stats: Stats,
    /// The referrers pulled with it ([`PullRequest::include_referrers`]).
    pub referrers: Vec<Descriptor>,
}

impl Client {
    /// A pull of `reference` (`[host[:port]/]repository[:tag][@digest]`).
    pub fn pull(&self, reference: &str) -> PullRequest<'_> {
        PullRequest {
            client: self,
            reference: reference.to_string(),
            platform: None,
            name: None,
            verify_existing: false,
            durable: true,
            include_referrers: false,
        }
    }
}

impl PullRequest<'_> {
    /// Which platforms of an index (default: this host's, or the client's configuration).
    pub fn platform(mut self, platform: PlatformChoice) -> Self {
        self.platform = Some(platform);
        self
    }

    /// The name of the image in the layout's `index.json` (default: the reference's tag).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Hash the blobs already in the layout again instead of trusting them.
    pub fn verify_existing(mut self, verify: bool) -> Self {
        self.verify_existing = verify;
        self
    }

    /// Flush each blob to disk before it is named (default: yes).
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Also pull every referrer of the image (signatures, SBOMs, and theirs), each by
    /// digest with every platform, as unnamed entries of the layout.
    pub fn include_referrers(mut self, include: bool) -> Self {
        self.include_referrers = include;
        self
    }

    /// Pulls into the OCI image layout at `dir` (created, or added to).
    pub async fn to_layout(self, dir: impl AsRef<Path>) -> Result<Pulled, Error> {
        self.to_layout_observed(dir, &mut ()).await
    }

    /// [`PullRequest::to_layout`], with `observer` seeing every event and delivered byte
    /// after the layout took it (progress, logs).
    pub async fn to_layout_observed(
        self,
        dir: impl AsRef<Path>,
        observer: &mut (dyn Caller + Send),
    ) -> Result<Pulled, Error> {
        let reference = parse(&self.reference)?;
        if let Some(n) = &self.name {
            ocireg_core::reference::validate_tag(n)
                .map_err(|e| Error::Registry(ocireg_core::Error::Reference(e)))?;
        }
        let dir = dir.as_ref();
        let tag = self.name.clone().or(reference.tag().map(str::to_string));
        let platform = self.platform.clone();
        let descriptor = self
            .pull_into_layout(&reference, platform, tag, dir, observer)
            .await?;
        let mut pulled = Pulled {
            descriptor: descriptor.0,
            stats: descriptor.1,
            referrers: Vec::new(),
        };
        if self.include_referrers {
            let subject = at_digest(&reference, &pulled.descriptor.digest)?;
            let found = self
                .client
                .list_referrers(&subject, None, true, &mut ())
                .await?;
            for d in &found {
                let one = at_digest(&reference, &d.digest)?;
                self.pull_into_layout(&one, Some(PlatformChoice::All), None, dir, observer)
                    .await?;
            }
            pulled.referrers = found;
        }
        Ok(pulled)
    }

    /// Pulls `reference` into `dir` through the client's hosts, naming it `tag`.
    async fn pull_into_layout(
        &self,
        reference: &Reference,
        platform: Option<PlatformChoice>,
        tag: Option<String>,
        dir: &Path,
        observer: &mut (dyn Caller + Send),
    ) -> Result<(Descriptor, Stats), Error> {
        let client = self.client;
        // a first pull that fails leaves nothing behind
        let first = !dir.join("oci-layout").exists() && !dir.join("index.json").exists();
        let skeleton = Skeleton {
            dir: dir.to_path_buf(),
            existed: dir.exists(),
        };
        let mut walk = client.walk(reference, Read::Content)?;
        let result = loop {
            let step = match walk.next(client).await {
                Ok(step) => step,
                Err(e) => break Err(e),
            };
            let mut config = step.config;
            if let Some(p) = &platform {
                config.platform = p.clone();
            }
            let mut pull = Machine::pull(config, step.reference, client.runtime.now());
            let writer = match LayoutWriter::create(dir, tag.clone()) {
                Ok(w) => w
                    .verify_existing(self.verify_existing)
                    .durable(self.durable),
                Err(e) => break Err(Error::Sink(e)),
            };
            let pulled = pull_into(
                &mut pull,
                &*step.transport,
                &*client.runtime,
                writer,
                observer,
            )
            .await;
            match pulled {
                Ok(done) => {
                    walk.done();
                    break Ok(done);
                }
                Err(e) => {
                    if let Err(e) = walk.failed(e, &step.host) {
                        break Err(e);
                    }
                }
            }
        };
        if result.is_err() && first {
            skeleton.remove();
        }
        result
    }

    /// Pulls with every event and verified byte going to `sink`. Through mirrors, a host
    /// that fails before delivering a byte gives way to the next.
    pub async fn to_sink(self, sink: &mut (dyn Caller + Send)) -> Result<(), Error> {
        let reference = parse(&self.reference)?;
        let pull = |mut config: Config, at, now| {
            if let Some(p) = &self.platform {
                config.platform = p.clone();
            }
            Machine::pull(config, at, now)
        };
        self.client
            .read_through(&reference, Read::Content, sink, pull)
            .await
    }
}

/// `reference`'s repository at `digest`.
pub(crate) fn at_digest(
    reference: &Reference,
    digest: &ocireg_core::Digest,
) -> Result<Reference, Error> {
    Reference::new(
        reference.registry(),
        reference.repository(),
        None,
        Some(digest.clone()),
    )
    .map_err(|e| Error::Registry(ocireg_core::Error::Reference(e)))
}

/// The layout skeleton a first pull created in `dir`.
struct Skeleton {
    dir: PathBuf,
    existed: bool,
}

impl Skeleton {
    /// Removes what the pull created (`oci-layout`, empty `blobs/` and `ingest/`, and
    /// the directory itself when the pull made it) when it holds nothing worth keeping:
    /// no blob, no partial download to continue.
    fn remove(&self) {
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
        let dir = &self.dir;
        if holds_a_file(&dir.join("blobs"), 2) || holds_a_file(&dir.join("ingest"), 2) {
            return;
        }
        if !self.existed {
            let _ = std::fs::remove_dir_all(dir);
            return;
        }
        let _ = std::fs::remove_file(dir.join("oci-layout"));
        for sub in ["blobs", "ingest"] {
            let _ = std::fs::remove_dir_all(dir.join(sub));
        }
    }
}
