//! Secrets that never print, and the credentials a user gives for a registry.

use std::fmt;

use base64::Engine as _;

/// A string that must never be printed. `Debug` and `Display` show `REDACTED`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(pub(super) String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for building a header. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("REDACTED")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("REDACTED")
    }
}

/// What the user gave to authenticate with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials: anonymous tokens only.
    #[default]
    Anonymous,
    /// Username and password.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// An identity (refresh) token, as `docker login` stores for some registries.
    IdentityToken {
        /// The token.
        token: Secret,
    },
}

impl Credentials {
    /// The `Authorization: Basic …` value, if these are basic credentials.
    pub fn basic_header(&self) -> Option<Secret> {
        match self {
            Credentials::Basic { username, password } => {
                let raw = format!("{username}:{}", password.expose());
                Some(Secret(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_never_print_and_encode_as_base64() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic_header().unwrap().expose(), "Basic dTpodW50ZXIy");
    }
}
