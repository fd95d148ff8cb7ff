//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and a streaming verifier.
//!
//! Parsing is strict: a known algorithm, then exactly the right number of lowercase
//! hexadecimal characters. Anything else is a [`DigestError`] quoting the input.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

/// A digest algorithm ocireg can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, 64 hex characters.
    Sha256,
    /// SHA-512, 128 hex characters.
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings (`sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded value.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// Starts a streaming hash with this algorithm.
    pub fn verifier(self) -> Verifier {
        Verifier::new(self)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a digest string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `:` separates algorithm and value.
    #[error("invalid digest {0:?}: expected <algorithm>:<hex>")]
    Malformed(String),
    /// The algorithm is well-formed but not one ocireg supports.
    #[error(
        "unsupported digest algorithm {algorithm:?} in {digest:?} (supported: sha256, sha512)"
    )]
    UnsupportedAlgorithm {
        /// The algorithm part.
        algorithm: String,
        /// The whole input.
        digest: String,
    },
    /// The value is not exactly the right number of lowercase hex characters.
    #[error("invalid {algorithm} digest {digest:?}: expected {expected} lowercase hex characters")]
    BadValue {
        /// The algorithm.
        algorithm: Algorithm,
        /// The whole input.
        digest: String,
        /// Expected hex length.
        expected: usize,
    },
}

/// A validated content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// Inputs longer than this are not quoted whole in errors.
const QUOTE_MAX: usize = 200;

fn quote(s: &str) -> String {
    if s.len() <= QUOTE_MAX {
        s.to_string()
    } else {
        let mut end = QUOTE_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

impl Digest {
    /// Parses `alg:hex` strictly.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(quote(s)))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => {
                if !is_generic_algorithm(alg) {
                    return Err(DigestError::Malformed(quote(s)));
                }
                return Err(DigestError::UnsupportedAlgorithm {
                    algorithm: quote(alg),
                    digest: quote(s),
                });
            }
        };
        if hex.len() != algorithm.hex_len()
            || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(DigestError::BadValue {
                algorithm,
                digest: quote(s),
                expected: algorithm.hex_len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// Digest of a byte slice.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut v = algorithm.verifier();
        v.update(data);
        v.finish()
    }

    /// Shorthand for `Digest::of(Algorithm::Sha256, data)`.
    pub fn sha256(data: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, data)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex value.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

/// The generic algorithm grammar: `[a-z0-9]+(?:[+._-][a-z0-9]+)*`.
fn is_generic_algorithm(s: &str) -> bool {
    !s.is_empty()
        && s.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Clone)]
enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// A streaming hash that also counts bytes.
///
/// Feed it with [`Verifier::update`]; [`Verifier::finish`] gives the digest. It is
/// `Clone`, so a caller can hash a partial file from an earlier run and hand the state to
/// the core to continue a download from that offset.
#[derive(Clone)]
pub struct Verifier {
    hasher: Hasher,
    len: u64,
}

impl Verifier {
    /// A fresh verifier.
    pub fn new(algorithm: Algorithm) -> Verifier {
        let hasher = match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        };
        Verifier { hasher, len: 0 }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.hasher {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
        self.len += data.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let algorithm = self.algorithm();
        let hex = match self.hasher {
            Hasher::Sha256(h) => hex_encode(&h.finalize()),
            Hasher::Sha512(h) => hex_encode(&h.finalize()),
        };
        Digest { algorithm, hex }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithm", &self.algorithm())
            .field("len", &self.len)
            .finish()
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(Digest::sha256(b""), d);
    }

    #[test]
    fn strictness() {
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        assert!(matches!(
            Digest::parse(&upper),
            Err(DigestError::BadValue { .. })
        ));
        assert!(matches!(
            Digest::parse(&EMPTY[..70]),
            Err(DigestError::BadValue { .. })
        ));
        assert!(matches!(
            Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e"),
            Err(DigestError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            Digest::parse("nocolon"),
            Err(DigestError::Malformed(_))
        ));
        assert!(matches!(
            Digest::parse("SHA256:00"),
            Err(DigestError::Malformed(_))
        ));
    }

    #[test]
    fn sha512_and_streaming() {
        let mut v = Verifier::new(Algorithm::Sha512);
        v.update(b"hello ");
        v.update(b"world");
        assert_eq!(v.len(), 11);
        let d = v.finish();
        assert_eq!(d, Digest::of(Algorithm::Sha512, b"hello world"));
        assert_eq!(d.hex().len(), 128);
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
    }

    /// Known answers (FIPS 180-2 examples): the hashes themselves, not only agreement
    /// between two ways of computing them.
    #[test]
    fn known_answers() {
        assert_eq!(
            Digest::of(Algorithm::Sha256, b"abc").to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            Digest::of(Algorithm::Sha512, b"abc").to_string(),
            "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn long_input_is_quoted_short() {
        let long = format!("sha256:{}", "a".repeat(10_000));
        let e = Digest::parse(&long).unwrap_err().to_string();
        assert!(e.len() < 400, "{e}");
    }
}
