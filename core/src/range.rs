//! `Range` requests and `Content-Range` validation for blob resume.

/// The `Range` header for resuming a blob of `size` bytes at `offset`: a closed range,
/// since some registries answer 416 to the open form.
pub fn range_header(offset: u64, size: u64) -> String {
    format!("bytes={}-{}", offset, size - 1)
}

/// A parsed `Content-Range: bytes first-last/total` (total may be `*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte.
    pub first: u64,
    /// Last byte, inclusive.
    pub last: u64,
    /// Complete length, when known.
    pub total: Option<u64>,
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a `Content-Range` value of a 206 response. Unsatisfied forms
/// (`bytes */N`) and anything malformed give `None`.
pub fn parse_content_range(v: &[u8]) -> Option<ContentRange> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let rest = s.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let first = number(first)?;
    let last = number(last)?;
    let total = if total == "*" {
        None
    } else {
        Some(number(total)?)
    };
    if last < first || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange { first, last, total })
}

/// True when `v` is exactly the range asked for: `bytes offset-(size-1)/size` or `/*`.
pub fn content_range_matches(v: &[u8], offset: u64, size: u64) -> bool {
    parse_content_range(v).is_some_and(|r| {
        r.first == offset && r.last + 1 == size && r.total.is_none_or(|t| t == size)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range_header(5, 10), "bytes=5-9");
        assert!(content_range_matches(b"bytes 5-9/10", 5, 10));
        assert!(content_range_matches(b"bytes 5-9/*", 5, 10));
        assert!(!content_range_matches(b"bytes 4-9/10", 5, 10));
        assert!(!content_range_matches(b"bytes 5-8/10", 5, 10));
        assert!(!content_range_matches(b"bytes 5-9/11", 5, 10));
        assert!(!content_range_matches(b"bytes */10", 5, 10));
        assert!(!content_range_matches(b"bytes 5-9", 5, 10));
        assert!(!content_range_matches(b"bytes 9-5/10", 5, 10));
        assert!(!content_range_matches(b"bytes +5-9/10", 5, 10));
        assert!(parse_content_range(b"bytes 0-99999999999999999999/1").is_none());
    }
}
