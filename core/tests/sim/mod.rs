//! A world for the keeper's native tests, in simulated time (quinn-proto's
//! test `Pair` is the model): several tabs, each a real [`Keeper`], a
//! message bus with a delivery delay, a FIFO Web Lock, and a model token
//! server with rotation and reuse detection. `run_until` jumps from one
//! moment something happens to the next.

#![allow(dead_code)]

use std::cell::Cell;
use std::collections::VecDeque;
use tokenkeeper_core::config::Settings;
use tokenkeeper_core::dpop::Proof;
use tokenkeeper_core::keeper::{
    Answered, CallId, Command, Env, Event, Keeper, LogoutNotice, Reply, TokenAnswer, REJECTED,
};
use tokenkeeper_core::testing::{TestUrls as Urls, TEST_ORIGIN};
use tokenkeeper_core::token::{RawGrant, Timing};
use tokenkeeper_core::value::OptValue;

mod json;
// (Each test crate uses what it needs of them.)
#[allow(unused_imports)]
pub use json::{encode, from_json};

thread_local! {
    /// Worlds made on this thread wake every tab at every step, due or not
    /// (a browser timer that fires early, a page event): nothing may change
    /// but what is due.
    pub static SPURIOUS_WAKEUPS: Cell<bool> = const { Cell::new(false) };
}

pub const T0: f64 = 1_700_000_000_000.0;
pub const ORIGIN: &str = TEST_ORIGIN;

/// Settings from `(option, value)` pairs (strings and numbers).
pub fn settings(pairs: &[(&str, OptValue)]) -> Settings {
    let mut entries = vec![("refreshUrl".to_string(), OptValue::Str("/token".into()))];
    for (k, v) in pairs {
        entries.retain(|(e, _)| e != k);
        entries.push((k.to_string(), v.clone()));
    }
    match Settings::from_options(&OptValue::Map(entries), &Urls) {
        Ok(s) => s,
        Err(e) => panic!("settings: {e}"),
    }
}

/// A fault the token server answers the next refresh with.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status (and OAuth error, and Retry-After seconds).
    Status(u16, Option<&'static str>, Option<f64>),
    /// The connection drops: no answer.
    Drop,
    /// The server rotates, but the answer is lost on the way.
    LostAfterRotate,
    /// A 200 whose body holds no access token.
    Malformed,
}

/// The timing of an answer that came back at once, at `t` (no `Date`).
pub fn instant(t: f64) -> Timing {
    Timing {
        sent_at: t,
        received_at: t,
        server_date: None,
        fresh: true,
    }
}

/// The model token server: one family of refresh tokens, rotated on every
/// use; presenting a used one revokes the family (RFC 9700 §4.14.2).
#[derive(Debug, Default)]
pub struct Server {
    pub access_ttl_s: f64,
    serial: u32,
    pub refresh_current: Option<String>,
    used: Vec<String>,
    /// Valid access tokens and their expiry (server clock = simulated clock).
    access: Vec<(String, f64)>,
    pub refresh_requests: u32,
    pub reuse_detected: u32,
    pub api_requests: u32,
    pub faults: VecDeque<Fault>,
    pub revoked: bool,
    /// An OpenID provider's ID tokens, when set: every grant carries one.
    pub provider: Option<Provider>,
    /// Authorization codes issued and not yet used, with their nonce.
    pub codes: Vec<(String, String)>,
    pub exchanges: u32,
    /// Grants carry no refresh token (a provider without `offline_access`).
    pub no_refresh_tokens: bool,
    /// DPoP (RFC 9449): a token request with a proof gets tokens bound to
    /// its key, and a bound token is honoured only with that key's proof.
    pub dpop: bool,
    /// Every proof must carry this nonce (the server's current one).
    pub dpop_nonce: Option<String>,
    /// Tokens bound to a key: (token, thumbprint).
    bound: Vec<(String, String)>,
    /// The proofs' `jti`s seen.
    jtis: Vec<String>,
    /// Proofs refused, and why (the last one).
    pub proofs_refused: u32,
    pub refused_why: Option<&'static str>,
    /// `use_dpop_nonce` answers.
    pub nonce_challenges: u32,
    /// Proofs accepted.
    pub proofs_accepted: u32,
    /// Checks proofs but answers with unbound Bearer tokens (a server
    /// that downgrades).
    pub bearer_answers: bool,
    /// The server's clock runs this far ahead of the browser's: its access
    /// tokens are JWTs whose `iat` says so, and proofs' `iat` are checked
    /// against it.
    pub clock_ahead_ms: f64,
    /// A new nonce after every proof (a server that keeps asking).
    pub nonce_every_proof: bool,
}

/// A proof as the executor sent it: the signing input, signed by the key
/// the executor holds under the proof's thumbprint (`signer`: that key's
/// real thumbprint; a server checks the signature against the header's key).
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    pub input: String,
    pub signer: String,
}

