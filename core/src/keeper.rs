//! One tab's keeper as a deterministic state machine: every decision of
//! tokenkeeper — when to refresh and how often to retry, what a caller waits
//! for, what a 401 means, how tabs share one refresh under a lock, what a
//! message from another tab changes, which events are raised — taken here,
//! with time and randomness passed in.
//!
//! The shape is quinn-proto's `Connection`: the shell feeds inputs with the
//! `handle_*` methods and the app-call methods ([`Keeper::fetch`],
//! [`Keeper::need_token`], [`Keeper::refresh`], [`Keeper::ready`], …), then
//! carries out every [`Command`] that [`Keeper::poll_command`] hands it and
//! keeps one timer armed for [`Keeper::poll_timeout`]. Nothing here waits,
//! sleeps or touches the network; a native test drives several keepers, a
//! message bus, a lock and a token server in simulated time.
//!
//! ```
//! use tokenkeeper_core::config::Settings;
//! use tokenkeeper_core::value::OptValue;
//! use tokenkeeper_core::keeper::{CallId, Command, Env, Keeper, Reply};
//! use tokenkeeper_core::testing::TestUrls;
//! use tokenkeeper_core::token::RawGrant;
//!
//! let options = OptValue::Map(vec![("refreshUrl".into(), OptValue::Str("/token".into()))]);
//! let settings = Settings::from_options(&options, &TestUrls).unwrap();
//! let mut keeper = Keeper::new(settings, Env { tabs: false, locks: false, seed: 7 });
//! let now = 1_700_000_000_000.0;
//! let grant = RawGrant { access_token: Some("t".into()), expires_in: Some(300.0), ..RawGrant::default() };
//! keeper.set_tokens(now, grant).unwrap();
//! keeper.fetch(now, CallId(1), "https://app.example/api", "cors", "GET");
//! let reply = std::iter::from_fn(|| keeper.poll_command()).find_map(|c| match c {
//!     Command::Settle { call: CallId(1), reply } => Some(reply),
//!     _ => None,
//! });
//! assert!(matches!(reply, Some(Reply::Token { .. })));
//! ```

use crate::config::{RefreshStyle, Settings};
use crate::dpop::Proof;
use crate::error::Error;
use crate::json::ceil;
use crate::oidc::{Discovery, Transaction};
use crate::planted::{Fault, Planted};
use crate::protocol::{self, Apply, Message};
use crate::session::{self, After401, FailureClass, Read, Session};
use crate::token::{self, RawGrant, Timing, TokenSet};
use crate::value::OptValue;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// Attempts made by a refresh that a caller is waiting for, before it gives up
/// (the session is kept and retried later by the timer).
pub const ATTEMPTS_WHEN_NEEDED: u32 = 3;
/// The longest a caller waits between two attempts.
pub const MAX_WAIT_IN_CALL_MS: f64 = 30_000.0;
/// How long a tab waits for the other tabs' answer (a new tab joining, a
/// refused refresh asking whether another tab rotated).
pub const ASK_WAIT_MS: f64 = 150.0;
/// How long a tab that waited for the refresh lock waits for the holder's
/// broadcast before refreshing itself.
pub const CONTENDED_WAIT_MS: f64 = 200.0;
/// How long the refresh lock is kept after the new tokens were broadcast, so
/// the message reaches every tab before another one can take the lock
/// (message delivery and lock grants are not ordered between tabs). The
/// protocol counts on a message reaching a live tab within half of
/// [`ASK_WAIT_MS`] (so a question's answer comes in time); this is twice
/// that. A tab that waits for the lock meanwhile is not held up: the
/// broadcast ends its wait.
pub const HOLD_AFTER_BROADCAST_MS: f64 = 150.0;
/// A timer that fires more than this late says the tab was frozen (or
/// asleep, or throttled): it may have missed the other tabs' messages, which
/// a frozen tab gets only when it resumes, in no promised order with its
/// timers. It asks the other tabs first, and refreshes nothing for
/// [`ASK_WAIT_MS`], so a rotation it missed is not undone with a used
/// refresh token.
pub const LATE_TIMER_MS: f64 = 1_000.0;
/// Without Web Locks, tabs spread their refreshes over up to this many ms
/// and then re-check, as if the lock had been contended.
pub const NO_LOCK_SPREAD_MS: f64 = 100.0;

/// The methods a request with a custom token header is sent again for,
/// without the token, when it meets a redirect. Browsers drop
/// `Authorization` when a redirect leaves the origin but keep any other
/// header, so such a request does not follow redirects itself; a redirected
/// GET or HEAD (safe, and without a body to lose) is then sent again without
/// the token, and any other method gets the redirect back (an
/// `"opaqueredirect"` response), as a request that must not be repeated
/// unasked. The executor is told so ([`crate::wire::executor_config`]).
pub const RESEND_WITHOUT_TOKEN: [&str; 2] = ["GET", "HEAD"];

/// The `Request.mode` in which a browser sends only CORS-safelisted headers:
/// such a request cannot carry the token ([`Keeper::fetch`]).
pub const NO_CORS: &str = "no-cors";

/// The status that says a token was refused. A response with another
/// status and no renewed token needs nothing from the keeper: the executor
/// is told so ([`crate::wire::executor_config`]) and hands it to the app
/// without asking ([`Keeper::response`] would only settle it `Return`).
pub const REJECTED: u16 = 401;

mod proofs;
mod provider;

/// What the browser around the keeper has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Env {
    /// A channel to the other tabs (`BroadcastChannel`) is open.
    pub tabs: bool,
    /// Web Locks (`navigator.locks`) are there.
    pub locks: bool,
    /// Seeds the keeper's randomness (jitter, backoff spread, tab id).
    pub seed: u64,
}

/// An app call waiting for a [`Reply`], numbered by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(pub u32);

/// Why a refresh was made: the `source` of the `refresh` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Ahead of expiry, by the timer or a page event.
    Timer,
    /// A call found the token inside the lead window.
    Read,
    /// A caller needed a new token (expired, a 401, or `refresh()`).
    OnDemand,
    /// A new tab in cookie mode joined with its HttpOnly cookie.
    Join,
    /// Another tab's tokens.
    Tab,
    /// A renewed token in the `renewHeader` of a response.
    RenewHeader,
    /// `login()`.
    Login,
    /// `setTokens()`.
    SetTokens,
}

impl Source {
    /// The name JavaScript sees.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Timer => "timer",
            Source::Read => "read",
            Source::OnDemand => "on-demand",
            Source::Join => "join",
            Source::Tab => "tab",
            Source::RenewHeader => "renew-header",
            Source::Login => "login",
            Source::SetTokens => "set-tokens",
        }
    }
}

/// Why a session ended: the `reason` of the `logout` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutReason {
    /// `logout()` in this tab.
    Local,
    /// The refresh token was refused.
    RefreshFailed,
    /// It ended in another tab.
    Remote,
    /// The access token expired and there was no refresh token to renew it
    /// (an OpenID provider that issued none: ask for `offline_access`).
    Expired,
}

impl LogoutReason {
    /// The name JavaScript sees.
    pub fn as_str(self) -> &'static str {
        match self {
            LogoutReason::Local => "local",
            LogoutReason::RefreshFailed => "refresh-failed",
            LogoutReason::Remote => "remote",
            LogoutReason::Expired => "expired",
        }
    }
}

/// Why a response's 401 was handed back to the app: the `reason` of the
/// `expired` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiredReason {
    /// There is no session (any more).
    NoSession,
    /// The refresh the 401 called for ended the session.
    RefreshFailed,
    /// The replay with a new token got a 401 too.
    RejectedAfterRefresh,
}

impl ExpiredReason {
    /// The name JavaScript sees.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiredReason::NoSession => "no-session",
            ExpiredReason::RefreshFailed => "refresh-failed",
            ExpiredReason::RejectedAfterRefresh => "rejected-after-refresh",
        }
    }
}

/// What a message from another tab did: the `type` of the `sync` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// Its tokens were adopted.
    Adopted,
    /// The session ended with it.
    Logout,
    /// Refreshing waits, as it does there.
    Backoff,
    /// The generation moved forward (a logout while this tab had no session).
    Advanced,
    /// It asked, and was answered.
    Answered,
}

