//! The keeper's side of DPoP (`dpop`, RFC 9449): which key the session's
//! tokens are bound to, when a key is made, taken from a tab or dropped,
//! what each request's proof claims ([`crate::dpop`]), the nonces servers
//! hand out (per origin), and the one retry a nonce earns. The private keys
//! are the executor's, by thumbprint: it holds exactly the ones named here.

use super::{CallId, Command, Disc, Keeper, Reply};
use crate::config::Dpop;
use crate::dpop::{self, Key, Proof};
use crate::error::Error;
use crate::token::RawGrant;
use alloc::string::String;
use alloc::vec::Vec;

/// The most origins whose nonce is kept (the oldest goes first).
pub const MAX_NONCE_ORIGINS: usize = 16;

/// What became of a `login()`'s answer.
pub(super) enum LoginAnswer {
    /// A login without DPoP.
    Plain,
    /// Sent again with the nonce the endpoint asked for.
    Resent,
    /// A DPoP login's answer, to be taken (its tokens bound to the key).
    Done(Option<Key>),
}

/// A `fetch()` waiting for its token: what its proof will say.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Request {
    call: CallId,
    url: String,
    method: String,
}

/// A `login()` of a DPoP keeper: waits for its key, then for its answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Login {
    pub(super) call: CallId,
    url: String,
    body: String,
    pub(super) key: Option<Key>,
    /// Sent again once with a nonce the endpoint asked for.
    pub(super) retried: bool,
}

/// The keeper's DPoP state.
#[derive(Debug, Default)]
pub(super) struct Proofs {
    /// The keys the executor holds (made for a login, or taken from a tab).
    held: Vec<Key>,
    /// The latest nonce of each origin, the newest last.
    nonces: Vec<(String, String)>,
    /// The last access token hashed, and its `ath`.
    ath: Option<(String, String)>,
    /// `fetch()` calls waiting for a token, with what their proofs say.
    requests: Vec<Request>,
    /// `login()` calls of a DPoP keeper.
    pub(super) logins: Vec<Login>,
}

/// Why a key could not be used.
const NO_KEY: &str = "the browser made no usable ECDSA P-256 key (WebCrypto needs a secure \
context: https, or http on localhost)";

impl Keeper {
    /// Whether the tokens are bound to a DPoP key: `dpop: true`, or
    /// `"auto"` with a provider whose discovery lists ES256 proofs.
    pub(super) fn dpop_on(&self) -> bool {
        match self.settings.dpop {
            Dpop::Off => false,
            Dpop::On => true,
            Dpop::Auto => matches!(&self.discovery, Disc::Done(d) if d.dpop),
        }
    }

    /// The `DPoP` proof of a request to `url` by `key`, with the nonce its
    /// origin gave last, the server's clock and a fresh `jti`.
    pub(super) fn proof_by(
        &mut self,
        now: f64,
        key: &Key,
        method: &str,
        url: &str,
        access: Option<&str>,
    ) -> Proof {
        let mut jti = [0u8; 16];
        for b in jti.iter_mut() {
            *b = (self.random() * 256.0) as u8;
        }
        let jti = crate::oidc::base64url(&jti);
        let ath = access.map(|a| self.ath(a));
        let server_now = now - self.session.skew().unwrap_or(0.0);
        let nonce = self.nonce_for(url).map(String::from);
        dpop::proof(
            key,
            &dpop::Claims {
                method,
                url,
                iat: server_now / 1000.0,
                jti: &jti,
                ath: ath.as_deref(),
                nonce: nonce.as_deref(),
            },
        )
    }

    /// The proof of a request with the session's key (none without one).
    pub(super) fn session_proof(
        &mut self,
        now: f64,
        method: &str,
        url: &str,
        access: Option<&str>,
    ) -> Option<Proof> {
        if !self.dpop_on() {
            return None;
        }
        let key = self.session.tokens().and_then(|t| t.key.clone())?;
        Some(self.proof_by(now, &key, method, url, access))
    }

    /// The access token's `ath`, hashed once per token.
    fn ath(&mut self, access: &str) -> String {
        match &self.proofs.ath {
            Some((token, ath)) if token == access => ath.clone(),
            _ => {
                let ath = dpop::ath(access);
                self.proofs.ath = Some((access.into(), ath.clone()));
                ath
            }
        }
    }

    /// Whether a nonce is known for `url`'s origin.
    pub(super) fn nonce_known(&self, url: &str) -> bool {
        self.nonce_for(url).is_some()
    }