/// What a server's check of a proof found.
#[derive(Debug, Clone, PartialEq)]
pub enum ProofCheck {
    /// Good: by the key with this thumbprint.
    Good(String),
    /// The nonce is missing or stale.
    NeedsNonce,
    /// Refused.
    Bad(&'static str),
}

/// What the model server puts in its ID tokens.
#[derive(Debug, Clone)]
pub struct Provider {
    pub issuer: String,
    pub client_id: String,
    pub sub: String,
    /// The nonce of the login the next ID token answers.
    pub nonce: Option<String>,
    /// Whether a refresh's answer carries a new ID token.
    pub on_refresh: bool,
}

pub const ISSUER: &str = "https://idp.example";

/// An unsigned JWT with these claims (a JSON object's text).
pub fn jwt(claims: &str) -> String {
    use base64::Engine;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.sig",
        e.encode(r#"{"alg":"RS256"}"#),
        e.encode(claims)
    )
}

/// The discovery document of [`ISSUER`].
pub fn discovery_doc() -> OptValue {
    OptValue::from_json(
        Some(&format!(
            r#"{{"issuer":"{ISSUER}","authorization_endpoint":"{ISSUER}/auth","token_endpoint":"{ISSUER}/token",
        "revocation_endpoint":"{ISSUER}/revoke","end_session_endpoint":"{ISSUER}/end",
        "authorization_response_iss_parameter_supported":true,
        "code_challenge_methods_supported":["S256"],"response_types_supported":["code"]}}"#
        )),
        1 << 20,
    )
}

/// Settings of a keeper of [`ISSUER`]'s sessions (more options in `pairs`).
pub fn oidc_settings(pairs: &[(&str, OptValue)]) -> Settings {
    let mut entries = vec![
        ("issuer".to_string(), OptValue::Str(ISSUER.into())),
        ("clientId".to_string(), OptValue::Str("spa".into())),
        ("redirectUri".to_string(), OptValue::Str("/callback".into())),
        (
            "scope".to_string(),
            OptValue::Str("openid offline_access".into()),
        ),
    ];
    for (k, v) in pairs {
        entries.retain(|(e, _)| e != k);
        entries.push((k.to_string(), v.clone()));
    }
    match Settings::from_options(&OptValue::Map(entries), &Urls) {
        Ok(s) => s,
        Err(e) => panic!("settings: {e}"),
    }
}

impl Server {
    pub fn new(access_ttl_s: f64) -> Server {
        Server {
            access_ttl_s,
            ..Server::default()
        }
    }

