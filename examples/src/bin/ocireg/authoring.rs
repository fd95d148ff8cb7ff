//! `ocireg artifact push`, `ocireg attach` and `ocireg index create|append`: artifacts
//! from files (oras `push` and `attach`) and image indexes from existing manifests. The
//! manifests are built and pushed by the library (`Client::push_artifact`,
//! `Client::create_index`); this file parses and prints.

use ocireg_core::Reference;
use ocireg_driver::client::{ArtifactFile, Content};

use crate::args::{ArtifactPushArgs, AttachArgs, IndexArgs, RuntimeChoice};

/// `FILE[:MEDIATYPE]`: the file (its path, as written, is its title) and its media type.
fn file_arg(s: &str) -> ArtifactFile {
    let (path, media_type) = match s.rsplit_once(':') {
        Some((p, mt)) if mt.contains('/') && !p.is_empty() => (p, mt),
        _ => (s, "application/octet-stream"),
    };
    ArtifactFile {
        title: path.to_string(),
        media_type: media_type.to_string(),
        content: Content::File(path.into()),
    }
}

/// `key=value`.
fn annotation_arg(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("--annotation {s:?}: expected key=value"))
}

async fn push_files(
    rt: RuntimeChoice,
    connect: &crate::args::ConnectArgs,
    target: &str,
    subject: Option<&str>,
    artifact_type: &str,
    files: &[String],
    annotations: &[String],
) -> Result<ocireg_core::Digest, String> {
    let reference = Reference::parse(target).map_err(|e| e.to_string())?;
    let client = crate::setup::client(rt, connect, &[reference.registry()], |_| Ok(()))?;
    let mut push = client.push_artifact(target, artifact_type);
    for f in files {
        push = push.file(file_arg(f));
    }
    for a in annotations {
        let (k, v) = annotation_arg(a)?;
        push = push.annotation(&k, &v);
    }
    if let Some(s) = subject {
        push = push.subject(s);
    }
    push.await
        .map_err(|e| crate::explain::client_error(&e, &reference, connect.username.as_deref()))
}

pub(crate) async fn cmd_artifact_push(
    a: ArtifactPushArgs,
    rt: RuntimeChoice,
) -> Result<(), String> {
    let digest = push_files(
        rt,
        &a.connect,
        &a.reference,
        None,
        &a.meta.artifact_type,
        &a.files,
        &a.meta.annotations,
    )
    .await?;
    crate::progress::say(&format!(
        "pushed {} → {digest} ({} files)",
        a.reference,
        a.files.len()
    ));
    Ok(())
}

pub(crate) async fn cmd_attach(a: AttachArgs, rt: RuntimeChoice) -> Result<(), String> {
    let subject = Reference::parse(&a.subject).map_err(|e| e.to_string())?;
    let repository = format!("{}/{}", subject.registry(), subject.repository());
    let digest = push_files(
        rt,
        &a.connect,
        &repository,
        Some(&a.subject),
        &a.meta.artifact_type,
        &a.files,
        &a.meta.annotations,
    )
    .await?;
    crate::progress::say(&format!(
        "attached {digest} ({}) to {}",
        a.meta.artifact_type, a.subject
    ));
    Ok(())
}

pub(crate) async fn cmd_index(a: IndexArgs, append: bool, rt: RuntimeChoice) -> Result<(), String> {
    let target = Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    let client = crate::setup::client(rt, &a.connect, &[target.registry()], |_| Ok(()))?;
    let mut index = client.create_index(&a.reference).append(append);
    for m in &a.manifests {
        index = index.manifest(m, None);
    }
    for an in &a.annotations {
        let (k, v) = annotation_arg(an)?;
        index = index.annotation(&k, &v);
    }
    let digest = index
        .run()
        .await
        .map_err(|e| crate::explain::client_error(&e, &target, a.connect.username.as_deref()))?;
    crate::progress::say(&format!(
        "{} {} → {digest} ({} manifests named)",
        if append { "appended to" } else { "created" },
        a.reference,
        a.manifests.len()
    ));
    Ok(())
}
