//! Proxies: which HTTP proxy, if any, carries the connections to an origin, and the
//! connector that goes through it.
//!
//! The rules are curl's: `HTTPS_PROXY` for https origins, `HTTP_PROXY` (`http_proxy`) for
//! plain ones, `ALL_PROXY` for both where the specific one is unset, and `NO_PROXY`
//! entries (a host, a domain and its subdomains, `*`, an IP address, a CIDR block, each
//! with or without a port) that bypass them; an explicit proxy ([`Proxies::explicit`],
//! the CLI's `--proxy`) replaces the environment's. A proxy applies to loopback origins
//! too (nothing is bypassed that `NO_PROXY` does not name). hyper-util's matcher reads
//! the variables and matches hosts; entries with a port are matched here on top of it.
//!
//! An https origin is reached through a `CONNECT` tunnel (hyper-util's [`Tunnel`]): the
//! proxy sees the host and port, and TLS to the registry runs inside, verified as usual,
//! so the registry's credentials and tokens never cross the proxy in the clear. A plain
//! http origin is reached by sending its requests to the proxy in absolute form. A proxy
//! URL's credentials (`http://user:pass@proxy:3128`) become `Proxy-Authorization`, sent to
//! the proxy alone: on the `CONNECT` request, or on a plain request the proxy forwards
//! (where the transport adds it). Every origin follows the rules on its own: the
//! registry, its token realm, a redirect target, a mirror.

use std::error::Error as StdError;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use http::{HeaderValue, Uri};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::proxy::matcher::Matcher;
use tower_service::Service;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The proxy rules of a client: cheap to clone, shared by its transports.
#[derive(Clone)]
pub struct Proxies(Arc<Rules>);

struct Rules {
    matcher: Matcher,
    /// `NO_PROXY` entries with a port: a matcher that bypasses the host alone, and the
    /// port.
    bypass_ports: Vec<(Matcher, u16)>,
}

impl std::fmt::Debug for Proxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // hyper-util's Debug redacts nothing we rely on: show no URL at all
        f.write_str("Proxies")
    }
}

/// How a connection to an origin is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Straight to the origin.
    Direct,
    /// Through a `CONNECT` tunnel of the proxy `proxy` (https origins).
    Tunnel {
        /// The proxy.
        proxy: Uri,
        /// Its `Proxy-Authorization`, from the proxy URL's credentials.
        auth: Option<HeaderValue>,
    },
    /// Requests in absolute form to the proxy `proxy` (plain http origins).
    Forward {
        /// The proxy.
        proxy: Uri,
        /// Its `Proxy-Authorization`, from the proxy URL's credentials.
        auth: Option<HeaderValue>,
    },
}

/// A proxy setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("proxy {0}")]
pub struct ProxyError(String);

impl Proxies {
    /// No proxy at all.
    pub fn none() -> Proxies {
        Proxies::build(Matcher::builder().build())
    }

    /// The environment's proxies (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`
    /// and their lowercase forms), as curl reads them.
    pub fn from_env() -> Proxies {
        Proxies::from_vars(|name| std::env::var(name).ok())
    }

    /// The proxies that the variables `var` gives (a name → its value), as
    /// [`Proxies::from_env`] reads them.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Proxies {
        let first = |names: &[&str]| names.iter().find_map(|n| var(n).filter(|v| !v.is_empty()));
        let mut b = Matcher::builder();
        if let Some(all) = first(&["ALL_PROXY", "all_proxy"]) {
            b = b.all(all);
        }
        if let Some(https) = first(&["HTTPS_PROXY", "https_proxy"]) {
            b = b.https(https);
        }
        // curl reads `http_proxy` in lowercase only; uppercase is taken too except in a
        // CGI program, where `HTTP_PROXY` may come from a request header ("httpoxy")
        let cgi = var("REQUEST_METHOD").is_some();
        let http = if cgi {
            first(&["http_proxy"])
        } else {
            first(&["http_proxy", "HTTP_PROXY"])
        };
        if let Some(http) = http {
            b = b.http(http);
        }
        let no = first(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
        Proxies::with_no_proxy(b, &no)
    }

