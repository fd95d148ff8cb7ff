//! Push and copy ([`Client::push`], [`Client::copy`]): an image of a layout into a
//! repository, or an image from a registry to another repository, a registry to a layout
//! (`oci:DIR[:NAME]`) or a layout to a registry, each with its referrers when asked.
//!
//! A copy between registries streams each blob that has to travel from the source (read
//! through its mirrors) to the target as the upload takes it, with no file in between, in
//! one request per blob; blobs the target has, or mounts from the source's repository on
//! the same registry, move no byte. A target written without a tag takes the source's.

use std::future::{Future, IntoFuture};
use std::path::{Path, PathBuf};
use std::pin::Pin;

use ocireg_core::push::mount_source;
use ocireg_core::{BlobId, Descriptor, Digest, Event, Machine, Platform, PlatformChoice};
use ocireg_core::{PushPlan, Reference};

use super::hosts::Read;
use super::pull::at_digest;
use super::{parse, Client};
use crate::push::{plan_for_manifest, plan_from_layout, plan_from_registry, referrers_in_layout};
use crate::push::{LayoutSource, RegistrySource};
use crate::{BlobSource, Body, Caller, Error};

/// Referrers a layout may hold for one image, at most (more is an error).
pub const MAX_LAYOUT_REFERRERS: usize = ocireg_core::referrers::MAX_REFERRERS_FOLLOWED;

/// A push being set up ([`Client::push`]); `.await` it, or [`PushRequest::run`] it with
/// an observer.
#[must_use = "a push does nothing until it is awaited"]
pub struct PushRequest<'a> {
    client: &'a Client,
    layout: PathBuf,
    name: Option<String>,
    target: String,
    platform: Option<Platform>,
    tags: Vec<String>,
    mount_from: Option<String>,
    include_referrers: bool,
}

/// A copy being set up ([`Client::copy`]); `.await` it, or [`CopyRequest::run`] it with
/// an observer.
#[must_use = "a copy does nothing until it is awaited"]
pub struct CopyRequest<'a> {
    client: &'a Client,
    source: String,
    target: String,
    platform: PlatformChoice,
    include_referrers: bool,
}

/// What a copy did.
#[derive(Clone, Debug)]
pub struct Copied {
    /// The digest of the top manifest copied.
    pub digest: Digest,
    /// Where it went (the target with the tag it was given, or the layout).
    pub target: String,
    /// The referrers copied with it.
    pub referrers: Vec<Descriptor>,
}

impl Client {
    /// A push of the image of the layout at `layout` named `name` (its only image when
    /// `None`) to `target`; `.await` gives the digest of its top manifest.
    pub fn push(
        &self,
        layout: impl AsRef<Path>,
        name: Option<&str>,
        target: &str,
    ) -> PushRequest<'_> {
        PushRequest {
            client: self,
            layout: layout.as_ref().to_path_buf(),
            name: name.map(str::to_string),
            target: target.to_string(),
            platform: None,
            tags: Vec::new(),
            mount_from: None,
            include_referrers: false,
        }
    }

    /// A copy of the image `source` names (every platform by default) to `target`. Either
    /// side may be a layout, `oci:DIR[:NAME]`.
    pub fn copy(&self, source: &str, target: &str) -> CopyRequest<'_> {
        CopyRequest {
            client: self,
            source: source.to_string(),
            target: target.to_string(),
            platform: PlatformChoice::All,
            include_referrers: false,
        }
    }

    /// Pushes `plan` to `target` with blob bytes from `source`, events to `observer`;
    /// `streamed` when the source is another registry (one request per blob, then).
    pub(super) async fn push_plan(
        &self,
        plan: PushPlan,
        source: &dyn BlobSource,
        target: Reference,
        streamed: bool,
        observer: &mut (dyn Caller + Send),
    ) -> Result<Digest, Error> {
        let top = plan
            .manifests
            .last()
            .map(|m| m.descriptor.digest.clone())
            .ok_or_else(|| Error::Plan(std::io::Error::other("nothing to push")))?;
        let step = self.push_step(&target)?;
        let mut config = step.config;
        if streamed {
            // each read of the source continues its hash from the last checkpoint before
            // its offset: chunks would each cost that again; a cut is resumed that way
            config.upload_chunk_size = u64::MAX;
        }
        let mut push = Machine::push(config, step.reference, plan, self.runtime.now());
        let mut caller = Pushing { source, observer };
        self.run(&mut push, &*step.transport, &mut caller).await?;
        Ok(top)
    }

    /// Pushes the referrers of `subject` that the layout at `dir` holds (and theirs),
    /// each by digest into `repository`, after the image they refer to.
    async fn push_layout_referrers(
        &self,
        dir: &Path,
        subject: &Digest,
        repository: &Reference,
        observer: &mut (dyn Caller + Send),
    ) -> Result<Vec<Descriptor>, Error> {
        let found =
            referrers_in_layout(dir, subject, MAX_LAYOUT_REFERRERS).map_err(|e| at(dir, e))?;
        for d in &found {
            let (plan, source) = plan_for_manifest(dir, d).map_err(|e| at(dir, e))?;
            self.push_plan(plan, &source, repository.clone(), false, observer)
                .await?;
        }
        Ok(found)
    }

    /// Copies the image `source` names to `target` between registries, reading the
    /// source through its hosts; the digest of its top manifest.
    async fn copy_image(
        &self,
        source: &Reference,
        target: Reference,
        platform: &PlatformChoice,
        observer: &mut (dyn Caller + Send),
    ) -> Result<Digest, Error> {
        let mut walk = self.walk(source, Read::Content)?;
        let (plan, step) = loop {
            let step = walk.next(self).await?;
            let mut config = step.config.clone();
            config.platform = platform.clone();
            match plan_from_registry(&step.reference, config, &*step.transport, &*self.runtime)
                .await
            {
                Ok(plan) => {
                    walk.done();
                    break (plan, step);
                }
                Err(e) => walk.failed(e, &step.host)?,
            }
        };
        let mut plan = plan;
        plan.mount_from = mount_source(source, &target);
        // Blobs the target has, or mounts, move no byte: the source is read only for a
        // blob that has to be sent, as the upload takes it.
        let streamed = RegistrySource::new(
            step.transport.clone(),
            self.runtime.clone(),
            step.config,
            step.reference,
            plan.blobs.clone(),
        );
        self.push_plan(plan, &streamed, target, true, observer)
            .await
    }
}

