//! `ocireg copy SRC DST`: between registries (streamed, mounted within one registry),
//! from a layout to a registry, or from a registry into a layout.

use ocireg_core::push::mount_source;
use ocireg_core::{Config, PlatformChoice, Reference};
use ocireg_driver::push::{plan_from_registry, RegistrySource};

use crate::args::{CopyArgs, RuntimeChoice};
use crate::progress::Mode;
use crate::pull::{pull_one, Dest};
use crate::push::{layout_dir, layout_plan, push_and_say, push_layout_referrers, untagged};
use crate::setup::{config, io};

/// `oci:DIR[:NAME]`: a layout directory and the `ref.name` of an image in it.
fn layout_arg(s: &str) -> Option<(std::path::PathBuf, Option<String>)> {
    s.strip_prefix("oci:").map(layout_dir)
}

pub(crate) async fn cmd_copy(a: CopyArgs, rt: RuntimeChoice) -> Result<(), String> {
    let mode = a.progress.resolve();
    let platform = match a.platform.clone() {
        Some(p) => PlatformChoice::Exactly(p),
        None => PlatformChoice::All,
    };
    // a layout on either side: the copy is a push or a pull
    if let Some((dir, name)) = layout_arg(&a.source) {
        let target = Reference::parse(&a.target).map_err(|e| e.to_string())?;
        let io = io(rt, &a.connect)?;
        let mut cfg = config(&a.connect, target.registry(), io.runtime.now())?;
        cfg.max_concurrent = usize::from(a.concurrency);
        cfg.upload_chunk_size = a.chunk_size << 20;
        let (plan, source) = layout_plan(&dir, name.as_deref(), a.platform.as_ref())?;
        let top = plan.manifests.last().map(|m| m.descriptor.digest.clone());
        push_and_say(target.clone(), cfg.clone(), plan, &source, &io, mode).await?;
        return match top {
            Some(top) if a.include_referrers => {
                push_layout_referrers(&dir, &top, &target, cfg, &io, mode).await
            }
            _ => Ok(()),
        };
    }
    if let Some((dir, name)) = layout_arg(&a.target) {
        let source = Reference::parse(&a.source).map_err(|e| e.to_string())?;
        let io = io(rt, &a.connect)?;
        let mut cfg = config(&a.connect, source.registry(), io.runtime.now())?;
        crate::args::set_downloads(&mut cfg, a.concurrency, a.hash_threads)?;
        cfg.platform = platform;
        // the image is named in the layout as asked, else by the source's tag
        if let Some(n) = &name {
            ocireg_core::reference::validate_tag(n).map_err(|e| format!("oci:…:{n}: {e}"))?;
        }
        let into = Dest {
            dir: &dir,
            name: name.as_deref(),
            verify_existing: false,
            durable: true,
            files: None,
            quiet_failure: false,
        };
        let (summary, digest) = pull_one(
            source.clone(),
            cfg.clone(),
            &*io.transport,
            &*io.runtime,
            into,
            mode,
        )
        .await?;
        crate::progress::say(&summary);
        if a.include_referrers {
            let into = Dest { name: None, ..into };
            crate::pull::pull_referrers(&source, digest, &cfg, &io, into, mode).await?;
        }
        return Ok(());
    }
    let source = Reference::parse(&a.source).map_err(|e| e.to_string())?;
    let mut target = Reference::parse(&a.target).map_err(|e| e.to_string())?;
    if target.digest().is_some() {
        return Err(format!(
            "{target}: copy to a tag or a repository, not a digest"
        ));
    }
    // A target written without a tag takes the source's (not the default `latest`).
    let written_tag = a
        .target
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    if !written_tag {
        if let Some(t) = source.tag() {
            target = Reference::parse(&format!("{}:{t}", a.target)).map_err(|e| e.to_string())?;
        }
    }
    let io = io(rt, &a.connect)?;
    let now = io.runtime.now();
    let mut pull_cfg = config(&a.connect, source.registry(), now)?;
    crate::args::set_downloads(&mut pull_cfg, a.concurrency, a.hash_threads)?;
    pull_cfg.platform = platform;
    let mut push_cfg = config(&a.connect, target.registry(), now)?;
    push_cfg.max_concurrent = usize::from(a.concurrency);
    // One request per blob: each read of the source continues its hash from the last
    // checkpoint before the read's offset (a few MiB back), so every chunk would cost
    // that much again; a cut upload is resumed that way, once per cut.
    push_cfg.upload_chunk_size = u64::MAX;
    let copy = RegistryCopy {
        pull: pull_cfg.clone(),
        push: push_cfg,
        io: &io,
        mode,
    };
    let top = copy.image(&source, target.clone()).await?;
    if a.include_referrers {
        let found = crate::referrers::closure(&source, top, &pull_cfg, &io).await?;
        let every = RegistryCopy {
            pull: Config {
                platform: PlatformChoice::All,
                ..pull_cfg
            },
            ..copy
        };
        for d in &found {
            let one = crate::referrers::at_digest(&source, &d.digest)?;
            every.image(&one, untagged(&target)?).await?;
        }
        if mode != Mode::Json {
            crate::progress::say(&format!("referrers: {} copied", found.len()));
        }
    }
    Ok(())
}

/// A copy between registries: how the source is read and the target written.
struct RegistryCopy<'a> {
    pull: Config,
    push: Config,
    io: &'a crate::setup::Io,
    mode: Mode,
}

impl RegistryCopy<'_> {
    /// Copies the image `source` names to `target`; the digest of its top manifest.
    async fn image(
        &self,
        source: &Reference,
        target: Reference,
    ) -> Result<ocireg_core::Digest, String> {
        let io = self.io;
        let mut plan = plan_from_registry(source, self.pull.clone(), &*io.transport, &*io.runtime)
            .await
            .map_err(|e| e.to_string())?;
        plan.mount_from = mount_source(source, &target);
        let top = plan
            .manifests
            .last()
            .map(|m| m.descriptor.digest.clone())
            .ok_or_else(|| format!("{source}: no manifest to copy"))?;
        // Blobs the target has, or mounts, move no byte: the source is read only for a
        // blob that has to be sent, as the upload takes it.
        let streamed = RegistrySource::new(
            io.transport.clone(),
            io.runtime.clone(),
            self.pull.clone(),
            source.clone(),
            plan.blobs.clone(),
        );
        push_and_say(target, self.push.clone(), plan, &streamed, io, self.mode).await?;
        Ok(top)
    }
}
