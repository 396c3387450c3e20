//! The keeper's side of an OpenID provider (`issuer`): its discovery, the
//! login by redirect and its callback, the code exchange, the checks of
//! every ID token, and the logout at the provider. What each step checks is
//! in [`crate::oidc`]; here is when each step is taken.

use super::{CallId, Command, Disc, Keeper, LogoutNotice, Reply, Source, TokenAnswer};
use crate::config::Dpop;
use crate::dpop::Key;
use crate::error::Error;
use crate::oidc::{self, Expect, LoginOptions, Transaction};
use crate::protocol;
use crate::token::{self, Timing, TokenSet};
use crate::value::OptValue;
use alloc::string::String;
use alloc::vec::Vec;

/// Why `refresh()` cannot renew an OpenID session without a refresh token.
pub(super) const NO_REFRESH_TOKEN: &str =
    "the identity provider issued no refresh token (ask for offline_access; see the README)";

/// A call that waits for the discovery document.
#[derive(Debug, PartialEq)]
pub(super) enum Pending {
    /// `ready()`.
    Ready(CallId),
    /// `loginRedirect()`, its arguments checked.
    Login {
        call: CallId,
        random: Vec<u8>,
        return_to: String,
        options: LoginOptions,
    },
    /// `handleRedirect()` with a code to exchange.
    Exchange {
        call: CallId,
        code: String,
        iss: Option<String>,
        tx: Transaction,
    },
}

impl Pending {
    pub(super) fn call(&self) -> CallId {
        match self {
            Pending::Ready(call) | Pending::Login { call, .. } | Pending::Exchange { call, .. } => {
                *call
            }
        }
    }
}

/// A code exchange out, and what its answer is checked against.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Exchange {
    pub(super) call: CallId,
    nonce: String,
    return_to: String,
    code: String,
    verifier: String,
    /// With DPoP: the session-to-be's key (`None` while it is made).
    key: Option<Key>,
    /// Sent again once with a DPoP nonce the endpoint asked for.
    retried: bool,
}

fn needs_issuer(method: &str) -> Error {
    let mut reason = String::from("is needed by ");
    reason.push_str(method);
    Error::option("issuer", &reason)
}

impl Keeper {
    /// Asks for the discovery document, when there is a provider and it is
    /// neither read nor asked for already.
    pub(super) fn discover(&mut self) {
        let Some(oidc) = &self.settings.oidc else {
            return;
        };
        if matches!(self.discovery, Disc::Pending | Disc::Done(_)) {
            return;
        }
        let url = oidc::discovery_url(&oidc.issuer);
        self.discovery = Disc::Pending;
        self.out.push_back(Command::Discover { url });
    }

    /// Parks `pending` until the discovery is read (asking for it again
    /// after a failure), or hands it back when it is read, or not needed.
    pub(super) fn until_discovered(&mut self, pending: Pending) -> Option<Pending> {
        match self.discovery {
            Disc::NotNeeded | Disc::Done(_) => Some(pending),
            Disc::Pending | Disc::Failed(_) => {
                self.discover();
                self.after_discovery.push(pending);
                None
            }
        }
    }

    /// Goes on with a call that waited for the discovery (or needed none).
    fn resume(&mut self, now: f64, pending: Pending) {
        match pending {
            Pending::Ready(call) => self.ready(now, call),
            Pending::Login {
                call,
                random,
                return_to,
                options,
            } => self.navigate(now, call, &random, return_to, &options),
            Pending::Exchange {
                call,
                code,
                iss,
                tx,
            } => self.exchange(call, code, iss, tx),
        }
    }

    /// Forgets a login's transaction left longer than a login may take;
    /// whether it did.
    fn forget_stale(&mut self, tx: Option<&Transaction>, now: f64) -> bool {
        let stale = tx.is_some_and(|t| oidc::is_stale(t, now));
        if stale {
            self.out.push_back(Command::Forget);
        }
        stale
    }

    /// `Ok` unless a provider's endpoints are not known yet.
    pub(super) fn discovered(&self) -> Result<(), Error> {
        match &self.discovery {
            Disc::NotNeeded | Disc::Done(_) => Ok(()),
            Disc::Failed(e) => Err(e.clone()),
            Disc::Pending => Err(Error::DiscoveryFailed {
                reason: "not finished yet: await ready() first".into(),
            }),
        }
    }

