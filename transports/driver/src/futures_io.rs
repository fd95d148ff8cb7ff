//! Everything a `futures-io` runtime (async-std, smol) needs for HTTP, written once: hyper's
//! I/O traits over `futures-io` streams ([`FuturesIo`]), a connection that is plain TCP or
//! TLS by `futures-rustls` ([`Conn`]), the connector that opens them ([`Connector`]) and
//! the pooled client over it ([`transport`]). A runtime gives only what is its own, as a
//! [`Sockets`] value: how to connect a TCP stream, how to sleep, how to spawn.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use futures::io::{AsyncRead, AsyncWrite};
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client as HyperClient;

use crate::hyper::HyperTransport;
use crate::proxy::{Proxies, ProxyConnector};
use crate::tls::{PerHostConnector, TlsConfigs};

/// What a `futures-io` runtime provides: TCP connections, a timer, and a way to run
/// hyper's connection tasks.
pub trait Sockets: Clone + Send + Sync + 'static {
    /// The runtime's TCP stream.
    type Tcp: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Connects to `host:port` (a name or an address).
    fn connect(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<Self::Tcp>>;
    /// Turns Nagle's algorithm off on `tcp` (every connection made or accepted).
    fn nodelay(&self, tcp: &Self::Tcp) -> io::Result<()>;
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
    /// Runs `task` in the background.
    fn spawn(&self, task: BoxFuture<'static, ()>);
}

/// `futures-io` I/O seen through hyper's I/O traits.
#[derive(Debug)]
pub struct FuturesIo<T>(pub T);

impl<T: AsyncRead + Unpin> hyper::rt::Read for FuturesIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: the bytes are initialised (zeroed) before being exposed as `&mut [u8]`,
        // and `advance` is called with the count the reader reports as filled.
        let n = unsafe {
            let uninit: &mut [MaybeUninit<u8>] = buf.as_mut();
            for b in uninit.iter_mut() {
                b.write(0);
            }
            let slice = &mut *(uninit as *mut [MaybeUninit<u8>] as *mut [u8]);
            match Pin::new(&mut self.0).poll_read(cx, slice) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        };
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for FuturesIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    /// Vectored writes are always taken (`futures-io` writes the first slice where the
    /// stream has no vectored form): hyper then queues a body's chunks as they are
    /// instead of copying them into one flat buffer, which for a whole-blob body would
    /// be a copy of the blob.
    fn is_write_vectored(&self) -> bool {
        true
    }
}

/// A client connection over the runtime's TCP stream `S`: plain, or TLS.
pub enum Conn<S> {
    /// Plain http; the flag tells whether it goes to a proxy (absolute-form requests).
    Plain(FuturesIo<S>, bool),
    /// https; the flag tells whether ALPN chose HTTP/2.
    Tls(Box<FuturesIo<TlsStream<S>>>, bool),
}

impl<S> Connection for Conn<S> {
    fn connected(&self) -> Connected {
        match self {
            Conn::Tls(_, true) => Connected::new().negotiated_h2(),
            Conn::Plain(_, forward) => Connected::new().proxy(*forward),
            Conn::Tls(_, false) => Connected::new(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> hyper::rt::Read for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> hyper::rt::Write for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }
}

/// Opens TCP connections with the runtime's sockets, within a time limit (the usual
/// [`crate::hyper::CONNECT_TIMEOUT`], or a host's `dial_timeout`): to the origin, or to
/// its proxy (the inner connector of [`ProxyConnector`]).
#[derive(Clone)]
pub struct TcpConnector<S>(S, Duration);

impl<S: Sockets> tower_service::Service<Uri> for TcpConnector<S> {
    type Response = FuturesIo<S::Tcp>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<FuturesIo<S::Tcp>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (sockets, limit) = (self.0.clone(), self.1);
        async move {
            let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
            let https = match uri.scheme_str() {
                Some("https") => true,
                Some("http") => false,
                other => return Err(invalid(format!("unsupported scheme {other:?}"))),
            };
            let host = uri.host().ok_or_else(|| invalid("no host".into()))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let connect = sockets.connect(host.to_string(), port);
            let on = sockets.clone();
            let connect = async move {
                let tcp = connect.await?;
                on.nodelay(&tcp)?;
                Ok(FuturesIo(tcp))
            };
            let timeout = sockets.sleep(limit);
            futures::select_biased! {
                conn = connect.fuse() => conn,
                () = timeout.fuse() => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
            }
        }
        .boxed()
    }
}

/// Opens connections with the runtime's sockets, through the client's proxies, and
/// `futures-rustls` for https origins.
#[derive(Clone)]
pub struct Connector<S> {
    tcp: ProxyConnector<TcpConnector<S>>,
    tls: TlsConnector,
}

impl<S: Sockets> tower_service::Service<Uri> for Connector<S> {
    type Response = Conn<S::Tcp>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Conn<S::Tcp>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        // the name TLS verifies, for https alone (a plain-http host need not be one)
        let name = match uri.scheme_str() {
            Some("https") => uri.host().map(|h| {
                let h = h.trim_start_matches('[').trim_end_matches(']');
                rustls::pki_types::ServerName::try_from(h.to_string())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
            }),
            _ => None,
        };
        let connect = self.tcp.call(uri);
        async move {
            let name = name.transpose()?;
            let (FuturesIo(tcp), forward) = connect.await.map_err(io::Error::other)?.into_inner();
            let Some(name) = name else {
                return Ok(Conn::Plain(FuturesIo(tcp), forward));
            };
            let stream = tls.connect(name, tcp).await?;
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok(Conn::Tls(Box::new(FuturesIo(stream)), h2))
        }
        .boxed()
    }
}

