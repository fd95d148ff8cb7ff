//! `ocireg referrers`: the manifests that refer to an image (signatures, SBOMs,
//! attestations), from the registry's referrers API or, when it has none, from the
//! referrers tag.

use std::io::Write;

use ocireg_core::{Descriptor, Event, Reference, ReferrersVia};
use ocireg_driver::Caller;
use serde_json::json;

use crate::args::{ReferrersArgs, ReferrersFormat, RuntimeChoice};
use crate::pull::human;

pub(crate) async fn cmd_referrers(a: ReferrersArgs, rt: RuntimeChoice) -> Result<(), String> {
    let reference = Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    let client = crate::setup::client(rt, &a.connect, &[reference.registry()], |_| Ok(()))?;
    let mut out = Print {
        format: a.format,
        rows: 0,
        json: Vec::new(),
        subject: None,
        via: None,
    };
    client
        .referrers_observed(&a.reference, a.artifact_type.as_deref(), &mut out)
        .await
        .map_err(|e| crate::explain::client_error(&e, &reference, a.connect.username.as_deref()))?;
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
