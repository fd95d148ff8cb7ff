//! containerd's host configuration: `hosts.toml` in a certs.d-style directory, one
//! directory per registry (`<dir>/<host[:port]>/hosts.toml`, else `<dir>/_default/`).
//!
//! ```toml
//! server = "https://registry.example.com"        # the upstream (default: the registry)
//!
//! [host."http://mirror.internal:5000"]
//!   capabilities = ["pull", "resolve"]
//!   ca = "mirror-ca.pem"                        # relative to this file's directory
//!   override_path = false
//!   [host."http://mirror.internal:5000".header]
//!     x-team = "build"
//! ```
//!
//! Read here into the core's [`Host`]s (in the file's order) for its
//! [`HostPlan`](ocireg_core::mirrors::HostPlan); the CA files are for the transport.
//! The file is bounded (size, hosts, headers), and every URL and header is checked.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ocireg_core::mirrors::{Capabilities, Host};
use ocireg_core::Reference;
use url::Url;

/// Largest `hosts.toml` read.
const MAX_FILE: u64 = 1 << 20;
/// Most `[host]` entries.
const MAX_HOSTS: usize = 64;
/// Most headers per host.
const MAX_HEADERS: usize = 64;

/// The hosts of one registry, as its `hosts.toml` configures them.
#[derive(Clone, Debug)]
pub struct HostsConfig {
    /// The file read.
    pub file: PathBuf,
    /// The mirrors, in the file's order.
    pub mirrors: Vec<Host>,
    /// The upstream (`server`, else the registry itself).
    pub upstream: Host,
    /// CA files (PEM) the hosts name, each with the `host[:port]` of the host that named
    /// it: trusted besides the usual roots for that host's connections only (a mirror's
    /// CA must not vouch for the upstream registry, nor for another mirror).
    pub ca_files: Vec<(String, PathBuf)>,
    /// Hosts (`host[:port]`) whose entry says `skip_verify = true`.
    pub skip_verify: Vec<String>,
    /// Client certificates the hosts name (`client`): the `host[:port]` of the host that
    /// named it, the certificate file and the key file (the same file when `client` names
    /// one file that holds both), shown to that host alone.
    pub client_files: Vec<(String, PathBuf, PathBuf)>,
    /// Time limits on making a connection (`dial_timeout`), by `host[:port]`.
    pub dial_timeouts: Vec<(String, Duration)>,
}

