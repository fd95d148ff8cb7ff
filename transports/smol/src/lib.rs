//! # ocireg-smol: the smol adapter
//!
//! A pull into an OCI image layout, with Docker's credentials and the web PKI roots:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ocireg_smol::Client::new()?;
//! let pulled = client.pull("docker.io/library/alpine:3.20").to_layout("./alpine").await?;
//! println!("{} ({} blobs fetched)", pulled.descriptor.digest, pulled.stats.fetched);
//! # Ok(()) }
//! ```
//!
//! What is smol's own is here: [`SmolSockets`] (TCP connect, sleep, spawn on smol's
//! global executor) and [`SmolRuntime`] (the clock and timer). The HTTP client, TLS and the
//! registry server loop are `ocireg_driver::futures_io`, shared with `ocireg-async-std`;
//! the drive loop, layouts and credentials are the driver's. Nothing here needs a tokio
//! runtime: the tests run this adapter under `smol::block_on`.

use std::io;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};
use ocireg_driver::futures_io::Sockets;
use ocireg_driver::Runtime;
use smol::net::TcpStream;

/// smol's clock and timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolRuntime;

impl Runtime for SmolRuntime {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()> {
        smol::Timer::at(deadline).map(drop).boxed()
    }
}

/// smol's TCP connections, timer and tasks (its global executor).
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolSockets;

impl Sockets for SmolSockets {
    type Tcp = TcpStream;

    fn connect(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<TcpStream>> {
        async move { TcpStream::connect((host.as_str(), port)).await }.boxed()
    }

    fn nodelay(&self, tcp: &TcpStream) -> io::Result<()> {
        tcp.set_nodelay(true)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        smol::Timer::after(duration).map(drop).boxed()
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        smol::spawn(task).detach();
    }
}

ocireg_driver::futures_io_transport!(SmolSockets, SmolTransport, "smol");
ocireg_driver::adapter_client!(SmolTransport, SmolRuntime, transport_for, "smol");

/// Serves `registry` on `listener` (HTTP/1.1) until the future is dropped (feature
/// `server`).
#[cfg(feature = "server")]
pub async fn serve(
    listener: smol::net::TcpListener,
    registry: std::sync::Arc<std::sync::Mutex<ocireg_registry::FaultyRegistry>>,
) -> io::Result<()> {
    let runtime: std::sync::Arc<dyn Runtime> = std::sync::Arc::new(SmolRuntime);
    ocireg_driver::futures_io::serve(SmolSockets, listener.incoming(), registry, runtime).await
}
