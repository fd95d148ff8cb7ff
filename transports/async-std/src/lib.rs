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
//! What is async-std's own is here: [`AsyncStdSockets`] (TCP connect, sleep, spawn) and
//! [`AsyncStdRuntime`] (the clock and timer). Everything generic over `futures-io` (hyper's
//! I/O traits, the TLS connector over `futures-rustls`, the pooled client, the registry
//! server loop) is `ocireg_driver::futures_io`, shared with `ocireg-smol`; the drive loop,
//! layouts and credentials are the driver's too. Nothing here starts or needs a tokio
//! runtime (hyper names tokio's I/O traits only): the tests run this adapter under
//! `async_std::task::block_on`.
//!
//! async-std has been discontinued by its maintainers, who point to smol: new code
//! should prefer `ocireg-smol`. This adapter stays for the users who run async-std.

use std::io;
use std::time::{Duration, Instant};

use async_std::net::TcpStream;
use futures::future::{BoxFuture, FutureExt};
use ocireg_driver::futures_io::Sockets;
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

/// async-std's TCP connections, timer and tasks.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStdSockets;

impl Sockets for AsyncStdSockets {
    type Tcp = TcpStream;

    fn connect(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<TcpStream>> {
        async move { TcpStream::connect((host.as_str(), port)).await }.boxed()
    }

    fn nodelay(&self, tcp: &TcpStream) -> io::Result<()> {
        tcp.set_nodelay(true)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        async_std::task::sleep(duration).boxed()
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        async_std::task::spawn(task);
    }
}

ocireg_driver::futures_io_transport!(AsyncStdSockets, AsyncStdTransport, "async-std");
ocireg_driver::adapter_client!(
    AsyncStdTransport,
    AsyncStdRuntime,
    transport_for,
    "async-std"
);

/// Serves `registry` on `listener` (HTTP/1.1) until the future is dropped (feature
/// `server`).
#[cfg(feature = "server")]
pub async fn serve(
    listener: async_std::net::TcpListener,
    registry: std::sync::Arc<std::sync::Mutex<ocireg_registry::FaultyRegistry>>,
) -> io::Result<()> {
    let runtime: std::sync::Arc<dyn Runtime> = std::sync::Arc::new(AsyncStdRuntime);
    ocireg_driver::futures_io::serve(AsyncStdSockets, listener.incoming(), registry, runtime).await
}
