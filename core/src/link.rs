//! `Link` headers (RFC 8288), as registries use them to page tag lists.

/// The target of the first `rel="next"` link in `Link` header values, as written
/// (usually a path with a query). `None` when there is none or the header is malformed.
pub fn next_link<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
    for v in values {
        let s = std::str::from_utf8(v).ok()?;
        let mut rest = s;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            let after_lt = rest.strip_prefix('<')?;
            let end = after_lt.find('>')?;
            let target = &after_lt[..end];
            rest = &after_lt[end + 1..];
            // parameters up to the next link (a comma outside quotes)
            let mut params = String::new();
            let mut in_quotes = false;
            let mut consumed = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '"' => in_quotes = !in_quotes,
                    ',' if !in_quotes => {
                        consumed = i;
                        break;
                    }
                    _ => {}
                }
                params.push(c);
            }
            rest = &rest[consumed..];
            let is_next = params.split(';').any(|p| {
                let p = p.trim();
                match p.split_once('=') {
                    Some((k, v)) if k.trim().eq_ignore_ascii_case("rel") => v
                        .trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next")),
                    _ => false,
                }
            });
            if is_next {
                return Some(target.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        let n = |s: &str| next_link([s.as_bytes()]);
        assert_eq!(
            n(r#"</v2/x/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/x/tags/list?n=2&last=b")
        );
        assert_eq!(n(r#"<a>; rel="prev", <b>; rel=next"#).as_deref(), Some("b"));
        assert_eq!(
            n(r#"<a>; title="x, y"; rel="prev next""#).as_deref(),
            Some("a")
        );
        assert_eq!(n(r#"<a>; rel="prev""#), None);
        assert_eq!(n("garbage"), None);
        assert_eq!(n("<unterminated; rel=next"), None);
        assert_eq!(n(""), None);
    }
}
