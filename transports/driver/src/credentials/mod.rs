//! Credentials from Docker's `config.json`: `auths` entries, `credHelpers` and
//! `credsStore` (by running `docker-credential-<name> get`).
//!
//! Lookup order for a registry host: its `credHelpers` entry, then its `auths` entry,
//! then `credsStore`. Docker Hub is found under any of its usual names. Storing and
//! erasing (`ocireg login`/`logout`) are in `store.rs`, running a helper in `helper.rs`.

mod helper;
mod store;

pub use store::{erase, store, Stored};

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use ocireg_core::reference::{DOCKER_HUB, DOCKER_HUB_NAMES};
use ocireg_core::{Credentials, Secret};
use serde::Deserialize;

/// How long a credential helper may run.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a credential helper may print on stdout (its JSON answer is a few hundred
/// bytes); a helper that prints more is an error, and no more is read.
pub const HELPER_OUTPUT_LIMIT: u64 = 1 << 20;

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The config file exists but cannot be read or parsed.
    #[error("{path}: {problem}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A credential helper is missing, failed, or answered nonsense.
    #[error("credential helper docker-credential-{helper}: {problem}")]
    Helper {
        /// The helper's name.
        helper: String,
        /// What went wrong.
        problem: String,
    },
}

/// The file's top level. Each entry stays a raw JSON value until it is used, so one
/// malformed entry is skipped (with a warning naming its key, never its value) instead
/// of breaking every lookup.
#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: serde_json::Value,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: serde_json::Value,
    #[serde(default, rename = "credsStore")]
    creds_store: serde_json::Value,
}

/// The entries of an object-valued section that decode as `T`; the others are skipped
/// with a warning that names the section and the key.
fn entries<T: serde::de::DeserializeOwned>(
    path: &Path,
    section: &str,
    v: &serde_json::Value,
) -> Vec<(String, T)> {
    let map = match v {
        serde_json::Value::Object(m) => m,
        serde_json::Value::Null => return Vec::new(),
        _ => {
            tracing::warn!(
                "{}: \"{section}\" is not an object; ignored",
                path.display()
            );
            return Vec::new();
        }
    };
    map.iter()
        .filter_map(|(k, v)| match T::deserialize(v) {
            Ok(t) => Some((k.clone(), t)),
            Err(_) => {
                tracing::warn!(
                    "{}: the {section} entry for {k:?} is malformed; ignored",
                    path.display()
                );
                None
            }
        })
        .collect()
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

const HUB_SERVER_URL: &str = "https://index.docker.io/v1/";

/// `host[:port]` of a config key (`https://host/v1/` → `host`), Docker Hub names folded
/// to `docker.io`.
fn normalize(key: &str) -> String {
    let k = key.split_once("://").map(|(_, r)| r).unwrap_or(key);
    let host = k.split('/').next().unwrap_or("").to_ascii_lowercase();
    if DOCKER_HUB_NAMES.contains(&host.as_str()) {
        DOCKER_HUB.to_string()
    } else {
        host
    }
}

/// Looks up credentials for `registry` (as written in the reference: `docker.io`,
/// `ghcr.io`, `localhost:5000`) in the config at `path`. A missing file means none.
pub fn lookup(path: &Path, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
    lookup_with_helpers(path, registry, None)
}

/// [`lookup`], finding `docker-credential-*` helpers on `helper_path` (a `PATH`-style
/// list) instead of the process's `PATH`: for tests and embedders that must not change
/// the environment of the whole process.
pub fn lookup_with_helpers(
    path: &Path,
    registry: &str,
    helper_path: Option<&std::ffi::OsStr>,
) -> Result<Option<Credentials>, CredentialsError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CredentialsError::Config {
                path: path.into(),
                problem: e.to_string(),
            })
        }
    };
    // Only the syntax is checked here: a syntax error's message names a position, never
    // a value.
    let cfg: DockerConfig = serde_json::from_slice::<serde_json::Value>(&bytes)
        .and_then(|v| match v {
            serde_json::Value::Object(_) => serde_json::from_value(v),
            _ => Ok(DockerConfig::default()),
        })
        .map_err(|e| CredentialsError::Config {
            path: path.into(),
            problem: format!("not valid JSON: {e}"),
        })?;
    let auths: Vec<(String, AuthEntry)> = entries(path, "auths", &cfg.auths);
    let cred_helpers: Vec<(String, String)> = entries(path, "credHelpers", &cfg.cred_helpers);
    let creds_store = match &cfg.creds_store {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        _ => {
            tracing::warn!(
                "{}: \"credsStore\" is not a string; ignored",
                path.display()
            );
            None
        }
    };
    let want = normalize(registry);
    let server_url = if want == DOCKER_HUB {
        HUB_SERVER_URL.to_string()
    } else {
        want.clone()
    };
    if let Some((_, helper)) = cred_helpers.iter().find(|(k, _)| normalize(k) == want) {
        return run_helper(helper, &server_url, helper_path, HELPER_TIMEOUT);
    }
    if let Some((key, entry)) = auths.iter().find(|(k, _)| normalize(k) == want) {
        match from_entry(entry) {
            Ok(Some(c)) => return Ok(Some(c)),
            Ok(None) => {}
            Err(problem) => {
                tracing::warn!(
                    "{}: the auths entry for {key:?}: {problem}; ignored",
                    path.display()
                )
            }
        }
    }
    match &creds_store {
        Some(store) if !store.is_empty() => {
            run_helper(store, &server_url, helper_path, HELPER_TIMEOUT)
        }
        _ => Ok(None),
    }
}