impl PushRequest<'_> {
    /// Push only this platform's image of an index.
    pub fn platform(mut self, platform: Option<Platform>) -> Self {
        self.platform = platform;
        self
    }

    /// More tags for the top manifest.
    pub fn tags(mut self, tags: impl IntoIterator<Item = String>) -> Self {
        self.tags.extend(tags);
        self
    }

    /// Mount blobs from this repository of the same registry instead of uploading them.
    pub fn mount_from(mut self, repository: Option<String>) -> Self {
        self.mount_from = repository;
        self
    }

    /// Also push the referrers of the image the layout holds (by digest, after it).
    pub fn include_referrers(mut self, include: bool) -> Self {
        self.include_referrers = include;
        self
    }

    /// Runs the push, with `observer` seeing every event (and every upload body,
    /// [`Caller::sending`]); the digest of the top manifest and the referrers pushed.
    pub async fn run(
        self,
        observer: &mut (dyn Caller + Send),
    ) -> Result<(Digest, Vec<Descriptor>), Error> {
        let target = parse(&self.target)?;
        if target.digest().is_some() {
            return Err(usage(format!(
                "{target}: push to a tag or a repository, not a digest"
            )));
        }
        for t in &self.tags {
            ocireg_core::reference::validate_tag(t)
                .map_err(|e| Error::Registry(ocireg_core::Error::Reference(e)))?;
        }
        let (mut plan, source) =
            plan_from_layout(&self.layout, self.name.as_deref(), self.platform.as_ref())
                .map_err(|e| at(&self.layout, e))?;
        plan.tags.extend(self.tags);
        plan.mount_from = self.mount_from;
        push_layout(
            self.client,
            &self.layout,
            plan,
            source,
            target,
            self.include_referrers,
            observer,
        )
        .await
    }
}

impl<'a> IntoFuture for PushRequest<'a> {
    type Output = Result<Digest, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.run(&mut ()).await.map(|(digest, _)| digest) })
    }
}

/// Pushes `plan` (read from the layout at `dir`) to `target`, then the layout's
/// referrers of it when asked.
async fn push_layout(
    client: &Client,
    dir: &Path,
    plan: PushPlan,
    source: LayoutSource,
    target: Reference,
    include_referrers: bool,
    observer: &mut (dyn Caller + Send),
) -> Result<(Digest, Vec<Descriptor>), Error> {
    let top = client
        .push_plan(plan, &source, target.clone(), false, observer)
        .await?;
    let referrers = if include_referrers {
        client
            .push_layout_referrers(dir, &top, &untagged(&target)?, observer)
            .await?
    } else {
        Vec::new()
    };
    Ok((top, referrers))
}

