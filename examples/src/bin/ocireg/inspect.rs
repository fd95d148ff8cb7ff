//! `ocireg inspect`: one manifest or index, summarised or raw.

use ocireg_core::{Manifest, Reference};

use crate::args::{InspectArgs, RuntimeChoice};
use crate::pull::human;

/// `writeln!` into a `String` (which cannot fail).
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

pub(crate) async fn cmd_inspect(a: InspectArgs, rt: RuntimeChoice) -> Result<(), String> {
    let reference = Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    let client = crate::setup::client(rt, &a.connect, &[reference.registry()], |_| Ok(()))?;
    let fetch = |at: Reference| {
        let client = &client;
        let connect = &a.connect;
        async move {
            let m = client
                .manifest(&at.to_string())
                .await
                .map_err(|e| crate::explain::client_error(&e, &at, connect.username.as_deref()))?;
            Ok::<_, String>((m.digest, m.media_type, m.bytes, m.manifest))
        }
    };
    let (mut digest, mut media_type, mut bytes, mut manifest) = fetch(reference.clone()).await?;
    // --platform: an index's child for that platform (an image is shown as it is)
    if let (Some(p), Manifest::Index(ix)) = (&a.platform, &manifest) {
        let child = ix.select(p).map_err(|e| format!("{reference}: {e}"))?;
        let at = Reference::new(
            reference.registry(),
            reference.repository(),
            None,
            Some(child.digest.clone()),
        )
        .map_err(|e| e.to_string())?;
        (digest, media_type, bytes, manifest) = fetch(at).await?;
    }
    if a.format == crate::args::ListFormat::Json {
        let parsed: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("{reference}: {e}"))?;
        let doc = serde_json::json!({
            "reference": reference.to_string(),
            "digest": digest.to_string(),
            "mediaType": media_type,
            "size": bytes.len(),
            "artifactType": manifest.artifact_type(),
            "subject": manifest.subject(),
            "manifest": parsed,
        });
        use std::io::Write;
        return writeln!(std::io::stdout(), "{doc:#}")
            .map_err(|e| format!("writing to stdout: {e}"));
    }
    if a.raw {
        use std::io::Write;
        std::io::stdout()
            .write_all(&bytes)
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    // Written at once, and a closed pipe is an error like any other (never a panic).
    let mut out = String::new();
    say!(out, "reference   {reference}");
    say!(out, "digest      {digest}");
    say!(out, "media type  {media_type}");
    say!(out, "size        {} bytes", bytes.len());
    if let Some(t) = manifest.artifact_type().filter(|_| is_artifact(&manifest)) {
        say!(out, "artifact    {t}");
    }
    if let Some(s) = manifest.subject() {
        say!(out, "subject     {} ({})", s.digest, s.media_type);
    }
    for (k, v) in manifest.annotations().into_iter().flatten() {
        say!(out, "annotation  {k}={v}");
    }
    match manifest {
        Manifest::Index(i) => {
            say!(out, "manifests   {}", i.manifests.len());
            for d in &i.manifests {
                let p = d
                    .platform
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into());
                say!(
                    out,
                    "  {p:<20} {} {:>8}  {}",
                    d.digest,
                    d.size,
                    d.media_type
                );
            }
        }
        Manifest::Image(m) => {
            say!(
                out,
                "config      {} {:>10}  {}",
                m.config.digest,
                m.config.size,
                m.config.media_type
            );
            let total: i64 = m.layers.iter().map(|l| l.size).sum();
            say!(
                out,
                "layers      {} ({})",
                m.layers.len(),
                human(total.max(0) as u64)
            );
            for l in &m.layers {
                let title = l
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(TITLE))
                    .map(|t| format!("  {t}"))
                    .unwrap_or_default();
                say!(
                    out,
                    "  {} {:>10}  {}{title}",
                    l.digest,
                    l.size,
                    l.media_type
                );
            }
        }
    }
    use std::io::Write;
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| format!("writing to stdout: {e}"))
}

/// The annotation that names a layer's file (as oras writes it).
pub(crate) const TITLE: &str = "org.opencontainers.image.title";

/// Whether a manifest is an artifact rather than a container image: it says so
/// (`artifactType`), or its config is not an image config.
fn is_artifact(m: &Manifest) -> bool {
    match m {
        Manifest::Image(i) => {
            i.artifact_type.is_some()
                || !matches!(
                    i.config.media_type.as_str(),
                    "application/vnd.oci.image.config.v1+json"
                        | "application/vnd.docker.container.image.v1+json"
                )
        }
        Manifest::Index(i) => i.artifact_type.is_some(),
    }
}