impl SyncKind {
    /// The name JavaScript sees.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncKind::Adopted => "adopted",
            SyncKind::Logout => "logout",
            SyncKind::Backoff => "backoff",
            SyncKind::Advanced => "advanced",
            SyncKind::Answered => "answered",
        }
    }
}

/// The kinds of event an app can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// New tokens from a refresh, another tab or a renewal.
    Refresh,
    /// A refresh failed.
    RefreshError,
    /// A 401 was handed back to the app.
    Expired,
    /// The session ended.
    Logout,
    /// The session changed in any way.
    Change,
    /// A message from another tab changed something.
    Sync,
}

impl EventKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [EventKind; 6] = [
        EventKind::Refresh,
        EventKind::RefreshError,
        EventKind::Expired,
        EventKind::Logout,
        EventKind::Change,
        EventKind::Sync,
    ];

    /// The name JavaScript subscribes with.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Refresh => "refresh",
            EventKind::RefreshError => "refresh-error",
            EventKind::Expired => "expired",
            EventKind::Logout => "logout",
            EventKind::Change => "change",
            EventKind::Sync => "sync",
        }
    }

    /// The kind named `name`, if there is one.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// An event for the app's listeners, with its detail. Never carries a token.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// New tokens are in place.
    Refresh {
        /// Where they came from.
        source: Source,
        /// When the access token expires (local clock), if known.
        expires_at: Option<f64>,
        /// Their generation.
        generation: u64,
    },
    /// A refresh failed.
    RefreshError {
        /// How.
        error: Error,
        /// Whether it will be tried again (otherwise the session ended).
        retrying: bool,
        /// When the next attempt is planned, in ms from now.
        retry_in_ms: Option<f64>,
    },
    /// A 401 was handed back to the app.
    Expired {
        /// Why it was not refreshed and replayed.
        reason: ExpiredReason,
        /// The request's URL.
        url: String,
    },
    /// The session ended.
    Logout {
        /// Why.
        reason: LogoutReason,
    },
    /// The session changed.
    Change {
        /// Whether there is a session now.
        authenticated: bool,
        /// When its access token expires, if known.
        expires_at: Option<f64>,
        /// The generation now.
        generation: u64,
    },
    /// A message from another tab changed something.
    Sync {
        /// What it did.
        kind: SyncKind,
        /// The sending tab's id.
        from: String,
        /// The generation now.
        generation: u64,
    },
}

impl Event {
    /// The kind listeners subscribe to.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Refresh { .. } => EventKind::Refresh,
            Event::RefreshError { .. } => EventKind::RefreshError,
            Event::Expired { .. } => EventKind::Expired,
            Event::Logout { .. } => EventKind::Logout,
            Event::Change { .. } => EventKind::Change,
            Event::Sync { .. } => EventKind::Sync,
        }
    }
}

/// How a waiting app call ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `fetch`: send the request as it is, without a token.
    Passthrough,
    /// Use this access token, of this generation.
    Token {
        /// The generation of the token.
        generation: u64,
        /// The access token.
        access: String,
        /// `fetch()` of a DPoP session: the request's proof, to sign.
        proof: Option<Proof>,
    },
    /// `fetch`: hand the response to the app as it is.
    Return,
    /// `fetch`: send the copy of the request again with this token.
    Replay {
        /// The access token to attach.
        access: String,
        /// A DPoP session's proof of the replay, to sign.
        proof: Option<Proof>,
        /// The replay is the one a resource's `use_dpop_nonce` earns (the
        /// token is the same; a 401 after it may still earn a refresh).
        nonce: bool,
    },
    /// `login`, `refresh`: done.
    Done,
    /// `ready`: whether there is a session.
    Ready(bool),
    /// `handleRedirect`: the app's path after a callback it handled (the
    /// page is there already), or `None` when the page was no callback.
    Redirected(Option<String>),
    /// The call fails with this error.
    Failed(Error),
}

/// A token endpoint's answer, as the shell read it.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenAnswer {
    /// A 2xx answer with a JSON object: its token fields and timing.
    Grant {
        /// The token fields.
        grant: RawGrant,
        /// When it was obtained.
        timing: Timing,
    },
    /// No usable answer.
    Failure {
        /// HTTP status, 0 when no answer arrived.
        status: u16,
        /// The OAuth `error` of the answer's body, if any.
        oauth_error: Option<String>,
        /// `Retry-After`, in ms, if the answer had one.
        retry_after_ms: Option<f64>,
        /// The answer was 2xx but not a usable token response.
        malformed: Option<&'static str>,
    },
}

impl TokenAnswer {
    /// No answer at all (the request failed, or could not be built).
    pub fn no_answer() -> TokenAnswer {
        TokenAnswer::Failure {
            status: 0,
            oauth_error: None,
            retry_after_ms: None,
            malformed: None,
        }
    }
}

/// The answer to a request sent with a token, as [`Keeper::response`] needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered<'a> {
    /// The generation of the token the request carried.
    pub generation: u64,
    /// The HTTP status.
    pub status: u16,
    /// The value of the `renewHeader`, if the response had one.
    pub renewed: Option<String>,
    /// The response's `Date` (ms since epoch), when `renewed` is there.
    pub server_date: Option<f64>,
    /// When the request was sent (local clock).
    pub sent_at: f64,
    /// Whether a copy of the request can be sent again.
    pub replayable: bool,
    /// Whether this was already the replay.
    pub replayed: bool,
    /// The request's URL (for the `expired` event).
    pub url: &'a str,
    /// The request's method (for a DPoP replay's proof).
    pub method: &'a str,
    /// The response's `DPoP-Nonce`, if it had one.
    pub nonce: Option<&'a str>,
    /// The response's `WWW-Authenticate`, on a 401.
    pub challenge: Option<&'a str>,
    /// Whether this answers the replay a `use_dpop_nonce` earned.
    pub nonce_replayed: bool,
}

/// Tell the logout endpoint, best effort (the session is already gone here).
#[derive(Debug, Clone, PartialEq)]
pub struct LogoutNotice {
    /// The endpoint.
    pub url: String,
    /// The access token to attach, when the endpoint's origin is allowed.
    pub access: Option<String>,
    /// The refresh token to revoke, when the page holds one.
    pub refresh: Option<String>,
}

/// Something the shell carries out.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Send one refresh request in the configured style and report the
    /// answer with [`Keeper::handle_refresh_answer`].
    Refresh {
        /// The refresh token to send (`None` in cookie mode).
        refresh_token: Option<String>,
        /// A DPoP session's proof, to sign and send as the `DPoP` header.
        proof: Option<Proof>,
    },
    /// Request the tabs' refresh lock; report the grant with
    /// [`Keeper::handle_lock_granted`].
    AcquireLock,
    /// Release the oldest lock held.
    ReleaseLock,
    /// Post this message to the other tabs.
    Post(Message),
    /// Call the listeners of this event.
    Emit(Event),
    /// End the waiting call with this reply.
    Settle {
        /// The call.
        call: CallId,
        /// How it ends.
        reply: Reply,
    },
    /// Fetch the OpenID provider's discovery document (once per page: the
    /// executor keeps a good answer for every keeper of the issuer) and
    /// report it with [`Keeper::handle_discovery`].
    Discover {
        /// `<issuer>/.well-known/openid-configuration`.
        url: String,
    },
    /// Exchange an authorization code at the token endpoint (once: never
    /// retried, a second use revokes the grant at a strict provider) and
    /// report the answer with [`Keeper::handle_login_answer`].
    Exchange {
        /// The `handleRedirect()` call.
        call: CallId,
        /// The code.
        code: String,
        /// The PKCE code verifier.
        verifier: String,
        /// The proof by the session-to-be's key, with DPoP.
        proof: Option<Proof>,
    },
    /// Send `login()`'s credentials (once) and report the answer with
    /// [`Keeper::handle_login_answer`].
    Login {
        /// The `login()` call.
        call: CallId,
        /// The login endpoint.
        url: String,
        /// The credentials, a JSON object's text.
        body: String,
        /// The proof by the session-to-be's key, with DPoP.
        proof: Option<Proof>,
    },
    /// Make a DPoP key pair (ECDSA P-256, not extractable) for `call`, and
    /// report its public half with [`Keeper::key_made`], which names the
    /// thumbprint to keep the private half under.
    MakeKey {
        /// The login or code exchange that needs it.
        call: CallId,
    },
    /// Keep the key that came with the tab message being handled, under
    /// this thumbprint.
    TakeKey {
        /// The key's thumbprint.
        jkt: String,
    },
    /// Forget the private key kept under this thumbprint.
    DropKey {
        /// The key's thumbprint.
        jkt: String,
    },
    /// Keep the login's transaction in the tab's `sessionStorage`, then
    /// navigate the page to `url` and settle `call` (or settle it with the
    /// browser's error when the storage refuses).
    Navigate {
        /// The `loginRedirect()` call.
        call: CallId,
        /// The authorization request.
        url: String,
        /// The transaction to keep for the callback.
        transaction: Transaction,
    },
    /// Replace the page's URL (`history.replaceState`, no page load).
    History {
        /// The URL, absolute or a path of the page's origin.
        url: String,
    },
    /// Remove the login's transaction from the tab's `sessionStorage`.
    Forget,
}