fn from_entry(e: &AuthEntry) -> Result<Option<Credentials>, String> {
    if let Some(t) = e.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::IdentityToken {
            token: Secret::new(t),
        }));
    }
    if let Some(a) = e.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|_| "an \"auth\" entry is not base64".to_string())?;
        let s = String::from_utf8(raw).map_err(|_| "an \"auth\" entry is not UTF-8".to_string())?;
        let (u, p) = s
            .split_once(':')
            .ok_or_else(|| "an \"auth\" entry is not user:password".to_string())?;
        return Ok(Some(Credentials::Basic {
            username: u.to_string(),
            password: Secret::new(p),
        }));
    }
    match (&e.username, &e.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials::Basic {
            username: u.clone(),
            password: Secret::new(p.clone()),
        })),
        _ => Ok(None),
    }
}

/// Runs `docker-credential-<helper> get` with `server_url` on stdin, for `timeout` at
/// most, reading at most [`HELPER_OUTPUT_LIMIT`] bytes of its answer.
fn run_helper(
    helper: &str,
    server_url: &str,
    helper_path: Option<&std::ffi::OsStr>,
    timeout: Duration,
) -> Result<Option<Credentials>, CredentialsError> {
    let err = |problem: String| CredentialsError::Helper {
        helper: helper.to_string(),
        problem,
    };
    let ran = helper::run(helper, "get", server_url.as_bytes(), helper_path, timeout)?;
    if !ran.status.success() {
        if ran.text().contains("credentials not found") {
            return Ok(None);
        }
        return Err(err(ran.failure()));
    }
    let a: HelperAnswer = serde_json::from_slice(&ran.stdout)
        .map_err(|_| err("answered something that is not its JSON".into()))?;
    if a.username == "<token>" {
        return Ok(Some(Credentials::IdentityToken {
            token: Secret::new(a.secret),
        }));
    }
    Ok(Some(Credentials::Basic {
        username: a.username,
        password: Secret::new(a.secret),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    fn write(dir: &Path, json: &str) -> PathBuf {
        let p = dir.join("config.json");
        std::fs::write(&p, json).unwrap();
        p
    }

    #[test]
    fn auths_entries_and_aliases() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            r#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dTpwdw=="},
            "ghcr.io":{"username":"gh","password":"tok"},
            "http://localhost:5000":{"identitytoken":"idt"}}}"#,
        );
        match lookup(&p, "docker.io").unwrap().unwrap() {
            Credentials::Basic { username, password } => {
                assert_eq!((username.as_str(), password.expose()), ("u", "pw"))
            }
            c => panic!("{c:?}"),
        }
        assert!(matches!(
            lookup(&p, "ghcr.io").unwrap(),
            Some(Credentials::Basic { .. })
        ));
        assert!(matches!(
            lookup(&p, "localhost:5000").unwrap(),
            Some(Credentials::IdentityToken { .. })
        ));
        assert!(lookup(&p, "quay.io").unwrap().is_none());
        assert!(lookup(&d.path().join("missing.json"), "quay.io")
            .unwrap()
            .is_none());
        // A malformed entry is skipped; the others still work, and nothing of its value
        // is printed anywhere.
        let p = write(
            d.path(),
            r#"{"auths":{"bad.example":{"auth":42},"worse.example":"c2VjcmV0OnZhbHVl",
            "nob64.example":{"auth":"!!c2VjcmV0!!"},"ghcr.io":{"username":"gh","password":"tok"}},
            "credHelpers":{"h.example":7}}"#,
        );
        assert!(lookup(&p, "bad.example").unwrap().is_none());
        assert!(lookup(&p, "worse.example").unwrap().is_none());
        assert!(lookup(&p, "nob64.example").unwrap().is_none());
        assert!(lookup(&p, "h.example").unwrap().is_none());
        assert!(lookup(&p, "quay.io").unwrap().is_none());
        assert!(matches!(
            lookup(&p, "ghcr.io").unwrap(),
            Some(Credentials::Basic { .. })
        ));
        let bad = write(d.path(), "{nope");
        let e = lookup(&bad, "x").unwrap_err().to_string();
        assert!(e.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn helpers() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let helper = bin.join("docker-credential-ocitest");
        std::fs::write(&helper, "#!/bin/sh\nread url\ncase \"$url\" in\n  reg.example) echo '{\"ServerURL\":\"reg.example\",\"Username\":\"hu\",\"Secret\":\"hs\"}';;\n  *) echo 'credentials not found in native keychain'; exit 1;;\nesac\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The helpers are found on this list only: the process's PATH stays as it is
        // (tests run in parallel).
        let path = std::ffi::OsString::from(format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ));
        let lookup = |p: &Path, r: &str| lookup_with_helpers(p, r, Some(&path));
        let p = write(
            d.path(),
            r#"{"credHelpers":{"reg.example":"ocitest"},"credsStore":"ocitest","auths":{"reg.example":{"auth":"eDp5"}}}"#,
        );
        match lookup(&p, "reg.example").unwrap().unwrap() {
            Credentials::Basic { username, password } => {
                assert_eq!((username.as_str(), password.expose()), ("hu", "hs"))
            }
            c => panic!("{c:?}"),
        }
        // credsStore: not found is no credentials, not an error
        assert!(lookup(&p, "other.example").unwrap().is_none());
        // a helper that never answers is stopped at the time limit (ten seconds, for
        // every lookup, store and erase)
        assert_eq!(HELPER_TIMEOUT, Duration::from_secs(10));
        let slow = bin.join("docker-credential-slow");
        std::fs::write(&slow, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
        let started = Instant::now();
        let e = run_helper(
            "slow",
            "reg.example",
            Some(&path),
            Duration::from_millis(300),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no answer within 0.3s"), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // a helper that prints without end is cut off at the output bound
        let loud = bin.join("docker-credential-loud");
        std::fs::write(
            &loud,
            "#!/bin/sh\nexec yes '{\"Username\":\"u\",\"Secret\":\"s\"}'\n",
        )
        .unwrap();
        std::fs::set_permissions(&loud, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = run_helper("loud", "reg.example", Some(&path), Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(e.contains("printed more than 1048576 bytes"), "{e}");
        let p = write(d.path(), r#"{"credsStore":"missing-helper"}"#);
        let e = lookup(&p, "x.example").unwrap_err().to_string();
        assert!(
            e.contains("docker-credential-missing-helper") && e.contains("cannot run"),
            "{e}"
        );
    }
}