    /// `proxy` for every origin (http and https), but those `no_proxy` names (the
    /// `NO_PROXY` syntax). Only `http://` proxies are taken (a scheme-less `host:port`
    /// is one).
    pub fn explicit(proxy: &str, no_proxy: &str) -> Result<Proxies, ProxyError> {
        let uri: Uri = if proxy.contains("://") {
            proxy.parse()
        } else {
            format!("http://{proxy}").parse()
        }
        .map_err(|e| ProxyError(format!("{}: {e}", redact(proxy))))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(ProxyError(format!(
                "{}: give an http:// proxy (host and port, with user:password@ when it \
                 asks for credentials)",
                redact(proxy)
            )));
        }
        Ok(Proxies::with_no_proxy(
            Matcher::builder().all(proxy.to_string()),
            no_proxy,
        ))
    }

    fn with_no_proxy(b: hyper_util::client::proxy::matcher::Builder, no: &str) -> Proxies {
        let (plain, ported): (Vec<&str>, Vec<(&str, u16)>) = no
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .fold((Vec::new(), Vec::new()), |(mut plain, mut ported), e| {
                match with_port(e) {
                    Some(hp) => ported.push(hp),
                    None => plain.push(e),
                }
                (plain, ported)
            });
        Proxies::build(b.no(plain.join(",")).build()).with_ported(ported)
    }

    fn build(matcher: Matcher) -> Proxies {
        Proxies(Arc::new(Rules {
            matcher,
            bypass_ports: Vec::new(),
        }))
    }

    fn with_ported(self, ported: Vec<(&str, u16)>) -> Proxies {
        let Ok(mut rules) = Arc::try_unwrap(self.0) else {
            unreachable!("built just now")
        };
        rules.bypass_ports = ported
            .into_iter()
            .map(|(host, port)| {
                // a matcher that proxies everything but `host`: it says whether the
                // host matches the entry
                let m = Matcher::builder()
                    .all("http://bypass.invalid".to_string())
                    .no(host.to_string())
                    .build();
                (m, port)
            })
            .collect();
        Proxies(Arc::new(rules))
    }

    /// How a connection to `dst` (scheme, host and port) is made.
    pub fn route(&self, dst: &Uri) -> Route {
        let port = dst
            .port_u16()
            .unwrap_or(if dst.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let bypassed = self
            .0
            .bypass_ports
            .iter()
            .any(|(m, p)| *p == port && m.intercept(dst).is_none());
        if bypassed {
            return Route::Direct;
        }
        let Some(intercept) = self.0.matcher.intercept(dst) else {
            return Route::Direct;
        };
        let proxy = intercept.uri().clone();
        let auth = intercept.basic_auth().cloned();
        match dst.scheme_str() {
            Some("https") => Route::Tunnel { proxy, auth },
            _ => Route::Forward { proxy, auth },
        }
    }

    /// What [`Proxies::route`] gives for `dst`, said for a log: the proxy without its
    /// credentials.
    pub fn describe(&self, dst: &Uri) -> String {
        match self.route(dst) {
            Route::Direct => "direct".to_string(),
            Route::Tunnel { proxy, .. } => format!("CONNECT through {}", redact_uri(&proxy)),
            Route::Forward { proxy, .. } => format!("through {}", redact_uri(&proxy)),
        }
    }
}

/// `host:port` of a `NO_PROXY` entry that has a port (`[::1]:5000` included; a bare
/// IPv6 address has none).
fn with_port(entry: &str) -> Option<(&str, u16)> {
    let (host, port) = entry.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if host.starts_with('[') && host.ends_with(']') {
        return Some((&host[1..host.len() - 1], port));
    }
    (!host.contains(':') && !host.is_empty()).then_some((host, port))
}

/// A proxy URL without its credentials.
fn redact(proxy: &str) -> String {
    match proxy.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => proxy.to_string(),
        },
        None => match proxy.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => proxy.to_string(),
        },
    }
}

fn redact_uri(uri: &Uri) -> String {
    redact(&uri.to_string())
}