    /// Whether tokens another tab sent may be taken: with a provider, only
    /// once its endpoints are known, and only with an ID token of this
    /// client from this issuer.
    pub(super) fn takes_from_tab(&self, tokens: &TokenSet) -> bool {
        let Some(oidc) = &self.settings.oidc else {
            return true;
        };
        if !matches!(self.discovery, Disc::Done(_)) {
            return false;
        }
        let client_id = self.settings.client_id.as_deref().unwrap_or_default();
        tokens
            .id
            .as_deref()
            .is_none_or(|id| oidc::is_ours(id, &oidc.issuer, client_id))
    }

    /// Whether the session cannot be renewed: a provider's session without
    /// a refresh token.
    pub(super) fn cannot_refresh(&self) -> bool {
        self.settings.oidc.is_some()
            && self.session.is_authenticated()
            && self.session.refresh_token().is_none()
    }

    /// Checks the ID token a refresh brought (OIDC Core §12.2: same issuer,
    /// audience and subject, the first one's nonce if it has one), or keeps
    /// the current one when it brought none.
    pub(super) fn check_refreshed_id(
        &self,
        tokens: &mut TokenSet,
        timing: Timing,
    ) -> Result<(), Error> {
        let Some(oidc) = &self.settings.oidc else {
            return Ok(());
        };
        let previous = self.session.tokens().and_then(|t| t.id.clone());
        let Some(id) = tokens.id.as_deref() else {
            tokens.id = previous;
            return Ok(());
        };
        let sub = previous
            .as_deref()
            .and_then(|p| oidc::string_claim(p, "sub"));
        let nonce = previous
            .as_deref()
            .and_then(|p| oidc::string_claim(p, "nonce"));
        let expect = Expect {
            issuer: &oidc.issuer,
            client_id: self.settings.client_id.as_deref().unwrap_or_default(),
            nonce: nonce.as_deref(),
            nonce_required: false,
            sub: sub.as_deref(),
            server_now: timing.server_date,
        };
        oidc::check_id_token(id, &expect)
    }

    /// The session's ID token, when it came from a provider.
    pub fn id_token(&self) -> Option<&str> {
        self.session.tokens().and_then(|t| t.id.as_deref())
    }

    /// The discovery document's answer (`status` 0: none came): the
    /// provider's endpoints are known from now on, and the calls that
    /// waited for them go on — or fail with [`Error::DiscoveryFailed`].
    pub fn handle_discovery(&mut self, now: f64, status: u16, body: &OptValue) {
        let Some(oidc) = &self.settings.oidc else {
            return;
        };
        if self.discovery != Disc::Pending || self.freed {
            return;
        }
        let read = oidc::read_discovery(status, body, &oidc.issuer).and_then(|d| {
            if self.settings.dpop == Dpop::On && !d.dpop {
                return Err(Error::DpopUnsupported {
                    reason: "dpop is true, and the provider's discovery lists no DPoP \
                             algorithm tokenkeeper signs with (ES256)",
                });
            }
            Ok(d)
        });
        match read {
            Ok(d) => {
                self.settings.refresh_url = d.token_endpoint.clone();
                self.settings.logout_url = d.revocation_endpoint.clone();
                self.discovery = Disc::Done(d);
                for pending in core::mem::take(&mut self.after_discovery) {
                    self.resume(now, pending);
                }
            }
            Err(e) => {
                self.discovery = Disc::Failed(e.clone());
                for pending in core::mem::take(&mut self.after_discovery) {
                    self.settle(pending.call(), Reply::Failed(e.clone()));
                }
            }
        }
    }

    /// `loginRedirect(options)`: the page goes to the provider's
    /// authorization endpoint, with PKCE, `state` and `nonce` made of
    /// `random` ([`oidc::RANDOM_BYTES`] from `crypto.getRandomValues`). `here`
    /// is the page's path (where the app comes back by default).
    pub fn login_redirect(
        &mut self,
        now: f64,
        call: CallId,
        here: &str,
        random: &[u8],
        options: &OptValue,
    ) {
        let checked = self.open().and_then(|()| {
            let oidc = self
                .settings
                .oidc
                .as_ref()
                .ok_or_else(|| needs_issuer("loginRedirect()"))?;
            if random.len() < oidc::RANDOM_BYTES {
                return Err(Error::Browser {
                    during: "loginRedirect",
                    message: "crypto.getRandomValues gave too few bytes".into(),
                });
            }
            login_options(options, here, &oidc.origin)
        });
        let (return_to, options) = match checked {
            Ok(v) => v,
            Err(e) => return self.settle(call, Reply::Failed(e)),
        };
        let pending = Pending::Login {
            call,
            random: random.to_vec(),
            return_to,
            options,
        };
        if let Some(pending) = self.until_discovered(pending) {
            self.resume(now, pending);
        }
    }

