//! `ocireg login`/`logout` (credentials checked, then stored where docker, podman,
//! skopeo and crane find them), `tag`, `digest` and `delete`. The work is the library's
//! (`Client::check_credentials`, `tag`, `digest`, `delete_*`, and the driver's
//! `credentials::store`/`erase`); this file parses, asks and prints.

use std::io::IsTerminal as _;

use ocireg_core::{ErrorKind, Reference};
use ocireg_driver::credentials::{self, Stored};
use ocireg_driver::Error as DriveError;

use crate::args::{DeleteArgs, DigestArgs, LoginArgs, LogoutArgs, RuntimeChoice, TagArgs};

/// `config.json` (`$DOCKER_CONFIG`, else `~/.docker`).
fn config_path() -> Result<std::path::PathBuf, String> {
    credentials::default_config_path()
        .ok_or_else(|| "no Docker config directory: set DOCKER_CONFIG or HOME".to_string())
}

fn registry_of(s: &str) -> Result<String, String> {
    Reference::registry_root(s)
        .map(|r| r.registry().to_string())
        .map_err(|e| format!("{s:?} is not a registry (host[:port]): {e}"))
}

pub(crate) async fn cmd_login(a: LoginArgs, rt: RuntimeChoice) -> Result<(), String> {
    let registry = registry_of(&a.registry)?;
    let Some(username) = a.connect.username.clone() else {
        return Err("login needs --username with --password-stdin (or OCIREG_PASSWORD)".into());
    };
    let given = crate::setup::credentials(&a.connect, &registry)?;
    // no credentials of the flags for the client: they are checked by login itself
    let mut connect = a.connect.clone();
    connect.username = None;
    let client = crate::setup::client(rt, &connect, &[&registry], |_| Ok(()))?;
    let stored = match client.login(&registry, given).await {
        Ok(stored) => stored,
        Err(DriveError::Registry(e))
            if matches!(
                e.kind(),
                ErrorKind::Unauthorized { .. } | ErrorKind::Forbidden
            ) =>
        {
            return Err(format!(
                "the credentials for {username} were rejected by {registry}: nothing was stored"
            ))
        }
        Err(e) => {
            let at = Reference::registry_root(&registry).map_err(|e| e.to_string())?;
            return Err(crate::explain::client_error(&e, &at, Some(&username)));
        }
    };
    crate::progress::say(&match stored {
        None => format!("{registry} answers without credentials: nothing was stored"),
        Some(Stored::File(f)) => format!(
            "login succeeded: credentials for {username} on {registry} stored in {}",
            f.display()
        ),
        Some(Stored::Helper(h)) => format!(
            "login succeeded: credentials for {username} on {registry} stored by docker-credential-{h}"
        ),
    });
    Ok(())
}

pub(crate) async fn cmd_logout(a: LogoutArgs, _rt: RuntimeChoice) -> Result<(), String> {
    let registry = registry_of(&a.registry)?;
    let path = config_path()?;
    let erased = credentials::erase(&path, &registry, None).map_err(|e| e.to_string())?;
    crate::progress::say(&if erased {
        format!("removed the credentials for {registry}")
    } else {
        format!("no credentials for {registry} were stored")
    });
    Ok(())
}

pub(crate) async fn cmd_tag(a: TagArgs, rt: RuntimeChoice) -> Result<(), String> {
    let reference = Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    let client = crate::setup::client(rt, &a.connect, &[reference.registry()], |_| Ok(()))?;
    let digest = client
        .tag(&a.reference, &a.tags)
        .await
        .map_err(|e| crate::explain::client_error(&e, &reference, a.connect.username.as_deref()))?;
    crate::progress::say(&format!(
        "tagged {digest} in {}/{} as {}",
        reference.registry(),
        reference.repository(),
        a.tags.join(", ")
    ));
    Ok(())
}

pub(crate) async fn cmd_digest(a: DigestArgs, rt: RuntimeChoice) -> Result<(), String> {
    let reference = Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    let client = crate::setup::client(rt, &a.connect, &[reference.registry()], |_| Ok(()))?;
    let d = client
        .digest(&a.reference)
        .await
        .map_err(|e| crate::explain::client_error(&e, &reference, a.connect.username.as_deref()))?;
    println!("{}", d.digest);
    Ok(())
}

/// The line for a delete the registry refused as such (not a missing thing or a
/// network failure).
fn refused(e: &DriveError, what: &str) -> Option<String> {
    let DriveError::Registry(core) = e else {
        return None;
    };
    let unsupported = core.to_string().contains("UNSUPPORTED");
    match core.status() {
        Some(405) => Some(format!(
            "the registry refuses to delete {what} (405): deletes are off on it; enable them \
             (docker-registry: REGISTRY_STORAGE_DELETE_ENABLED=true)"
        )),
        _ if unsupported => Some(format!(
            "the registry does not support deleting {what} ({core})"
        )),
        _ => None,
    }
}

pub(crate) async fn cmd_delete(a: DeleteArgs, rt: RuntimeChoice) -> Result<(), String> {
    let reference = Reference::parse(&a.reference).map_err(|e| e.to_string())?;
    let client = crate::setup::client(rt, &a.connect, &[reference.registry()], |_| Ok(()))?;
    let explain = |e: DriveError, what: &str| {
        refused(&e, what).unwrap_or_else(|| {
            crate::explain::client_error(&e, &reference, a.connect.username.as_deref())
        })
    };
    if a.blob {
        client
            .delete_blob(&a.reference)
            .await
            .map_err(|e| explain(e, "blobs"))?;
        crate::progress::say(&format!("deleted blob {reference}"));
        return Ok(());
    }
    if a.tag_only {
        if reference.digest().is_some() || !a.reference.contains(':') {
            return Err(format!(
                "{reference}: --tag-only deletes a tag: name one (REPO:TAG)"
            ));
        }
        client.delete_tag(&a.reference).await.map_err(|e| {
            refused(&e, "a tag alone").map_or_else(
                || explain(e, "tags"),
                |r| format!("{r}; delete the manifest by digest instead (every tag on it goes)"),
            )
        })?;
        crate::progress::say(&format!("deleted tag {reference} (the manifest stays)"));
        return Ok(());
    }
    // what is deleted: the reference, or, once confirmed, exactly the manifest shown
    let mut target = a.reference.clone();
    if reference.digest().is_none() && !a.yes {
        let d = client
            .digest(&a.reference)
            .await
            .map_err(|e| explain(e, "manifests"))?;
        if !std::io::stdin().is_terminal() {
            return Err(format!(
                "{reference} is a tag: deleting it deletes manifest {} and every tag on it; \
                 pass --yes to do so, or --tag-only to delete the tag alone",
                d.digest
            ));
        }
        eprint!(
            "delete manifest {} that {reference} names, and every tag on it? [y/N] ",
            d.digest
        );
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| format!("reading the answer: {e}"))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err("not deleted".into());
        }
        target = Reference::new(
            reference.registry(),
            reference.repository(),
            None,
            Some(d.digest),
        )
        .map_err(|e| e.to_string())?
        .to_string();
    }
    let digest = client
        .delete_manifest(&target)
        .await
        .map_err(|e| explain(e, "manifests"))?;
    crate::progress::say(&format!(
        "deleted manifest {digest} from {}/{}",
        reference.registry(),
        reference.repository()
    ));
    Ok(())
}
