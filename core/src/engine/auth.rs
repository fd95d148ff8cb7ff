//! The auth session: token slots (one per realm, service and scope set), challenges,
//! token requests and their credentials.

use std::time::{Duration, Instant};

use http::{header, HeaderMap, HeaderValue};
use url::Url;

use crate::auth::{parse_token_response, Credentials, Secret, TokenProblem};
use crate::error::{redact_url, Error, StatusError};
use crate::reference::is_loopback_host;
use crate::time::later;

use super::op::{Exchange, Op, OpId, OpState, SentToken};
use super::origin::host_port;
use super::Engine;
use crate::endpoint::Target;

#[derive(Debug, PartialEq, Eq)]
pub(super) struct TokenKey {
    pub(super) realm: Url,
    pub(super) service: Option<String>,
    pub(super) scopes: Vec<String>,
}

#[derive(Debug)]
pub(super) struct TokenSlot {
    pub(super) key: TokenKey,
    pub(super) token: Option<(Secret, Instant)>,
    pub(super) generation: u64,
    pub(super) fetching: bool,
}

/// Identifies a token slot of the auth session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotId(usize);

/// The token slots, one per realm, service and scope set, found by key and never removed.
#[derive(Debug, Default)]
pub(super) struct TokenSlots(Vec<TokenSlot>);

impl std::ops::Index<SlotId> for TokenSlots {
    type Output = TokenSlot;
    fn index(&self, id: SlotId) -> &TokenSlot {
        &self.0[id.0]
    }
}

impl std::ops::IndexMut<SlotId> for TokenSlots {
    fn index_mut(&mut self, id: SlotId) -> &mut TokenSlot {
        &mut self.0[id.0]
    }
}

impl TokenSlots {
    /// The slot of `key`, added when there is none yet.
    fn find_or_add(&mut self, key: TokenKey) -> SlotId {
        if let Some(i) = self.0.iter().position(|t| t.key == key) {
            return SlotId(i);
        }
        self.0.push(TokenSlot {
            key,
            token: None,
            generation: 0,
            fetching: false,
        });
        SlotId(self.0.len() - 1)
    }
}

/// A token request's credential and body, as the origin rules allow them.
#[derive(Debug, Default)]
pub(super) struct TokenRequest {
    /// The `Authorization` value (Basic credentials to a realm the registry named).
    pub(super) authorization: Option<Secret>,
    /// The OAuth2 form (a refresh token), for a `POST`.
    pub(super) form: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RegistryAuth {
    None,
    Basic,
    Bearer(SlotId),
}

/// Tokens are renewed this long before they expire.
pub(super) const TOKEN_EARLY_RENEWAL: Duration = Duration::from_secs(5);
/// Authentication rounds (challenge answered, request sent again) one operation may
/// take over its whole life: a registry that keeps challenging cannot make it loop.
pub(super) const MAX_AUTH_ROUNDS: u32 = 8;
/// A token is renewed after a day at the latest, whatever its `expires_in` says.
pub(super) const TOKEN_MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What a registry request about to be sent carries, as the auth session decides it.
#[derive(Debug)]
pub(super) enum Credential {
    /// This `Authorization` value (and the token it carries, for bearer).
    Header(HeaderValue, Option<SentToken>),
    /// Nothing yet: the token of this slot is being fetched.
    WaitForToken(SlotId),
    /// No credential.
    Nothing,
}

impl Engine {
    /// Whether the registry asked for authentication (Basic, or a token) so far.
    pub(crate) fn authenticated(&self) -> bool {
        self.auth != RegistryAuth::None
    }

    /// The credential for a registry request to `url`. Only the registry's origin ever
    /// gets one; under bearer auth every request waits for a live token first (its fetch
    /// is started here), and Basic credentials over plain http off this machine are an
    /// error rather than silently dropped.
    pub(super) fn registry_credential(
        &mut self,
        url: &Url,
        now: Instant,
    ) -> Result<Credential, Error> {
        if let RegistryAuth::Bearer(slot) = self.auth {
            let live = self.tokens[slot]
                .token
                .as_ref()
                .is_some_and(|(_, exp)| later(now, TOKEN_EARLY_RENEWAL) < *exp);
            if !live {
                if !self.tokens[slot].fetching {
                    self.start_token_fetch(slot);
                }
                return Ok(Credential::WaitForToken(slot));
            }
        }
        if !self.is_registry_origin(url) {
            return Ok(Credential::Nothing);
        }
        match self.auth {
            RegistryAuth::Bearer(slot) if self.may_send_credentials(url) => {
                Ok(match &self.tokens[slot].token {
                    Some((t, _)) => Credential::Header(
                        sensitive(&format!("Bearer {}", t.expose())),
                        Some(SentToken {
                            slot,
                            generation: self.tokens[slot].generation,
                        }),
                    ),
                    None => Credential::Nothing,
                })
            }
            RegistryAuth::Basic => {
                if !self.may_send_credentials(url) {
                    return Err(Error::Insecure(format!(
                        "{} is plain http",
                        redact_url(url)
                    )));
                }
                Ok(match self.config.credentials.basic_header() {
                    Some(h) => Credential::Header(sensitive(h.expose()), None),
                    None => Credential::Nothing,
                })
            }
            _ => Ok(Credential::Nothing),
        }
    }

