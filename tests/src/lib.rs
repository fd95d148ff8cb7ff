//! Harnesses shared by the integration tests: a simulated network ([`sim`]) and a real
//! CNCF distribution registry on loopback ([`real`]).

pub mod delay;
pub mod forward_proxy;
pub mod hostile;
pub mod kit;
pub mod proxy;
pub mod real;
pub mod sim;
pub mod tls_witness;
pub mod token_server;
