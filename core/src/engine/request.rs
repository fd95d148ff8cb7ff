//! Building and sending one request: URL (registry path, redirect target or token realm),
//! headers, and the credential the origin model allows.

use std::time::Instant;

use bytes::Bytes;
use http::{header, Request};
use url::Url;

use crate::auth::TokenProblem;
use crate::endpoint::Target;
use crate::error::{redact_url, Error};
use crate::time::later;

use super::auth::{sensitive, Credential};
use super::op::{Exchange, Incoming, OpId, OpState, OutBody, Precondition};
use super::Engine;
use crate::{Action, RequestId};

impl Engine {
    /// Where op `op` goes now: the redirect target it follows, its token realm (with the
    /// `GET` query), the URL the registry gave, or its endpoint on the registry.
    fn request_url(&self, op: OpId) -> Result<Url, Error> {
        let op = &self.ops[&op];
        if let Some(u) = &op.route.redirect {
            return Ok(u.clone());
        }
        match (&op.target, &op.exchange) {
            (Target::Realm(realm), Exchange::Token { slot, post }) => {
                let mut u = Url::parse(realm).map_err(|_| Error::Token {
                    realm: realm.chars().take(200).collect(),
                    problem: TokenProblem::RealmNotHttp,
                })?;
                if !post {
                    // GET: service and one scope parameter per scope
                    let key = &self.tokens[*slot].key;
                    let mut q = u.query_pairs_mut();
                    if let Some(s) = &key.service {
                        q.append_pair("service", s);
                    }
                    for s in &key.scopes {
                        q.append_pair("scope", s);
                    }
                }
                Ok(u)
            }
            (Target::Realm(realm), _) => Err(Error::InvalidUrl {
                url: realm.chars().take(200).collect(),
                reason: "a token realm is only asked for tokens".into(),
            }),
            (Target::Given(u), _) => Ok(u.clone()),
            (Target::Api(endpoint), _) => endpoint.url(
                &self.registry_url(),
                self.reference.repository(),
                &self.config.api_root,
                &self.config.api_query,
            ),
        }
    }

    /// Sends op `op_id`, or parks it until the token it needs is there.
    pub(super) fn send(&mut self, op_id: OpId, now: Instant) {
        let url = match self.request_url(op_id) {
            Ok(u) => u,
            Err(e) => return self.fail(e),
        };
        let is_token = matches!(self.ops[&op_id].exchange, Exchange::Token { .. });
        let credential = if is_token {
            Credential::Nothing
        } else {
            match self.registry_credential(&url, now) {
                Ok(Credential::WaitForToken(slot)) => {
                    self.set_state(op_id, Some(OpState::WaitingToken(slot)));
                    return;
                }
                Ok(c) => c,
                Err(e) => return self.fail(e),
            }
        };
        let method = self.ops[&op_id].method();
        let mut b = Request::builder().method(method.clone()).uri(url.as_str());
        b = b.header(header::USER_AGENT, self.config.user_agent.as_str());
        let mut body = Bytes::new();
        let mut sent_token = None;
        let mut sent_basic = false;
        let mut upload = None;
        let op = self.ops.get_mut(&op_id).expect("a ready op is live");
        match &mut op.exchange {
            Exchange::Call(c) => {
                if let Some(a) = c.accept {
                    b = b.header(header::ACCEPT, a);
                }
                if let Some(t) = &c.content_type {
                    b = b.header(header::CONTENT_TYPE, t.as_str());
                }
                if let Some(r) = &c.content_range {
                    b = b.header(header::CONTENT_RANGE, r.as_str());
                }
                if let Some((first, last)) = c.range {
                    b = b.header(header::RANGE, format!("bytes={first}-{last}"));
                }
                match &c.precondition {
                    Some(Precondition::Matches(etag)) => b = b.header(header::IF_MATCH, etag),
                    Some(Precondition::Absent) => b = b.header(header::IF_NONE_MATCH, "*"),
                    None => {}
                }
                let length = match &c.body {
                    OutBody::Empty => 0,
                    OutBody::Bytes(bytes) => {
                        body = bytes.clone();
                        bytes.len() as u64
                    }
                    OutBody::Blob { blob, offset, len } => {
                        upload = Some((*blob, *offset, *len));
                        *len
                    }
                };
                if c.method != http::Method::GET && c.method != http::Method::HEAD {
                    b = b.header(header::CONTENT_LENGTH, length);
                }
            }
            Exchange::Download { dl, .. } => {
                dl.begin_attempt();
                if let Some(r) = dl.range() {
                    b = b.header(header::RANGE, r);
                }
            }
            Exchange::Token { slot, post } => {
                let slot = *slot;
                let post = *post;
                let parts = match self.token_request(slot, &url, post) {
                    Ok(parts) => parts,
                    Err(e) => return self.fail(e),
                };
                if let Some(a) = parts.authorization {
                    b = b.header(header::AUTHORIZATION, sensitive(a.expose()));
                }
                if let Some(form) = parts.form {
                    b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                    body = Bytes::from(form);
                }
            }
        }
        if self.is_registry_origin(&url) {
            for (k, v) in &self.config.headers {
                b = b.header(k.as_str(), v.as_str());
            }
        }
        if let Credential::Header(value, token) = credential {
            b = b.header(header::AUTHORIZATION, value);
            sent_token = token;
            sent_basic = token.is_none();
        }
        let request = match b.body(body) {
            Ok(r) => r,
            Err(e) => {
                return self.fail(Error::InvalidUrl {
                    url: redact_url(&url),
                    reason: format!("cannot build a request: {e}"),
                })
            }
        };
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let op = self.ops.get_mut(&op_id).expect("a ready op is live");
        op.sent.token = sent_token;
        op.sent.basic = sent_basic;
        op.sent.url = Some(url);
        op.incoming = Incoming::default();
        let deadline = later(now, self.config.head_timeout);
        self.set_state(op_id, Some(OpState::InFlight { id, deadline }));
        self.in_flight.insert(id, op_id);
        self.out.push_back(match upload {
            Some((blob, offset, len)) => Action::Upload {
                id,
                request,
                blob,
                offset,
                len,
            },
            None => Action::Send { id, request },
        });
    }
}
