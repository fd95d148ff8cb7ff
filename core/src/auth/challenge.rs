//! The `WWW-Authenticate` grammar (RFC 9110 §11): challenges with auth-params or a
//! token68, several per header value and several header values.

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
}