    fn navigate(
        &mut self,
        now: f64,
        call: CallId,
        random: &[u8],
        return_to: String,
        options: &LoginOptions,
    ) {
        let (Some(oidc), Disc::Done(d)) = (&self.settings.oidc, &self.discovery) else {
            return self.settle(call, Reply::Failed(needs_issuer("loginRedirect()")));
        };
        let Some(tx) = oidc::new_transaction(random, now, return_to, &self.settings, oidc) else {
            return self.settle(call, Reply::Failed(needs_issuer("loginRedirect()")));
        };
        let url = oidc::authorize_url(d, &self.settings, oidc, &tx, options);
        self.out.push_back(Command::Navigate {
            call,
            url,
            transaction: tx,
        });
    }

    /// `handleRedirect()` on the page at `href`, with the login transaction
    /// the tab stored (`stored`, read from its `sessionStorage`): settles
    /// with [`Reply::Redirected`] — `None` when the page is no callback —
    /// or the callback's error. A callback's parameters leave the URL at
    /// once, whatever comes of it; its code is exchanged once.
    pub fn handle_redirect(&mut self, now: f64, call: CallId, href: &str, stored: &OptValue) {
        if self.freed {
            return self.settle(call, Reply::Failed(Error::Freed));
        }
        let Some(oidc) = self.settings.oidc.clone() else {
            return self.settle(call, Reply::Failed(needs_issuer("handleRedirect()")));
        };
        let tx = oidc::read_transaction(stored);
        let Some((params, clean)) = oidc::read_callback(href, &oidc.redirect_uri) else {
            // A login abandoned long ago is forgotten.
            self.forget_stale(tx.as_ref(), now);
            return self.settle(call, Reply::Redirected(None));
        };
        self.out.push_back(Command::History { url: clean });
        self.out.push_back(Command::Forget);
        let client_id = self.settings.client_id.as_deref().unwrap_or_default();
        if let Err(e) = oidc::check_callback(&params, tx.as_ref(), &oidc, client_id, now) {
            return self.settle(call, Reply::Failed(e));
        }
        // The provider's `error` (with a code or not) is the answer; a
        // callback has one or a code.
        let error = params.error;
        let (Some(code), Some(tx)) = (params.code.filter(|_| error.is_none()), tx) else {
            let e = Error::LoginFailed {
                status: 0,
                oauth_error: error,
                description: params.error_description,
            };
            return self.settle(call, Reply::Failed(e));
        };
        let pending = Pending::Exchange {
            call,
            code,
            iss: params.iss,
            tx,
        };
        if let Some(pending) = self.until_discovered(pending) {
            self.resume(now, pending);
        }
    }

    fn exchange(&mut self, call: CallId, code: String, iss: Option<String>, tx: Transaction) {
        let Disc::Done(d) = &self.discovery else {
            return self.settle(call, Reply::Failed(needs_issuer("handleRedirect()")));
        };
        if d.iss_parameter && iss.is_none() {
            let e = Error::InvalidCallback {
                reason: "the callback has no iss, which the provider promises (RFC 9207)",
            };
            return self.settle(call, Reply::Failed(e));
        }
        let dpop = self.dpop_on();
        self.exchanges.push(Exchange {
            call,
            nonce: tx.nonce,
            return_to: tx.return_to,
            code: code.clone(),
            verifier: tx.verifier.clone(),
            key: None,
            retried: false,
        });
        if dpop {
            // The key is made here, on the callback page: none survives
            // the redirect.
            return self.out.push_back(Command::MakeKey { call });
        }
        self.out.push_back(Command::Exchange {
            call,
            code,
            verifier: tx.verifier,
            proof: None,
        });
    }

