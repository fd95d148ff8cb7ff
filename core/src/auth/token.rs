//! Token responses of the distribution token-auth spec: the token, its lifetime from
//! `expires_in` or `issued_at`, and what was wrong with a response that is not one.

use std::time::Duration;

use serde::Deserialize;

use super::Secret;

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
    }
}
