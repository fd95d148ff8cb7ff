//! Storing and erasing credentials in Docker's `config.json` (`ocireg login`/`logout`),
//! so that docker, podman, skopeo and crane find them: through the registry's
//! `credHelpers` helper or the `credsStore` (`docker-credential-<name> store`/`erase`),
//! else as an `auths` entry. The file is rewritten atomically (a private file beside it,
//! mode 0600, renamed over it: a symlink at its name is replaced, never followed), every
//! other entry and unknown key kept, in their order.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ocireg_core::reference::DOCKER_HUB;
use ocireg_core::Credentials;

use super::{helper, normalize, CredentialsError, HELPER_TIMEOUT, HUB_SERVER_URL};

/// Where credentials went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// An `auths` entry of this file.
    File(PathBuf),
    /// This credential helper (`docker-credential-<name>`).
    Helper(String),
}

/// The config at `path` as a JSON object (an empty one when there is no file).
fn read(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, CredentialsError> {
    let bad = |problem: String| CredentialsError::Config {
        path: path.into(),
        problem,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(bad(e.to_string())),
    };
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("not a JSON object; it is left as it is".into())),
        Err(e) => Err(bad(format!("not valid JSON ({e}); it is left as it is"))),
    }
}

/// Writes `config` to `path` atomically, mode 0600, indented with tabs as docker does.
fn write(
    path: &Path,
    config: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), CredentialsError> {
    let bad = |problem: String| CredentialsError::Config {
        path: path.into(),
        problem,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(config, &mut ser).map_err(|e| bad(e.to_string()))?;
    out.push(b'\n');
    // a private file beside it (tempfile creates it 0600), then renamed over the name
    let mut temp = tempfile::Builder::new()
        .prefix(".config.json.")
        .tempfile_in(dir)
        .map_err(|e| bad(e.to_string()))?;
    temp.write_all(&out)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| bad(e.to_string()))?;
    temp.persist(path).map_err(|e| bad(e.error.to_string()))?;
    Ok(())
}

/// The helper that holds `registry`'s credentials, if the config names one.
fn helper_for(
    config: &serde_json::Map<String, serde_json::Value>,
    registry: &str,
) -> Option<String> {
    let want = normalize(registry);
    let from_helpers = config
        .get("credHelpers")
        .and_then(|v| v.as_object())
        .and_then(|m| m.iter().find(|(k, _)| normalize(k) == want))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_string);
    from_helpers.or_else(|| {
        config
            .get("credsStore")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    })
}

/// The key `registry` is stored under: its existing key when there is one (in any of
/// its names), else Docker Hub's server URL, else the registry as written.
fn auths_key(auths: &serde_json::Map<String, serde_json::Value>, registry: &str) -> String {
    let want = normalize(registry);
    auths
        .keys()
        .find(|k| normalize(k) == want)
        .cloned()
        .unwrap_or_else(|| {
            if want == DOCKER_HUB {
                HUB_SERVER_URL.to_string()
            } else {
                registry.to_string()
            }
        })
}

fn server_url(registry: &str) -> String {
    if normalize(registry) == DOCKER_HUB {
        HUB_SERVER_URL.to_string()
    } else {
        normalize(registry)
    }
}

/// Stores `credentials` for `registry` through its helper, else in the file at `path`;
/// where they went. Anonymous credentials are refused (nothing to store).
pub fn store(
    path: &Path,
    registry: &str,
    credentials: &Credentials,
    helper_path: Option<&std::ffi::OsStr>,
) -> Result<Stored, CredentialsError> {
    let mut config = read(path)?;
    let helper = helper_for(&config, registry);
    let (username, secret) = match credentials {
        Credentials::Basic { username, password } => (username.clone(), password.expose()),
        Credentials::IdentityToken { token } => ("<token>".to_string(), token.expose()),
        _ => {
            return Err(CredentialsError::Config {
                path: path.into(),
                problem: "no credentials to store".into(),
            })
        }
    };
    let auths = config
        .entry("auths")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    let Some(auths) = auths.as_object_mut() else {
        return Err(CredentialsError::Config {
            path: path.into(),
            problem: "\"auths\" is not an object; it is left as it is".into(),
        });
    };
    let key = auths_key(auths, registry);
    let stored = match &helper {
        Some(h) => {
            let input = serde_json::json!({
                "ServerURL": server_url(registry),
                "Username": username,
                "Secret": secret,
            });
            let ran = helper::run(
                h,
                "store",
                input.to_string().as_bytes(),
                helper_path,
                HELPER_TIMEOUT,
            )?;
            if !ran.status.success() {
                return Err(CredentialsError::Helper {
                    helper: h.clone(),
                    problem: ran.failure(),
                });
            }
            // as docker does: the registry is listed, its secret is the helper's
            auths.insert(key, serde_json::json!({}));
            Stored::Helper(h.clone())
        }
        None => {
            let entry = match credentials {
                Credentials::IdentityToken { .. } => serde_json::json!({ "identitytoken": secret }),
                _ => {
                    let pair = format!("{username}:{secret}");
                    serde_json::json!({
                        "auth": base64::engine::general_purpose::STANDARD.encode(pair)
                    })
                }
            };
            auths.insert(key, entry);
            Stored::File(path.to_path_buf())
        }
    };
    write(path, &config)?;
    Ok(stored)
}

