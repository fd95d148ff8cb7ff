//! Retry policy: exponential backoff with deterministic jitter, and `Retry-After`.
//!
//! Everything here is a pure function of its inputs. Jitter comes from a seeded
//! SplitMix64 sequence, so the same seed gives the same schedule.

use std::time::Duration;

/// How failed requests are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, counting the first (1 = no retries). For blob downloads
    /// this counts attempts in a row that brought no new byte: progress renews it.
    pub max_attempts: u32,
    /// First backoff delay.
    pub initial_delay: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this fails at once with
    /// [`Error::RetryAfterTooLong`](crate::Error::RetryAfterTooLong).
    pub max_retry_after: Duration,
    /// Fraction (0–100 %) of each delay that is randomised away.
    pub jitter_percent: u8,
    /// Total time one operation may spend waiting between attempts.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            jitter_percent: 20,
            budget: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The delay before attempt `failures + 1`, given `failures` failures so far (≥ 1),
    /// the server's `Retry-After` and a random word. `None` when no attempt is left.
    pub fn delay(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        random: u64,
    ) -> Option<Duration> {
        if failures >= self.max_attempts {
            return None;
        }
        let exp = failures.saturating_sub(1).min(30);
        let base = self
            .initial_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let jitter_span = base.as_nanos() as u64 / 100 * u64::from(self.jitter_percent.min(100));
        let jitter = if jitter_span == 0 {
            0
        } else {
            random % (jitter_span + 1)
        };
        let backoff = base.saturating_sub(Duration::from_nanos(jitter));
        Some(match retry_after {
            Some(ra) => backoff.max(ra),
            None => backoff,
        })
    }
}

/// SplitMix64: a tiny deterministic generator for jitter.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeds it.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next word.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Parses `Retry-After` as delta-seconds or as an HTTP-date. An HTTP-date is taken
/// relative to the response's own `Date` header; without one it cannot be placed on
/// the core's clock and is ignored. A date in the past gives zero.
pub fn parse_retry_after(value: &[u8], date: Option<&[u8]>) -> Option<Duration> {
    let v = std::str::from_utf8(value).ok()?.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Saturate absurd values instead of failing: they exceed any cap anyway.
        return Some(Duration::from_secs(
            v.parse::<u64>().unwrap_or(u64::MAX / 4),
        ));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let now = httpdate::parse_http_date(std::str::from_utf8(date?).ok()?.trim()).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_exponential_capped_and_deterministic() {
        let p = RetryPolicy {
            jitter_percent: 0,
            ..RetryPolicy::default()
        };
        let d: Vec<_> = (1..6)
            .map(|f| p.delay(f, None, 0).unwrap().as_millis())
            .collect();
        assert_eq!(d, vec![200, 400, 800, 1600, 3200]);
        assert_eq!(p.delay(6, None, 0), None);
        let p = RetryPolicy {
            max_attempts: 100,
            ..p
        };
        assert_eq!(p.delay(40, None, 0), Some(Duration::from_secs(10)));
        // 20% jitter below a 400 ms base: the random word picks the point in [320, 400] ms
        let j = RetryPolicy::default();
        let ms = |random| j.delay(2, None, random).unwrap();
        assert_eq!(ms(0), Duration::from_millis(400));
        assert_eq!(ms(40_000_000), Duration::from_millis(360));
        assert_eq!(ms(80_000_000), Duration::from_millis(320));
        assert_eq!(
            ms(80_000_001),
            Duration::from_millis(400),
            "wraps modulo the span"
        );
        let mut rng = Rng::new(7);
        for _ in 0..100 {
            let d = ms(rng.next_u64());
            assert!(d >= Duration::from_millis(320) && d <= Duration::from_millis(400));
        }
        assert_eq!(RetryPolicy::none().delay(1, None, 0), None);
    }

    #[test]
    fn retry_after_raises_delay() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3)), 0),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            parse_retry_after(b"120", None),
            Some(Duration::from_secs(120))
        );
        let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:50:07 GMT", Some(date)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:50:07 GMT", None),
            None
        );
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:00:00 GMT", Some(date)),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(b"-1", None), None);
        assert_eq!(parse_retry_after(b"soon", None), None);
        assert!(
            parse_retry_after(b"99999999999999999999999", None).unwrap()
                > Duration::from_secs(1 << 40)
        );
    }
}