    /// Whether the code exchange `call` waits for its DPoP key.
    pub(super) fn exchange_waits_for_key(&self, call: CallId) -> bool {
        self.exchanges
            .iter()
            .any(|e| e.call == call && e.key.is_none())
    }

    /// The code exchange `call` is given up (its key could not be made).
    pub(super) fn drop_exchange(&mut self, call: CallId) {
        self.exchanges.retain(|e| e.call != call);
    }

    /// The keys of the code exchanges in flight.
    pub(super) fn exchange_keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.exchanges.iter().filter_map(|e| e.key.clone())
    }

    /// Sends the code exchange `call` with a proof by `key` (again, after
    /// the endpoint asked for a nonce: the code was not used).
    pub(super) fn send_exchange(&mut self, now: f64, call: CallId, key: Key) {
        let Some(e) = self.exchanges.iter_mut().find(|e| e.call == call) else {
            return;
        };
        e.key = Some(key.clone());
        let (code, verifier) = (e.code.clone(), e.verifier.clone());
        let url = self.settings.refresh_url.clone();
        let proof = self.proof_by(now, &key, "POST", &url, None);
        self.out.push_back(Command::Exchange {
            call,
            code,
            verifier,
            proof: Some(proof),
        });
    }

    /// Sends a DPoP code exchange again when its answer asked for a nonce;
    /// whether it did.
    pub(super) fn exchange_retried(
        &mut self,
        now: f64,
        call: CallId,
        refused: Option<(u16, Option<&str>)>,
    ) -> bool {
        let Some((status, error)) = refused else {
            return false;
        };
        let url = self.settings.refresh_url.clone();
        let Some(e) = self.exchanges.iter_mut().find(|e| e.call == call) else {
            return false;
        };
        let Some(key) = e.key.clone().filter(|_| !e.retried) else {
            return false;
        };
        e.retried = true;
        if !self.wants_nonce(&url, status, error) {
            return false;
        }
        self.send_exchange(now, call, key);
        true
    }

    /// The token endpoint's answer to a code exchange.
    pub(super) fn exchanged(&mut self, now: f64, exchange: Exchange, answer: TokenAnswer) {
        let call = exchange.call;
        match self.login_tokens(exchange.nonce, exchange.key.is_some(), answer) {
            Ok(mut tokens) => {
                tokens.key = exchange.key;
                self.adopt(tokens, Some(protocol::first_generation(now)), Source::Login);
                self.out.push_back(Command::History {
                    url: exchange.return_to.clone(),
                });
                self.settle(call, Reply::Redirected(Some(exchange.return_to)));
                self.wake(now);
            }
            Err(e) => {
                self.settle(call, Reply::Failed(e));
                self.prune_keys();
            }
        }
    }

    /// The tokens of a code exchange's answer (with a DPoP proof when
    /// `proved`), their ID token checked.
    fn login_tokens(
        &self,
        nonce: String,
        proved: bool,
        answer: TokenAnswer,
    ) -> Result<TokenSet, Error> {
        self.open()?;
        let (grant, timing) = match answer {
            TokenAnswer::Grant { grant, timing } => (grant, timing),
            TokenAnswer::Failure { status: 0, .. } => {
                return Err(Error::Network { during: "login" })
            }
            TokenAnswer::Failure {
                malformed: Some(reason),
                ..
            } => return Err(Error::InvalidTokenResponse { reason }),
            TokenAnswer::Failure {
                status,
                oauth_error,
                ..
            } => {
                return Err(Error::LoginFailed {
                    status,
                    oauth_error,
                    description: None,
                })
            }
        };
        Self::check_token_type(&grant, proved)?;
        let tokens = token::accept_grant(grant, timing, None)?;
        let (Some(oidc), Some(id)) = (&self.settings.oidc, tokens.id.as_deref()) else {
            return Err(Error::InvalidIdToken {
                check: "the token response has no ID token (is openid in the scope?)",
            });
        };
        let expect = Expect {
            issuer: &oidc.issuer,
            client_id: self.settings.client_id.as_deref().unwrap_or_default(),
            nonce: Some(&nonce),
            nonce_required: true,
            sub: None,
            server_now: timing.server_date,
        };
        oidc::check_id_token(id, &expect)?;
        Ok(tokens)
    }

    /// `logoutRedirect(options)`: ends the session in every tab, and says
    /// what to revoke (as [`Keeper::logout`]) and where the page goes next:
    /// the provider's `end_session_endpoint` with `id_token_hint`,
    /// `client_id` and `post_logout_redirect_uri` (`target`, or the
    /// `postLogoutRedirectUri` option) — or straight to that URI when the
    /// provider has no such endpoint (or nowhere, without one).
    pub fn logout_redirect(
        &mut self,
        now: f64,
        target: Option<String>,
    ) -> Result<(Option<LogoutNotice>, Option<String>), Error> {
        self.open()?;
        let Some(oidc) = self.settings.oidc.clone() else {
            return Err(needs_issuer("logoutRedirect()"));
        };
        let end = match &self.discovery {
            Disc::Done(d) => d.end_session_endpoint.clone(),
            _ => None,
        };
        let id = self.id_token().map(String::from);
        let target = target.or(oidc.post_logout_redirect_uri);
        let notice = self.logout(now)?;
        let Some(mut url) = end else {
            return Ok((notice, target));
        };
        let mut first = !url.contains('?');
        let client_id = self.settings.client_id.clone().unwrap_or_default();
        for (key, value) in [
            ("id_token_hint", id.as_deref()),
            ("client_id", Some(client_id.as_str())),
            ("post_logout_redirect_uri", target.as_deref()),
        ] {
            if let Some(v) = value {
                oidc::param(&mut url, &mut first, key, v);
            }
        }
        Ok((notice, Some(url)))
    }

    /// A transaction left in the tab's storage (read when the keeper
    /// starts): whether it is older than a login may take, and so forgotten.
    pub fn stale_transaction(&mut self, now: f64, stored: &OptValue) -> bool {
        self.forget_stale(oidc::read_transaction(stored).as_ref(), now)
    }
}