/// Spawns hyper's connection tasks with the runtime's [`Sockets::spawn`].
#[derive(Clone)]
pub struct Executor<S>(pub S);

impl<S: Sockets, F> hyper::rt::Executor<F> for Executor<S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(Box::pin(fut.map(drop)));
    }
}

/// The pooled HTTP client over the runtime's sockets, through `proxies`, with each
/// host's TLS configuration of `tls`. Their ALPN protocols are kept when set (`http/1.1`
/// alone: never HTTP/2); when empty, `h2` and `http/1.1` are offered.
pub fn transport<S: Sockets>(
    sockets: S,
    tls: &TlsConfigs,
    proxies: Proxies,
) -> HyperTransport<PerHostConnector<Connector<S>>> {
    let connector = tls.connector(|mut cfg, connect_timeout| {
        if cfg.alpn_protocols.is_empty() {
            cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        Connector {
            tcp: ProxyConnector::new(
                TcpConnector(sockets.clone(), connect_timeout),
                proxies.clone(),
            ),
            tls: TlsConnector::from(Arc::new(cfg)),
        }
    });
    let mut builder = HyperClient::builder(Executor(sockets));
    crate::hyper::tune(&mut builder);
    HyperTransport::new(&builder, connector)
        .proxied(proxies)
        .watching(tls.asks())
}

/// Defines a `futures-io` adapter's transport: the type `$transport` (the pooled client
/// over the runtime's `$sockets`), `transport(extra_cas)` trusting the web PKI roots
/// plus `extra_cas`, `transport_with(cfg)` over a TLS configuration of the caller's
/// (its ALPN protocols kept when set: `http/1.1` alone never speaks HTTP/2), both
/// through the environment's proxies, `transport_through(cfg, proxies)`, and
/// `transport_for(tls, proxies)` with a TLS configuration per host.
#[macro_export]
macro_rules! futures_io_transport {
    ($sockets:ident, $transport:ident, $name:literal) => {
        #[doc = concat!("The ", $name, " HTTP client: hyper-util's pooled client over ", $name, "'s sockets.")]
        pub type $transport = $crate::hyper::HyperTransport<
            $crate::tls::PerHostConnector<$crate::futures_io::Connector<$sockets>>,
        >;

        #[doc = concat!("Builds the ", $name, " client trusting the web PKI roots plus `extra_cas`.")]
        pub fn transport(
            extra_cas: &[::rustls::pki_types::CertificateDer<'static>],
        ) -> Result<$transport, ::rustls::Error> {
            Ok(transport_with($crate::tls::client_config(extra_cas)?))
        }

        #[doc = concat!("Builds the ", $name, " client over the TLS configuration `cfg`. Its ALPN")]
        /// protocols are kept when set (`http/1.1` alone: never HTTP/2); when empty, `h2`
        /// and `http/1.1` are offered.
        pub fn transport_with(cfg: ::rustls::ClientConfig) -> $transport {
            transport_through(cfg, $crate::proxy::Proxies::from_env())
        }

        #[doc = concat!("Builds the ", $name, " client over the TLS configuration `cfg`, through")]
        /// `proxies` (see [`transport_with`]).
        pub fn transport_through(
            cfg: ::rustls::ClientConfig,
            proxies: $crate::proxy::Proxies,
        ) -> $transport {
            transport_for(&$crate::tls::TlsConfigs::new(cfg), proxies)
        }

        #[doc = concat!("Builds the ", $name, " client with each host's TLS configuration of")]
        /// `tls` (a host's own CAs or client certificate for that host alone), through
        /// `proxies`.
        pub fn transport_for(
            tls: &$crate::tls::TlsConfigs,
            proxies: $crate::proxy::Proxies,
        ) -> $transport {
            $crate::futures_io::transport($sockets, tls, proxies)
        }
    };
}

/// Serves `registry` (HTTP/1.1) on each connection `incoming` yields, each on a task of
/// its own, until `incoming` ends or fails (feature `server`): an adapter's `serve`.
#[cfg(feature = "server")]
pub async fn serve<S, I>(
    sockets: S,
    mut incoming: I,
    registry: Arc<std::sync::Mutex<ocireg_registry::FaultyRegistry>>,
    runtime: Arc<dyn crate::Runtime>,
) -> io::Result<()>
where
    S: Sockets,
    I: futures::Stream<Item = io::Result<S::Tcp>> + Unpin,
{
    use futures::StreamExt;
    let service = crate::server::registry_service(registry, runtime);
    while let Some(stream) = incoming.next().await {
        let (stream, service) = (stream?, service.clone());
        // a registry answers many small requests: Nagle would hold their ends back
        let _ = sockets.nodelay(&stream);
        sockets.spawn(Box::pin(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(FuturesIo(stream), service)
                .await;
        }));
    }
    Ok(())
}
