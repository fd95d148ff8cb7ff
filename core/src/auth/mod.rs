//! Authentication pieces, one file each: the `WWW-Authenticate` grammar (RFC 9110 §11,
//! `challenge.rs`), secrets that never print and the user's credentials
//! (`credentials.rs`), and token responses (distribution token-auth spec, `token.rs`).
//! Which credential goes where is the engine's auth session, not this module.

mod challenge;
mod credentials;
mod token;

pub use challenge::{parse_www_authenticate, Challenge};
pub use credentials::{Credentials, Secret};
pub use token::{
    parse_rfc3339, parse_token_response, TokenProblem, TokenResponse, MIN_TOKEN_LIFETIME,
};
