//! Instant arithmetic that cannot overflow.
//!
//! Every duration the core adds to an [`Instant`] may come from a server (a token's
//! `expires_in`, a `Retry-After`) or a caller (a timeout). `Instant + Duration` panics on
//! overflow, so the core never writes it: it calls [`later`], which caps the span at
//! [`MAX_SPAN`] and saturates. A unit test below scans the crate's sources for a bare
//! `now + ` so the rule cannot be broken by accident.

use std::time::{Duration, Instant};

/// The longest span the core ever adds to an instant (about ten years): far beyond any
/// timeout, delay or token lifetime, far below what an `Instant` can represent.
pub const MAX_SPAN: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `now + span`, with `span` capped at [`MAX_SPAN`]. Never panics: on a platform whose
/// `Instant` cannot reach that far, the latest representable smaller step is used.
pub fn later(now: Instant, span: Duration) -> Instant {
    let mut span = span.min(MAX_SPAN);
    loop {
        if let Some(t) = now.checked_add(span) {
            return t;
        }
        if span.is_zero() {
            return now;
        }
        span /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_spans_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(later(now, Duration::MAX), later(now, MAX_SPAN));
        assert!(later(now, Duration::MAX) > now);
        assert_eq!(
            later(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
    }

    /// The rule of this module, checked on the sources: no `Instant + Duration` written
    /// out in the core (the only allowed one is the test just above).
    #[test]
    fn no_bare_instant_addition_in_the_core() {
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        let mut offenders = Vec::new();
        let mut files = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                    continue;
                }
                files += 1;
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    let bare = ["now + ", "until + ", "deadline + ", "t0 + "]
                        .iter()
                        .any(|p| code.contains(p));
                    if bare && !path.ends_with("time.rs") {
                        offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
        assert!(files > 10, "only {files} source files found");
        assert!(
            offenders.is_empty(),
            "use time::later:\n{}",
            offenders.join("\n")
        );
    }
}