    pub(super) fn authenticate(
        &mut self,
        op_id: OpId,
        serr: StatusError,
        challenges: &[crate::auth::Challenge],
    ) {
        let unauthorized = |s: &Engine, serr: StatusError| Error::Unauthorized {
            registry: s.reference.registry().to_string(),
            repository: match s.reference.repository() {
                "" => "the catalog".to_string(),
                r => r.to_string(),
            },
            credentials_given: !matches!(s.config.credentials, crate::auth::Credentials::Anonymous),
            source: Box::new(serr),
        };
        let Some(op) = self.ops.get_mut(&op_id) else {
            return;
        };
        if matches!(op.exchange, Exchange::Token { .. })
            || op.auth.retried
            || op.auth.rounds >= MAX_AUTH_ROUNDS
        {
            return self.fail(unauthorized(self, serr));
        }
        op.auth.rounds += 1;
        let bearer = challenges
            .iter()
            .find(|c| c.is("bearer") && c.param("realm").is_some());
        if let Some(b) = bearer {
            let realm = match b
                .param("realm")
                .and_then(|r| self.registry_url().join(r).ok())
            {
                Some(r) if matches!(r.scheme(), "http" | "https") && r.host_str().is_some() => r,
                _ => {
                    return self.fail(Error::Token {
                        realm: b.param("realm").unwrap_or("").chars().take(200).collect(),
                        problem: TokenProblem::RealmNotHttp,
                    })
                }
            };
            // A realm on another origin than the registry's is trusted because the
            // registry named it, but never over plain http to a host off this machine.
            if realm.scheme() == "http"
                && !is_loopback_host(&host_port(&realm))
                && !self.may_send_credentials(&realm)
            {
                return self.fail(Error::Insecure(format!(
                    "token realm {} is plain http",
                    redact_url(&realm)
                )));
            }
            let mut scopes: Vec<String> = b
                .param("scope")
                .unwrap_or("")
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            // The scopes held only grow: a challenge from the same realm and service asks
            // for the old scopes plus its own. Not only on `insufficient_scope`: a probe
            // sent before any token can come back with a `pull` challenge after an upload
            // was refused for `pull,push`, and must not take the push back to a pull-only
            // token (the upload would be refused a second time).
            if let RegistryAuth::Bearer(cur) = self.auth {
                let key = &self.tokens[cur].key;
                if key.realm == realm && key.service.as_deref() == b.param("service") {
                    for s in &key.scopes {
                        if !scopes.contains(s) {
                            scopes.push(s.clone());
                        }
                    }
                }
            }
            let slot = self.token_slot(realm, b.param("service"), scopes);
            let op = self.ops.get_mut(&op_id).expect("checked above");
            if op.sent.token.is_some() {
                op.auth.retried = true;
            }
            let s = &mut self.tokens[slot];
            // The very token this request carried was refused: renew it. (A token of
            // another slot, refused for its scopes, says nothing about this one.)
            let this_token = SentToken {
                slot,
                generation: s.generation,
            };
            if op.sent.token == Some(this_token) && self.auth == RegistryAuth::Bearer(slot) {
                s.token = None;
            }
            self.auth = RegistryAuth::Bearer(slot);
            self.set_state(op_id, Some(OpState::Ready));
            return;
        }
        let basic = challenges.iter().any(|c| c.is("basic"));
        // A request sent before Basic was chosen (several go out at once) is answered
        // again with the credentials; one that carried them was refused for good.
        let sent_basic = self.ops.get(&op_id).is_some_and(|o| o.sent.basic);
        if basic && matches!(self.config.credentials, Credentials::Basic { .. }) && !sent_basic {
            self.auth = RegistryAuth::Basic;
            if let Some(op) = self.ops.get_mut(&op_id) {
                op.auth.retried = true;
            }
            self.set_state(op_id, Some(OpState::Ready));
            return;
        }
        self.fail(unauthorized(self, serr))
    }

    pub(super) fn token_slot(
        &mut self,
        realm: Url,
        service: Option<&str>,
        scopes: Vec<String>,
    ) -> SlotId {
        let scopes = canonical_scopes(scopes);
        self.tokens.find_or_add(TokenKey {
            realm,
            service: service.map(str::to_string),
            scopes,
        })
    }