    fn nonce_for(&self, url: &str) -> Option<&str> {
        let origin = dpop::origin(url)?;
        self.proofs
            .nonces
            .iter()
            .find(|(o, _)| o == origin)
            .map(|(_, n)| n.as_str())
    }

    /// A server at `url` gave `nonce` (a `DPoP-Nonce` header): the next
    /// proof to its origin carries it. Anything that is no nonce is ignored.
    /// (A keeper without DPoP keeps them too, unused: a few entries.)
    pub fn handle_nonce(&mut self, url: &str, nonce: &str) {
        let (Some(origin), Some(nonce)) = (dpop::origin(url), dpop::nonce(nonce)) else {
            return;
        };
        self.proofs.nonces.retain(|(o, _)| o != origin);
        if self.proofs.nonces.len() >= MAX_NONCE_ORIGINS {
            let mut first = true;
            self.proofs.nonces.retain(|_| !core::mem::take(&mut first));
        }
        self.proofs.nonces.push((origin.into(), nonce.into()));
    }

    /// A token endpoint answered `call` (0: the refresh) with a `DPoP-Nonce`.
    pub fn handle_token_nonce(&mut self, call: CallId, nonce: &str) {
        let url = match self.proofs.logins.iter().find(|l| l.call == call) {
            Some(login) => login.url.clone(),
            // The refresh and the code exchange go to the token endpoint.
            None => self.settings.refresh_url.clone(),
        };
        self.handle_nonce(&url, nonce);
    }

    /// Whether a failed token request asked for a nonce (and one is known
    /// for `url` now): sent again once, with it.
    pub(super) fn wants_nonce(&self, url: &str, status: u16, oauth_error: Option<&str>) -> bool {
        self.dpop_on()
            && status == 400
            && oauth_error == Some(dpop::USE_DPOP_NONCE)
            && self.nonce_for(url).is_some()
    }

    /// A `fetch()` of a DPoP session: its token comes with a proof for
    /// `method` and `url`.
    pub(super) fn expect_proof(&mut self, call: CallId, url: &str, method: &str) {
        if self.dpop_on() {
            self.proofs.requests.push(Request {
                call,
                url: url.into(),
                method: method.into(),
            });
        }
    }

    /// The proof a `fetch()` call's token goes with, if it needs one; the
    /// call no longer waits for it.
    pub(super) fn proof_for_call(&mut self, now: f64, call: CallId, access: &str) -> Option<Proof> {
        let request = self.take_request(call)?;
        self.session_proof(now, &request.method, &request.url, Some(access))
    }

    fn take_request(&mut self, call: CallId) -> Option<Request> {
        super::take_first(&mut self.proofs.requests, |r| r.call == call)
    }

    /// A `fetch()` call ended some other way.
    pub(super) fn forget_request(&mut self, call: CallId) {
        if !self.proofs.requests.is_empty() {
            self.take_request(call);
        }
    }

    /// `login(url, credentials)`, its arguments checked: sends the
    /// credentials, with a proof by a new key when the session is to be a
    /// DPoP one (made first: [`Keeper::key_made`]).
    pub fn login(&mut self, call: CallId, checked: Result<(String, String), Error>) {
        let (url, body) = match checked.and_then(|c| self.open().map(|()| c)) {
            Ok(c) => c,
            Err(e) => return self.settle(call, Reply::Failed(e)),
        };
        if let Err(e) = self.discovered() {
            return self.settle(call, Reply::Failed(e));
        }
        if self.dpop_on() {
            self.proofs.logins.push(Login {
                call,
                url,
                body,
                key: None,
                retried: false,
            });
            return self.out.push_back(Command::MakeKey { call });
        }
        self.out.push_back(Command::Login {
            call,
            url,
            body,
            proof: None,
        });
    }

    /// Sends a DPoP login's request (again, with a nonce).
    fn send_login(&mut self, now: f64, login: &Login) {
        let Some(key) = &login.key else { return };
        let proof = self.proof_by(now, key, "POST", &login.url, None);
        self.out.push_back(Command::Login {
            call: login.call,
            url: login.url.clone(),
            body: login.body.clone(),
            proof: Some(proof),
        });
    }

