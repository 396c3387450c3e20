//! A world for the keeper's native tests, in simulated time (quinn-proto's
//! test `Pair` is the model): several tabs, each a real [`Keeper`], a
//! message bus with a delivery delay, a FIFO Web Lock, and a model token
//! server with rotation and reuse detection. `run_until` jumps from one
//! moment something happens to the next.

#![allow(dead_code)]

use std::cell::Cell;
use std::collections::VecDeque;
use tokenkeeper_core::config::Settings;
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

    /// A new pair of tokens for the family.
    pub fn issue(&mut self, now: f64) -> RawGrant {
        self.serial += 1;
        let access = format!("at-{}", self.serial);
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
            grant: self.issue(now),
            timing: instant(now),
        }
    }

    /// The token endpoint.
    pub fn refresh(&mut self, now: f64, token: Option<&str>) -> Option<TokenAnswer> {
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
        if self.refresh_current.as_deref() != Some(token) {
            if self.used.iter().any(|u| u == token) {
                self.reuse_detected += 1;
                self.revoked = true;
                self.access.clear();
            }
            return Some(refused);
        }
        self.used.push(token.into());
        let mut grant = self.issue(now);
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
        self.api_requests += 1;
        match self.access.iter().find(|(a, _)| a == access) {
            Some((_, exp)) if now < *exp => 200,
            _ => 401,
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
    /// A message for tab `to`.
    Message { to: usize, data: OptValue },
    /// A refresh answer for tab `to`.
    Answer { to: usize, answer: TokenAnswer },
    /// A lock grant for tab `to`.
    Grant { to: usize, contended: bool },
    /// The discovery document for tab `to`.
    Discovery { to: usize },
    /// A code exchange's answer for tab `to`.
    Exchanged {
        to: usize,
        call: CallId,
        answer: TokenAnswer,
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
        let call = self.call(tab, |k, now, id| k.fetch(now, id, &url, "cors"));
        let (generation, access) = match self.wait(tab, call, max_ms) {
            Some(Reply::Token { generation, access }) => (generation, access),
            Some(other) => return Err(other),
            None => return Err(Reply::Failed(tokenkeeper_core::Error::NotAuthenticated)),
        };
        let status = self.server.api(self.now, &access);
        // As the executor does: only a refused token is the keeper's business
        // (no renewed token here; tests/keeper.rs shows the rest changes nothing).
        if status != REJECTED {
            return Ok(status);
        }
        let first = answered(generation, status, self.now, &url);
        let call = self.call(tab, |k, now, id| k.response(now, id, first));
        match self.wait(tab, call, max_ms) {
            Some(Reply::Return) => Ok(status),
            Some(Reply::Replay { access }) => {
                let status = self.server.api(self.now, &access);
                let second = Answered {
                    replayed: true,
                    ..answered(generation, status, self.now, &url)
                };
                let call = self.call(tab, |k, now, id| k.response(now, id, second));
                match self.wait(tab, call, max_ms) {
                    Some(Reply::Return) => Ok(status),
                    other => Err(other.unwrap_or(Reply::Passthrough)),
                }
            }
            other => Err(other.unwrap_or(Reply::Passthrough)),
        }
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
        for to in 0..self.tabs.len() {
            if Some(to) != from && self.tabs[to].open {
                let at = self.now + self.bus_delay_ms;
                self.push(
                    at,
                    Pending::Message {
                        to,
                        data: data.clone(),
                    },
                );
            }
        }
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
                Pending::Message { to, data } => {
                    if self.tabs[to].open && !self.tabs[to].frozen {
                        self.tabs[to].keeper.handle_tab_message(now, &data);
                        self.drain(to);
                    }
                }
                Pending::Answer { to, answer } => {
                    if self.tabs[to].open {
                        self.tabs[to].keeper.handle_refresh_answer(now, answer);
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
                Pending::Exchanged { to, call, answer } => {
                    if self.tabs[to].open {
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
                Command::Refresh { refresh_token } => {
                    // The server sees the request after one latency and
                    // answers after another.
                    let now = self.now + self.latency_ms;
                    let answer = self.server.refresh(now, refresh_token.as_deref());
                    let answer = answer.unwrap_or_else(TokenAnswer::no_answer);
                    self.push(now + self.latency_ms, Pending::Answer { to: tab, answer });
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
                    self.broadcast(&data, Some(tab));
                }
                Command::Emit(event) => self.tabs[tab].events.push(event),
                Command::Settle { call, reply } => self.tabs[tab].replies.push((call, reply)),
                Command::Discover { .. } => self.push(
                    self.now + 2.0 * self.latency_ms,
                    Pending::Discovery { to: tab },
                ),
                Command::Exchange { call, code, .. } => {
                    let now = self.now + self.latency_ms;
                    let answer = self.server.exchange(now, &code);
                    self.push(
                        now + self.latency_ms,
                        Pending::Exchanged {
                            to: tab,
                            call,
                            answer,
                        },
                    );
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
