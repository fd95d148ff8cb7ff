//! # ocireg-async-std: the async-std adapter
//!
//! A pull into an OCI image layout, with Docker's credentials and the web PKI roots:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ocireg_async_std::Client::new()?;
//! let pulled = client.pull("docker.io/library/alpine:3.20").to_layout("./alpine").await?;
//! println!("{} ({} blobs fetched)", pulled.descriptor.digest, pulled.stats.fetched);
//! # Ok(()) }
//! ```
//!
//! The HTTP machinery is the same as the tokio adapter's, on purpose: hyper 1.x and
//! hyper-util's pooled client are runtime-agnostic (they only need an executor, a
//! connector and I/O implementing `hyper::rt::{Read, Write}`), well kept, and give
//! HTTP/1.1 and HTTP/2 with connection reuse. What is specific to async-std is small and
//! lives here: [`AsyncStdConnector`] opens `async_std::net::TcpStream`s, wraps them in
//! TLS with `futures-rustls` (web PKI roots plus extra CAs, ALPN `h2`/`http/1.1`), and
//! adapts `futures-io` to hyper's I/O traits; [`AsyncStdExecutor`] spawns hyper's
//! connection tasks; [`AsyncStdRuntime`] is the clock and timer. The drive loop, layout
//! writing, hyper glue and the registry service all come from `ocireg-driver`.
//!
//! async-std is in maintenance mode and recommends smol. This adapter only uses
//! `async_std::{net, task}` and `futures-io`, and async-std itself runs on the smol
//! ecosystem's `async-io` reactor; serving smol directly would mean swapping those two
//! imports for `async-net` and an executor handle, which is left for when someone needs
//! it. hyper and h2 depend on the `tokio` crate for its I/O traits and sync primitives,
//! but nothing here starts or needs a tokio runtime: the tests run this adapter under
//! `async_std::task::block_on` with no tokio runtime present.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_std::net::TcpStream;
use futures::future::{BoxFuture, FutureExt};
use futures::io::{AsyncRead, AsyncWrite};
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client as HyperClient;
use ocireg_driver::hyper::HyperTransport;
use ocireg_driver::Runtime;

/// async-std's clock and timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStdRuntime;

impl Runtime for AsyncStdRuntime {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        let d = deadline.saturating_duration_since(Instant::now());
        async_std::task::sleep(d).boxed()
    }
}

/// Spawns hyper's connection tasks on async-std.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStdExecutor;

impl<F> hyper::rt::Executor<F> for AsyncStdExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        async_std::task::spawn(fut);
    }
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
}

/// A client connection: plain TCP or TLS.
pub enum Conn {
    /// Plain http.
    Plain(FuturesIo<TcpStream>),
    /// https; `h2` tells whether ALPN chose HTTP/2.
    Tls(Box<FuturesIo<TlsStream<TcpStream>>>, bool),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Conn::Tls(_, true) => Connected::new().negotiated_h2(),
            _ => Connected::new(),
        }
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Opens connections with async-std and futures-rustls.
#[derive(Clone)]
pub struct AsyncStdConnector {
    tls: TlsConnector,
}

pub use ocireg_driver::hyper::CONNECT_TIMEOUT;

impl tower_service::Service<Uri> for AsyncStdConnector {
    type Response = Conn;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Conn>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        async move {
            let https = match uri.scheme_str() {
                Some("https") => true,
                Some("http") => false,
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("unsupported scheme {other:?}"),
                    ))
                }
            };
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host"))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let connect = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                if !https {
                    return Ok(Conn::Plain(FuturesIo(tcp)));
                }
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let stream = tls.connect(name, tcp).await?;
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                Ok(Conn::Tls(Box::new(FuturesIo(stream)), h2))
            };
            async_std::future::timeout(CONNECT_TIMEOUT, connect)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
        }
        .boxed()
    }
}

/// The async-std HTTP client.
pub type AsyncStdTransport = HyperTransport<AsyncStdConnector>;

pub use ocireg_driver::tls::load_certs;

pub use ocireg_core::Error as RegistryError;
pub use ocireg_core::{
    Config, Credentials, Descriptor, Digest, ErrorKind, Event, Machine, Platform, PlatformChoice,
    Reference,
};
pub use ocireg_driver::client::{Inspected, Pulled};
pub use ocireg_driver::{Caller, Error};

ocireg_driver::adapter_client!(AsyncStdTransport, AsyncStdRuntime, transport, "async-std");

/// Builds the async-std client trusting the web PKI roots plus `extra_cas`.
pub fn transport(
    extra_cas: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<AsyncStdTransport, rustls::Error> {
    Ok(transport_with(ocireg_driver::tls::client_config(
        extra_cas,
    )?))
}

/// Builds the async-std client over the TLS configuration `cfg` (e.g.
/// [`ocireg_driver::tls::insecure_client_config`]). Its ALPN protocols are kept when
/// set (`http/1.1` alone: never HTTP/2); when empty, `h2` and `http/1.1` are offered.
pub fn transport_with(mut cfg: rustls::ClientConfig) -> AsyncStdTransport {
    if cfg.alpn_protocols.is_empty() {
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    let connector = AsyncStdConnector {
        tls: TlsConnector::from(Arc::new(cfg)),
    };
    let mut builder = HyperClient::builder(AsyncStdExecutor);
    ocireg_driver::hyper::tune(&mut builder);
    HyperTransport::new(&builder, connector)
}

/// Serves `registry` on `listener` (HTTP/1.1) until the future is dropped (feature
/// `server`).
#[cfg(feature = "server")]
pub async fn serve(
    listener: async_std::net::TcpListener,
    registry: Arc<std::sync::Mutex<ocireg_registry::FaultyRegistry>>,
) -> io::Result<()> {
    let runtime: Arc<dyn Runtime> = Arc::new(AsyncStdRuntime);
    let service = ocireg_driver::server::registry_service(registry, runtime);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        async_std::task::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(FuturesIo(stream), service)
                .await;
        });
    }
}