impl CopyRequest<'_> {
    /// Copy only this platform's image of an index (default: every platform).
    pub fn platform(mut self, platform: PlatformChoice) -> Self {
        self.platform = platform;
        self
    }

    /// Also copy every referrer of the image (signatures, SBOMs, and theirs).
    pub fn include_referrers(mut self, include: bool) -> Self {
        self.include_referrers = include;
        self
    }

    /// Runs the copy, with `observer` seeing every event of each push and pull.
    pub async fn run(self, observer: &mut (dyn Caller + Send)) -> Result<Copied, Error> {
        let client = self.client;
        if let Some((dir, name)) = layout_arg(&self.source) {
            let platform = match &self.platform {
                PlatformChoice::Exactly(p) => Some(p.clone()),
                _ => None,
            };
            let target = parse(&self.target)?;
            let (plan, source) = plan_from_layout(&dir, name.as_deref(), platform.as_ref())
                .map_err(|e| at(&dir, e))?;
            let (digest, referrers) = push_layout(
                client,
                &dir,
                plan,
                source,
                target.clone(),
                self.include_referrers,
                observer,
            )
            .await?;
            return Ok(Copied {
                digest,
                target: target.to_string(),
                referrers,
            });
        }
        if let Some((dir, name)) = layout_arg(&self.target) {
            let mut pull = client
                .pull(&self.source)
                .platform(self.platform.clone())
                .include_referrers(self.include_referrers);
            if let Some(n) = name {
                pull = pull.name(n);
            }
            let pulled = pull.to_layout_observed(&dir, observer).await?;
            return Ok(Copied {
                digest: pulled.descriptor.digest,
                target: format!("oci:{}", dir.display()),
                referrers: pulled.referrers,
            });
        }
        let source = parse(&self.source)?;
        let target = copy_target(&source, &self.target)?;
        let digest = client
            .copy_image(&source, target.clone(), &self.platform, observer)
            .await?;
        let mut referrers = Vec::new();
        if self.include_referrers {
            let subject = at_digest(&source, &digest)?;
            referrers = client.list_referrers(&subject, None, true, &mut ()).await?;
            for d in &referrers {
                let one = at_digest(&source, &d.digest)?;
                client
                    .copy_image(&one, untagged(&target)?, &PlatformChoice::All, observer)
                    .await?;
            }
        }
        Ok(Copied {
            digest,
            target: target.to_string(),
            referrers,
        })
    }
}

impl<'a> IntoFuture for CopyRequest<'a> {
    type Output = Result<Copied, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.run(&mut ()).await })
    }
}

/// The copy's target reference: a target written without a tag takes the source's (not
/// the default `latest`); a digest is refused.
fn copy_target(source: &Reference, written: &str) -> Result<Reference, Error> {
    let mut target = parse(written)?;
    if target.digest().is_some() {
        return Err(usage(format!(
            "{target}: copy to a tag or a repository, not a digest"
        )));
    }
    let tagged = written
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    if !tagged {
        if let Some(t) = source.tag() {
            target = parse(&format!("{written}:{t}"))?;
        }
    }
    Ok(target)
}

/// `oci:DIR[:NAME]`: a layout directory and the `ref.name` of an image in it. A directory
/// that exists under the whole text is taken as it is (its name may contain ':');
/// otherwise a name is what follows the last ':' when that is not part of a path.
pub fn layout_arg(s: &str) -> Option<(PathBuf, Option<String>)> {
    s.strip_prefix("oci:").map(layout_dir)
}

/// `DIR[:NAME]` (see [`layout_arg`]).
pub fn layout_dir(s: &str) -> (PathBuf, Option<String>) {
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

/// `target`'s repository, with no tag: what a push by digest goes to.
fn untagged(target: &Reference) -> Result<Reference, Error> {
    Reference::new(target.registry(), target.repository(), None, None)
        .map_err(|e| Error::Registry(ocireg_core::Error::Reference(e)))
}

fn at(dir: &Path, e: std::io::Error) -> Error {
    Error::Plan(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", dir.display()),
    ))
}

fn usage(message: String) -> Error {
    Error::Plan(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        message,
    ))
}

/// The caller of one push: bodies from the source, shown to the observer on their way.
struct Pushing<'a> {
    source: &'a dyn BlobSource,
    observer: &'a mut (dyn Caller + Send),
}

impl Caller for Pushing<'_> {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        self.observer.event(event)
    }
    fn upload_body(&mut self, blob: BlobId, offset: u64, len: u64) -> std::io::Result<Body> {
        let body = Body::Stream {
            len,
            chunks: self.source.read(blob, offset, len)?,
        };
        self.observer.sending(blob, offset, body)
    }
}
