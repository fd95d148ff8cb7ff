//! The macro every adapter's `Client` is defined with.

/// Defines an adapter's `Client`: [`Client`](crate::client::Client) over the adapter's transport (built by
/// `$build(extra_cas)`, which also builds a mirror's transport trusting its `ca`) and
/// runtime `$runtime` (a unit struct), with `new`, `trusting` and the settings, every
/// operation through `Deref`; and re-exports what a user of the adapter names (the
/// [`adapter_prelude`](crate::adapter_prelude)).
#[macro_export]
macro_rules! adapter_client {
    ($transport:ty, $runtime:ident, $for:path, $name:literal) => {
        pub use $crate::adapter_prelude::*;

        #[doc = concat!("A registry client on ", $name, ": hyper over rustls (web PKI roots), Docker's")]
        /// credentials, the core's default configuration. Every operation of
        /// [`ocireg_driver::client::Client`] is a method (through `Deref`).
        #[derive(Clone, Debug)]
        pub struct Client($crate::client::Client);

        impl Client {
            /// A client with the defaults.
            pub fn new() -> Result<Client, ::rustls::Error> {
                Client::trusting(&[])
            }

            /// A client that also trusts the CA certificates `extra_cas` (see
            /// [`load_certs`]); a mirror whose `hosts.toml` entry names a `ca` is reached
            /// trusting these and that one.
            pub fn trusting(
                extra_cas: &[::rustls::pki_types::CertificateDer<'static>],
            ) -> Result<Client, ::rustls::Error> {
                Client::connecting(extra_cas, $crate::proxy::Proxies::from_env())
            }

            /// A client that trusts `extra_cas` too (as [`Client::trusting`]) and reaches
            /// every origin as `proxies` say ([`Proxies::explicit`], or
            /// [`Proxies::none`]); the others read the environment's (`HTTPS_PROXY`,
            /// `NO_PROXY`, …).
            ///
            /// [`Proxies::explicit`]: $crate::proxy::Proxies::explicit
            /// [`Proxies::none`]: $crate::proxy::Proxies::none
            pub fn connecting(
                extra_cas: &[::rustls::pki_types::CertificateDer<'static>],
                proxies: $crate::proxy::Proxies,
            ) -> Result<Client, ::rustls::Error> {
                let tls = $crate::tls::TlsSetup {
                    extra_cas: extra_cas.to_vec(),
                    hosts: Vec::new(),
                };
                Client::with_tls(tls, proxies)
            }

            /// A client that trusts and shows what `tls` says: extra CAs, and hosts with
            /// CAs or a client certificate of their own ([`TlsSetup`]; see
            /// [`ClientIdentity::load`]), a certificate shown to its host alone; every
            /// origin reached as `proxies` say.
            ///
            /// [`TlsSetup`]: $crate::tls::TlsSetup
            /// [`ClientIdentity::load`]: $crate::tls::ClientIdentity::load
            pub fn with_tls(
                tls: $crate::tls::TlsSetup,
                proxies: $crate::proxy::Proxies,
            ) -> Result<Client, ::rustls::Error> {
                let transport = $for(&tls.configs(&[])?, proxies.clone());
                let factory: $crate::client::TransportFactory = std::sync::Arc::new(move |host| {
                    let mut tls = tls.clone();
                    tls.hosts.push(host.clone());
                    let t: std::sync::Arc<dyn $crate::Transport> =
                        std::sync::Arc::new($for(&tls.configs(&[])?, proxies.clone()));
                    Ok(t)
                });
                Ok(Client(
                    $crate::client::Client::new(transport, $runtime).transport_factory(factory),
                ))
            }

            /// Applies a setting of [`ocireg_driver::client::Client`] (`config`,
            /// `credentials`, `hosts_dir`, `docker_config`, …).
            pub fn with(
                self,
                set: impl FnOnce($crate::client::Client) -> $crate::client::Client,
            ) -> Client {
                Client(set(self.0))
            }

            /// Uses `config` for every operation.
            pub fn config(self, config: ocireg_core::Config) -> Client {
                Client(self.0.config(config))
            }

            /// Uses `credentials` for `registry` instead of Docker's.
            pub fn credentials(
                self,
                registry: &str,
                credentials: ocireg_core::Credentials,
            ) -> Client {
                Client(self.0.credentials(registry, credentials))
            }

            /// Reads through the mirrors configured in `dir` (containerd's `hosts.toml`).
            pub fn hosts_dir(self, dir: impl Into<std::path::PathBuf>) -> Client {
                Client(self.0.hosts_dir(dir))
            }
        }

        impl std::ops::Deref for Client {
            type Target = $crate::client::Client;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
    };
}
