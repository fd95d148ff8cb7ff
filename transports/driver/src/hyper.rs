//! hyper glue shared by the adapters: requests out, responses and errors in.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::StreamExt;
use http::{Request, Response, Uri};
use http_body_util::{BodyDataStream, BodyExt, Full, StreamBody};
use ocireg_core::{TransportError, TransportErrorKind};

use tower_service::Service;

use crate::warm::WarmConnector;
use crate::BodyStream;

/// The request body type the adapters give hyper.
pub type RequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// Converts a driver request for hyper: whole bytes, or a stream of chunks (framed by
/// the `Content-Length` the core set).
pub fn to_hyper_request(req: Request<crate::Body>) -> Request<RequestBody> {
    req.map(|body| match body {
        crate::Body::Full(b) => Full::new(b).map_err(|never| match never {}).boxed_unsync(),
        crate::Body::Stream { chunks, .. } => {
            StreamBody::new(chunks.map(|c| c.map(hyper::body::Frame::data))).boxed_unsync()
        }
    })
}

/// Classifies a client error by walking its source chain. `is_connect` is the client's
/// own verdict that the connection could not be made.
pub fn classify(err: &(dyn StdError + 'static), is_connect: bool) -> TransportError {
    if let Some(refused) = find::<crate::proxy::ProxyRefused>(err) {
        return TransportError::new(TransportErrorKind::ProxyRefused, refused.to_string());
    }
    if let Some(tls) = find::<rustls::Error>(err) {
        let kind = match tls {
            // Bytes that are not TLS records: the server speaks plain HTTP.
            rustls::Error::InvalidMessage(_) => TransportErrorKind::NotTls,
            _ => TransportErrorKind::Tls,
        };
        use rustls::AlertDescription::{BadCertificate, CertificateRequired};
        if let rustls::Error::AlertReceived(CertificateRequired | BadCertificate) = tls {
            return TransportError::new(
                kind,
                format!(
                    "TLS: the server refused the handshake for want of a client certificate \
                     it accepts ({tls}): give one with --cert and --key, --cert-dir, or a \
                     hosts.toml client entry (TlsSetup in the library)"
                ),
            );
        }
        return TransportError::new(kind, format!("TLS: {tls}"));
    }
    let mut kind = if is_connect {
        TransportErrorKind::Connect
    } else {
        TransportErrorKind::Broken
    };
    let mut message = chain_message(err);
    if let Some(io) = find::<std::io::Error>(err) {
        use std::io::ErrorKind::*;
        kind = match io.kind() {
            ConnectionRefused | AddrNotAvailable | NotFound | HostUnreachable
            | NetworkUnreachable => TransportErrorKind::Connect,
            TimedOut => TransportErrorKind::Timeout,
            _ => kind,
        };
        message = chain_message(err);
    }
    if is_dns_failure(&message) {
        kind = TransportErrorKind::NameNotResolved;
    }
    TransportError::new(kind, message)
}

/// Whether an error's text says the host name did not resolve (hyper-util's connector
/// says "dns error"; the system resolver, through std, "failed to lookup address").
pub fn is_dns_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("dns error")
        || m.contains("failed to lookup address")
        || m.contains("name or service not known")
        || m.contains("no address associated")
}

/// The error and its sources, joined with ": " (without repeating a text).
fn chain_message(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        let t = e.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// Finds an error of type `E` in the source chain, looking inside `io::Error` wrappers
/// (whose `source()` skips the wrapped error itself).
fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(x) = e.downcast_ref::<E>() {
            return Some(x);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(x) = find::<E>(inner) {
                    return Some(x);
                }
            }
        }
        cur = e.source();
    }
    None
}

/// A hyper response body as the driver's chunk stream.
pub fn body_stream<B>(body: B) -> BodyStream
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: StdError + Send + Sync + 'static,
{
    Box::pin(BodyDataStream::new(body).map(|r| r.map_err(|e| classify(&e, false))))
}

/// How long a connection (TCP and TLS handshake) may take, in every adapter.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest read buffer of an HTTP/1.1 connection in both adapters (hyper's default
/// is ~400 KiB). Each delivered chunk is a slice of it and keeps it alive until written,
/// so with 8 connections and the writer's queue this bounds most of a pull's memory:
/// 256 KiB cost no throughput in the benchmark, 128 KiB and less did (more chunks, each
/// with its wake-ups).
pub const READ_BUFFER: usize = 256 << 10;

/// HTTP/2 receive window of one stream (one blob): what the server may send ahead of
/// what was read. hyper's adaptive window, sized from ping round trips, stayed small on
/// a fast path and held a 1 GiB blob at 2.6 s against 1.7 s over HTTP/1.1; 8 MiB (and 16
/// MiB for the connection) with 256 KiB frames brought it to ~1.9 s. The windows bound
/// the bytes buffered when the sink stalls: 16 MiB per connection at most.
pub const H2_STREAM_WINDOW: u32 = 8 << 20;

/// HTTP/2 receive window of a connection (every stream on it).
pub const H2_CONNECTION_WINDOW: u32 = 16 << 20;

/// Largest HTTP/2 frame the server may send (fewer frames per blob, each one wake-up).
pub const H2_MAX_FRAME: u32 = 256 << 10;

/// The settings both adapters give hyper-util's client builder: idle connections kept
/// [`POOL_IDLE`], HTTP/1.1 read buffers of at most [`READ_BUFFER`], the HTTP/2 windows
/// and frame size above.
pub fn tune(builder: &mut hyper_util::client::legacy::Builder) {
    builder
        .pool_idle_timeout(POOL_IDLE)
        .http1_max_buf_size(READ_BUFFER)
        .http2_adaptive_window(false)
        .http2_initial_stream_window_size(H2_STREAM_WINDOW)
        .http2_initial_connection_window_size(H2_CONNECTION_WINDOW)
        .http2_max_frame_size(H2_MAX_FRAME);
}