/// A page event the keeper reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEvent {
    /// `visibilitychange`.
    Visibility,
    /// `pageshow` (back from the bfcache, too).
    PageShow,
    /// `online`.
    Online,
    /// `focus`.
    Focus,
}

/// Why a refresh run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Ahead of expiry: the token is still good.
    Ahead,
    /// A call found the token inside the lead window: still good.
    Read,
    /// A caller needs a new token.
    Needed,
    /// A new tab in cookie mode, with no session yet: try the cookie, quietly.
    Join,
}

impl Why {
    fn source(self) -> Source {
        match self {
            Why::Ahead => Source::Timer,
            Why::Read => Source::Read,
            Why::Needed => Source::OnDemand,
            Why::Join => Source::Join,
        }
    }
}

/// Who waits for a refresh run, and what it makes of the outcome.
#[derive(Debug, Clone, PartialEq)]
enum Waiter {
    /// Wants a token.
    Token(CallId),
    /// A `fetch()` that wants a token: sent without one if the session ends
    /// meanwhile, as any request with no session is.
    Fetch(CallId),
    /// `refresh()`.
    Refresh(CallId),
    /// A request that got a 401 and wants to be replayed.
    Replay {
        call: CallId,
        url: String,
        method: String,
    },
    /// `ready()` in cookie mode.
    Ready(CallId),
}

/// Where a refresh run is.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// The lock was requested (or, alone, about to make the first attempt).
    Locking,
    /// No Web Locks: a random pause, then as if contended.
    Spreading { until: f64 },
    /// The lock came after another tab held it: wait a moment for its broadcast.
    Contended { until: f64 },
    /// Throttled: wait, then try again (unless newer tokens come first).
    Deferred { until: f64, gen: u64 },
    /// The request is out.
    Sending {
        gen: u64,
        refresh_token: Option<String>,
    },
    /// Refused: the other tabs were asked for anything newer.
    Asking {
        until: f64,
        gen: u64,
        status: u16,
        oauth_error: Option<String>,
    },
    /// Failed for now: retry for the waiting caller.
    Retrying { until: f64, gen: u64 },
}

#[derive(Debug, Clone, PartialEq)]
struct Run {
    why: Why,
    /// The generation when the refresh was asked for.
    started: u64,
    attempts: u32,
    deferrals: u32,
    /// Whether this run asked for the lock (and so must release it)…
    locked: bool,
    /// …and whether it was granted (before, there is nothing to release).
    held: bool,
    /// The hold of the run before, when this one took the lock over from it.
    inherited: Option<f64>,
    /// The attempt out was sent again with a DPoP nonce the endpoint asked for.
    nonce_retried: bool,
    phase: Phase,
    waiters: Vec<Waiter>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct ReadyWait {
    call: CallId,
    until: f64,
}

/// One tab's keeper: the session and every decision about it.
#[derive(Debug)]
pub struct Keeper {
    settings: Settings,
    env: Env,
    tab_id: String,
    rng: u64,
    session: Session,
    freed: bool,
    run: Option<Run>,
    readies: Vec<ReadyWait>,
    /// After a throttled run, no planned refresh before this moment.
    quiet_until: f64,
    /// The lock held after a run, released at this moment.
    release_at: Option<f64>,
    /// Asked the other tabs after a freeze (or a page event): no refresh
    /// before this moment (0: not asking).
    listen_until: f64,
    /// The listening was for a late timer.
    asked_late: bool,
    out: VecDeque<Command>,
    planted: Planted,
    /// The OpenID provider's discovery, with an `issuer`.
    discovery: Disc,
    /// Calls that wait for the discovery.
    after_discovery: Vec<provider::Pending>,
    /// Code exchanges out: the `handleRedirect()` calls and their logins.
    exchanges: Vec<provider::Exchange>,
    /// DPoP: keys, nonces, the calls whose requests need a proof.
    proofs: proofs::Proofs,
}

/// Where the discovery of an OpenID provider is.
#[derive(Debug, Clone, PartialEq)]
enum Disc {
    /// No provider (no `issuer`).
    NotNeeded,
    /// Asked for.
    Pending,
    /// Read and checked.
    Done(Discovery),
    /// Failed: asked again by the next call that needs it.
    Failed(Error),
}

impl Keeper {
    /// A keeper with no session.
    pub fn new(settings: Settings, env: Env) -> Keeper {
        let mut keeper = Keeper {
            settings,
            env,
            tab_id: String::new(),
            // xorshift must not start at 0.
            rng: env.seed ^ 0x9e37_79b9_7f4a_7c15,
            session: Session::new(),
            freed: false,
            run: None,
            readies: Vec::new(),
            quiet_until: 0.0,
            release_at: None,
            listen_until: 0.0,
            asked_late: false,
            out: VecDeque::new(),
            planted: Planted::default(),
            discovery: Disc::NotNeeded,
            after_discovery: Vec::new(),
            exchanges: Vec::new(),
            proofs: proofs::Proofs::default(),
        };
        keeper.tab_id = keeper.random_id();
        keeper.discover();
        keeper
    }

    /// Plants a known fault into this keeper, to show that the simulator
    /// finds it (test-only: the `planted-faults` feature).
    #[cfg(feature = "planted-faults")]
    pub fn plant(&mut self, fault: Fault) {
        self.planted = Planted(Some(fault));
        self.session.plant(self.planted);
    }

    /// The validated settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// This tab's id on the channel (random; it only tells tabs apart).
    pub fn tab_id(&self) -> &str {
        &self.tab_id
    }

    /// The session (read only).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// When the next silent refresh is planned (local clock), if one is.
    pub fn refresh_at(&self) -> Option<f64> {
        if self.cannot_refresh() {
            return None;
        }
        self.session.refresh_at(self.settings.refresh_lead_ms)
    }

    /// The next thing to carry out.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    /// The earliest moment (local clock) at which [`Keeper::handle_timeout`]
    /// has something to do.
    pub fn poll_timeout(&self) -> Option<f64> {
        match (self.next_work(), self.release_at) {
            (Some(w), Some(r)) => Some(w.min(r)),
            (w, r) => w.or(r),
        }
    }

    /// When the next work (not the lock's release) is due: a run's phase,
    /// a `ready()`, the planned refresh — never before a listen ends.
    fn next_work(&self) -> Option<f64> {
        let mut work: Option<f64> = None;
        let mut earliest = |t: Option<f64>| {
            if let Some(t) = t {
                work = Some(work.map_or(t, |a| a.min(t)));
            }
        };
        if !self.freed {
            match &self.run {
                None => earliest(self.planned()),
                Some(run) => earliest(run.phase.until()),
            }
            for r in &self.readies {
                earliest(Some(r.until));
            }
        }
        // While it listens, nothing else is done.
        work.map(|w| w.max(self.listen_until))
    }