    pub(super) fn start_token_fetch(&mut self, slot: SlotId) {
        self.tokens[slot].fetching = true;
        let post = matches!(self.config.credentials, Credentials::IdentityToken { .. });
        let exchange = Exchange::Token { slot, post };
        let realm = Target::Realm(self.tokens[slot].key.realm.to_string());
        self.add_op(Op::new(exchange, "token".into(), realm, OpState::Ready));
    }

    /// The Authorization header and form body of a token request to `url`: an error
    /// when the origin rules forbid the credential it would need.
    pub(super) fn token_request(
        &self,
        slot: SlotId,
        url: &Url,
        post: bool,
    ) -> Result<TokenRequest, Error> {
        let key = &self.tokens[slot].key;
        let same_origin = url.origin() == key.realm.origin();
        if post {
            if let Credentials::IdentityToken { token } = &self.config.credentials {
                if !self.may_send_credentials(url) || !same_origin {
                    return Err(Error::Insecure(format!(
                        "{} may not receive the identity token",
                        redact_url(url)
                    )));
                }
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("client_id", "ocireg");
                form.append_pair("refresh_token", token.expose());
                if let Some(s) = &key.service {
                    form.append_pair("service", s);
                }
                form.append_pair("scope", &key.scopes.join(" "));
                return Ok(TokenRequest {
                    authorization: None,
                    form: Some(form.finish()),
                });
            }
        }
        match self.config.credentials.basic_header() {
            Some(h) if same_origin => {
                if !self.may_send_credentials(url) {
                    return Err(Error::Insecure(format!(
                        "{} is plain http",
                        redact_url(url)
                    )));
                }
                Ok(TokenRequest {
                    authorization: Some(h),
                    form: None,
                })
            }
            _ => Ok(TokenRequest::default()),
        }
    }

    /// The token fetch of `slot` answered: store the token and wake the ops waiting
    /// for it.
    pub(super) fn on_token(
        &mut self,
        slot: SlotId,
        headers: &HeaderMap,
        body: &[u8],
        now: Instant,
    ) {
        let date = headers
            .get(header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .and_then(|d| d.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        match parse_token_response(body) {
            Ok(t) => {
                // A token that arrives already (nearly) expired is still used once: renewing
                // it at once would only fetch another such token, forever.
                // A lifetime the server chose is bounded both ways.
                let lifetime = t
                    .lifetime(date)
                    .clamp(TOKEN_EARLY_RENEWAL * 2, TOKEN_MAX_LIFETIME);
                let s = &mut self.tokens[slot];
                s.token = Some((t.token, later(now, lifetime)));
                s.generation += 1;
                s.fetching = false;
                let waiting: Vec<OpId> = self
                    .ops
                    .iter()
                    .filter(|(_, o)| matches!(o.state, OpState::WaitingToken(w) if w == slot))
                    .map(|(id, _)| *id)
                    .collect();
                for op in waiting {
                    self.set_state(op, Some(OpState::Ready));
                }
            }
            Err(problem) => {
                let realm = redact_url(&self.tokens[slot].key.realm);
                self.fail(Error::Token { realm, problem })
            }
        }
    }
}

/// Scopes in one form: the actions asked for each resource (`repository:name`) united
/// and sorted, so `pull` then `pull,push` then `push,pull` are one set, asked for once.
fn canonical_scopes(scopes: Vec<String>) -> Vec<String> {
    let mut by_resource: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    let mut other = Vec::new();
    for s in scopes {
        match s.rsplit_once(':') {
            Some((resource, actions)) if resource.contains(':') => {
                let set = by_resource.entry(resource.to_string()).or_default();
                set.extend(
                    actions
                        .split(',')
                        .filter(|a| !a.is_empty())
                        .map(str::to_string),
                );
            }
            _ => other.push(s),
        }
    }
    let mut out: Vec<String> = by_resource
        .into_iter()
        .map(|(r, a)| format!("{r}:{}", a.into_iter().collect::<Vec<_>>().join(",")))
        .chain(other)
        .collect();
    out.sort();
    out.dedup();
    out
}

pub(super) fn sensitive(v: &str) -> HeaderValue {
    let mut h = HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""));
    h.set_sensitive(true);
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn scopes_of_one_resource_are_one_scope() {
        let s = |v: &[&str]| super::canonical_scopes(v.iter().map(|x| x.to_string()).collect());
        assert_eq!(
            s(&[
                "repository:a/b:pull",
                "repository:a/b:pull,push",
                "repository:a/b:push,pull"
            ]),
            ["repository:a/b:pull,push"]
        );
        assert_eq!(
            s(&[
                "repository:x:pull",
                "repository:a/b:push",
                "registry:catalog:*"
            ]),
            [
                "registry:catalog:*",
                "repository:a/b:push",
                "repository:x:pull"
            ]
        );
        assert_eq!(s(&["odd"]), ["odd"]);
    }
}
