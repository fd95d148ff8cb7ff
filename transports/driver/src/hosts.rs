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
    };
    if let Some(server) = doc.get("server") {
        let url = host_url(
            file,
            server
                .as_str()
                .ok_or_else(|| invalid(file, "server is not a string".into()))?,
        )?;
        let mut host = entry(file, base, url, &doc, &mut config)?;
        host.capabilities = Capabilities::ALL;
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
        };
    }
    if let Some(ca) = fields.get("ca") {
        for path in strings(file, &name, "ca", ca)? {
            config.ca_files.push((host.authority(), base.join(path)));
        }
    }
    // containerd's forms: "both.pem", ["cert.pem", "key.pem"] (one pair), or a list of
    // pairs, a key of "" meaning the certificate's own file
    if let Some(client) = fields.get("client") {
        let pairs: Vec<(String, String)> = match client {
            toml::Value::String(f) => vec![(f.clone(), String::new())],
            toml::Value::Array(items) if items.iter().all(|i| i.is_str()) => {
                let files = strings(file, &name, "client", client)?;
                match files.as_slice() {
                    [cert] => vec![(cert.clone(), String::new())],
                    [cert, key] => vec![(cert.clone(), key.clone())],
                    _ => {
                        return Err(invalid(
                            file,
                            format!("{name}: client is not a certificate and a key"),
                        ))
                    }
                }
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
mod tests {
    use super::*;

    fn reference() -> Reference {
        Reference::parse("docker.io/library/alpine:3").unwrap()
    }

    #[test]
    fn hosts_in_order_with_their_settings() {
        let text = r#"
server = "https://registry-1.docker.io"

[host."http://mirror-b:5000"]
  capabilities = ["pull"]
  ca = ["b.pem", "/abs/c.pem"]
  [host."http://mirror-b:5000".header]
    x-team = ["build", "ci"]

[host."mirror-a.example/base"]
  override_path = true
  skip_verify = true
"#;
        let c = parse(
            text,
            Path::new("/etc/hosts.d/docker.io/hosts.toml"),
            &reference(),
            false,
        )
        .unwrap();
        let urls: Vec<String> = c.mirrors.iter().map(|h| h.url.to_string()).collect();
        assert_eq!(
            urls,
            ["http://mirror-b:5000/", "https://mirror-a.example/base"]
        );
        assert_eq!(
            c.mirrors[0].capabilities,
            Capabilities {
                pull: true,
                resolve: false
            }
        );
        assert_eq!(
            c.mirrors[0].headers,
            [
                ("x-team".into(), "build".into()),
                ("x-team".into(), "ci".into())
            ]
        );
        assert!(c.mirrors[1].override_path);
        assert_eq!(c.mirrors[1].capabilities, Capabilities::ALL);
        let b = "mirror-b:5000".to_string();
        assert_eq!(
            c.ca_files,
            [
                (b.clone(), PathBuf::from("/etc/hosts.d/docker.io/b.pem")),
                (b, PathBuf::from("/abs/c.pem"))
            ]
        );
        assert_eq!(c.skip_verify, ["mirror-a.example"]);
        assert!(c.upstream.upstream, "server is the registry's own API host");
    }

    /// containerd's three forms of `client`: one file holding both, one pair, a list of
    /// pairs (a key of "" meaning the certificate's own file); each for its host alone.
    #[test]
    fn client_certificates_in_each_form() {
        let text = r#"
[host."https://one.example"]
  client = "both.pem"
[host."https://two.example:5000"]
  client = ["two.crt", "two.key"]
[host."https://three.example"]
  client = [["/abs/three.crt", "three.key"], ["four.pem", ""]]
"#;
        let c = parse(text, Path::new("/h/reg/hosts.toml"), &reference(), false).unwrap();
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            c.client_files,
            [
                (
                    "one.example".into(),
                    p("/h/reg/both.pem"),
                    p("/h/reg/both.pem")
                ),
                (
                    "two.example:5000".into(),
                    p("/h/reg/two.crt"),
                    p("/h/reg/two.key")
                ),
                (
                    "three.example".into(),
                    p("/abs/three.crt"),
                    p("/h/reg/three.key")
                ),
                (
                    "three.example".into(),
                    p("/h/reg/four.pem"),
                    p("/h/reg/four.pem")
                ),
            ]
        );
        assert_eq!(
            c.client_of(&c.mirrors[1]),
            Some((p("/h/reg/two.crt"), p("/h/reg/two.key")))
        );
        assert_eq!(c.client_of(&c.upstream), None);
        for bad in [
            "[host.\"https://x\"]\nclient = 3",
            "[host.\"https://x\"]\nclient = [\"a\", \"b\", \"c\"]",
            "[host.\"https://x\"]\nclient = [[\"a\", \"b\", \"c\"]]",
        ] {
            assert!(
                parse(bad, Path::new("h"), &reference(), false).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn what_is_not_a_host_configuration_is_refused() {
        let f = Path::new("hosts.toml");
        for bad in [
            "server = 3",
            "[host.\"ftp://x\"]",
            "[host.\"https://user:pw@x\"]",
            "[host.\"https://x\"]\ncapabilities = [1]",
            "[host.\"https://x\"]\nskip_verify = \"yes\"",
            "[host.\"https://x\".header]\n\"bad header\" = \"v\"",
            "[host.\"https://x\".header]\nx = \"line\\nbreak\"",
            "not toml at all [",
        ] {
            assert!(
                parse(bad, f, &reference(), false).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn the_registry_directory_then_default() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path(), &reference(), false).unwrap().is_none());
        fs::create_dir_all(dir.path().join("_default")).unwrap();
        fs::write(
            dir.path().join("_default/hosts.toml"),
            "[host.\"http://d:1\"]\n",
        )
        .unwrap();
        let c = load(dir.path(), &reference(), false).unwrap().unwrap();
        assert_eq!(c.mirrors[0].url.as_str(), "http://d:1/");
        fs::create_dir_all(dir.path().join("docker.io")).unwrap();
        fs::write(
            dir.path().join("docker.io/hosts.toml"),
            "[host.\"http://r:2\"]\n",
        )
        .unwrap();
        let c = load(dir.path(), &reference(), false).unwrap().unwrap();
        assert_eq!(c.mirrors[0].url.as_str(), "http://r:2/");
    }
}
