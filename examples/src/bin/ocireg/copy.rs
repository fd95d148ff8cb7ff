//! `ocireg copy SRC DST`: between registries (streamed, mounted within one registry),
//! from a layout to a registry, or from a registry into a layout. The copy is the
//! library's ([`Client::copy`](ocireg_driver::client::Client::copy)); this file parses
//! and prints.

use ocireg_core::{PlatformChoice, Reference};
use ocireg_driver::client::layout_arg;

use crate::args::{CopyArgs, RuntimeChoice};
use crate::progress::Mode;
use crate::pull::{pull_and_say, Dest};
use crate::push::PushProgress;

pub(crate) async fn cmd_copy(a: CopyArgs, rt: RuntimeChoice) -> Result<(), String> {
    let mode = a.progress.resolve();
    let platform = match a.platform.clone() {
        Some(p) => PlatformChoice::Exactly(p),
        None => PlatformChoice::All,
    };
    let registries: Vec<String> = [&a.source, &a.target]
        .into_iter()
        .filter(|s| !s.starts_with("oci:"))
        .filter_map(|s| Reference::parse(s).ok())
        .map(|r| r.registry().to_string())
        .collect();
    let names: Vec<&str> = registries.iter().map(String::as_str).collect();
    let client = crate::setup::client(rt, &a.connect, &names, |cfg| {
        crate::args::set_downloads(cfg, a.concurrency, a.hash_threads)?;
        cfg.upload_chunk_size = a.chunk_size << 20;
        Ok(())
    })?;
    // into a layout: a pull, named as asked (else by the source's tag)
    if let Some((dir, name)) = layout_arg(&a.target) {
        let into = Dest {
            name: name.as_deref(),
            include_referrers: a.include_referrers,
            ..Dest::dir(&dir)
        };
        let (summary, _) = pull_and_say(
            &client,
            a.connect.username.as_deref(),
            &a.source,
            Some(platform),
            into,
            mode,
        )
        .await?;
        crate::progress::say(&summary);
        return Ok(());
    }
    let target = Reference::parse(&a.target).map_err(|e| e.to_string())?;
    let mut progress = PushProgress::new(mode);
    let copied = client
        .copy(&a.source, &a.target)
        .platform(platform)
        .include_referrers(a.include_referrers)
        .run(&mut progress)
        .await;
    match copied {
        Ok(c) => {
            let word = if layout_arg(&a.source).is_some() {
                "pushed"
            } else {
                "copied"
            };
            let more = if a.include_referrers && mode != Mode::Json {
                format!("\nreferrers: {} {word}", c.referrers.len())
            } else {
                String::new()
            };
            crate::progress::say(&progress.summary(&c.target, &c.digest, &more));
            Ok(())
        }
        Err(e) => Err(progress.failed(crate::explain::client_error(
            &e,
            &target,
            a.connect.username.as_deref(),
        ))),
    }
}