    /// The timer fired (or the page woke): does what is due at `now`.
    pub fn handle_timeout(&mut self, now: f64) {
        let expected = self.next_work();
        if self.release_at.is_some_and(|t| t <= now) {
            self.release_at = None;
            self.out.push_back(Command::ReleaseLock);
        }
        if self.listen_until > now {
            return;
        }
        // A timer late by more than LATE_TIMER_MS (a frozen or sleeping
        // tab) asks the other tabs before it refreshes with what it holds.
        // Work is never due before a listen ends, so a question asked long
        // ago (by a page event, then a freeze) makes the timer late too and
        // is asked again. A late timer asks once: in a throttled tab the
        // timer that ends the question is late too.
        let asked = core::mem::take(&mut self.asked_late);
        self.listen_until = 0.0;
        if !asked && expected.is_some_and(|at| now - at > LATE_TIMER_MS) {
            self.asked_late = true;
            return self.listen(now);
        }
        let (due, waiting): (Vec<ReadyWait>, Vec<ReadyWait>) =
            self.readies.iter().partition(|r| r.until <= now);
        self.readies = waiting;
        for r in due {
            self.continue_ready(now, r.call);
        }
        let phase = self.run.as_ref().map(|r| r.phase.clone());
        match phase {
            Some(Phase::Spreading { until }) if until <= now => self.after_lock(now, true),
            Some(Phase::Contended { until }) if until <= now => self.after_contention(now),
            // Newer tokens meanwhile ended the wait already (see `wake`).
            Some(Phase::Deferred { until, .. } | Phase::Retrying { until, .. }) if until <= now => {
                self.attempt(now)
            }
            Some(Phase::Asking { until, .. }) if until <= now => self.end_asking(now),
            Some(_) => {}
            None => self.tick(now),
        }
    }

    // ----- app calls ------------------------------------------------------

    /// `ready()`: joins the session the other tabs hold, then (cookie mode)
    /// tries the HttpOnly cookie; settles with [`Reply::Ready`].
    pub fn ready(&mut self, now: f64, call: CallId) {
        if self.freed {
            return self.settle(call, Reply::Failed(Error::Freed));
        }
        if self
            .until_discovered(provider::Pending::Ready(call))
            .is_none()
        {
            return;
        }
        if !self.session.is_authenticated() && self.env.tabs {
            self.post(Message::Hello {
                gen: self.session.generation(),
            });
            self.readies.push(ReadyWait {
                call,
                until: now + ASK_WAIT_MS,
            });
            return;
        }
        self.continue_ready(now, call);
    }

    /// The answer to `login()`'s request; settles with [`Reply::Done`].
    pub fn handle_login_answer(&mut self, now: f64, call: CallId, answer: TokenAnswer) {
        let refused = match &answer {
            TokenAnswer::Failure {
                status,
                oauth_error,
                ..
            } => Some((*status, oauth_error.as_deref())),
            TokenAnswer::Grant { .. } => None,
        };
        if self.exchange_retried(now, call, refused) {
            return;
        }
        let key = match self.login_answered(now, call, refused) {
            proofs::LoginAnswer::Resent => return,
            proofs::LoginAnswer::Plain => None,
            proofs::LoginAnswer::Done(key) => Some(key),
        };
        if let Some(exchange) = take_first(&mut self.exchanges, |e| e.call == call) {
            return self.exchanged(now, exchange, answer);
        }
        let (grant, timing) = match answer {
            TokenAnswer::Grant { grant, timing } => (grant, timing),
            TokenAnswer::Failure {
                status,
                oauth_error,
                malformed,
                ..
            } => {
                let error = match (status, malformed) {
                    (0, _) => Error::Network { during: "login" },
                    (_, Some(reason)) => Error::InvalidTokenResponse { reason },
                    (status, None) => Error::LoginFailed {
                        status,
                        oauth_error,
                        description: None,
                    },
                };
                self.settle(call, Reply::Failed(error));
                return self.prune_keys();
            }
        };
        if self.freed {
            return self.settle(call, Reply::Failed(Error::Freed));
        }
        let proved = key.as_ref().is_some_and(Option::is_some);
        let accepted = Self::check_token_type(&grant, proved)
            .and_then(|()| token::accept_grant(grant, timing, None));
        match accepted {
            Ok(mut tokens) => {
                tokens.key = key.flatten();
                self.adopt(tokens, Some(protocol::first_generation(now)), Source::Login);
                self.settle(call, Reply::Done);
            }
            Err(e) => {
                self.settle(call, Reply::Failed(e));
                self.prune_keys();
            }
        }
        self.wake(now);
    }

    /// `setTokens()`: adopts tokens the app obtained itself. On an error the
    /// current session is kept.
    pub fn set_tokens(&mut self, now: f64, grant: RawGrant) -> Result<(), Error> {
        self.open()?;
        self.discovered()?;
        if self.dpop_on() {
            return Err(Error::InvalidArgument {
                argument: "tokens",
                reason:
                    "cannot be bound to this tab's DPoP key: with dpop, the keeper logs in itself",
            });
        }
        // Tokens the app kept or restored: no response just issued them, so
        // their `iat` says nothing of the server's clock now.
        let timing = Timing {
            sent_at: now,
            received_at: now,
            server_date: None,
            fresh: false,
        };
        let tokens = token::accept_grant(grant, timing, None)?;
        self.adopt(
            tokens,
            Some(protocol::first_generation(now)),
            Source::SetTokens,
        );
        self.wake(now);
        Ok(())
    }

    /// `getAccessToken()`: a valid token, refreshing first when it is expired
    /// or inside the lead window; settles with [`Reply::Token`].
    pub fn need_token(&mut self, now: f64, call: CallId) {
        if self.freed {
            return self.settle(call, Reply::Failed(Error::Freed));
        }
        self.read_token(now, Waiter::Token(call));
    }

    /// A token for `waiter` (a [`Waiter::Token`] or a [`Waiter::Fetch`]),
    /// refreshing first when it is expired or inside the lead window.
    fn read_token(&mut self, now: f64, waiter: Waiter) {
        match self.session.read(now, self.settings.refresh_lead_ms) {
            Read::NoSession => self.resolve(now, waiter, &Err(Error::NotAuthenticated)),
            Read::Fresh { .. } => self.resolve(now, waiter, &Ok(self.session.generation())),
            Read::RefreshFirst => {
                // Inside the lead window the token still works: a refresh that
                // fails for now must not hold the call back.
                let why = if self.session.is_expired(now) {
                    Why::Needed
                } else {
                    Why::Read
                };
                self.join_run(now, why, Some(waiter));
            }
        }
    }

    /// `fetch()` to the browser-serialized `url`, a `Request` of `mode` (its
    /// `mode`: `"cors"`, `"no-cors"`, …): a token for an allowed origin while
    /// there is a session ([`Reply::Token`]), otherwise
    /// [`Reply::Passthrough`]. A `"no-cors"` request passes through: the
    /// browser sends it with CORS-safelisted headers only, so it could never
    /// carry the token, and its 401 must not cost a refresh.
    pub fn fetch(&mut self, now: f64, call: CallId, url: &str, mode: &str, method: &str) {
        if self.freed {
            return self.settle(call, Reply::Failed(Error::Freed));
        }
        if !self.session.is_authenticated() || mode == NO_CORS || !self.settings.is_allowed_url(url)
        {
            return self.settle(call, Reply::Passthrough);
        }
        self.expect_proof(call, url, method);
        self.read_token(now, Waiter::Fetch(call));
    }

    /// The answer to a request sent with a token: adopts a renewed token,
    /// and decides what a 401 calls for. Settles with [`Reply::Return`] or
    /// [`Reply::Replay`] (after a refresh, when one is needed).
    pub fn response(&mut self, now: f64, call: CallId, mut answered: Answered<'_>) {
        if let Some(access) = answered.renewed.take() {
            self.adopt_renewal(now, access, answered.server_date, answered.sent_at);
        }
        if let Some(nonce) = answered.nonce {
            self.handle_nonce(answered.url, nonce);
        }
        if answered.status != REJECTED {
            return self.settle(call, Reply::Return);
        }
        // A resource that wants a DPoP nonce refused the proof, not the
        // token: the request goes again once with the nonce, and never
        // costs a refresh — unless the token expired meanwhile too (a tab
        // back from a freeze): then it is the ordinary 401's.
        let nonce_asked = answered.challenge.is_some_and(crate::dpop::asks_for_nonce);
        if nonce_asked && self.dpop_on() && !self.session.is_expired(now) {
            if !answered.nonce_replayed && answered.replayable && self.nonce_known(answered.url) {
                return self.settle_replay(now, call, answered.url, answered.method, true);
            }
            // Asked again after its one retry, or with no nonce to send:
            // the app gets the answer.
            return self.settle(call, Reply::Return);
        }
        if answered.replayed {
            self.expired(ExpiredReason::RejectedAfterRefresh, answered.url);
            return self.settle(call, Reply::Return);
        }
        if !answered.replayable {
            return self.settle(call, Reply::Return);
        }
        match self.session.after_401(answered.generation) {
            After401::GiveUp => {
                self.expired(ExpiredReason::NoSession, answered.url);
                self.settle(call, Reply::Return);
            }
            // (Unless the current token expired meanwhile too — a tab back
            // from a freeze: then a refresh first.)
            After401::ReplayWithCurrent if !self.session.is_expired(now) => {
                self.settle_replay(now, call, answered.url, answered.method, false)
            }
            After401::ReplayWithCurrent | After401::RefreshThenReplay => {
                let url = answered.url.into();
                let method = answered.method.into();
                self.join_run(now, Why::Needed, Some(Waiter::Replay { call, url, method }));
            }
        }
        self.wake(now);
    }