/// A connection made by [`ProxyConnector`]: the inner connector's, told to hyper as a
/// proxy connection when requests go to the proxy in absolute form.
#[derive(Debug)]
pub struct Proxied<T> {
    io: T,
    forward: bool,
}

impl<T> Proxied<T> {
    /// The inner connection (the tunnel, for an https origin behind a proxy).
    pub fn into_inner(self) -> (T, bool) {
        (self.io, self.forward)
    }
}

impl<T: Connection> Connection for Proxied<T> {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.forward)
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Proxied<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Proxied<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A connector that follows [`Proxies`]: straight to the origin, through a `CONNECT`
/// tunnel, or to the proxy for absolute-form requests, over the inner connector `C`
/// (plain TCP; TLS to the origin goes on top of what this returns).
#[derive(Clone)]
pub struct ProxyConnector<C> {
    inner: C,
    proxies: Proxies,
    /// The origins whose route was logged (once each).
    logged: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl<C> ProxyConnector<C> {
    /// Connects over `inner` as `proxies` say.
    pub fn new(inner: C, proxies: Proxies) -> ProxyConnector<C> {
        ProxyConnector {
            inner,
            proxies,
            logged: Arc::default(),
        }
    }
}

/// How many origins' routes are logged at most (a client that meets more logs no more).
const LOGGED_ORIGINS: usize = 256;

/// A proxy that refused to carry a connection (an error of the connector; the
/// transport classifies it as permanent).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProxyRefused(pub String);

impl<C> Service<Uri> for ProxyConnector<C>
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Future: Send + 'static,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = Proxied<C::Response>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Proxied<C::Response>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let route = self.proxies.route(&dst);
        let origin = format!(
            "{}://{}",
            dst.scheme_str().unwrap_or(""),
            dst.authority().map(|a| a.as_str()).unwrap_or("")
        );
        if let Ok(mut logged) = self.logged.lock() {
            if logged.len() < LOGGED_ORIGINS && logged.insert(origin.clone()) {
                tracing::info!("{origin}: {}", self.proxies.describe(&dst));
            }
        }
        match route {
            Route::Direct => {
                let fut = self.inner.call(dst);
                async move {
                    let io = fut.await.map_err(Into::into)?;
                    Ok(Proxied { io, forward: false })
                }
                .boxed()
            }
            Route::Forward { proxy, .. } => {
                let fut = self.inner.call(proxy);
                async move {
                    let io = fut.await.map_err(Into::into)?;
                    Ok(Proxied { io, forward: true })
                }
                .boxed()
            }
            Route::Tunnel { proxy, auth } => {
                let shown = redact_uri(&proxy);
                let mut tunnel = Tunnel::new(proxy, self.inner.clone());
                if let Some(auth) = auth.clone() {
                    tunnel = tunnel.with_auth(auth);
                }
                let fut = tunnel.call(dst);
                async move {
                    match fut.await {
                        Ok(io) => Ok(Proxied { io, forward: false }),
                        Err(e) => Err(tunnel_error(e, &shown, &origin, auth.is_some())),
                    }
                }
                .boxed()
            }
        }
    }
}

/// What a failed tunnel means for the user: the proxy refused (with the way out), or
/// the connection to it failed (a transport error like any other).
fn tunnel_error<E: StdError + Send + Sync + 'static>(
    e: E,
    proxy: &str,
    origin: &str,
    had_credentials: bool,
) -> BoxError {
    let text = e.to_string();
    if text.contains("authorization required") {
        let how = if had_credentials {
            "the credentials in the proxy URL were refused"
        } else {
            "give them in the proxy URL (http://user:password@proxy:port, in --proxy or \
             HTTPS_PROXY)"
        };
        return Box::new(ProxyRefused(format!(
            "the proxy {proxy} refused to connect to {origin} without credentials \
             (407 Proxy Authentication Required): {how}"
        )));
    }
    if text == "unsuccessful" {
        return Box::new(ProxyRefused(format!(
            "the proxy {proxy} refused to open a tunnel to {origin} (its answer to CONNECT \
             was not 200); check that it allows this host and port, or name the host in \
             NO_PROXY"
        )));
    }
    Box::new(e)
}

#[cfg(test)]
mod tests;