    /// Checks a DPoP proof of a request (RFC 9449 §4.3, the signature as
    /// [`Signed`] says): its header and key, `htm`, `htu`, `iat` (60 s),
    /// `jti` (once), `ath` (with a token) and the nonce.
    pub fn check_proof(
        &mut self,
        now: f64,
        proof: &Signed,
        method: &str,
        url: &str,
        access: Option<&str>,
    ) -> ProofCheck {
        use tokenkeeper_core::dpop;
        let check = (|| {
            let mut parts = proof.input.split('.');
            let header: serde_json::Value =
                serde_json::from_str(&dpop::decoded(parts.next()?)?).ok()?;
            let claims: serde_json::Value =
                serde_json::from_str(&dpop::decoded(parts.next()?)?).ok()?;
            Some((header, claims))
        })();
        let Some((header, claims)) = check else {
            return ProofCheck::Bad("not a JWT");
        };
        if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" {
            return ProofCheck::Bad("typ or alg");
        }
        let jwk = &header["jwk"];
        if jwk["kty"] != "EC" || jwk["crv"] != "P-256" || !jwk["d"].is_null() {
            return ProofCheck::Bad("jwk");
        }
        let Some(key) = dpop::key(
            jwk["x"].as_str().unwrap_or_default(),
            jwk["y"].as_str().unwrap_or_default(),
        ) else {
            return ProofCheck::Bad("jwk coordinates");
        };
        if key.jkt != proof.signer {
            return ProofCheck::Bad("signature");
        }
        if claims["htm"] != method {
            return ProofCheck::Bad("htm");
        }
        if claims["htu"] != dpop::htu(url) {
            return ProofCheck::Bad("htu");
        }
        let iat = claims["iat"].as_f64().unwrap_or(f64::NAN);
        let server_now = now + self.clock_ahead_ms;
        if iat.is_nan() || (server_now / 1000.0 - iat).abs() > 60.0 || iat.fract() != 0.0 {
            return ProofCheck::Bad("iat");
        }
        let Some(jti) = claims["jti"].as_str().filter(|j| j.len() >= 16) else {
            return ProofCheck::Bad("jti");
        };
        if self.jtis.iter().any(|j| j == jti) {
            return ProofCheck::Bad("jti replayed");
        }
        self.jtis.push(jti.into());
        match access {
            Some(a) if claims["ath"] != dpop::ath(a).as_str() => return ProofCheck::Bad("ath"),
            None if !claims["ath"].is_null() => return ProofCheck::Bad("ath on a token request"),
            _ => {}
        }
        if self.nonce_every_proof {
            self.dpop_nonce = self.dpop_nonce.take().map(|n| format!("{n}+"));
        }
        if let Some(n) = &self.dpop_nonce {
            if claims["nonce"] != n.as_str() {
                return ProofCheck::NeedsNonce;
            }
        }
        ProofCheck::Good(key.jkt)
    }

    /// The key `token` is bound to, if it is.
    pub fn binding(&self, token: &str) -> Option<&str> {
        self.bound
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, k)| k.as_str())
    }

    /// A refused proof at a token endpoint.
    fn proof_refused(&mut self, why: &'static str) -> TokenAnswer {
        self.proofs_refused += 1;
        self.refused_why = Some(why);
        TokenAnswer::Failure {
            status: 400,
            oauth_error: Some("invalid_dpop_proof".into()),
            retry_after_ms: None,
            malformed: None,
        }
    }

    /// A token endpoint's check of a request's proof: the key to bind to
    /// (`Ok(None)`: no proof, Bearer tokens), or the answer refusing it.
    #[allow(clippy::result_large_err)]
    fn token_proof(
        &mut self,
        now: f64,
        proof: Option<&Signed>,
        url: &str,
    ) -> Result<Option<String>, TokenAnswer> {
        let Some(proof) = proof.filter(|_| self.dpop) else {
            return Ok(None);
        };
        match self.check_proof(now, proof, "POST", url, None) {
            ProofCheck::Good(jkt) => {
                self.proofs_accepted += 1;
                Ok(Some(jkt))
            }
            ProofCheck::NeedsNonce => {
                self.nonce_challenges += 1;
                Err(TokenAnswer::Failure {
                    status: 400,
                    oauth_error: Some("use_dpop_nonce".into()),
                    retry_after_ms: None,
                    malformed: None,
                })
            }
            ProofCheck::Bad(why) => Err(self.proof_refused(why)),
        }
    }

    /// A login (`login()`'s endpoint): a new family, bound to the proof's key.
    pub fn login_with(&mut self, now: f64, proof: Option<&Signed>, url: &str) -> TokenAnswer {
        match self.token_proof(now, proof, url) {
            Ok(jkt) => TokenAnswer::Grant {
                grant: self.issue_bound(now, jkt),
                timing: instant(now),
            },
            Err(answer) => answer,
        }
    }

    /// A new pair of tokens for the family, bound to `jkt` when there is one.
    pub fn issue_bound(&mut self, now: f64, jkt: Option<String>) -> RawGrant {
        let mut grant = self.issue(now);
        if self.bearer_answers {
            grant.token_type = Some("Bearer".into());
            return grant;
        }
        if let Some(jkt) = jkt {
            for t in [&grant.access_token, &grant.refresh_token]
                .into_iter()
                .flatten()
            {
                self.bound.push((t.clone(), jkt.clone()));
            }
            grant.token_type = Some("DPoP".into());
        }
        grant
    }

    /// A new pair of tokens for the family.
    pub fn issue(&mut self, now: f64) -> RawGrant {
        self.serial += 1;
        let access = if self.clock_ahead_ms != 0.0 {
            let iat = ((now + self.clock_ahead_ms) / 1000.0).floor();
            let exp = iat + self.access_ttl_s;
            jwt(&format!(
                r#"{{"sid":{},"iat":{iat},"exp":{exp}}}"#,
                self.serial
            ))
        } else {
            format!("at-{}", self.serial)
        };
        let refresh = format!("rt-{}", self.serial);
        self.access
            .push((access.clone(), now + self.access_ttl_s * 1000.0));
        self.refresh_current = Some(refresh.clone());
        let id_token = self.provider.as_mut().map(|p| {
            let nonce = p
                .nonce
                .take()
                .map_or(String::new(), |n| format!(r#","nonce":"{n}""#));
            jwt(&format!(
                r#"{{"iss":"{}","aud":"{}","sub":"{}","iat":{},"exp":{}{nonce}}}"#,
                p.issuer,
                p.client_id,
                p.sub,
                (now / 1000.0).floor(),
                (now / 1000.0).floor() + 3600.0
            ))
        });
        RawGrant {
            access_token: Some(access),
            refresh_token: (!self.no_refresh_tokens).then_some(refresh),
            expires_in: Some(self.access_ttl_s),
            id_token,
            token_type: None,
        }
    }

    /// A login at the provider: the code the callback carries, for `nonce`.
    pub fn authorize(&mut self, nonce: &str) -> String {
        let code = format!("code-{}", self.codes.len() + self.exchanges as usize + 1);
        self.codes.push((code.clone(), nonce.into()));
        code
    }

    /// The token endpoint's code exchange: a code works once.
    pub fn exchange(&mut self, now: f64, code: &str) -> TokenAnswer {
        self.exchange_with(now, code, None)
    }

    /// The code exchange with a DPoP proof (or none). A proof refused
    /// (a nonce asked for) leaves the code unused.
    pub fn exchange_with(&mut self, now: f64, code: &str, proof: Option<&Signed>) -> TokenAnswer {
        let jkt = match self.token_proof(now, proof, &format!("{ISSUER}/token")) {
            Ok(jkt) => jkt,
            Err(answer) => return answer,
        };
        self.exchanges += 1;
        let Some(i) = self.codes.iter().position(|(c, _)| c == code) else {
            return TokenAnswer::Failure {
                status: 400,
                oauth_error: Some("invalid_grant".into()),
                retry_after_ms: None,
                malformed: None,
            };
        };
        let (_, nonce) = self.codes.remove(i);
        if let Some(p) = &mut self.provider {
            p.nonce = Some(nonce);
        }
        TokenAnswer::Grant {
            grant: self.issue_bound(now, jkt),
            timing: instant(now),
        }
    }

    /// The token endpoint.
    pub fn refresh(&mut self, now: f64, token: Option<&str>) -> Option<TokenAnswer> {
        self.refresh_with(now, token, None, "https://app.example/token")
    }

    /// The token endpoint at `url`, with a DPoP proof (or none): a bound
    /// refresh token is honoured only with its key's proof, and a refused
    /// proof uses (and revokes) nothing.
    pub fn refresh_with(
        &mut self,
        now: f64,
        token: Option<&str>,
        proof: Option<&Signed>,
        url: &str,
    ) -> Option<TokenAnswer> {
        self.refresh_requests += 1;
        let fault = self.faults.pop_front();
        let timing = instant(now);
        match fault {
            Some(Fault::Drop) => return Some(TokenAnswer::no_answer()),
            Some(Fault::Malformed) => {
                return Some(TokenAnswer::Grant {
                    grant: RawGrant::default(),
                    timing,
                })
            }
            Some(Fault::Status(status, error, retry_after)) => {
                return Some(TokenAnswer::Failure {
                    status,
                    oauth_error: error.map(String::from),
                    retry_after_ms: retry_after.map(|s| s * 1000.0),
                    malformed: None,
                })
            }
            _ => {}
        }
        let refused = TokenAnswer::Failure {
            status: 400,
            oauth_error: Some("invalid_grant".into()),
            retry_after_ms: None,
            malformed: None,
        };
        let token = token?;
        if self.revoked {
            return Some(refused);
        }
        let jkt = match self.token_proof(now, proof, url) {
            Ok(jkt) => jkt,
            Err(answer) => return Some(answer),
        };
        if let Some(bound) = self.binding(token).map(String::from) {
            if jkt.as_deref() != Some(bound.as_str()) {
                return Some(self.proof_refused("the refresh token is bound to another key"));
            }
        }
        if self.refresh_current.as_deref() != Some(token) {
            if self.used.iter().any(|u| u == token) {
                self.reuse_detected += 1;
                self.revoked = true;
                self.access.clear();
            }
            return Some(refused);
        }
        self.used.push(token.into());
        let mut grant = self.issue_bound(now, jkt);
        if self.provider.as_ref().is_some_and(|p| !p.on_refresh) {
            grant.id_token = None;
        }
        if fault == Some(Fault::LostAfterRotate) {
            return Some(TokenAnswer::no_answer());
        }
        Some(TokenAnswer::Grant { grant, timing })
    }

    /// An API request with `access`: 200 when valid, 401 otherwise.
    pub fn api(&mut self, now: f64, access: &str) -> u16 {
        self.api_with(now, access, "Bearer ", None, &format!("{ORIGIN}/api/me"))
            .0
    }

    /// An API request to `url` with `access` after `prefix` (`"Bearer "`,
    /// `"DPoP "`) and a DPoP proof (or none): the status, and on a 401 the
    /// `WWW-Authenticate` challenge. A bound token needs the DPoP scheme
    /// and its key's proof.
    pub fn api_with(
        &mut self,
        now: f64,
        access: &str,
        prefix: &str,
        proof: Option<&Signed>,
        url: &str,
    ) -> (u16, Option<&'static str>) {
        self.api_requests += 1;
        if let Some(bound) = self.binding(access).map(String::from) {
            let Some(proof) = proof.filter(|_| prefix == "DPoP ") else {
                self.proofs_refused += 1;
                self.refused_why = Some("a bound token without its proof");
                return (401, Some(r#"DPoP error="invalid_token""#));
            };
            match self.check_proof(now, proof, "GET", url, Some(access)) {
                ProofCheck::Good(jkt) if jkt == bound => self.proofs_accepted += 1,
                ProofCheck::Good(_) => {
                    self.proofs_refused += 1;
                    self.refused_why = Some("another key's proof");
                    return (401, Some(r#"DPoP error="invalid_token""#));
                }
                ProofCheck::NeedsNonce => {
                    self.nonce_challenges += 1;
                    return (401, Some(r#"DPoP error="use_dpop_nonce""#));
                }
                ProofCheck::Bad(why) => {
                    self.proofs_refused += 1;
                    self.refused_why = Some(why);
                    return (401, Some(r#"DPoP error="invalid_dpop_proof""#));
                }
            }
        }
        match self.access.iter().find(|(a, _)| a == access) {
            Some((_, exp)) if now < *exp => (200, None),
            _ => (401, Some(r#"Bearer error="invalid_token""#)),
        }
    }

    /// Revokes one access token early (the server's own decision).
    pub fn revoke_access(&mut self, access: &str) {
        self.access.retain(|(a, _)| a != access);
    }
}

/// The answer to a request sent with the token of `generation` at `sent_at`:
/// no renewal, replayable, not yet replayed (change fields with `..`).
pub fn answered(generation: u64, status: u16, sent_at: f64, url: &str) -> Answered<'_> {
    Answered {
        generation,
        status,
        renewed: None,
        server_date: None,
        sent_at,
        replayable: true,
        replayed: false,
        url,
        method: "GET",
        nonce: None,
        challenge: None,
        nonce_replayed: false,
    }
}

/// One tab: its keeper and what it was told.
pub struct Tab {
    pub keeper: Keeper,
    pub replies: Vec<(CallId, Reply)>,
    pub events: Vec<Event>,
    pub open: bool,
    /// In the back-forward cache: no timer fires, messages to it are lost.
    pub frozen: bool,
    /// The browser commands of a provider's login (navigate, history,
    /// forget), in order.
    pub browser: Vec<Command>,
    /// The discovery document this tab's requests are answered with.
    pub discovery: Option<(u16, OptValue)>,
    /// The DPoP private keys the executor holds: (the name the keeper gave
    /// it, the real key's thumbprint).
    pub keys: Vec<(String, String)>,
    /// The browser has no WebCrypto: no key can be made.
    pub no_crypto: bool,
    /// Proofs this tab's executor could not sign (no key under the name).
    pub unsigned: u32,
}

impl Tab {
    pub fn events_of(&self, kind: &str) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| e.kind().as_str() == kind)
            .collect()
    }
    pub fn authenticated(&self) -> bool {
        self.keeper.session().is_authenticated()
    }
}

enum Pending {
    /// A message for tab `to` (with the DPoP key that travels beside it:
    /// the real key's thumbprint).
    Message {
        to: usize,
        data: OptValue,
        key: Option<String>,
    },
    /// A refresh answer for tab `to` (with the `DPoP-Nonce` it carried).
    Answer {
        to: usize,
        answer: TokenAnswer,
        nonce: Option<String>,
    },
    /// The DPoP key `call` of tab `to` waits for is made.
    KeyMade { to: usize, call: CallId },
    /// A lock grant for tab `to`.
    Grant { to: usize, contended: bool },
    /// The discovery document for tab `to`.
    Discovery { to: usize },
    /// A code exchange's answer for tab `to`.
    Exchanged {
        to: usize,
        call: CallId,
        answer: TokenAnswer,
        nonce: Option<String>,
    },
}

/// Tabs, bus, lock and server in one simulated clock.
pub struct World {
    pub now: f64,
    pub tabs: Vec<Tab>,
    pub server: Server,
    /// One-way delay of the token endpoint and of the channel, in ms.
    pub latency_ms: f64,
    pub bus_delay_ms: f64,
    pending: Vec<(f64, u64, Pending)>,
    seq: u64,
    /// Steps taken: a keeper that keeps asking for a moment already past
    /// would make the world spin.
    steps: u64,
    lock_holders: VecDeque<usize>,
    lock_queue: VecDeque<usize>,
    next_call: u32,
    pub locks: bool,
    spurious: bool,
    settings: Settings,
    /// Keys made so far (each a new key pair).
    keys_made: u32,
    /// The key that came with the message being handled.
    incoming: Option<String>,
}

impl World {
    pub fn new(settings: Settings, access_ttl_s: f64) -> World {
        World {
            now: T0,
            tabs: Vec::new(),
            server: Server::new(access_ttl_s),
            latency_ms: 20.0,
            bus_delay_ms: 2.0,
            pending: Vec::new(),
            seq: 0,
            steps: 0,
            lock_holders: VecDeque::new(),
            lock_queue: VecDeque::new(),
            next_call: 1,
            locks: true,
            spurious: SPURIOUS_WAKEUPS.with(Cell::get),
            settings,
            keys_made: 0,
            incoming: None,
        }
    }

    /// Opens a tab (with a channel; with Web Locks when `self.locks`).
    pub fn open_tab(&mut self) -> usize {
        let env = Env {
            tabs: true,
            locks: self.locks,
            seed: 1000 + self.tabs.len() as u64,
        };
        self.tabs.push(Tab {
            keeper: Keeper::new(self.settings.clone(), env),
            replies: Vec::new(),
            events: Vec::new(),
            open: true,
            frozen: false,
            browser: Vec::new(),
            discovery: None,
            keys: Vec::new(),
            no_crypto: false,
            unsigned: 0,
        });
        // As the executor's start: what the keeper asks for at once (an
        // OpenID provider's discovery).
        let tab = self.tabs.len() - 1;
        self.drain(tab);
        tab
    }

    /// The tab holding the Web Lock, if any.
    pub fn lock_holder(&self) -> Option<usize> {
        self.lock_holders.front().copied()
    }

    /// A tab logs in (the server issues a family).
    pub fn login(&mut self, tab: usize) {
        let grant = self.server.issue(self.now);
        let now = self.now;
        let timing = instant(now);
        let call = self.new_call();
        self.tabs[tab]
            .keeper
            .handle_login_answer(now, call, TokenAnswer::Grant { grant, timing });
        self.drain(tab);
        assert_eq!(self.reply(tab, call), Some(Reply::Done));
    }

    pub fn new_call(&mut self) -> CallId {
        self.next_call += 1;
        CallId(self.next_call)
    }

    /// Starts an app call in `tab`; its reply shows up in [`World::reply`].
    pub fn call(&mut self, tab: usize, f: impl FnOnce(&mut Keeper, f64, CallId)) -> CallId {
        let call = self.new_call();
        let now = self.now;
        f(&mut self.tabs[tab].keeper, now, call);
        self.drain(tab);
        call
    }

    /// The reply to `call`, once there is one.
    pub fn reply(&self, tab: usize, call: CallId) -> Option<Reply> {
        self.tabs[tab]
            .replies
            .iter()
            .find(|(c, _)| *c == call)
            .map(|(_, r)| r.clone())
    }

    /// Runs until `call` has its reply (or `max_ms` pass), and returns it.
    pub fn wait(&mut self, tab: usize, call: CallId, max_ms: f64) -> Option<Reply> {
        let deadline = self.now + max_ms;
        while self.reply(tab, call).is_none() && self.now < deadline {
            if !self.step(deadline) {
                break;
            }
        }
        self.reply(tab, call)
    }

    /// What an app's `keeper.fetch` to the API does: token, request, 401
    /// handling, replay. Returns the final status the app sees.
    pub fn api_call(&mut self, tab: usize, max_ms: f64) -> Result<u16, Reply> {
        let url = format!("{ORIGIN}/api/me");
        let call = self.call(tab, |k, now, id| k.fetch(now, id, &url, "cors", "GET"));
        let (generation, mut access, mut proof) = match self.wait(tab, call, max_ms) {
            Some(Reply::Token {
                generation,
                access,
                proof,
            }) => (generation, access, proof),
            Some(other) => return Err(other),
            None => return Err(Reply::Failed(tokenkeeper_core::Error::NotAuthenticated)),
        };
        let (mut replayed, mut nonce_replayed) = (false, false);
        // As the executor does: at most the replays the keeper asks for.
        for _ in 0..3 {
            let prefix = if proof.is_some() { "DPoP " } else { "Bearer " };
            let Some(signed) = self.sign(tab, proof.as_ref()) else {
                return Err(Reply::Failed(tokenkeeper_core::Error::NotAuthenticated));
            };
            let (status, challenge) =
                self.server
                    .api_with(self.now, &access, prefix, signed.as_ref(), &url);
            let nonce = self.server.dpop_nonce.clone().filter(|_| self.server.dpop);
            // Only a refused token (or a nonce) is the keeper's business (no
            // renewed token here; tests/keeper.rs shows the rest changes nothing).
            if status != REJECTED && nonce.is_none() {
                return Ok(status);
            }
            let answer = Answered {
                replayed,
                nonce: nonce.as_deref(),
                challenge: challenge.filter(|_| status == REJECTED),
                nonce_replayed,
                ..answered(generation, status, self.now, &url)
            };
            let call = self.call(tab, |k, now, id| k.response(now, id, answer));
            match self.wait(tab, call, max_ms) {
                Some(Reply::Return) => return Ok(status),
                Some(Reply::Replay {
                    access: a,
                    proof: p,
                    nonce,
                }) => {
                    (access, proof) = (a, p);
                    if nonce {
                        nonce_replayed = true;
                    } else {
                        replayed = true;
                    }
                }
                other => return Err(other.unwrap_or(Reply::Passthrough)),
            }
        }
        panic!("the keeper asked for more than two replays")
    }

    /// A tab's executor signs a proof with the key it holds under the
    /// proof's name (`Some(None)`: no proof to sign; `None`: it holds no
    /// such key, and the request fails).
    pub fn sign(&mut self, tab: usize, proof: Option<&Proof>) -> Option<Option<Signed>> {
        let Some(proof) = proof else {
            return Some(None);
        };
        match self.tabs[tab]
            .keys
            .iter()
            .find(|(name, _)| *name == proof.jkt)
        {
            Some((_, real)) => Some(Some(Signed {
                input: proof.input.clone(),
                signer: real.clone(),
            })),
            None => {
                self.tabs[tab].unsigned += 1;
                None
            }
        }
    }

    /// `login(url, credentials)` in `tab`, as the app calls it (with DPoP:
    /// a key is made, the login carries its proof); its reply.
    pub fn password_login(&mut self, tab: usize) -> Option<Reply> {
        let url = format!("{ORIGIN}/login");
        let call = self.call(tab, |k, _, id| {
            k.login(id, Ok((url.clone(), r#"{"user":"u"}"#.into())))
        });
        self.wait(tab, call, 10_000.0)
    }

    /// A tab's logout.
    pub fn logout(&mut self, tab: usize) -> Option<LogoutNotice> {
        let now = self.now;
        let notice = self.tabs[tab].keeper.logout(now).ok().flatten();
        self.drain(tab);
        notice
    }

    /// Closes a tab: it frees its keeper, and the browser releases its locks.
    pub fn close_tab(&mut self, tab: usize) {
        self.tabs[tab].keeper.free();
        self.drain(tab);
        self.tabs[tab].open = false;
        while let Some(i) = self.lock_holders.iter().position(|t| *t == tab) {
            self.lock_holders.remove(i);
        }
        self.lock_queue.retain(|t| *t != tab);
        self.grant_next();
    }

    /// A message from a script of the origin that is no tab: posted on the
    /// channel as `data` (any value), it reaches every open tab.
    pub fn inject(&mut self, data: OptValue) {
        self.broadcast(&data, None);
    }

    /// Puts `data` on the bus for every open tab but `from`, after the bus delay.
    fn broadcast(&mut self, data: &OptValue, from: Option<usize>) {
        self.broadcast_with(data, from, None);
    }

    /// [`World::broadcast`] with a DPoP key beside the message (the real
    /// key's thumbprint).
    pub fn broadcast_with(&mut self, data: &OptValue, from: Option<usize>, key: Option<String>) {
        for to in 0..self.tabs.len() {
            if Some(to) != from && self.tabs[to].open {
                let at = self.now + self.bus_delay_ms;
                self.push(
                    at,
                    Pending::Message {
                        to,
                        data: data.clone(),
                        key: key.clone(),
                    },
                );
            }
        }
    }

    /// The `DPoP-Nonce` the server's answers carry.
    fn nonce_header(&self) -> Option<String> {
        self.server.dpop_nonce.clone().filter(|_| self.server.dpop)
    }

    /// Runs the world until `until`.
    pub fn run_until(&mut self, until: f64) {
        while self.step(until) {}
        self.now = self.now.max(until);
    }

    /// Runs for `ms`.
    pub fn run_for(&mut self, ms: f64) {
        let until = self.now + ms;
        self.run_until(until);
    }

    /// Jumps to the next moment something happens (not past `limit`) and
    /// does it. Returns false when nothing happens before `limit`.
    pub fn step(&mut self, limit: f64) -> bool {
        let mut next: Option<f64> = None;
        self.steps += 1;
        assert!(
            self.steps < 1_000_000,
            "the world spins at {}",
            self.now - T0
        );
        for t in self.tabs.iter().filter(|t| t.open && !t.frozen) {
            if let Some(at) = t.keeper.poll_timeout() {
                next = Some(next.map_or(at, |n: f64| n.min(at)));
            }
        }
        for (at, _, _) in &self.pending {
            next = Some(next.map_or(*at, |n: f64| n.min(*at)));
        }
        let Some(at) = next.filter(|at| *at <= limit) else {
            return false;
        };
        self.now = self.now.max(at);
        let now = self.now;
        // Deliver what is due, in the order it was sent.
        self.pending
            .sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let due: Vec<_> = {
            let split = self.pending.iter().take_while(|p| p.0 <= now).count();
            self.pending.drain(..split).collect()
        };
        for (_, _, p) in due {
            match p {
                Pending::Message { to, data, key } => {
                    if self.tabs[to].open && !self.tabs[to].frozen {
                        let has_key = key.is_some();
                        self.incoming = key;
                        self.tabs[to].keeper.handle_tab_message(now, &data, has_key);
                        self.drain(to);
                        self.incoming = None;
                    }
                }
                Pending::Answer { to, answer, nonce } => {
                    if self.tabs[to].open {
                        if let Some(n) = &nonce {
                            self.tabs[to].keeper.handle_token_nonce(CallId(0), n);
                        }
                        self.tabs[to].keeper.handle_refresh_answer(now, answer);
                        self.drain(to);
                    }
                }
                Pending::KeyMade { to, call } => {
                    if self.tabs[to].open {
                        self.keys_made += 1;
                        let (x, y) = coordinates(self.keys_made);
                        let public = (!self.tabs[to].no_crypto).then_some((x.as_str(), y.as_str()));
                        let named = self.tabs[to].keeper.key_made(now, call, public);
                        if let Some(name) = named {
                            let real = tokenkeeper_core::dpop::key(&x, &y)
                                .map(|k| k.jkt)
                                .unwrap_or_default();
                            self.tabs[to].keys.push((name, real));
                        }
                        self.drain(to);
                    }
                }
                Pending::Grant { to, contended } => {
                    if self.tabs[to].open {
                        self.tabs[to].keeper.handle_lock_granted(now, contended);
                        self.drain(to);
                    }
                }
                Pending::Discovery { to } => {
                    if self.tabs[to].open {
                        let (status, doc) = self.tabs[to]
                            .discovery
                            .clone()
                            .unwrap_or_else(|| (200, discovery_doc()));
                        self.tabs[to].keeper.handle_discovery(now, status, &doc);
                        self.drain(to);
                    }
                }
                Pending::Exchanged {
                    to,
                    call,
                    answer,
                    nonce,
                } => {
                    if self.tabs[to].open {
                        if let Some(n) = &nonce {
                            self.tabs[to].keeper.handle_token_nonce(call, n);
                        }
                        self.tabs[to].keeper.handle_login_answer(now, call, answer);
                        self.drain(to);
                    }
                }
            }
        }
        for i in 0..self.tabs.len() {
            if !self.tabs[i].open || self.tabs[i].frozen {
                continue;
            }
            let due = self.tabs[i].keeper.poll_timeout().is_some_and(|t| t <= now);
            if due {
                self.tabs[i].keeper.handle_timeout(now);
                self.drain(i);
            } else if self.spurious {
                let keeper = &mut self.tabs[i].keeper;
                let before = format!("{keeper:?}");
                keeper.handle_timeout(now);
                assert_eq!(
                    format!("{keeper:?}"),
                    before,
                    "a wake-up with nothing due changed tab {i}"
                );
                assert_eq!(
                    keeper.poll_command(),
                    None,
                    "a wake-up with nothing due did something"
                );
            }
        }
        true
    }

    fn push(&mut self, at: f64, p: Pending) {
        self.seq += 1;
        self.pending.push((at, self.seq, p));
    }

    /// Carries out a tab's commands, as the browser shell would.
    pub fn drain(&mut self, tab: usize) {
        while let Some(command) = self.tabs[tab].keeper.poll_command() {
            match command {
                Command::Refresh {
                    refresh_token,
                    proof,
                } => {
                    // The server sees the request after one latency and
                    // answers after another.
                    let now = self.now + self.latency_ms;
                    let url = self.settings.refresh_url.clone();
                    let answer = match self.sign(tab, proof.as_ref()) {
                        Some(signed) => self.server.refresh_with(
                            now,
                            refresh_token.as_deref(),
                            signed.as_ref(),
                            &url,
                        ),
                        None => None,
                    };
                    let answer = answer.unwrap_or_else(TokenAnswer::no_answer);
                    let nonce = self.nonce_header();
                    self.push(
                        now + self.latency_ms,
                        Pending::Answer {
                            to: tab,
                            answer,
                            nonce,
                        },
                    );
                }
                Command::AcquireLock => {
                    let free = self.lock_holders.is_empty();
                    if free {
                        self.lock_holders.push_back(tab);
                        self.push(
                            self.now,
                            Pending::Grant {
                                to: tab,
                                contended: false,
                            },
                        );
                    } else {
                        self.lock_queue.push_back(tab);
                    }
                }
                Command::ReleaseLock => {
                    if let Some(i) = self.lock_holders.iter().position(|t| *t == tab) {
                        self.lock_holders.remove(i);
                    }
                    self.grant_next();
                }
                Command::Post(message) => {
                    let data = encode(&message, self.tabs[tab].keeper.tab_id());
                    // A DPoP session's key goes with it, as the executor
                    // attaches the key it holds under the session's name.
                    let key = match &message {
                        tokenkeeper_core::protocol::Message::Session { tokens, .. } => {
                            tokens.key.as_ref().and_then(|k| {
                                self.tabs[tab]
                                    .keys
                                    .iter()
                                    .find(|(name, _)| *name == k.jkt)
                                    .map(|(_, real)| real.clone())
                            })
                        }
                        _ => None,
                    };
                    self.broadcast_with(&data, Some(tab), key);
                }
                Command::Emit(event) => self.tabs[tab].events.push(event),
                Command::Settle { call, reply } => self.tabs[tab].replies.push((call, reply)),
                Command::Discover { .. } => self.push(
                    self.now + 2.0 * self.latency_ms,
                    Pending::Discovery { to: tab },
                ),
                Command::Exchange {
                    call, code, proof, ..
                } => {
                    let now = self.now + self.latency_ms;
                    let answer = match self.sign(tab, proof.as_ref()) {
                        Some(signed) => self.server.exchange_with(now, &code, signed.as_ref()),
                        None => TokenAnswer::no_answer(),
                    };
                    let nonce = self.nonce_header();
                    self.push(
                        now + self.latency_ms,
                        Pending::Exchanged {
                            to: tab,
                            call,
                            answer,
                            nonce,
                        },
                    );
                }
                Command::Login {
                    call, url, proof, ..
                } => {
                    let now = self.now + self.latency_ms;
                    let answer = match self.sign(tab, proof.as_ref()) {
                        Some(signed) => self.server.login_with(now, signed.as_ref(), &url),
                        None => TokenAnswer::no_answer(),
                    };
                    let nonce = self.nonce_header();
                    self.push(
                        now + self.latency_ms,
                        Pending::Exchanged {
                            to: tab,
                            call,
                            answer,
                            nonce,
                        },
                    );
                }
                Command::MakeKey { call } => {
                    self.push(self.now + 1.0, Pending::KeyMade { to: tab, call });
                }
                Command::TakeKey { jkt } => {
                    if let Some(real) = self.incoming.clone() {
                        self.tabs[tab].keys.push((jkt, real));
                    }
                }
                Command::DropKey { jkt } => {
                    self.tabs[tab].keys.retain(|(name, _)| *name != jkt);
                }
                c @ (Command::Navigate { .. } | Command::History { .. } | Command::Forget) => {
                    self.tabs[tab].browser.push(c)
                }
            }
        }
    }

    fn grant_next(&mut self) {
        if self.lock_holders.is_empty() {
            if let Some(next) = self.lock_queue.pop_front() {
                self.lock_holders.push_back(next);
                self.push(
                    self.now,
                    Pending::Grant {
                        to: next,
                        contended: true,
                    },
                );
            }
        }
    }
}

/// The public coordinates of the `n`th key pair made: two base64url texts
/// of 32 bytes, different for every `n`.
pub fn coordinates(n: u32) -> (String, String) {
    use base64::Engine;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bytes = |salt: u8| {
        let mut b = [salt; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        e.encode(b)
    };
    (bytes(0x11), bytes(0x22))
}