    /// `refresh()`: refreshes now, joining a refresh in flight; settles with
    /// [`Reply::Done`].
    pub fn refresh(&mut self, now: f64, call: CallId) {
        if self.freed {
            return self.settle(call, Reply::Failed(Error::Freed));
        }
        self.join_run(now, Why::Needed, Some(Waiter::Refresh(call)));
    }

    /// `logout()`: ends the session in every tab, and says whether (and
    /// with what) to tell the logout endpoint. [`Error::Freed`] after
    /// [`Keeper::free`].
    pub fn logout(&mut self, now: f64) -> Result<Option<LogoutNotice>, Error> {
        self.open()?;
        let tokens = self.session.tokens().cloned();
        self.end_session(LogoutReason::Local);
        self.wake(now);
        let (Some(url), Some(tokens)) = (self.settings.logout_url.clone(), tokens) else {
            return Ok(None);
        };
        if self.settings.oidc.is_some() {
            // RFC 7009: the refresh token revoked (the grant with it), or
            // the access token when there is none; no token attached.
            let (access, refresh) = match tokens.refresh {
                Some(rt) => (None, Some(rt)),
                None => (Some(tokens.access), None),
            };
            return Ok(Some(LogoutNotice {
                url,
                access,
                refresh,
            }));
        }
        let access = self.settings.is_allowed_url(&url).then_some(tokens.access);
        Ok(Some(LogoutNotice {
            url,
            access,
            refresh: tokens.refresh,
        }))
    }

    /// `Ok` until [`Keeper::free`], then [`Error::Freed`]: a call that would
    /// send something (a login's credentials) asks first.
    pub fn open(&self) -> Result<(), Error> {
        if self.freed {
            Err(Error::Freed)
        } else {
            Ok(())
        }
    }

    /// `free()`: the keeper does nothing more; waiting calls end.
    pub fn free(&mut self) {
        self.freed = true;
        self.session.clear();
        if let Some(run) = self.run.take() {
            if run.held {
                self.out.push_back(Command::ReleaseLock);
            }
            for w in run.waiters {
                self.resolve(0.0, w, &Err(Error::Freed));
            }
        }
        for r in core::mem::take(&mut self.readies) {
            self.settle(r.call, Reply::Ready(false));
        }
        for p in core::mem::take(&mut self.after_discovery) {
            self.settle(p.call(), Reply::Failed(Error::Freed));
        }
        self.free_keys();
    }

    // ----- browser inputs -------------------------------------------------

    /// The answer to a [`Command::Refresh`].
    pub fn handle_refresh_answer(&mut self, now: f64, answer: TokenAnswer) {
        let Some(Phase::Sending { gen, refresh_token }) = self.run.as_ref().map(|r| &r.phase)
        else {
            return;
        };
        let (gen, refresh_token) = (*gen, refresh_token.clone());
        if self.freed {
            return self.finish(now, Err(Error::Freed));
        }
        // A logout (or newer tokens) while the request was out wins over its
        // answer — but a Retry-After is the endpoint's, for whatever tokens.
        if self.session.generation() != gen {
            if let TokenAnswer::Failure {
                retry_after_ms: Some(ra),
                ..
            } = answer
            {
                self.session.defer_until(now, now + ra);
                if let Some(until) = self.session.backing_off(now) {
                    let gen = self.session.generation();
                    self.post(Message::Backoff { gen, until });
                }
            }
            return self.finish_current(now);
        }
        // The endpoint wants a DPoP nonce: the same refresh, sent again
        // once with it (the refresh token was not used).
        if let TokenAnswer::Failure {
            status,
            oauth_error,
            ..
        } = &answer
        {
            let url = &self.settings.refresh_url;
            let first = self.run.as_ref().is_some_and(|r| !r.nonce_retried);
            if first && self.wants_nonce(url, *status, oauth_error.as_deref()) {
                if let Some(run) = &mut self.run {
                    run.nonce_retried = true;
                }
                return self.send_refresh(now, refresh_token);
            }
        }
        self.answered(now, gen, refresh_token, answer);
        self.wake(now);
    }

    /// The lock asked for with [`Command::AcquireLock`] was granted;
    /// `contended` when another tab held it first.
    pub fn handle_lock_granted(&mut self, now: f64, contended: bool) {
        match self.run.as_mut() {
            // (A run that asked for the lock leaves `Locking` only with it,
            // or ends.)
            Some(run) if run.phase == Phase::Locking && run.locked => {
                run.held = true;
                self.after_lock(now, contended)
            }
            // Nobody waits for it any more.
            _ => self.out.push_back(Command::ReleaseLock),
        }
    }

    /// A message from another tab (decoded and checked here; anything
    /// malformed, own, older or of another version is ignored).
    /// `has_key`: a DPoP key (a private, non-extractable ECDSA P-256
    /// `CryptoKey`) came with it; the executor keeps it if told to
    /// ([`Command::TakeKey`]) while this message is handled.
    pub fn handle_tab_message(&mut self, now: f64, data: &OptValue, has_key: bool) {
        if self.freed || !self.env.tabs {
            return;
        }
        let Ok(envelope) = protocol::decode(data, &self.tab_id) else {
            return;
        };
        // An OpenID provider's session is taken only once its endpoints are
        // known, and only with an ID token of this client from this issuer;
        // a DPoP session only with its key, a Bearer one only without.
        if let Message::Session { tokens, .. } = &envelope.message {
            if !self.takes_from_tab(tokens) || !self.takes_key(tokens.key.as_ref(), has_key) {
                return;
            }
        }
        let generation = self.session.generation();
        let mut apply = protocol::apply(&envelope.message, generation, self.session.tokens());
        if self.planted.is(Fault::AdoptOlder) && matches!(envelope.message, Message::Session { .. })
        {
            apply = Apply::Adopt;
        }
        let kind = match (apply, envelope.message) {
            (Apply::Replace, Message::Session { gen, tokens, .. }) => {
                self.take_key(tokens.key.as_ref());
                self.session.replace(tokens, gen);
                self.emit_change();
                SyncKind::Adopted
            }
            (
                Apply::Adopt,
                Message::Session {
                    gen,
                    tokens,
                    until,
                    skew,
                },
            ) => {
                self.take_key(tokens.key.as_ref());
                self.adopt(tokens, Some(gen), Source::Tab);
                if let Some(skew) = skew {
                    self.session.learn_skew(skew);
                }
                if let Some(until) = until {
                    self.session.defer_until(now, until);
                }
                // Tokens already due for a refresh come from a tab that is
                // behind (frozen, throttled, answering an old question):
                // ask for anything newer before refreshing them.
                if self.planned().is_some_and(|at| now >= at) {
                    self.listen(now);
                }
                SyncKind::Adopted
            }
            (Apply::EndSession, Message::Logout { gen, reason }) => {
                // Every tab says of a lapsed session that it expired.
                let reason = if reason == LogoutReason::Expired.as_str() {
                    LogoutReason::Expired
                } else {
                    LogoutReason::Remote
                };
                self.end_session_as(reason, false);
                self.session.advance_to(gen);
                SyncKind::Logout
            }
            (Apply::Defer, Message::Backoff { until, .. }) => {
                self.session.defer_until(now, until);
                SyncKind::Backoff
            }
            (Apply::Advance, m) => {
                self.session.advance_to(m.gen());
                SyncKind::Advanced
            }
            (Apply::Answer, _) => {
                let gen = self.session.generation();
                let answer = match self.session.tokens() {
                    // A tab that joins now must wait as the others do: the
                    // server's Retry-After is for every tab.
                    Some(tokens) => Message::Session {
                        gen,
                        tokens: tokens.clone(),
                        until: self.session.backing_off(now),
                        skew: self.session.skew(),
                    },
                    None => Message::Logout {
                        gen,
                        reason: LogoutReason::Local.as_str().into(),
                    },
                };
                self.post(answer);
                SyncKind::Answered
            }
            _ => return,
        };
        self.emit(Event::Sync {
            kind,
            from: envelope.from,
            generation: self.session.generation(),
        });
        self.wake(now);
    }

