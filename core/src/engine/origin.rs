//! The origin model: which origin is the registry's, and who may receive credentials.
//!
//! Three kinds of origin exist for a pull: the registry's (its host and port, over the
//! scheme chosen for it), a token realm that the registry's own challenge named, and
//! everything else (redirect targets). This module answers the first question, and
//! whether a URL may carry a secret at all; which secret goes where is the auth
//! session's business (`session.rs`), on top of these answers.

use url::Url;

use crate::reference::{is_loopback_host, Reference};
use crate::Action;

use super::Engine;

/// How the registry is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scheme {
    Https,
    Http,
}

/// The registry's origin, after the scheme decision.
#[derive(Clone, Debug)]
pub(super) struct RegistryOrigin {
    /// `host[:port]` to connect to.
    host: String,
    /// The scheme now in use (a loopback registry may fall back to http once).
    scheme: Scheme,
    /// The user asked for plain http (`--plain-http`).
    plain_http: bool,
    /// The host is on this machine.
    loopback: bool,
}

impl RegistryOrigin {
    /// The origin of `reference`'s registry.
    pub(super) fn new(reference: &Reference, plain_http: bool) -> RegistryOrigin {
        RegistryOrigin {
            host: reference.api_host().to_string(),
            scheme: if plain_http {
                Scheme::Http
            } else {
                Scheme::Https
            },
            plain_http,
            loopback: reference.is_loopback(),
        }
    }

    /// `scheme://host[:port]/`.
    pub(super) fn url(&self) -> Url {
        let scheme = match self.scheme {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        Url::parse(&format!("{scheme}://{}/", self.host)).expect("validated host gives a valid URL")
    }

    /// The loopback registry does not speak TLS: use plain http from now on. True when
    /// this changed the scheme.
    pub(super) fn fall_back_to_http(&mut self) -> bool {
        let changed = self.scheme == Scheme::Https;
        self.scheme = Scheme::Http;
        changed
    }

    /// Is the scheme decided? Not for a loopback registry still probed over https (it
    /// may speak plain http, see [`RegistryOrigin::fall_back_to_http`]).
    fn scheme_settled(&self) -> bool {
        !(self.loopback && !self.plain_http && self.scheme == Scheme::Https)
    }

    /// Is `url` on the registry's origin? (A loopback registry not forced to plain http
    /// counts under both schemes: it may be probed over https and fall back.)
    pub(super) fn contains(&self, url: &Url) -> bool {
        let registry = self.url();
        url.host_str().is_some()
            && host_port(url).eq_ignore_ascii_case(&self.host)
            && (url.scheme() == registry.scheme() || (self.loopback && !self.plain_http))
    }

    /// May a secret (a password, a token) travel to `url` at all? Over https, to this
    /// machine, or to the registry's own host when the user chose plain http for it.
    pub(super) fn may_carry_secrets(&self, url: &Url) -> bool {
        url.scheme() == "https"
            || is_loopback_host(&host_port(url))
            || (self.plain_http && host_port(url).eq_ignore_ascii_case(&self.host))
    }
}

impl Engine {
    /// `scheme://host[:port]/` of the registry, after the scheme decision.
    pub(crate) fn registry_url(&self) -> Url {
        self.origin.url()
    }

    /// Tells the transport that up to `connections` more requests to the registry will
    /// be wanted at once soon ([`Action::Prepare`]), right after the requests ready now
    /// are sent (so the first request's own connection comes first). Not while the
    /// scheme is undecided: connections opened for the wrong one would be wasted.
    pub(crate) fn prepare(&mut self, connections: usize) {
        if connections > 0 && self.origin.scheme_settled() {
            self.prepare = Some(Action::Prepare {
                origin: self.origin.url(),
                connections,
            });
        }
    }

    /// Is `url` on the registry's origin?
    pub(crate) fn is_registry_origin(&self, url: &Url) -> bool {
        self.origin.contains(url)
    }

    /// May credentials (a password, or a token over plain http) go to `url`?
    pub(super) fn may_send_credentials(&self, url: &Url) -> bool {
        self.origin.may_carry_secrets(url)
    }
}

/// `host[:port]` of a URL, IPv6 hosts in brackets.
pub(super) fn host_port(u: &Url) -> String {
    let host = match u.host() {
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        Some(h) => h.to_string(),
        None => String::new(),
    };
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// `scheme://host[:port]` of a URL: what an error may name of a foreign origin.
pub(super) fn origin_of(u: &Url) -> String {
    format!("{}://{}", u.scheme(), host_port(u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(reference: &str, plain_http: bool) -> RegistryOrigin {
        RegistryOrigin::new(&Reference::parse(reference).unwrap(), plain_http)
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn the_registry_origin_is_host_port_and_scheme() {
        let o = origin("reg.test/a/b:v1", false);
        assert_eq!(o.url().as_str(), "https://reg.test/");
        assert!(o.contains(&url("https://reg.test/v2/a/b/blobs/x")));
        assert!(o.contains(&url("https://REG.test/v2/")));
        assert!(!o.contains(&url("http://reg.test/v2/")), "another scheme");
        assert!(
            !o.contains(&url("https://reg.test:444/v2/")),
            "another port"
        );
        assert!(
            !o.contains(&url("https://cdn.reg.test/v2/")),
            "another host"
        );
        let plain = origin("reg.test:5000/a/b", true);
        assert!(plain.contains(&url("http://reg.test:5000/v2/")));
        assert!(!plain.contains(&url("https://reg.test:5000/v2/")));
    }

    #[test]
    fn a_loopback_registry_counts_under_both_schemes_and_falls_back_once() {
        let mut o = origin("127.0.0.1:5000/a/b", false);
        assert!(o.contains(&url("https://127.0.0.1:5000/v2/")));
        assert!(o.contains(&url("http://127.0.0.1:5000/v2/")));
        assert!(o.fall_back_to_http());
        assert!(!o.fall_back_to_http());
        assert_eq!(o.url().as_str(), "http://127.0.0.1:5000/");
    }

    #[test]
    fn secrets_travel_over_https_to_loopback_or_to_a_chosen_plain_http_registry() {
        let o = origin("reg.test/a/b", false);
        assert!(o.may_carry_secrets(&url("https://auth.test/token")));
        assert!(o.may_carry_secrets(&url("http://127.0.0.1:9/token")));
        assert!(o.may_carry_secrets(&url("http://[::1]:9/token")));
        assert!(!o.may_carry_secrets(&url("http://reg.test/v2/")));
        let plain = origin("reg.test/a/b", true);
        assert!(plain.may_carry_secrets(&url("http://reg.test/v2/")));
        assert!(!plain.may_carry_secrets(&url("http://auth.test/token")));
    }
}