/// How long the adapters keep idle pooled connections.
pub const POOL_IDLE: Duration = Duration::from_secs(90);

/// The HTTP client both adapters use: hyper-util's pooled client over any connector
/// (the runtime-specific part), following no redirect and retrying nothing. Its
/// connector is wrapped in a [`WarmConnector`], so the core's
/// [`Action::Prepare`](ocireg_core::Action::Prepare) opens connections ahead.
pub struct HyperTransport<C: Service<Uri>> {
    client: hyper_util::client::legacy::Client<WarmConnector<C, C::Response>, RequestBody>,
    warm: WarmConnector<C, C::Response>,
    /// The proxies the connector follows: a request a proxy forwards carries its
    /// `Proxy-Authorization`.
    proxies: crate::proxy::Proxies,
    /// When a server asked for a client certificate its host has none of.
    asks: Arc<crate::tls::CertificateAsks>,
}

impl<C: Service<Uri> + Clone> Clone for HyperTransport<C> {
    fn clone(&self) -> Self {
        HyperTransport {
            client: self.client.clone(),
            warm: self.warm.clone(),
            proxies: self.proxies.clone(),
            asks: self.asks.clone(),
        }
    }
}

impl<C: Service<Uri>> std::fmt::Debug for HyperTransport<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HyperTransport")
    }
}

impl<C> HyperTransport<C>
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Send + 'static,
    C::Response: Send + 'static,
    WarmConnector<C, C::Response>: hyper_util::client::legacy::connect::Connect,
{
    /// A client built by `builder` over `connector`.
    pub fn new(builder: &hyper_util::client::legacy::Builder, connector: C) -> Self {
        let warm = WarmConnector::new(connector);
        HyperTransport {
            client: builder.build(warm.clone()),
            warm,
            proxies: crate::proxy::Proxies::none(),
            asks: Arc::default(),
        }
    }

    /// Tells the transport where its TLS configurations note a server's ask for a client
    /// certificate they do not have ([`crate::tls::TlsConfigs::asks`]): a connection that
    /// closes right after one is said to be that refusal, and is not retried.
    pub fn watching(mut self, asks: Arc<crate::tls::CertificateAsks>) -> Self {
        self.asks = asks;
        self
    }

    /// Tells the transport the proxies its connector follows (the connector is built
    /// with the same): requests sent to a proxy in absolute form carry the proxy's
    /// credentials.
    pub fn proxied(mut self, proxies: crate::proxy::Proxies) -> Self {
        self.proxies = proxies;
        self
    }
}

impl<C> crate::Transport for HyperTransport<C>
where
    C: Service<Uri> + Clone + Send + Sync + 'static,
    C::Future: Send + 'static,
    C::Error: Send + 'static,
    C::Response: Send + 'static,
    WarmConnector<C, C::Response>: hyper_util::client::legacy::connect::Connect,
{
    fn send(
        &self,
        mut request: Request<crate::Body>,
    ) -> futures::future::BoxFuture<'static, Result<Response<BodyStream>, TransportError>> {
        // to the proxy alone: a tunnel's CONNECT carries it, and the proxy removes it
        // from a request it forwards
        if let crate::proxy::Route::Forward {
            auth: Some(auth), ..
        } = self.proxies.route(request.uri())
        {
            request
                .headers_mut()
                .insert(http::header::PROXY_AUTHORIZATION, auth);
        }
        let fut = self.client.request(to_hyper_request(request));
        let (asks, started) = (self.asks.clone(), std::time::Instant::now());
        Box::pin(async move {
            match fut.await {
                Ok(resp) => Ok(resp.map(body_stream)),
                Err(e) => {
                    let t = classify(&e, e.is_connect());
                    let closed = matches!(
                        t.kind,
                        TransportErrorKind::Broken | TransportErrorKind::Connect
                    );
                    if closed && asks.asked_since(started) {
                        return Err(TransportError::new(
                            TransportErrorKind::Tls,
                            format!(
                                "TLS: the server closed the connection right after asking for \
                                 a client certificate, and none is configured for this host \
                                 ({}): give one with --cert and --key, --cert-dir, or a \
                                 hosts.toml client entry (TlsSetup in the library)",
                                t.message
                            ),
                        ));
                    }
                    Err(t)
                }
            }
        })
    }

    fn prepare(
        &self,
        origin: &url::Url,
        connections: usize,
    ) -> futures::future::BoxFuture<'static, ()> {
        match origin.as_str().parse::<Uri>() {
            Ok(uri) => self.warm.warm(uri, connections),
            Err(_) => Box::pin(std::future::ready(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What each runtime's resolver says when a name does not resolve is a permanent
    /// `NameNotResolved` (never retried by the core), without a resolver in the test: the
    /// CLI test that resolves `*.invalid` depends on the machine's DNS.
    #[test]
    fn a_name_that_does_not_resolve_is_classified_as_such() {
        for said in [
            "dns error: failed to lookup address information: Name or service not known",
            "failed to lookup address information: No address associated with hostname",
            "Name or service not known",
        ] {
            let e = std::io::Error::other(said.to_string());
            let t = classify(&e, true);
            assert_eq!(t.kind, TransportErrorKind::NameNotResolved, "{said}");
            assert!(!t.kind.is_temporary());
        }
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(classify(&refused, true).kind, TransportErrorKind::Connect);
    }
}
