//! Authentication pieces: the `WWW-Authenticate` grammar (RFC 9110 §11), secrets that
//! never print, credentials, and token responses (distribution token-auth spec).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

/// A string that must never be printed. `Debug` and `Display` show `REDACTED`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

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

/// One challenge of a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme as sent (compare case-insensitively).
    pub scheme: String,
    /// A token68 value, when the challenge carries one.
    pub token68: Option<String>,
    /// Parameters, names lower-cased, in order.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// A parameter by (lower-case) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// True for the given scheme, case-insensitively.
    pub fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }
}

/// Parses several `WWW-Authenticate` values as one list. Any syntax error anywhere
/// gives an empty result (the header is invalid as a whole).
pub fn parse_www_authenticate<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for v in values {
        match Parser::new(v).list() {
            Some(mut c) => out.append(&mut c),
            None => return Vec::new(),
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

impl<'a> Parser<'a> {
    fn new(s: &'a [u8]) -> Parser<'a> {
        Parser { s, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn at_element_end(&self) -> bool {
        matches!(self.peek(), None | Some(b','))
    }

    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn quoted(&mut self) -> Option<String> {
        // at '"'
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' => {
                    self.i += 1;
                    out.push(self.peek()?);
                    self.i += 1;
                }
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// `BWS "=" BWS ( token / quoted-string )`, after the name.
    fn param_value(&mut self) -> Option<String> {
        self.ows();
        if self.peek() != Some(b'=') {
            return None;
        }
        self.i += 1;
        self.ows();
        if self.peek() == Some(b'"') {
            self.quoted()
        } else {
            self.token()
        }
    }

    /// Tries a token68 at the cursor; restores the cursor when it is not one.
    fn token68(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(is_token68_char) {
            self.i += 1;
        }
        if self.i == start {
            return None;
        }
        while self.peek() == Some(b'=') {
            self.i += 1;
        }
        let end = self.i;
        self.ows();
        if self.at_element_end() {
            Some(String::from_utf8_lossy(&self.s[start..end]).into_owned())
        } else {
            self.i = start;
            None
        }
    }

    fn add_param(c: &mut Challenge, name: String, value: String) -> Option<()> {
        let name = name.to_ascii_lowercase();
        if c.params.iter().any(|(k, _)| *k == name) {
            return None;
        }
        c.params.push((name, value));
        Some(())
    }

    fn list(&mut self) -> Option<Vec<Challenge>> {
        let mut out: Vec<Challenge> = Vec::new();
        loop {
            // empty elements
            loop {
                self.ows();
                if self.peek() == Some(b',') {
                    self.i += 1;
                } else {
                    break;
                }
            }
            if self.peek().is_none() {
                return Some(out);
            }
            let name = self.token()?;
            let after_name = self.i;
            self.ows();
            if self.peek() == Some(b'=') {
                // an auth-param of the current challenge
                self.i = after_name;
                let value = self.param_value()?;
                let cur = out.last_mut()?;
                if cur.token68.is_some() {
                    return None;
                }
                Self::add_param(cur, name, value)?;
            } else {
                let mut c = Challenge {
                    scheme: name,
                    token68: None,
                    params: Vec::new(),
                };
                let had_sp = self.s[after_name..self.i].contains(&b' ')
                    && self.s.get(after_name) == Some(&b' ');
                if !self.at_element_end() {
                    if !had_sp {
                        return None;
                    }
                    if let Some(t) = self.token68() {
                        c.token68 = Some(t);
                    } else {
                        let pname = self.token()?;
                        let value = self.param_value()?;
                        Self::add_param(&mut c, pname, value)?;
                    }
                }
                out.push(c);
            }
            self.ows();
            if !self.at_element_end() {
                return None;
            }
        }
    }
}

/// A successful token response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenResponse {
    /// The bearer token.
    pub token: Secret,
    /// Lifetime (at least 60 s).
    pub expires_in: Duration,
    /// A refresh token, when the service issued one.
    pub refresh_token: Option<Secret>,
    /// `issued_at`, as seconds since the Unix epoch, when present and valid.
    pub issued_at: Option<u64>,
}

impl TokenResponse {
    /// How long the token stays usable from the moment its response arrived: `expires_in`
    /// minus the token's age at that moment, where the age is the response's `Date`
    /// (server time, seconds since the epoch) minus `issued_at`. Never below zero; without
    /// both times, `expires_in` as it is.
    pub fn lifetime(&self, response_date: Option<u64>) -> Duration {
        match (self.issued_at, response_date) {
            (Some(issued), Some(date)) if date > issued => self
                .expires_in
                .saturating_sub(Duration::from_secs(date - issued)),
            _ => self.expires_in,
        }
    }
}

/// Parses an RFC 3339 date-time (`2024-05-01T12:00:00Z`, fractional seconds and
/// offsets allowed) into seconds since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':' =>
        {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            let v = oh * 3600 + om * 60;
            if rest.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    // days from civil (Howard Hinnant's algorithm)
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(t).ok()
}

#[derive(Deserialize)]
struct RawToken {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    issued_at: Option<String>,
}

/// The shortest token lifetime assumed.
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Why a token service, or what it answered, cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    /// The body is not the JSON of a token response.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The response has neither `token` nor `access_token`.
    #[error("response has neither token nor access_token")]
    NoToken,
    /// The token could not travel in an `Authorization` header.
    #[error("token contains characters not allowed in a header")]
    NotAHeaderValue,
    /// The challenge's realm is not an http(s) URL.
    #[error("the realm is not an http(s) URL")]
    RealmNotHttp,
}

/// Parses a token response body. `token` wins over `access_token`; `expires_in` below
/// 60 s (or absent) counts as 60 s. `issued_at` (RFC 3339) is kept so the caller can
/// subtract the token's age, measured against the token response's own `Date` header
/// (see [`TokenResponse::lifetime`]); no wall clock is read.
pub fn parse_token_response(body: &[u8]) -> Result<TokenResponse, TokenProblem> {
    let raw: RawToken =
        serde_json::from_slice(body).map_err(|e| TokenProblem::MalformedJson(e.to_string()))?;
    let token = raw
        .token
        .filter(|t| !t.is_empty())
        .or(raw.access_token.filter(|t| !t.is_empty()))
        .ok_or(TokenProblem::NoToken)?;
    if token.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(TokenProblem::NotAHeaderValue);
    }
    let secs = raw.expires_in.unwrap_or(0).max(0) as u64;
    Ok(TokenResponse {
        token: Secret(token),
        expires_in: Duration::from_secs(secs).max(MIN_TOKEN_LIFETIME),
        refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(Secret),
        issued_at: raw.issued_at.as_deref().and_then(parse_rfc3339),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<Challenge> {
        parse_www_authenticate([s.as_bytes()])
    }

    #[test]
    fn seed_cases() {
        let c =
            p(r#"Basic realm="simple", Newauth realm="apps", type=1, title="Login to \"apps\"""#);
        assert_eq!(c.len(), 2);
        assert!(c[0].is("basic"));
        assert_eq!(c[0].param("realm"), Some("simple"));
        assert_eq!(c[1].scheme, "Newauth");
        assert_eq!(c[1].param("realm"), Some("apps"));
        assert_eq!(c[1].param("type"), Some("1"));
        assert_eq!(c[1].param("title"), Some(r#"Login to "apps""#));
        for bad in [
            "Basic\tBearer",
            "Basic !",
            "Basic a Bearer",
            r#"Basic realm="simple" type=1"#,
            r#"Basic realm="simple"#,
            "Basic !=",
            r#"Basic realm="apps", REALM=other"#,
        ] {
            assert_eq!(p(bad), vec![], "{bad:?}");
        }
        for (s, t) in [("0 a", "a"), ("2 abc=", "abc="), ("3   a===", "a===")] {
            let c = p(s);
            assert_eq!(c.len(), 1, "{s}");
            assert_eq!(c[0].token68.as_deref(), Some(t));
        }
    }

    #[test]
    fn more_cases() {
        let c = p(
            r#",, Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull" ,"#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        let c = parse_www_authenticate([&b"Basic realm=a"[..], &b"Bearer realm=b"[..]]);
        assert_eq!(c.len(), 2);
        assert_eq!(
            p("Basic"),
            vec![Challenge {
                scheme: "Basic".into(),
                token68: None,
                params: vec![]
            }]
        );
        assert_eq!(p("Bearer, Basic").len(), 2);
        assert_eq!(p("realm=x"), vec![]);
        assert_eq!(p("Bearer realm = \"x\"")[0].param("realm"), Some("x"));
        assert_eq!(p("Bearer abc, realm=x"), vec![]);
        assert_eq!(p(""), vec![]);
        assert_eq!(p("\"x\""), vec![]);
    }

    #[test]
    fn tokens() {
        let t = parse_token_response(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.token.expose(), "abc");
        assert_eq!(t.expires_in, Duration::from_secs(300));
        let t = parse_token_response(br#"{"access_token":"x","expires_in":5}"#).unwrap();
        assert_eq!(t.token.expose(), "x");
        assert_eq!(t.expires_in, MIN_TOKEN_LIFETIME);
        assert_eq!(
            parse_token_response(br#"{"expires_in":5}"#),
            Err(TokenProblem::NoToken)
        );
        assert!(matches!(
            parse_token_response(b"nope"),
            Err(TokenProblem::MalformedJson(_))
        ));
        assert_eq!(
            parse_token_response(br#"{"token":"a\nb"}"#),
            Err(TokenProblem::NotAHeaderValue)
        );
        assert_eq!(format!("{:?}", t.token), "REDACTED");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:34:56.789+01:00"),
            Some(1_709_206_496)
        );
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        let t = parse_token_response(
            br#"{"token":"a","expires_in":300,"issued_at":"2024-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(t.issued_at, Some(1_704_067_200));
        assert_eq!(
            t.lifetime(Some(1_704_067_200 + 100)),
            Duration::from_secs(200)
        );
        assert_eq!(t.lifetime(Some(1_704_067_200 + 1000)), Duration::ZERO);
        assert_eq!(t.lifetime(None), Duration::from_secs(300));
        let c = Credentials::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic_header().unwrap().expose(), "Basic dTpodW50ZXIy");
    }
}
