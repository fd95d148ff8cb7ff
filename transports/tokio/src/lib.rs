//! # ocireg-tokio: the tokio adapter
//!
//! [`TokioTransport`] is hyper-util's pooled client over rustls (web PKI roots plus any
//! extra CA certificates), speaking HTTP/1.1 or HTTP/2 as ALPN decides. It follows no
//! redirect and retries nothing: the core decides both. [`TokioRuntime`] gives the drive
//! loop tokio's clock and timer (so paused-time tests work), and [`serve`] puts the test
//! registry on a `TcpListener`. Everything else comes from `ocireg-driver`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ocireg_core::TransportError;
use ocireg_driver::hyper::{
    body_stream, classify, reply_to_response, to_hyper_request, RequestBody, POOL_IDLE,
};
use ocireg_driver::{BodyStream, Runtime, Transport};
use ocireg_registry::FaultyRegistry;

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

/// Loads PEM certificates from a file.
pub fn load_certs(path: &Path) -> std::io::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    let data = std::fs::read(path)?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut data.as_slice()).collect();
    let certs = certs?;
    if certs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: no PEM certificate found", path.display()),
        ));
    }
    Ok(certs)
}

/// The rustls client configuration: web PKI roots plus `extra_cas`.
pub fn tls_config(
    extra_cas: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for ca in extra_cas {
        roots.add(ca.clone())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The tokio HTTP client.
#[derive(Clone)]
pub struct TokioTransport {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, RequestBody>,
}

impl std::fmt::Debug for TokioTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokioTransport")
    }
}

impl TokioTransport {
    /// A client trusting the web PKI roots plus `extra_cas`.
    pub fn new(
        extra_cas: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<TokioTransport, rustls::Error> {
        let tls = tls_config(extra_cas)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(std::time::Duration::from_secs(30)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_adaptive_window(true)
            .build(https);
        Ok(TokioTransport { client })
    }
}

impl Transport for TokioTransport {
    fn send(
        &self,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<BodyStream>, TransportError>> {
        let fut = self.client.request(to_hyper_request(request));
        async move {
            match fut.await {
                Ok(resp) => Ok(resp.map(body_stream)),
                Err(e) => Err(classify(&e, e.is_connect())),
            }
        }
        .boxed()
    }
}

/// Serves `registry` on `listener` until the task is dropped. Each connection speaks
/// HTTP/1.1 or HTTP/2 (prior knowledge), plain text.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Mutex<FaultyRegistry>>,
) -> std::io::Result<()> {
    let runtime: Arc<dyn Runtime> = Arc::new(TokioRuntime);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let registry = registry.clone();
        let runtime = runtime.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let reply = registry.lock().expect("registry lock").handle(&req);
                let resp = reply_to_response(reply, runtime.clone());
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