    /// The executor made the key `call` waits for (`None`: it could not):
    /// its public half's coordinates. The thumbprint the executor is to
    /// keep its private half under, when the key is taken.
    pub fn key_made(
        &mut self,
        now: f64,
        call: CallId,
        public: Option<(&str, &str)>,
    ) -> Option<String> {
        let waits = self
            .proofs
            .logins
            .iter()
            .any(|l| l.call == call && l.key.is_none())
            || self.exchange_waits_for_key(call);
        if !waits || self.freed {
            return None;
        }
        let Some(key) = public.and_then(|(x, y)| dpop::key(x, y)) else {
            self.proofs.logins.retain(|l| l.call != call);
            self.drop_exchange(call);
            self.settle(
                call,
                Reply::Failed(Error::DpopUnsupported { reason: NO_KEY }),
            );
            return None;
        };
        let jkt = key.jkt.clone();
        if !self.proofs.held.contains(&key) {
            self.proofs.held.push(key.clone());
        }
        let mut login = None;
        for l in self.proofs.logins.iter_mut() {
            if l.call == call {
                l.key = Some(key.clone());
                login = Some(l.clone());
            }
        }
        match login {
            Some(login) => self.send_login(now, &login),
            None => self.send_exchange(now, call, key),
        }
        Some(jkt)
    }

    /// The answer to `login()`'s `call`: a DPoP login is sent again once
    /// when the answer asks for a nonce; otherwise it ends, with its key.
    pub(super) fn login_answered(
        &mut self,
        now: f64,
        call: CallId,
        status: Option<(u16, Option<&str>)>,
    ) -> LoginAnswer {
        let Some(login) = self.proofs.logins.iter().find(|l| l.call == call).cloned() else {
            return LoginAnswer::Plain;
        };
        if let Some((status, error)) = status {
            if !login.retried && self.wants_nonce(&login.url, status, error) {
                self.send_login(now, &login);
                for l in self.proofs.logins.iter_mut().filter(|l| l.call == call) {
                    l.retried = true;
                }
                return LoginAnswer::Resent;
            }
        }
        self.proofs.logins.retain(|l| l.call != call);
        LoginAnswer::Done(login.key)
    }

    /// A token response's `token_type` against what was asked for: DPoP
    /// tokens when the request carried a proof, never DPoP ones otherwise.
    /// Never silently downgraded, never silently taken.
    pub(super) fn check_token_type(grant: &RawGrant, proved: bool) -> Result<(), Error> {
        let dpop = grant
            .token_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("dpop"));
        match (proved, dpop) {
            (true, false) => Err(Error::InvalidTokenResponse {
                reason: "the token_type is not DPoP: the server did not bind the tokens to the key",
            }),
            (false, true) => Err(Error::InvalidTokenResponse {
                reason: "the token_type is DPoP, but this keeper has dpop off",
            }),
            _ => Ok(()),
        }
    }

    /// Whether a session another tab sent can be taken: a DPoP keeper
    /// takes only one bound to a key that came with the message (`has_key`),
    /// any other only one without a key.
    pub(super) fn takes_key(&self, key: Option<&Key>, has_key: bool) -> bool {
        if self.dpop_on() {
            key.is_some() && has_key
        } else {
            key.is_none()
        }
    }

    /// A session taken from a tab is bound to `key`: the executor keeps
    /// the key that came with the message.
    pub(super) fn take_key(&mut self, key: Option<&Key>) {
        if let Some(key) = key {
            if !self.proofs.held.contains(key) {
                self.proofs.held.push(key.clone());
                self.out.push_back(Command::TakeKey {
                    jkt: key.jkt.clone(),
                });
            }
        }
    }

    /// `free()`: the logins and code exchanges that wait for a key end
    /// (the key would come to a keeper that does nothing more), and the
    /// executor keeps no key.
    pub(super) fn free_keys(&mut self) {
        for login in core::mem::take(&mut self.proofs.logins) {
            self.settle(login.call, Reply::Failed(Error::Freed));
        }
        let waiting: Vec<CallId> = self
            .exchanges
            .iter()
            .filter(|e| self.exchange_waits_for_key(e.call))
            .map(|e| e.call)
            .collect();
        for call in waiting {
            self.drop_exchange(call);
            self.settle(call, Reply::Failed(Error::Freed));
        }
        self.prune_keys();
    }

    /// Drops every key the executor holds that nothing uses any more: not
    /// the session's, not a login's or an exchange's in flight.
    pub(super) fn prune_keys(&mut self) {
        if self.proofs.held.is_empty() {
            return;
        }
        let session = self.session.tokens().and_then(|t| t.key.clone());
        let mut used: Vec<Key> = session.into_iter().collect();
        used.extend(self.proofs.logins.iter().filter_map(|l| l.key.clone()));
        used.extend(self.exchange_keys());
        let mut dropped = Vec::new();
        self.proofs.held.retain(|k| {
            let keep = used.contains(k);
            if !keep {
                dropped.push(k.jkt.clone());
            }
            keep
        });
        for jkt in dropped {
            self.out.push_back(Command::DropKey { jkt });
        }
    }
}