    /// A page event; `visible` is whether the page is visible now.
    pub fn handle_page(&mut self, now: f64, event: PageEvent, visible: bool) {
        if self.freed {
            return;
        }
        if event == PageEvent::Online {
            self.session.network_back(now);
        }
        if !visible {
            return;
        }
        if matches!(event, PageEvent::PageShow | PageEvent::Visibility) {
            // Back from the bfcache or a frozen background: messages may have
            // been missed. Anything newer is answered, before any refresh.
            self.listen(now);
        }
        self.tick(now);
    }

    /// Asks the other tabs for anything newer, and refreshes nothing until
    /// their answers had time to come ([`ASK_WAIT_MS`]).
    fn listen(&mut self, now: f64) {
        // (Never called after `free()`: nothing runs then.)
        if self.env.tabs {
            self.post(Message::Hello {
                gen: self.session.generation(),
            });
            self.listen_until = now + ASK_WAIT_MS;
        }
    }

    // ----- the refresh run ------------------------------------------------

    /// The planned refresh moment, after any quiet period.
    fn planned(&self) -> Option<f64> {
        if self.cannot_refresh() {
            // The session's end: no refresh token renews it.
            return self.session.expires_at();
        }
        self.refresh_at().map(|at| at.max(self.quiet_until))
    }

    /// A re-check: refresh ahead if the planned moment has passed.
    fn tick(&mut self, now: f64) {
        // (While a refresh is in flight this joins it, which changes nothing.)
        if !self.freed && self.planned().is_some_and(|at| now >= at) {
            if self.cannot_refresh() {
                return self.end_session(LogoutReason::Expired);
            }
            self.join_run(now, Why::Ahead, None);
        }
    }

    /// Joins the refresh in flight, or starts one: every caller shares one.
    fn join_run(&mut self, now: f64, why: Why, waiter: Option<Waiter>) {
        if let Some(run) = &mut self.run {
            // A caller that needs a new token makes the run one that does: a
            // run ahead of expiry would end with the old token when it is
            // throttled, and hand it out expired.
            if why == Why::Needed && matches!(run.why, Why::Ahead | Why::Read) {
                run.why = Why::Needed;
            }
            run.waiters.extend(waiter);
            return;
        }
        let waiters = waiter.into_iter().collect();
        // (A planted `NoLock` refreshes as if alone.)
        let tabs = self.env.tabs && !self.planted.is(Fault::NoLock);
        let (phase, locked) = match (tabs, self.env.locks) {
            (false, _) => (Phase::Locking, false),
            (true, true) => (Phase::Locking, true),
            (true, false) => (
                Phase::Spreading {
                    until: now + self.random() * NO_LOCK_SPREAD_MS,
                },
                false,
            ),
        };
        self.run = Some(Run {
            why,
            started: self.session.generation(),
            attempts: 0,
            deferrals: 0,
            locked,
            held: false,
            inherited: None,
            nonce_retried: false,
            phase,
            waiters,
        });
        match (tabs, self.env.locks) {
            (false, _) => self.attempt(now),
            // Still holding the lock after the last run (the moment for the
            // broadcast to land): no other tab rotated since, and asking for
            // it again would wait for our own release — a timer that a
            // hidden tab's browser may run a second late, or later.
            (true, true) if self.release_at.is_some() => {
                if let Some(run) = &mut self.run {
                    run.held = true;
                    run.inherited = self.release_at.take();
                }
                self.after_lock(now, false);
            }
            (true, true) => self.out.push_back(Command::AcquireLock),
            (true, false) => {}
        }
    }

    /// The lock is ours (or, without locks, the pause is over).
    fn after_lock(&mut self, now: f64, contended: bool) {
        if self.freed {
            return self.finish(now, Err(Error::Freed));
        }
        // Another tab held the lock: it broadcasts before it releases, but its
        // message may land a moment after our grant. Give it that moment (and
        // the other tabs' answers the moment they need, when it asked).
        let wait = if contended {
            now + CONTENDED_WAIT_MS
        } else {
            0.0
        };
        let until = wait.max(self.listen_until);
        if until > now {
            if let Some(run) = &mut self.run {
                run.phase = Phase::Contended { until };
            }
            return self.wake(now);
        }
        self.after_contention(now);
    }

    /// Refreshes, unless another tab rotated the tokens meanwhile.
    fn after_contention(&mut self, now: f64) {
        let Some(started) = self.run.as_ref().map(|r| r.started) else {
            return;
        };
        if self.session.generation() != started && !self.planted.is(Fault::NoRecheckAfterLock) {
            return self.finish_current(now);
        }
        self.attempt(now);
    }

    /// One attempt: checks backoff and the storm brake, then sends.
    fn attempt(&mut self, now: f64) {
        let Some(run) = &self.run else { return };
        let (why, deferrals) = (run.why, run.deferrals);
        if self.freed {
            return self.finish(now, Err(Error::Freed));
        }
        if !self.session.is_authenticated() && why != Why::Join {
            return self.finish(now, Err(Error::NotAuthenticated));
        }
        let gen = self.session.generation();
        if why != Why::Join && self.cannot_refresh() {
            // An OpenID session without a refresh token lives as long as
            // its access token, then ends in every tab.
            if self.session.is_expired(now) {
                self.end_session(LogoutReason::Expired);
                return self.finish(now, Err(Error::NotAuthenticated));
            }
            let result = if why != Why::Needed {
                Ok(gen)
            } else {
                Err(Error::InvalidTokenResponse {
                    reason: provider::NO_REFRESH_TOKEN,
                })
            };
            return self.finish(now, result);
        }
        match self.session.begin_refresh(now) {
            Ok(()) => {}
            // A caller that needs a token waits out a short backoff (a
            // Retry-After, maybe from another tab) and then tries.
            Err(Error::RefreshThrottled { retry_in_ms })
                if why == Why::Needed
                    && deferrals < ATTEMPTS_WHEN_NEEDED
                    && retry_in_ms <= MAX_WAIT_IN_CALL_MS =>
            {
                if let Some(run) = &mut self.run {
                    run.deferrals += 1;
                    // Round up: the moment must have passed when it is re-checked.
                    run.phase = Phase::Deferred {
                        until: now + ceil(retry_in_ms) + 1.0,
                        gen,
                    };
                }
                return;
            }
            // Backing off or braking: a still-valid token is used as it is,
            // unless the caller needs a new one (`refresh()`, a 401 on the
            // current token, an expired token): it is told why there is none.
            Err(e) => {
                if let Error::RefreshThrottled { retry_in_ms } = e {
                    self.quiet_until = now + retry_in_ms;
                }
                let result = if why != Why::Needed { Ok(gen) } else { Err(e) };
                return self.finish(now, result);
            }
        }
        let refresh_token = self.session.refresh_token();
        if let Some(run) = &mut self.run {
            run.attempts += 1;
            run.nonce_retried = false;
            run.phase = Phase::Sending {
                gen,
                refresh_token: refresh_token.clone(),
            };
        }
        if self.settings.refresh_style != RefreshStyle::Cookie && refresh_token.is_none() {
            let missing = TokenAnswer::Failure {
                status: 0,
                oauth_error: None,
                retry_after_ms: None,
                malformed: Some("there is no refresh token to send"),
            };
            return self.answered(now, gen, None, missing);
        }
        self.send_refresh(now, refresh_token);
    }

    /// Sends the refresh request, with a DPoP session's proof.
    fn send_refresh(&mut self, now: f64, refresh_token: Option<String>) {
        let url = self.settings.refresh_url.clone();
        let proof = self.session_proof(now, "POST", &url, None);
        self.out.push_back(Command::Refresh {
            refresh_token,
            proof,
        });
    }