impl HostsConfig {
    /// The CA files `host`'s entry named.
    pub fn cas_of(&self, host: &Host) -> Vec<PathBuf> {
        let authority = host.authority();
        self.ca_files
            .iter()
            .filter(|(a, _)| *a == authority)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// The connect time limit `host`'s entry gave, if any.
    pub fn dial_timeout_of(&self, host: &Host) -> Option<Duration> {
        let authority = host.authority();
        self.dial_timeouts
            .iter()
            .find(|(a, _)| *a == authority)
            .map(|(_, d)| *d)
    }

    /// The client certificate `host`'s entry named (the first), as certificate and key
    /// files.
    pub fn client_of(&self, host: &Host) -> Option<(PathBuf, PathBuf)> {
        let authority = host.authority();
        self.client_files
            .iter()
            .find(|(a, _, _)| *a == authority)
            .map(|(_, c, k)| (c.clone(), k.clone()))
    }
}

/// The host configuration of `reference`'s registry under `dir`, if the directory has
/// one for it (or a `_default`).
pub fn load(
    dir: &Path,
    reference: &Reference,
    plain_http: bool,
) -> io::Result<Option<HostsConfig>> {
    for name in [reference.registry(), "_default"] {
        let file = dir.join(name).join("hosts.toml");
        match fs::symlink_metadata(&file) {
            Ok(m) if m.len() > MAX_FILE => {
                return Err(invalid(&file, format!("larger than {MAX_FILE} bytes")))
            }
            Ok(_) => {
                let text = fs::read_to_string(&file).map_err(|e| at(&file, e))?;
                return parse(&text, &file, reference, plain_http).map(Some);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(at(&file, e)),
        }
    }
    Ok(None)
}

/// Parses the text of `file` (paths in it are relative to its directory).
pub fn parse(
    text: &str,
    file: &Path,
    reference: &Reference,
    plain_http: bool,
) -> io::Result<HostsConfig> {
    let doc: toml::Table = text.parse().map_err(|e| invalid(file, format!("{e}")))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let mut config = HostsConfig {
        file: file.to_path_buf(),
        mirrors: Vec::new(),
        upstream: Host::upstream(reference, plain_http),
        ca_files: Vec::new(),
        skip_verify: Vec::new(),
        client_files: Vec::new(),
        dial_timeouts: Vec::new(),
    };
    if let Some(server) = doc.get("server") {
        let url = host_url(
            file,
            server
                .as_str()
                .ok_or_else(|| invalid(file, "server is not a string".into()))?,
        )?;
        let mut host = entry(file, base, url, &doc, &mut config)?;
        host.capabilities = Capabilities::UPSTREAM;
        // the registry itself keeps its reference as written (docker.io and its API host)
        host.upstream = host.authority().eq_ignore_ascii_case(reference.api_host())
            && (host.url.path() == "/" || host.url.path().is_empty());
        config.upstream = host;
    }
    if let Some(hosts) = doc.get("host") {
        let hosts = hosts
            .as_table()
            .ok_or_else(|| invalid(file, "host is not a table".into()))?;
        if hosts.len() > MAX_HOSTS {
            return Err(invalid(file, format!("more than {MAX_HOSTS} hosts")));
        }
        for (name, fields) in hosts {
            let fields = fields
                .as_table()
                .ok_or_else(|| invalid(file, format!("host {name:?} is not a table")))?;
            let url = host_url(file, name)?;
            let host = entry(file, base, url, fields, &mut config)?;
            config.mirrors.push(host);
        }
    }
    Ok(config)
}

/// One host's entry: capabilities, CA, skip_verify, override_path, headers.
fn entry(
    file: &Path,
    base: &Path,
    url: Url,
    fields: &toml::Table,
    config: &mut HostsConfig,
) -> io::Result<Host> {
    let mut host = Host {
        url,
        capabilities: Capabilities::ALL,
        override_path: false,
        headers: Vec::new(),
        upstream: false,
    };
    let name = host.url.to_string();
    if let Some(caps) = fields.get("capabilities") {
        let caps = strings(file, &name, "capabilities", caps)?;
        host.capabilities = Capabilities {
            pull: caps.iter().any(|c| c == "pull"),
            resolve: caps.iter().any(|c| c == "resolve"),
            push: caps.iter().any(|c| c == "push"),
        };
    }
    if let Some(ca) = fields.get("ca") {
        for path in strings(file, &name, "ca", ca)? {
            config.ca_files.push((host.authority(), base.join(path)));
        }
    }
    // containerd's forms: "both.pem", a list of such files, or a list of [certificate,
    // key] pairs (a key of "" meaning the certificate's own file)
    if let Some(client) = fields.get("client") {
        let pairs: Vec<(String, String)> = match client {
            toml::Value::String(f) => vec![(f.clone(), String::new())],
            toml::Value::Array(items) if items.iter().all(|i| i.is_str()) => {
                strings(file, &name, "client", client)?
                    .into_iter()
                    .map(|f| (f, String::new()))
                    .collect()
            }
            toml::Value::Array(items) => items
                .iter()
                .map(|pair| {
                    let files = strings(file, &name, "client", pair)?;
                    match files.as_slice() {
                        [cert] => Ok((cert.clone(), String::new())),
                        [cert, key] => Ok((cert.clone(), key.clone())),
                        _ => Err(invalid(
                            file,
                            format!("{name}: client is not a list of [certificate, key]"),
                        )),
                    }
                })
                .collect::<io::Result<_>>()?,
            _ => {
                return Err(invalid(
                    file,
                    format!("{name}: client is not a file or a list of files"),
                ))
            }
        };
        for (cert, key) in pairs {
            let key = if key.is_empty() { cert.clone() } else { key };
            config
                .client_files
                .push((host.authority(), base.join(cert), base.join(key)));
        }
    }
    if let Some(t) = fields.get("dial_timeout") {
        let d = t.as_str().and_then(go_duration).ok_or_else(|| {
            invalid(
                file,
                format!(
                    "{name}: dial_timeout is not a duration from 1ms to 10m (\"1s\", \"500ms\")"
                ),
            )
        })?;
        config.dial_timeouts.push((host.authority(), d));
    }
    match fields.get("skip_verify") {
        Some(toml::Value::Boolean(true)) => config.skip_verify.push(host.authority()),
        Some(toml::Value::Boolean(false)) | None => {}
        Some(_) => {
            return Err(invalid(
                file,
                format!("{name}: skip_verify is not a boolean"),
            ))
        }
    }
    match fields.get("override_path") {
        Some(toml::Value::Boolean(b)) => host.override_path = *b,
        None => {}
        Some(_) => {
            return Err(invalid(
                file,
                format!("{name}: override_path is not a boolean"),
            ))
        }
    }
    if let Some(headers) = fields.get("header") {
        let headers = headers
            .as_table()
            .ok_or_else(|| invalid(file, format!("{name}: header is not a table")))?;
        for (k, v) in headers {
            for value in strings(file, &name, "header", v)? {
                if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                    || http::HeaderValue::from_str(&value).is_err()
                {
                    return Err(invalid(
                        file,
                        format!("{name}: header {k:?} is not a valid header"),
                    ));
                }
                host.headers.push((k.clone(), value));
            }
        }
        if host.headers.len() > MAX_HEADERS {
            return Err(invalid(
                file,
                format!("{name}: more than {MAX_HEADERS} headers"),
            ));
        }
    }
    Ok(host)
}

/// A host's URL: `http://` or `https://` (the default when none is written), with a host.
fn host_url(file: &Path, s: &str) -> io::Result<Url> {
    let written = if s.contains("://") {
        s.to_string()
    } else {
        format!("https://{s}")
    };
    let url = Url::parse(&written).map_err(|e| invalid(file, format!("host {s:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            file,
            format!("host {s:?} is not an http(s) URL with a host"),
        ));
    }
    if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            file,
            format!(
                "host {s:?}: no credentials or query in a host URL (use docker login for the host)"
            ),
        ));
    }
    Ok(url)
}

/// A string, or an array of strings.
fn strings(file: &Path, host: &str, key: &str, v: &toml::Value) -> io::Result<Vec<String>> {
    let bad = || {
        invalid(
            file,
            format!("{host}: {key} is not a string or an array of strings"),
        )
    };
    match v {
        toml::Value::String(s) => Ok(vec![s.clone()]),
        toml::Value::Array(a) if a.len() <= MAX_HEADERS => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

/// A duration as Go writes one (`1s`, `500ms`, `1m30s`, `1.5s`), from 1 ms to 10 minutes.
fn go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() || rest.len() > 32 {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[u..];
    }
    (0.001..=600.0)
        .contains(&total)
        .then(|| Duration::from_secs_f64(total))
}

fn invalid(file: &Path, message: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {message}", file.display()),
    )
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
