//! # ocireg-tokio: the tokio adapter
//!
//! A pull into an OCI image layout, with Docker's credentials and the web PKI roots:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ocireg_tokio::Client::new()?;
//! let pulled = client.pull("docker.io/library/alpine:3.20").to_layout("./alpine").await?;
//! println!("{} ({} blobs fetched)", pulled.descriptor.digest, pulled.stats.fetched);
//! # Ok(()) }
//! ```
//!
//! [`Client`] also inspects, lists tags (a stream), lists referrers, pushes a layout and
//! copies between registries; its errors say what kind of failure they are
//! ([`Error::kind`]).
//!
//! [`TokioTransport`] (built by [`transport`]) is hyper-util's pooled client over rustls (web PKI roots plus any
//! extra CA certificates), speaking HTTP/1.1 or HTTP/2 as ALPN decides. It follows no
//! redirect and retries nothing: the core decides both. [`TokioRuntime`] gives the drive
//! loop tokio's clock and timer (so paused-time tests work), and `serve` (feature `server`) puts the test
//! registry on a `TcpListener`. Everything else comes from `ocireg-driver`.

use std::time::Instant;

use futures::future::{BoxFuture, FutureExt};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ocireg_driver::hyper::HyperTransport;
use ocireg_driver::proxy::ProxyConnector;
use ocireg_driver::tls::{PerHostConnector, TlsConfigs};
use ocireg_driver::Runtime;

/// tokio's clock and timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        tokio::time::sleep_until(deadline.into()).boxed()
    }
}

ocireg_driver::adapter_client!(TokioTransport, TokioRuntime, transport_for, "tokio");

/// A blob read with [`Client::blob`](ocireg_driver::client::Client::blob) as a
/// `tokio::io::AsyncRead`: the bytes as they arrive, verified as they end (a mismatch is
/// an `InvalidData` error, never a clean end).
pub fn blob_reader(
    blob: ocireg_driver::client::BlobStream,
) -> tokio_util::io::StreamReader<ocireg_driver::client::BlobStream, bytes::Bytes> {
    tokio_util::io::StreamReader::new(blob)
}

/// The README's Rust examples, compiled as doctests (the library example must build).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The tokio HTTP client: hyper-util's pooled client over hyper-rustls, through the
/// client's proxies.
pub type TokioTransport =
    HyperTransport<PerHostConnector<hyper_rustls::HttpsConnector<ProxyConnector<HttpConnector>>>>;

/// Builds the tokio client trusting the web PKI roots plus `extra_cas`.
pub fn transport(
    extra_cas: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<TokioTransport, rustls::Error> {
    Ok(transport_with(ocireg_driver::tls::client_config(
        extra_cas,
    )?))
}

/// Builds the tokio client over the TLS configuration `tls` (e.g.
/// [`ocireg_driver::tls::insecure_client_config`]), through the environment's proxies
/// (`HTTPS_PROXY`, `NO_PROXY`, …). When its ALPN protocols are `http/1.1` alone, HTTP/2
/// is never spoken; otherwise `h2` and `http/1.1` are offered.
pub fn transport_with(tls: rustls::ClientConfig) -> TokioTransport {
    transport_through(tls, Proxies::from_env())
}

/// Builds the tokio client over the TLS configuration `tls`, through `proxies` (see
/// [`transport_with`]).
pub fn transport_through(tls: rustls::ClientConfig, proxies: Proxies) -> TokioTransport {
    transport_for(&TlsConfigs::new(tls), proxies)
}

/// Builds the tokio client with each host's TLS configuration of `tls` (a host's own
/// CAs or client certificate for that host alone), through `proxies`.
pub fn transport_for(tls: &TlsConfigs, proxies: Proxies) -> TokioTransport {
    let https = tls.connector(|mut tls, connect_timeout| {
        let http1_only = tls.alpn_protocols == [b"http/1.1".to_vec()];
        // hyper-rustls sets the protocols itself (and refuses a configuration that has any)
        tls.alpn_protocols.clear();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1();
        let http = ProxyConnector::new(http, proxies.clone());
        if http1_only {
            builder.wrap_connector(http)
        } else {
            builder.enable_http2().wrap_connector(http)
        }
    });
    let mut builder = HyperClient::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new());
    ocireg_driver::hyper::tune(&mut builder);
    HyperTransport::new(&builder, https)
        .proxied(proxies)
        .watching(tls.asks())
}

/// Serves `registry` on `listener` until the task is dropped (feature `server`). Each connection speaks
/// HTTP/1.1 or HTTP/2 (prior knowledge), plain text.
#[cfg(feature = "server")]
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: std::sync::Arc<std::sync::Mutex<ocireg_registry::FaultyRegistry>>,
) -> std::io::Result<()> {
    let runtime: std::sync::Arc<dyn Runtime> = std::sync::Arc::new(TokioRuntime);
    let service = ocireg_driver::server::registry_service(registry, runtime);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    /// A configuration that asks for HTTP/1.1 alone (the CLI's `--http1.1`) or carries
    /// any ALPN list builds a client (hyper-rustls refuses a preset list by panicking).
    #[test]
    fn preset_alpn_protocols_build_a_client() {
        for alpn in [vec![b"http/1.1".to_vec()], vec![b"h2".to_vec()], vec![]] {
            let mut tls = ocireg_driver::tls::client_config(&[]).unwrap();
            tls.alpn_protocols = alpn;
            let _ = super::transport_with(tls);
        }
    }
}