    /// What a refresh answer means: new tokens, the end of the session, or
    /// a backoff (with a retry while a caller waits).
    fn answered(&mut self, now: f64, gen: u64, sent: Option<String>, answer: TokenAnswer) {
        let Some(run) = &self.run else { return };
        let (why, attempts) = (run.why, run.attempts);
        let (status, oauth_error, retry_after, malformed) = match answer {
            TokenAnswer::Grant { grant, timing } => {
                let expires_in = grant.expires_in;
                let key = self.session.tokens().and_then(|t| t.key.clone());
                let accepted = Self::check_token_type(&grant, self.dpop_on() && key.is_some())
                    .and_then(|()| token::accept_grant(grant, timing, sent));
                match accepted {
                    Ok(mut tokens) => {
                        // Rotated tokens stay bound to the session's key.
                        tokens.key = key;
                        if let Err(e) = self.check_refreshed_id(&mut tokens, timing) {
                            // Another user's tokens, or a provider that
                            // breaks its promises: the session ends.
                            self.emit(Event::RefreshError {
                                error: e.clone(),
                                retrying: false,
                                retry_in_ms: None,
                            });
                            self.end_session(LogoutReason::RefreshFailed);
                            return self.finish(now, Err(e));
                        }
                        // The server's clock does not move against ours from
                        // one refresh to the next: a token whose `iat` says
                        // otherwise was issued earlier (a grace-window reuse
                        // hands back the last pair) and would look fresher
                        // than it is. The skew the current token was read
                        // with stays.
                        if let Some(skew) = self.session.skew() {
                            tokens.expires_at =
                                token::steady_expiry(&tokens, expires_in, timing, skew);
                        }
                        // A tab that joins with the cookie starts this
                        // browser's session anew, as a login does.
                        let start = (why == Why::Join).then(|| protocol::first_generation(now));
                        // Counted from its sending, a token may lapse while a
                        // slow answer travels: counted from its arrival it
                        // must still be good to be handed out.
                        let trip = (timing.received_at - timing.sent_at).max(0.0);
                        let usable = tokens.expires_at.is_none_or(|at| at + trip > now);
                        let g = self.adopt(tokens, start, why.source());
                        return self.finish_run(now, Ok(g), usable);
                    }
                    Err(Error::InvalidTokenResponse { reason }) => (200, None, None, Some(reason)),
                    Err(e) => return self.finish(now, Err(e)),
                }
            }
            TokenAnswer::Failure {
                status,
                oauth_error,
                retry_after_ms,
                malformed,
            } => (status, oauth_error, retry_after_ms, malformed),
        };
        let class = match malformed {
            // A malformed answer never wipes the session: treated as passing.
            Some(_) => FailureClass::Transient,
            None => session::classify(status, oauth_error.as_deref()),
        };
        if class == FailureClass::Fatal {
            if why == Why::Join {
                // No session to end: the cookie simply holds none.
                let err = Error::SessionEnded {
                    status,
                    oauth_error,
                };
                return self.finish(now, Err(err));
            }
            if !self.env.tabs {
                return self.refused(now, status, oauth_error);
            }
            // Refused: perhaps another tab rotated the token (or a response
            // was lost). Ask the other tabs for newer tokens before giving up.
            self.post(Message::Hello { gen });
            if let Some(run) = &mut self.run {
                run.phase = Phase::Asking {
                    until: now + ASK_WAIT_MS,
                    gen,
                    status,
                    oauth_error,
                };
            }
            return;
        }
        let spread = self.random();
        let wait = self.session.transient_failure(now, retry_after, spread);
        let expired = self.session.is_expired(now);
        // The other tabs hold the same refresh token: they wait too.
        if why != Why::Join {
            self.post(Message::Backoff {
                gen,
                until: now + wait,
            });
        }
        let err = match malformed {
            Some(reason) => Error::InvalidTokenResponse { reason },
            None => Error::RefreshUnavailable {
                status,
                oauth_error,
                retry_in_ms: wait,
            },
        };
        if why == Why::Join {
            return self.finish(now, Err(err));
        }
        // A malformed 2xx answer is not retried at once: the server may have
        // rotated the refresh token already, and a retry with the old one
        // would look like reuse.
        let retry_here = malformed.is_none()
            && why == Why::Needed
            && attempts < ATTEMPTS_WHEN_NEEDED
            && wait <= MAX_WAIT_IN_CALL_MS;
        self.emit(Event::RefreshError {
            error: err.clone(),
            retrying: true,
            retry_in_ms: Some(wait),
        });
        if !retry_here {
            let result = if why != Why::Needed && !expired {
                Ok(self.session.generation())
            } else {
                Err(err)
            };
            return self.finish(now, result);
        }
        if let Some(run) = &mut self.run {
            // Round up: the backoff moment must have passed when it is re-checked.
            run.phase = Phase::Retrying {
                until: now + ceil(wait) + 1.0,
                gen,
            };
        }
    }

    /// The other tabs had nothing newer (or the wait is over).
    fn end_asking(&mut self, now: f64) {
        let Some(Phase::Asking {
            gen,
            status,
            oauth_error,
            ..
        }) = self.run.as_ref().map(|r| r.phase.clone())
        else {
            return;
        };
        if self.session.generation() != gen && self.session.is_authenticated() {
            return self.finish_current(now);
        }
        self.refused(now, status, oauth_error);
    }

    /// The refresh token was refused for good: the session ends.
    fn refused(&mut self, now: f64, status: u16, oauth_error: Option<String>) {
        let err = Error::SessionEnded {
            status,
            oauth_error,
        };
        self.emit(Event::RefreshError {
            error: err.clone(),
            retrying: false,
            retry_in_ms: None,
        });
        self.end_session(LogoutReason::RefreshFailed);
        self.finish(now, Err(err));
    }

    /// Ends the run with the current tokens (another tab's, or none).
    fn finish_current(&mut self, now: f64) {
        let result = if self.session.is_authenticated() {
            Ok(self.session.generation())
        } else {
            Err(Error::NotAuthenticated)
        };
        self.finish(now, result);
    }

    /// Ends the run and answers everyone who waited for it.
    fn finish(&mut self, now: f64, result: Result<u64, Error>) {
        self.finish_run(now, result, false);
    }

    /// [`Keeper::finish`]; `refreshed`: with the tokens this run's refresh
    /// just brought, good when counted from their arrival (used even when
    /// counted expired from their sending: a slow answer is no reason to ask
    /// again).
    fn finish_run(&mut self, now: f64, result: Result<u64, Error>, refreshed: bool) {
        let Some(run) = self.run.take() else { return };
        // Before its grant the lock is not held: the grant, when it comes,
        // is released at once (`handle_lock_granted`).
        if run.held {
            // Keep the lock a moment so the broadcast lands first (the one
            // of this run, or of the run it took the lock over from).
            let hold = if run.attempts > 0 {
                Some(now + HOLD_AFTER_BROADCAST_MS)
            } else {
                run.inherited
            };
            match hold {
                Some(until) => {
                    if self.release_at.is_some() {
                        self.out.push_back(Command::ReleaseLock);
                    }
                    self.release_at = Some(until);
                }
                None => self.out.push_back(Command::ReleaseLock),
            }
        }
        // Tokens that expired while the run waited (for the lock, or as a
        // throttled run ahead of expiry) are no answer to a caller that
        // needs a token: it waits for a refresh of its own.
        let stale = result.is_ok() && !refreshed && self.session.is_expired(now);
        for w in run.waiters {
            match w {
                Waiter::Token(_) | Waiter::Fetch(_) | Waiter::Replay { .. } if stale => {
                    self.join_run(now, Why::Needed, Some(w))
                }
                w => self.resolve(now, w, &result),
            }
        }
    }

