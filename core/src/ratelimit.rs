//! Rate limits a registry announces: Docker Hub's `ratelimit-limit: 100;w=21600` and
//! `ratelimit-remaining: 76;w=21600`, and the IETF draft's fields in each of its forms
//! (`RateLimit-Limit`/`-Remaining`/`-Reset`; `RateLimit: limit=100, remaining=0,
//! reset=50`; `RateLimit: "default";r=0;t=50` with `RateLimit-Policy:
//! "default";q=100;w=3600`). What a `429` says about them, and what each manifest answer
//! leaves.

use std::fmt;
use std::time::Duration;

use http::HeaderMap;

/// A registry's rate limit as its headers state it; every part optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub limit: Option<u64>,
    /// The window.
    pub window: Option<Duration>,
    /// Requests left in this window.
    pub remaining: Option<u64>,
    /// When the window resets, from the response.
    pub reset: Option<Duration>,
}

impl RateLimit {
    /// The rate limit `headers` announce, if any field of one is there.
    pub fn from_headers(headers: &HeaderMap) -> Option<RateLimit> {
        let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let mut r = RateLimit::default();
        // Docker Hub, and the draft's separate fields
        if let Some(v) = value("ratelimit-limit") {
            let (n, params) = number_and_params(v);
            r.limit = n;
            r.window = param(params, "w").map(Duration::from_secs);
        }
        if let Some(v) = value("ratelimit-remaining") {
            r.remaining = number_and_params(v).0;
        }
        if let Some(v) = value("ratelimit-reset") {
            r.reset = number_and_params(v).0.map(Duration::from_secs);
        }
        // the draft's one field: `limit=, remaining=, reset=` or `"policy";r=;t=`
        if let Some(v) = value("ratelimit") {
            for item in v.split([',', ';']).map(str::trim) {
                let Some((k, n)) = item.split_once('=') else {
                    continue;
                };
                let n = n.trim().parse::<u64>().ok();
                match k.trim() {
                    "limit" => r.limit = r.limit.or(n),
                    "remaining" | "r" => r.remaining = r.remaining.or(n),
                    "reset" | "t" => r.reset = r.reset.or(n.map(Duration::from_secs)),
                    _ => {}
                }
            }
        }
        if let Some(v) = value("ratelimit-policy") {
            let first = v.split(',').next().unwrap_or("");
            let (n, params) = number_and_params(first);
            r.limit = r.limit.or(n).or(param(params, "q"));
            r.window = r.window.or(param(params, "w").map(Duration::from_secs));
        }
        (r != RateLimit::default()).then_some(r)
    }
}

/// `100;w=21600` → (100, "w=21600"); a leading quoted policy name has no number.
fn number_and_params(v: &str) -> (Option<u64>, &str) {
    let (head, params) = v.split_once(';').unwrap_or((v, ""));
    (head.trim().parse().ok(), params)
}

/// The number of parameter `name` in `a=1;b=2`.
fn param(params: &str, name: &str) -> Option<u64> {
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim() == name).then(|| v.trim().parse().ok())?
    })
}

/// A duration for people: `6h`, `1h 30m`, `45s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m, sec) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

impl fmt::Display for RateLimit {
    /// `100 requests per 6h, 0 remaining, resets in 50s` (the parts that are known).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        match (self.limit, self.window) {
            (Some(l), Some(w)) => parts.push(format!("{l} requests per {}", human(w))),
            (Some(l), None) => parts.push(format!("{l} requests")),
            _ => {}
        }
        if let Some(r) = self.remaining {
            parts.push(format!("{r} remaining"));
        }
        if let Some(t) = self.reset {
            parts.push(format!("resets in {}", human(t)));
        }
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn docker_hub_and_each_draft_form() {
        let hub = RateLimit::from_headers(&headers(&[
            ("ratelimit-limit", "100;w=21600"),
            ("ratelimit-remaining", "0;w=21600"),
        ]))
        .unwrap();
        assert_eq!(hub.to_string(), "100 requests per 6h, 0 remaining");
        let separate = RateLimit::from_headers(&headers(&[
            ("RateLimit-Limit", "60"),
            ("RateLimit-Remaining", "3"),
            ("RateLimit-Reset", "90"),
        ]))
        .unwrap();
        assert_eq!(
            separate.to_string(),
            "60 requests, 3 remaining, resets in 1m 30s"
        );
        let one = RateLimit::from_headers(&headers(&[(
            "RateLimit",
            "limit=10, remaining=0, reset=3700",
        )]))
        .unwrap();
        assert_eq!(one.to_string(), "10 requests, 0 remaining, resets in 1h 1m");
        let structured = RateLimit::from_headers(&headers(&[
            ("RateLimit", "\"default\";r=0;t=50"),
            ("RateLimit-Policy", "\"default\";q=100;w=3600"),
        ]))
        .unwrap();
        assert_eq!(
            structured.to_string(),
            "100 requests per 1h, 0 remaining, resets in 50s"
        );
    }

    #[test]
    fn nothing_or_nonsense_is_no_rate_limit() {
        assert_eq!(RateLimit::from_headers(&HeaderMap::new()), None);
        let junk = RateLimit::from_headers(&headers(&[
            ("ratelimit-limit", "lots"),
            ("ratelimit-remaining", "99999999999999999999999"),
        ]));
        assert_eq!(junk, None);
        // absurd resets are said, not overflowed
        let far = RateLimit::from_headers(&headers(&[("RateLimit-Reset", "18446744073709551615")]))
            .unwrap();
        assert!(far.to_string().starts_with("resets in "));
    }
}