/// Erases `registry`'s credentials: through its helper, and its `auths` entry; whether
/// there was anything to erase.
pub fn erase(
    path: &Path,
    registry: &str,
    helper_path: Option<&std::ffi::OsStr>,
) -> Result<bool, CredentialsError> {
    let mut config = read(path)?;
    let mut erased = false;
    if let Some(h) = helper_for(&config, registry) {
        let ran = helper::run(
            &h,
            "erase",
            server_url(registry).as_bytes(),
            helper_path,
            HELPER_TIMEOUT,
        )?;
        if ran.status.success() {
            erased = true;
        } else if !ran.text().contains("not found") {
            return Err(CredentialsError::Helper {
                helper: h,
                problem: ran.failure(),
            });
        }
    }
    let want = normalize(registry);
    if let Some(auths) = config.get_mut("auths").and_then(|a| a.as_object_mut()) {
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| normalize(k) == want)
            .cloned()
            .collect();
        for k in &keys {
            auths.shift_remove(k);
        }
        if !keys.is_empty() {
            erased = true;
            write(path, &config)?;
        }
    }
    Ok(erased)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocireg_core::Secret;
    use std::os::unix::fs::PermissionsExt;

    fn basic(u: &str, p: &str) -> Credentials {
        Credentials::Basic {
            username: u.into(),
            password: Secret::new(p.to_string()),
        }
    }

    #[test]
    fn stored_in_the_file_atomically_private_and_keeping_everything_else() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"auths":{"other.example":{"auth":"b3RoZXI6cA=="}},"psFormat":"table {{.ID}}","zzz":{"kept":[1,2]}}"#,
        )
        .unwrap();
        let stored = store(&p, "reg.example:5000", &basic("me", "pw"), None).unwrap();
        assert_eq!(stored, Stored::File(p.clone()));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&p).unwrap();
        // unknown keys and other entries kept, in their order
        let keys: Vec<usize> = ["\"auths\"", "\"psFormat\"", "\"zzz\""]
            .iter()
            .map(|k| text.find(k).unwrap())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(
            text.contains("other.example") && text.contains("\"kept\""),
            "{text}"
        );
        // found again by the lookup docker, podman and this client share
        let found = super::super::lookup(&p, "reg.example:5000").unwrap();
        assert_eq!(found, Some(basic("me", "pw")));
        // logout: gone, the rest kept
        assert!(erase(&p, "reg.example:5000", None).unwrap());
        assert_eq!(super::super::lookup(&p, "reg.example:5000").unwrap(), None);
        assert!(super::super::lookup(&p, "other.example").unwrap().is_some());
        assert!(!erase(&p, "reg.example:5000", None).unwrap());
        // no file left beside it
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }

    #[test]
    fn a_file_that_is_not_a_config_is_left_as_it_is() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        std::fs::write(&p, "not json").unwrap();
        assert!(store(&p, "reg.example", &basic("me", "pw"), None).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "not json");
    }

    #[test]
    fn a_helper_stores_and_erases_the_secret() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = d.path().join("helper.log");
        let helper = bin.join("docker-credential-ocistore");
        std::fs::write(
            &helper,
            format!("#!/bin/sh\necho \"$1 $(cat)\" >> {}\n", log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::ffi::OsString::from(format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ));
        let p = d.path().join("config.json");
        std::fs::write(&p, r#"{"credsStore":"ocistore"}"#).unwrap();
        let stored = store(&p, "reg.example", &basic("me", "pw"), Some(&path)).unwrap();
        assert_eq!(stored, Stored::Helper("ocistore".into()));
        let said = std::fs::read_to_string(&log).unwrap();
        assert!(said.starts_with("store {"), "{said}");
        assert!(
            said.contains("\"Secret\":\"pw\"") && said.contains("\"ServerURL\":\"reg.example\"")
        );
        // the secret is the helper's, never the file's
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            !text.contains("pw") && text.contains("reg.example"),
            "{text}"
        );
        assert!(erase(&p, "reg.example", Some(&path)).unwrap());
        let said = std::fs::read_to_string(&log).unwrap();
        assert!(said.lines().nth(1) == Some("erase reg.example"), "{said}");
    }
}