    fn resolve(&mut self, now: f64, waiter: Waiter, result: &Result<u64, Error>) {
        match (waiter, result) {
            (Waiter::Token(call) | Waiter::Fetch(call), Ok(_)) => self.settle_token(now, call),
            // The session ended while the request waited for its token (the
            // refresh token refused, a logout): it goes as a request with no
            // session does, without the token, and the app gets the server's
            // own answer — a 401, reported as every HTTP client reports one —
            // not an error that reads as a network failure.
            (Waiter::Fetch(call), Err(e))
                if *e != Error::Freed && !self.session.is_authenticated() =>
            {
                self.settle(call, Reply::Passthrough)
            }
            (Waiter::Token(call) | Waiter::Fetch(call) | Waiter::Refresh(call), Err(e)) => {
                self.settle(call, Reply::Failed(e.clone()))
            }
            (Waiter::Refresh(call), Ok(_)) => self.settle(call, Reply::Done),
            (Waiter::Replay { call, url, method }, Ok(_)) => {
                self.settle_replay(now, call, &url, &method, false)
            }
            // The refresh ended the session: the 401 was the right answer.
            // (`free()` clears the session first: its calls end here too.)
            (Waiter::Replay { call, url, .. }, Err(_)) if !self.session.is_authenticated() => {
                self.expired(ExpiredReason::RefreshFailed, &url);
                self.settle(call, Reply::Return);
            }
            // It failed for now and the session lives on: the call fails as
            // fetch does when the network does (a client retries that, and
            // does not take it for the user being logged out).
            (Waiter::Replay { call, .. }, Err(e)) => self.settle(call, Reply::Failed(e.clone())),
            (Waiter::Ready(call), _) => {
                self.settle(call, Reply::Ready(self.session.is_authenticated()))
            }
        }
    }

    /// Re-checks everything that waits for the session to change.
    fn wake(&mut self, now: f64) {
        if self.session.is_authenticated() {
            for r in core::mem::take(&mut self.readies) {
                self.continue_ready(now, r.call);
            }
        }
        let generation = self.session.generation();
        match self.run.as_ref().map(|r| (&r.phase, r.started)) {
            // Newer tokens (or a logout) came while the run waited for the
            // lock or for the holder's broadcast: nothing left to refresh.
            Some((Phase::Locking | Phase::Spreading { .. } | Phase::Contended { .. }, started))
                if generation != started && !self.planted.is(Fault::NoRecheckAfterLock) =>
            {
                self.finish_current(now)
            }
            Some((Phase::Deferred { gen, .. } | Phase::Retrying { gen, .. }, _))
                if generation != *gen =>
            {
                self.finish_current(now)
            }
            Some((Phase::Asking { gen, .. }, _)) if generation != *gen => self.end_asking(now),
            _ => {}
        }
    }

    /// `ready()` after the other tabs were asked.
    fn continue_ready(&mut self, now: f64, call: CallId) {
        // (A DPoP cookie is bound to a key no new tab has: nothing to try.)
        if !self.session.is_authenticated()
            && self.settings.refresh_style == RefreshStyle::Cookie
            && !self.freed
            && !self.dpop_on()
        {
            return self.join_run(now, Why::Join, Some(Waiter::Ready(call)));
        }
        self.settle(call, Reply::Ready(self.session.is_authenticated()));
    }

    // ----- the session ----------------------------------------------------

    /// Puts new tokens in place and says so (to the other tabs, unless they
    /// came from one, and to the listeners).
    fn adopt(&mut self, tokens: TokenSet, generation: Option<u64>, source: Source) -> u64 {
        let expires_at = tokens.expires_at;
        let message = (source != Source::Tab).then(|| tokens.clone());
        let jitter = self.random();
        let generation = self.session.adopt(tokens, generation, jitter);
        // A response just issued these (not another tab, not the app): it
        // measured the server's clock.
        if !matches!(source, Source::Tab | Source::SetTokens) {
            self.session.measured();
        }
        self.quiet_until = 0.0;
        if let Some(tokens) = message {
            self.post(Message::Session {
                gen: generation,
                tokens,
                until: None,
                skew: self.session.skew(),
            });
        }
        if !matches!(source, Source::Login | Source::SetTokens) {
            self.emit(Event::Refresh {
                source,
                expires_at,
                generation,
            });
        }
        self.emit_change();
        generation
    }

    /// Adopts a renewed access token a server handed back in `renewHeader`.
    fn adopt_renewal(&mut self, now: f64, access: String, server_date: Option<f64>, sent_at: f64) {
        let same = self.session.tokens().is_some_and(|t| t.access == access);
        if same || !self.session.is_authenticated() {
            return;
        }
        let grant = RawGrant {
            access_token: Some(access),
            ..RawGrant::default()
        };
        let timing = Timing {
            sent_at,
            received_at: now,
            server_date,
            fresh: true,
        };
        if let Ok(mut tokens) = token::accept_grant(grant, timing, self.session.refresh_token()) {
            tokens.id = self.session.tokens().and_then(|t| t.id.clone());
            tokens.key = self.session.tokens().and_then(|t| t.key.clone());
            self.adopt(tokens, None, Source::RenewHeader);
        }
    }

    /// Ends the session (if there is one) and says why; tells the other
    /// tabs unless it ended in another tab.
    fn end_session(&mut self, reason: LogoutReason) {
        self.end_session_as(reason, reason != LogoutReason::Remote);
    }

    /// [`Keeper::end_session`]; `tell`: whether the other tabs are told.
    fn end_session_as(&mut self, reason: LogoutReason, tell: bool) {
        let had = self.session.clear();
        if tell {
            self.post(Message::Logout {
                gen: self.session.generation(),
                reason: reason.as_str().into(),
            });
        }
        if had {
            self.emit(Event::Logout { reason });
            self.emit_change();
        }
    }

    fn emit_change(&mut self) {
        self.prune_keys();
        self.emit(Event::Change {
            authenticated: self.session.is_authenticated(),
            expires_at: self.session.expires_at(),
            generation: self.session.generation(),
        });
    }

    fn expired(&mut self, reason: ExpiredReason, url: &str) {
        self.emit(Event::Expired {
            reason,
            url: url.into(),
        });
    }

    fn settle_token(&mut self, now: f64, call: CallId) {
        let reply = match self.session.tokens() {
            Some(t) => {
                let access = t.access.clone();
                Reply::Token {
                    generation: self.session.generation(),
                    proof: self.proof_for_call(now, call, &access),
                    access,
                }
            }
            None => Reply::Failed(Error::NotAuthenticated),
        };
        self.settle(call, reply);
    }

    /// A replay with the current token (and a DPoP session's proof): after
    /// a 401, or the one a resource's `use_dpop_nonce` earns (`nonce`). With
    /// no session left the app gets the answer (told it expired, after a 401).
    fn settle_replay(&mut self, now: f64, call: CallId, url: &str, method: &str, nonce: bool) {
        let Some(access) = self.session.tokens().map(|t| t.access.clone()) else {
            if !nonce {
                self.expired(ExpiredReason::NoSession, url);
            }
            return self.settle(call, Reply::Return);
        };
        let proof = self.session_proof(now, method, url, Some(&access));
        self.settle(
            call,
            Reply::Replay {
                access,
                proof,
                nonce,
            },
        );
    }

    fn settle(&mut self, call: CallId, reply: Reply) {
        self.forget_request(call);
        self.out.push_back(Command::Settle { call, reply });
    }

    fn emit(&mut self, event: Event) {
        self.out.push_back(Command::Emit(event));
    }

    fn post(&mut self, message: Message) {
        if self.env.tabs && !self.freed {
            self.out.push_back(Command::Post(message));
        }
    }

    /// A number in `[0, 1)` (xorshift64*).
    fn random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn random_id(&mut self) -> String {
        let mut id = String::with_capacity(16);
        for _ in 0..16 {
            let digit = (self.random() * 16.0) as u32;
            id.push(char::from_digit(digit.min(15), 16).unwrap_or('0'));
        }
        id
    }
}

/// Takes the first element of `list` that `matches` out of it. (`retain`,
/// not `remove`: nothing here may panic.)
fn take_first<T: Clone>(list: &mut Vec<T>, matches: impl Fn(&T) -> bool) -> Option<T> {
    let mut found = None;
    list.retain(|e| {
        let this = found.is_none() && matches(e);
        if this {
            found = Some(e.clone());
        }
        !this
    });
    found
}

impl Phase {
    /// When this phase's wait is over, if it waits for time.
    fn until(&self) -> Option<f64> {
        match self {
            Phase::Spreading { until }
            | Phase::Contended { until }
            | Phase::Deferred { until, .. }
            | Phase::Asking { until, .. }
            | Phase::Retrying { until, .. } => Some(*until),
            Phase::Locking | Phase::Sending { .. } => None,
        }
    }
}
