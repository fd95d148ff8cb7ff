//! One set of adapter tests, run on every runtime: a [`Kit`] gives a test what differs
//! between runtimes (executor, HTTP client, clock, registry server).

use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use ocireg_driver::proxy::Proxies;
use ocireg_driver::tls::TlsConfigs;
use ocireg_driver::{Runtime, Transport};
use ocireg_registry::FaultyRegistry;
use rustls::pki_types::CertificateDer;

/// What a runtime provides to the tests.
pub trait Kit: 'static {
    /// Its name, for messages.
    const NAME: &'static str;
    /// Runs a future to completion on a fresh executor of this runtime.
    fn block_on<F: Future>(f: F) -> F::Output;
    /// An HTTP client trusting `cas` besides the web PKI roots (no proxy, whatever the
    /// environment says).
    fn transport(cas: &[CertificateDer<'static>]) -> Box<dyn Transport> {
        Self::transport_through(cas, Proxies::none())
    }
    /// The runtime's HTTP client trusting `cas` too, through `proxies`.
    fn transport_through(cas: &[CertificateDer<'static>], proxies: Proxies) -> Box<dyn Transport>;
    /// The runtime's HTTP client with each host's TLS configuration of `tls`.
    fn transport_for(tls: &TlsConfigs, proxies: Proxies) -> Box<dyn Transport>;
    /// The runtime's clock and timer.
    fn runtime() -> Box<dyn Runtime>;
    /// Serves `registry` on a free loopback port (until the executor ends); returns the
    /// address. Call from inside [`Kit::block_on`].
    fn serve(registry: Arc<Mutex<FaultyRegistry>>) -> BoxFuture<'static, String>;
}

/// tokio with hyper-util over hyper-rustls.
pub struct TokioKit;

impl Kit for TokioKit {
    const NAME: &'static str = "tokio";

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn transport_through(cas: &[CertificateDer<'static>], proxies: Proxies) -> Box<dyn Transport> {
        let tls = ocireg_driver::tls::client_config(cas).unwrap();
        Box::new(ocireg_tokio::transport_through(tls, proxies))
    }

    fn transport_for(tls: &TlsConfigs, proxies: Proxies) -> Box<dyn Transport> {
        Box::new(ocireg_tokio::transport_for(tls, proxies))
    }

    fn runtime() -> Box<dyn Runtime> {
        Box::new(ocireg_tokio::TokioRuntime)
    }

    fn serve(registry: Arc<Mutex<FaultyRegistry>>) -> BoxFuture<'static, String> {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            tokio::spawn(ocireg_tokio::serve(listener, registry));
            addr
        })
    }
}

/// async-std with hyper-util over futures-rustls.
pub struct AsyncStdKit;

impl Kit for AsyncStdKit {
    const NAME: &'static str = "async-std";

    fn block_on<F: Future>(f: F) -> F::Output {
        async_std::task::block_on(f)
    }

    fn transport_through(cas: &[CertificateDer<'static>], proxies: Proxies) -> Box<dyn Transport> {
        let tls = ocireg_driver::tls::client_config(cas).unwrap();
        Box::new(ocireg_async_std::transport_through(tls, proxies))
    }

    fn transport_for(tls: &TlsConfigs, proxies: Proxies) -> Box<dyn Transport> {
        Box::new(ocireg_async_std::transport_for(tls, proxies))
    }

    fn runtime() -> Box<dyn Runtime> {
        Box::new(ocireg_async_std::AsyncStdRuntime)
    }

    fn serve(registry: Arc<Mutex<FaultyRegistry>>) -> BoxFuture<'static, String> {
        Box::pin(async move {
            let listener = async_std::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            async_std::task::spawn(ocireg_async_std::serve(listener, registry));
            addr
        })
    }
}

/// smol with hyper-util over futures-rustls.
pub struct SmolKit;

impl Kit for SmolKit {
    const NAME: &'static str = "smol";

    fn block_on<F: Future>(f: F) -> F::Output {
        smol::block_on(f)
    }

    fn transport_through(cas: &[CertificateDer<'static>], proxies: Proxies) -> Box<dyn Transport> {
        let tls = ocireg_driver::tls::client_config(cas).unwrap();
        Box::new(ocireg_smol::transport_through(tls, proxies))
    }

    fn transport_for(tls: &TlsConfigs, proxies: Proxies) -> Box<dyn Transport> {
        Box::new(ocireg_smol::transport_for(tls, proxies))
    }

    fn runtime() -> Box<dyn Runtime> {
        Box::new(ocireg_smol::SmolRuntime)
    }

    fn serve(registry: Arc<Mutex<FaultyRegistry>>) -> BoxFuture<'static, String> {
        Box::pin(async move {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            smol::spawn(ocireg_smol::serve(listener, registry)).detach();
            addr
        })
    }
}

/// Generates `#[test]`s running each named generic test function on every runtime:
/// `mod tokio_runtime { fn NAME() }`, `mod async_std_runtime { … }` and
/// `mod smol_runtime { … }`.
#[macro_export]
macro_rules! on_every_runtime {
    ($($name:ident),* $(,)?) => {
        mod tokio_runtime {
            $( #[test] fn $name() { <$crate::kit::TokioKit as $crate::kit::Kit>::block_on(super::$name::<$crate::kit::TokioKit>()) } )*
        }
        mod async_std_runtime {
            $( #[test] fn $name() { <$crate::kit::AsyncStdKit as $crate::kit::Kit>::block_on(super::$name::<$crate::kit::AsyncStdKit>()) } )*
        }
        mod smol_runtime {
            $( #[test] fn $name() { <$crate::kit::SmolKit as $crate::kit::Kit>::block_on(super::$name::<$crate::kit::SmolKit>()) } )*
        }
    };
}
