//! `ocireg referrers`: the manifests that refer to an image (signatures, SBOMs,
//! attestations), from the registry's referrers API or, when it has none, from the
//! referrers tag.

use std::io::Write;

use ocireg_core::{Config, Descriptor, Digest, Event, Machine, Reference, ReferrersVia};
use ocireg_driver::{Caller, Error as DriveError};
use serde_json::json;

use crate::args::{ReferrersArgs, ReferrersFormat, RuntimeChoice};
use crate::inspect::run_machine;
use crate::pull::human;
use crate::setup::{config, io, Io};

pub(crate) async fn cmd_referrers(a: ReferrersArgs, rt: RuntimeChoice) -> Result<(), String> {
    let reference = Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    let io = io(rt, &a.connect)?;
    let cfg = config(&a.connect, reference.registry(), io.runtime.now())?;
    let credentials = cfg.credentials.clone();
    let mut pull =
        Machine::list_referrers(cfg, reference.clone(), a.artifact_type, io.runtime.now());
    let mut out = Print {
        format: a.format,
        rows: 0,
        json: Vec::new(),
        subject: None,
        via: None,
    };
    ocireg_driver::drive(&mut pull, &*io.transport, &*io.runtime, &mut out)
        .await
        .map_err(|e: DriveError| crate::explain::pull_error(&e, &reference, &credentials))?;
    out.end().map_err(|e| format!("writing to stdout: {e}"))
}

/// Prints the referrers as their pages arrive (a table), or all of them at the end (JSON).
struct Print {
    format: ReferrersFormat,
    rows: u64,
    json: Vec<Descriptor>,
    subject: Option<String>,
    via: Option<ReferrersVia>,
}

impl Print {
    fn rows(&mut self, referrers: &[Descriptor]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.rows == 0 && !referrers.is_empty() {
            writeln!(
                out,
                "{:<71}  {:<40}  {:>10}  ANNOTATIONS",
                "DIGEST", "ARTIFACT TYPE", "SIZE"
            )?;
        }
        for d in referrers {
            let annotations = d
                .annotations
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ");
            writeln!(
                out,
                "{:<71}  {:<40}  {:>10}  {annotations}",
                d.digest.to_string(),
                d.artifact_type.as_deref().unwrap_or("-"),
                human(d.len()),
            )?;
            self.rows += 1;
        }
        out.flush()
    }

    fn end(&mut self) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        match self.format {
            ReferrersFormat::Json => {
                let via = match self.via {
                    Some(ReferrersVia::TagSchema) => "referrers tag",
                    _ => "referrers API",
                };
                let doc = json!({
                    "subject": self.subject,
                    "via": via,
                    "referrers": self.json,
                });
                writeln!(out, "{doc:#}")?;
            }
            ReferrersFormat::Table if self.rows == 0 => {
                if let Some(s) = &self.subject {
                    writeln!(out, "no referrers of {s}")?;
                }
            }
            ReferrersFormat::Table => {}
        }
        if self.via == Some(ReferrersVia::TagSchema) {
            tracing::info!("the registry has no referrers API: listed from the referrers tag");
        }
        out.flush()
    }
}

impl Caller for Print {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        if let Event::Referrers {
            subject,
            referrers,
            via,
        } = event
        {
            self.subject = Some(subject.to_string());
            self.via = Some(*via);
            match self.format {
                ReferrersFormat::Table => self.rows(referrers)?,
                ReferrersFormat::Json => self.json.extend(referrers.iter().cloned()),
            }
        }
        Ok(())
    }
}

/// Most referrers `--include-referrers` follows (with their own referrers, in all).
pub(crate) const MAX_REFERRERS: usize = ocireg_core::referrers::MAX_REFERRERS_FOLLOWED;

/// `reference`'s repository at `digest`.
pub(crate) fn at_digest(reference: &Reference, digest: &Digest) -> Result<Reference, String> {
    Reference::new(
        reference.registry(),
        reference.repository(),
        None,
        Some(digest.clone()),
    )
    .map_err(|e| e.to_string())
}

/// The referrers of `subject` in `reference`'s repository, and theirs (signatures of
/// SBOMs), each once: the core's walk ([`Machine::list_referrers_closure`]), breadth first, at
/// most [`MAX_REFERRERS`].
pub(crate) async fn closure(
    reference: &Reference,
    subject: Digest,
    cfg: &Config,
    io: &Io,
) -> Result<Vec<Descriptor>, String> {
    let pull = Machine::list_referrers_closure(
        cfg.clone(),
        at_digest(reference, &subject)?,
        io.runtime.now(),
    );
    let mut found: Vec<Descriptor> = Vec::new();
    for e in run_machine(pull, io, &cfg.credentials).await? {
        let Event::Referrers { referrers, .. } = e else {
            continue;
        };
        for d in referrers {
            if !found.iter().any(|f| f.digest == d.digest) {
                found.push(d);
            }
        }
    }
    Ok(found)
}