/// `loginRedirect(options)`'s argument: where the app comes back (a path
/// of `origin`, given as one or as an absolute URL of it; `here` by
/// default) and the authorization request's parameters.
fn login_options(
    options: &OptValue,
    here: &str,
    origin: &str,
) -> Result<(String, LoginOptions), Error> {
    let entries: &[(String, OptValue)] = match options {
        OptValue::Undefined | OptValue::Null => &[],
        OptValue::Map(entries) => entries,
        _ => {
            return Err(Error::InvalidArgument {
                argument: "options",
                reason: "must be an object",
            })
        }
    };
    let mut return_to = None;
    let mut out = LoginOptions::default();
    for (key, value) in entries {
        let text = match value {
            OptValue::Undefined | OptValue::Null => continue,
            OptValue::Str(s) => Some(s),
            _ => None,
        };
        match (key.as_str(), text) {
            ("returnTo", Some(s)) => {
                // An absolute URL of the app's origin is its path (the
                // origin's own URL, with a query or not, its root).
                let path = match s.strip_prefix(origin) {
                    Some(p) if p.starts_with('/') => String::from(p),
                    Some(p) if p.is_empty() || p.starts_with(['?', '#']) => {
                        let mut root = String::from("/");
                        root.push_str(p);
                        root
                    }
                    _ => s.clone(),
                };
                if !oidc::is_return_path(&path) {
                    return Err(Error::InvalidArgument {
                        argument: "returnTo",
                        reason: "must be a path of this app's origin, such as \"/app\"",
                    });
                }
                return_to = Some(path);
            }
            ("prompt", Some(s)) => out.prompt = Some(s.clone()),
            ("loginHint", Some(s)) => out.login_hint = Some(s.clone()),
            ("authorizationParams", _) => {
                out.params = crate::config::params_option("authorizationParams", value)?
            }
            ("returnTo" | "prompt" | "loginHint", None) => {
                return Err(Error::InvalidArgument {
                    argument: "options",
                    reason: "returnTo, prompt and loginHint must be strings",
                })
            }
            _ => {
                return Err(Error::InvalidArgument {
                    argument: "options",
                    reason: "takes returnTo, prompt, loginHint and authorizationParams only",
                })
            }
        }
    }
    let return_to = return_to.unwrap_or_else(|| {
        String::from(if oidc::is_return_path(here) {
            here
        } else {
            "/"
        })
    });
    Ok((return_to, out))
}
