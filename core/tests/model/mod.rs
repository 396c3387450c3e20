//! The simulator: every tab runs the real [`Keeper`], against a model of
//! everything around it — a token server with rotation and reuse detection
//! (with its own clock), a BroadcastChannel, Web Locks, the browser's clock
//! and timers (throttled, frozen, asleep), the network with its faults, and
//! an app calling at random moments. One seed decides a whole schedule, so a
//! failure replays exactly. The invariants are checked after every step and
//! each is named ([`Invariant`]).
//!
//! What the model assumes of the browser, and the browser tests that pin
//! it, are listed in the README ("The simulator").

#![allow(dead_code)]

use base64::Engine as _;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use tokenkeeper_core::config::Settings;
use tokenkeeper_core::dpop::{self, Proof};
use tokenkeeper_core::keeper::{
    Answered, CallId, Command, Env, Event, Keeper, LogoutReason, PageEvent, Reply, TokenAnswer,
};
#[cfg(feature = "planted-faults")]
use tokenkeeper_core::planted::Fault;
use tokenkeeper_core::protocol::{self, Message};
use tokenkeeper_core::testing::{TestUrls, TEST_ORIGIN};
use tokenkeeper_core::token::{RawGrant, Timing, SKEW_THRESHOLD_MS};
use tokenkeeper_core::value::OptValue;
use tokenkeeper_core::Error;

#[path = "../sim/json.rs"]
mod json;
use json::encode;

/// The invariants, each checked after every step of every schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// 1. No refresh token is presented twice, except after a lost response
    ///    (and then the session recovers inside the grace window, or ends
    ///    cleanly in every tab: checked by 4 and 7). With Web Locks: without
    ///    them tabs cannot exclude each other, and only the rest is promised.
    NoReuse,
    /// 2. No API request carries a token the server considers expired,
    ///    beyond the clock tolerance ([`SKEW_BOUND_MS`]).
    NoExpiredToken,
    /// 3. One token-endpoint request per rotation: with locks, never two
    ///    refresh requests in flight at once; and a tab refreshes only when
    ///    it needs to (its token is due, a 401 for its current token, or the
    ///    app asked).
    OneRequestPerRotation,
    /// 4. A logout or a refused refresh in any tab reaches every live tab
    ///    within [`LOGOUT_REACH_MS`] of its live time.
    LogoutReachesEveryTab,
    /// 5. No tab ends a session whose family is still alive at the server
    ///    (no spurious logout).
    NoSpuriousLogout,
    /// 6. Every app call settles within [`CALL_BOUND_MS`] of its tab's live
    ///    time, with the outcome a user would expect.
    CallsSettle,
    /// 7. Generations only grow, and after quiescence every tab holds the
    ///    same tokens: the family's current, unexpired ones while it lives.
    Converges,
    /// 8. No refresh reaches the server before a `Retry-After` it gave has
    ///    passed (with locks: without, tabs cannot know of each other's).
    HonoursRetryAfter,
    /// 9. With DPoP, the keys follow the session: every open tab holding a
    ///    session holds the key it is bound to (the one that came with it,
    ///    named for what it is), no tab sends a proof it cannot sign, no
    ///    proof of a tab is refused by the server, and a tab holds no key
    ///    but its session's (and its login's in flight). Without DPoP, no
    ///    tab makes, takes or uses a key.
    KeysFollowTheSession,
}

impl Invariant {
    /// Every invariant.
    pub const ALL: [Invariant; 9] = [
        Invariant::NoReuse,
        Invariant::NoExpiredToken,
        Invariant::OneRequestPerRotation,
        Invariant::LogoutReachesEveryTab,
        Invariant::NoSpuriousLogout,
        Invariant::CallsSettle,
        Invariant::Converges,
        Invariant::HonoursRetryAfter,
        Invariant::KeysFollowTheSession,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::NoReuse => "1 no-reuse",
            Invariant::NoExpiredToken => "2 no-expired-token",
            Invariant::OneRequestPerRotation => "3 one-request-per-rotation",
            Invariant::LogoutReachesEveryTab => "4 logout-reaches-every-tab",
            Invariant::NoSpuriousLogout => "5 no-spurious-logout",
            Invariant::CallsSettle => "6 calls-settle",
            Invariant::Converges => "7 converges",
            Invariant::HonoursRetryAfter => "8 honours-retry-after",
            Invariant::KeysFollowTheSession => "9 keys-follow-the-session",
        }
    }
}

/// How far past its expiry (server clock) a token may reach the server: the
/// keeper ignores a clock difference below [`SKEW_THRESHOLD_MS`], and the
/// server's clocks (`Date`, `iat`, `exp`) count whole seconds.
pub const SKEW_BOUND_MS: f64 = SKEW_THRESHOLD_MS + 1_000.0;
/// How long (of its live time) a tab may go on holding a session that ended
/// in another tab.
pub const LOGOUT_REACH_MS: f64 = 1_000.0;
/// How long (of its tab's live time) an app call may wait.
pub const CALL_BOUND_MS: f64 = 10.0 * 60_000.0;
/// The simulated time after the last fault in which every tab must hold the
/// family's current tokens again (more than the longest `Retry-After` the
/// model's server gives plus the longest backoff).
pub const QUIESCENCE_MS: f64 = 5.0 * 60_000.0;
/// The browser's start.
pub const T0: f64 = 1_700_000_000_000.0;
/// The longest `Retry-After` the model's server asks for, in seconds.
pub const MAX_RETRY_AFTER_S: f64 = 120.0;
/// A fault this long ago can no longer be felt (the longest backoff or
/// `Retry-After` has passed): an app call after it expects success.
pub const CALM_MS: f64 = 3.0 * 60_000.0;

/// A small, fast, seeded generator (splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }
    /// The next 64 bits.
    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// In `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// In `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.u64() % n.max(1) as u64) as usize
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    /// In `[a, b)`.
    pub fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.f64()
    }
}

/// How the server's access tokens tell their expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Opaque, with `expires_in`.
    Opaque,
    /// A JWT with `exp` and `iat`, no `expires_in`; `date`: the response has
    /// a `Date` header the page can read.
    Jwt { date: bool },
}

/// What a schedule is made of, drawn from its seed.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Tabs open at most at once (1 ..= 16).
    pub max_tabs: usize,
    /// Web Locks are there.
    pub locks: bool,
    /// The server's grace window for a rotated refresh token (0: none).
    pub grace_ms: f64,
    /// The refresh token is an HttpOnly cookie (`refreshStyle: "cookie"`).
    pub cookie: bool,
    /// Access tokens.
    pub token: TokenKind,
    /// Access token lifetime, s.
    pub ttl_s: f64,
    /// The browser's clock minus the server's, ms (within ±1 h).
    pub skew_ms: f64,
    /// The chance that a request meets a fault.
    pub fault_rate: f64,
    /// The longest a message takes to reach a tab, ms.
    pub bus_max_ms: f64,
    /// The longest one-way network latency, ms.
    pub latency_max_ms: f64,
    /// The server revokes an access token when it rotates its family.
    pub revoke_on_rotation: bool,
    /// `logoutUrl` is set: a logout revokes the family at the server.
    pub logout_url: bool,
    /// How long the app acts (then the world quiesces), ms.
    pub active_ms: f64,
    /// Mean time between two things happening, ms.
    pub mean_gap_ms: f64,
    /// DPoP (RFC 9449): the keeper has `dpop: true`, a login makes a key
    /// pair, and the server binds the family to it: its tokens are
    /// honoured only with that key's proofs.
    pub dpop: bool,
    /// (With DPoP) the server demands a nonce in every proof (RFC 9449
    /// §8, §9), a new one at random moments.
    pub dpop_nonce: bool,
}

impl Shape {
    /// The shape seed `rng` draws.
    pub fn draw(rng: &mut Rng) -> Shape {
        let max_tabs = match rng.below(10) {
            0..=2 => 1 + rng.below(2),
            3..=7 => 2 + rng.below(3),
            _ => 5 + rng.below(12),
        };
        let ttl_s = [5.0, 10.0, 30.0, 60.0, 300.0][rng.below(5)];
        let skew_ms = match rng.below(4) {
            0 => 0.0,
            1 => rng.range(-3_000.0, 3_000.0),
            _ => rng.range(-3_600_000.0, 3_600_000.0),
        };
        let active_ms = ttl_s * 1000.0 * rng.range(2.0, 12.0) + rng.range(0.0, 120_000.0);
        let locks = rng.chance(0.8);
        let grace = rng.chance(0.5);
        let mut shape = Shape {
            max_tabs,
            locks,
            grace_ms: if grace {
                rng.range(1_000.0, 10_000.0)
            } else {
                0.0
            },
            cookie: rng.chance(0.25),
            token: match rng.below(3) {
                0 => TokenKind::Opaque,
                1 => TokenKind::Jwt { date: true },
                _ => TokenKind::Jwt { date: false },
            },
            ttl_s,
            skew_ms,
            fault_rate: [0.0, 0.02, 0.1, 0.3][rng.below(4)],
            // Within half of ASK_WAIT_MS, as the protocol counts on.
            bus_max_ms: [1.0, 10.0, 30.0, 75.0][rng.below(4)],
            latency_max_ms: [5.0, 50.0, 200.0, 450.0][rng.below(4)],
            revoke_on_rotation: rng.chance(0.3),
            logout_url: rng.chance(0.5),
            active_ms,
            mean_gap_ms: rng.range(200.0, 8_000.0),
            dpop: false,
            dpop_nonce: false,
        };
        // Drawn last, from a stream of its own: the schedule of a seed
        // without DPoP is the one it was before DPoP was modelled.
        let mut own = Rng(rng.0 ^ 0xd1b5_4a32_d192_ed03);
        shape.dpop = own.chance(0.3);
        // Half of them against a server that demands nonces.
        shape.dpop_nonce = own.chance(0.5) && shape.dpop;
        shape
    }
}

/// An invariant broken, where and how.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Which.
    pub invariant: Invariant,
    /// What happened.
    pub detail: String,
    /// When (simulated ms since the start).
    pub at_ms: f64,
}

/// What one schedule did.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Steps taken (events handled).
    pub steps: u64,
    /// Token-endpoint requests the server saw.
    pub refreshes: u64,
    /// API requests the server saw.
    pub api_requests: u64,
    /// Faults injected.
    pub faults: u64,
    /// Families revoked by reuse detection: after a lost response (with
    /// locks), or after two tabs without locks collided.
    pub reuse_revocations: u64,
    /// Of those, without locks.
    pub lockless_revocations: u64,
    /// Grace-window reuses the server forgave.
    pub grace_reuses: u64,
    /// App calls made.
    pub calls: u64,
    /// Simulated time, ms.
    pub simulated_ms: f64,
    /// Schedules with DPoP.
    pub dpop_schedules: u64,
    /// DPoP key pairs made (one per login).
    pub keys_made: u64,
    /// DPoP proofs the server checked and accepted (one refused breaks 9).
    pub proofs: u64,
    /// `use_dpop_nonce` answers (a proof without the server's nonce).
    pub nonce_challenges: u64,
}

struct Item {
    at: f64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, o: &Item) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Item) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    // The earliest first (BinaryHeap is a max-heap).
    fn cmp(&self, o: &Item) -> Ordering {
        o.at.total_cmp(&self.at).then(o.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Clone)]
enum Ev {
    /// The app, the user or the world does something.
    Chaos,
    /// A tab's timer fires.
    Timer { tab: usize, serial: u64 },
    /// A message reaches a tab, with the DPoP key that travels beside it
    /// (the real key's thumbprint).
    Deliver {
        tab: usize,
        data: OptValue,
        key: Option<String>,
    },
    /// The executor made the DPoP key pair a login waits for.
    KeyMade { tab: usize, call: CallId },
    /// A tab gets the lock.
    Grant { tab: usize, contended: bool },
    /// A refresh request reaches the server.
    RefreshArrive { req: usize },
    /// Its answer reaches the tab.
    RefreshAnswer { req: usize, answer: TokenAnswer },
    /// An API request reaches the server (with its DPoP proof, signed).
    ApiArrive {
        op: usize,
        access: Option<String>,
        proof: Option<Signed>,
    },
    /// Its answer reaches the tab (0: a network error), with its
    /// `DPoP-Nonce` and `WWW-Authenticate`.
    ApiAnswer {
        op: usize,
        status: u16,
        nonce: Option<String>,
        challenge: Option<&'static str>,
    },
    /// A login's answer reaches the tab (`call`: the keeper's `login()`
    /// call, with DPoP; without, the answer is handed to a new call).
    LoginAnswer {
        op: usize,
        answer: TokenAnswer,
        call: Option<CallId>,
        nonce: Option<String>,
    },
    /// The server demands a new DPoP nonce.
    NonceRotates,
    /// A logout notice reaches the server.
    LogoutArrive { family: Option<usize> },
    /// A frozen tab resumes.
    Unfreeze { tab: usize },
    /// The browser releases a closed tab's locks.
    Released { tab: usize },
    /// The laptop wakes.
    Wake,
    /// The network is back.
    Online,
    /// The server is back.
    OutageEnd,
    /// The app stops acting and the faults end: the world quiesces.
    Quiesce,
    /// The end of the schedule.
    End,
}

/// A DPoP proof as the executor sent it: the signing input, signed by the
/// key it holds under the proof's name (a server checks the signature
/// against the header's key: the model compares the signer's real
/// thumbprint with the header key's).
#[derive(Debug, Clone)]
struct Signed {
    input: String,
    /// The real thumbprint of the key that signed it.
    signer: String,
    /// The tab's keeper had measured the server's clock when it made the
    /// proof (then its `iat` is the server's time; before, the browser's).
    clock_known: bool,
}

/// What a server's check of a DPoP proof found.
enum Verdict {
    /// Good: by the key with this thumbprint.
    Good(String),
    /// Good, but without the nonce the server demands now.
    Nonce,
    /// Refused.
    Bad(String),
}

/// One access or refresh token the server issued.
#[derive(Debug, Clone)]
struct Issued {
    family: usize,
    /// Server-clock expiry (access tokens).
    expires: f64,
    /// Revoked before its expiry (its family ended, or it was rotated out
    /// by a server that revokes on rotation).
    revoked: bool,
}

#[derive(Debug, Clone)]
struct Family {
    alive: bool,
    access: String,
    refresh: String,
    /// The refresh token before the last rotation, and when it was rotated.
    previous: Option<(String, f64)>,
    serial: u32,
    /// The browser let the session go (a logout, its last tab closed, a
    /// newer session in its place).
    ended_in_browser: bool,
    /// A tab held it.
    held: bool,
}

/// The model token server, in its own clock (the true time; the browser's
/// is `skew_ms` off).
#[derive(Debug, Default)]
struct Server {
    families: Vec<Family>,
    access: HashMap<String, Issued>,
    refresh: HashMap<String, usize>,
    /// Refresh tokens consumed (rotated, or forgiven in the grace window),
    /// with the requests that did it.
    consumed: HashMap<String, Vec<usize>>,
    outage_until: f64,
    /// Per family: the latest moment a `Retry-After` asked its refreshes to
    /// wait for (a new login starts afresh).
    retry_not_before: HashMap<usize, f64>,
    /// (family, tab) → until when (server clock) the tab was told to wait
    /// by a Retry-After of the family's (its
    /// answer, or another tab's backoff message): only such a tab can
    /// honour it. (A tab that joins with the cookie while the tabs that
    /// know are frozen cannot.)
    told: HashMap<(usize, usize), f64>,
    /// DPoP: the thumbprint of the key each family is bound to (its
    /// login's).
    bound: HashMap<usize, String>,
    /// The DPoP proofs' `jti`s seen (each is good once).
    jtis: HashSet<String>,
    /// The nonce every proof must carry (and every answer hands out), when
    /// the server demands one; and how many it gave.
    nonce: Option<String>,
    nonces: u32,
}

#[derive(Debug, Clone)]
struct Req {
    tab: usize,
    sent: f64,
    /// The refresh token presented (the cookie jar's, in cookie mode, read
    /// when it reaches the server).
    token: Option<String>,
    /// The tab will never see its answer (closed, asleep, dropped).
    lost: bool,
    /// Its answer reached the tab.
    answered: bool,
    /// Never reaches the server.
    cancelled: bool,
    /// The family it was refused for, if it was.
    refused_family: Option<usize>,
    /// The Retry-After its answer carries ends here (server clock).
    retry_until: Option<f64>,
    /// Sent by a tab with no session, joining with the cookie: it could not
    /// know of a `Retry-After` (no tab that could tell it answered).
    joining: bool,
    /// Its DPoP proof, signed.
    proof: Option<Signed>,
    /// The keeper's one retry of a refresh a `use_dpop_nonce` refused.
    nonce_retry: bool,
    /// The `DPoP-Nonce` its answer carries.
    nonce: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Fetch,
    GetToken,
    Refresh,
    Ready,
    Login,
}

#[derive(Debug, Clone)]
struct Op {
    tab: usize,
    kind: OpKind,
    started: f64,
    paused_at_start: f64,
    done: bool,
    /// The generation of the token its request carried.
    carried_gen: u64,
    access: Option<String>,
    replayed: bool,
    sent: f64,
    /// How it ended.
    outcome: String,
    /// It got a token the server took when it got it.
    valid: bool,
    /// (A fetch) its request is the replay a resource's `use_dpop_nonce`
    /// earned; (a login) it was asked for a nonce already.
    nonce_replayed: bool,
    /// (A fetch) its last answer was a resource's `use_dpop_nonce`.
    nonce_401: bool,
}

struct Tab {
    keeper: Keeper,
    open: bool,
    frozen: bool,
    visible: bool,
    /// Timer granularity while hidden, for a timer chained five deep from
    /// timer callbacks (Chrome's intensive throttling: 60 s; otherwise 1 s).
    throttle_ms: f64,
    /// The nesting level of the pending timer (1 when armed outside a timer
    /// callback).
    nesting: u32,
    timer_at: Option<f64>,
    timer_serial: u64,
    timer_pending: bool,
    /// When the pending timer fires unthrottled (true time).
    timer_fire: f64,
    held: Vec<Ev>,
    /// Live time lost to freezing and sleep, ms.
    paused_ms: f64,
    frozen_since: f64,
    last_unfrozen: f64,
    last_gen: u64,
    /// Keeper calls in flight: which op, at which stage.
    calls: HashMap<CallId, usize>,
    /// The family of the tokens it holds.
    family: Option<usize>,
    /// Since when it holds a session.
    auth_since: Option<f64>,
    /// The DPoP private keys its executor holds: (the name the keeper gave
    /// it, the real key's thumbprint).
    keys: Vec<(String, String)>,
    /// Its keeper had measured the server's clock by the end of its last
    /// input: the proofs of its next are dated by the server's clock.
    clock_known: bool,
    /// The refresh answer it handles asked for a nonce: the refresh it
    /// sends now is the keeper's one retry.
    nonce_asked: bool,
}

/// A logout that must reach `tab` before it has lived `LOGOUT_REACH_MS` more.
#[derive(Debug, Clone)]
struct Reach {
    tab: usize,
    gen: u64,
    since: f64,
    paused_at: f64,
    from: usize,
}

/// One schedule's world.
pub struct World {
    pub shape: Shape,
    rng: Rng,
    /// True time (the server's clock).
    t: f64,
    queue: BinaryHeap<Item>,
    seq: u64,
    tabs: Vec<Tab>,
    settings: Settings,
    server: Server,
    reqs: Vec<Req>,
    ops: Vec<Op>,
    /// The refresh lock's queue: the front holds it (per the lock
    /// manager), and `granted` once the grant reached it.
    lock: VecDeque<usize>,
    granted: bool,
    /// The tab whose timer callback runs now.
    in_timer: Option<usize>,
    /// Per sender and receiver: the last delivery moment (one sender's
    /// messages arrive in order).
    last_delivery: HashMap<(usize, usize), f64>,
    jar: Option<String>,
    offline: bool,
    asleep_until: f64,
    /// When the last fault was over.
    last_fault: f64,
    /// Ops not yet settled.
    pending: Vec<usize>,

    active: bool,
    next_call: u32,
    reach: Vec<Reach>,
    pub stats: Stats,
    /// The last lines of the trace, when tracing.
    trace: Option<VecDeque<String>>,
    #[cfg(feature = "planted-faults")]
    plant: Option<Fault>,
    violation: Option<Violation>,
    /// The DPoP key that came with the tab message being handled.
    incoming: Option<String>,
}

/// The shape of the schedule of `seed`.
pub fn shape_of(seed: u64) -> Shape {
    Shape::draw(&mut Rng::new(seed))
}

/// Runs the schedule of `seed`; `trace` keeps its last lines for a report.
pub fn run(seed: u64, trace: bool) -> Result<Stats, (Violation, Vec<String>)> {
    World::new(seed, trace).outcome()
}

/// Runs the schedule of `seed` with `fault` planted in every tab's keeper.
#[cfg(feature = "planted-faults")]
pub fn run_planted(
    seed: u64,
    trace: bool,
    fault: Fault,
) -> Result<Stats, (Violation, Vec<String>)> {
    let mut w = World::new(seed, trace);
    w.plant = Some(fault);
    w.outcome()
}

macro_rules! tr {
    ($w:expr, $($arg:tt)*) => {
        if $w.trace.is_some() {
            let line = format!("{:>12.1} {}", $w.t - T0, format!($($arg)*));
            if let Some(t) = &mut $w.trace {
                if t.len() >= 5000 {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
    };
}

fn settings(shape: &Shape) -> Settings {
    let mut entries = vec![("refreshUrl".to_string(), OptValue::Str("/token".into()))];
    if shape.cookie {
        entries.push(("refreshStyle".into(), OptValue::Str("cookie".into())));
    }
    if shape.logout_url {
        entries.push(("logoutUrl".into(), OptValue::Str("/logout".into())));
    }
    if shape.dpop {
        entries.push(("dpop".into(), OptValue::Bool(true)));
    }
    match Settings::from_options(&OptValue::Map(entries), &TestUrls) {
        Ok(s) => s,
        Err(e) => panic!("settings: {e}"),
    }
}

/// Unpadded base64url, as a JWT's parts are.
fn b64(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

impl World {
    fn outcome(mut self) -> Result<Stats, (Violation, Vec<String>)> {
        self.go();
        match self.violation.take() {
            None => Ok(self.stats),
            Some(v) => Err((v, self.trace.map(Vec::from).unwrap_or_default())),
        }
    }

    fn new(seed: u64, trace: bool) -> World {
        let mut rng = Rng::new(seed);
        let shape = Shape::draw(&mut rng);
        let settings = settings(&shape);
        World {
            shape,
            rng,
            t: T0,
            queue: BinaryHeap::new(),
            seq: 0,
            tabs: Vec::new(),
            settings,
            server: Server::default(),
            reqs: Vec::new(),
            ops: Vec::new(),
            lock: VecDeque::new(),
            granted: false,
            in_timer: None,
            last_delivery: HashMap::new(),
            jar: None,
            offline: false,
            asleep_until: 0.0,
            last_fault: 0.0,
            pending: Vec::new(),

            active: true,
            next_call: 0,
            reach: Vec::new(),
            stats: Stats::default(),
            trace: trace.then(VecDeque::new),
            #[cfg(feature = "planted-faults")]
            plant: None,
            violation: None,
            incoming: None,
        }
    }

    /// The browser's clock.
    fn local(&self) -> f64 {
        self.t + self.shape.skew_ms
    }

    fn push(&mut self, at: f64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Item {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn fail(&mut self, invariant: Invariant, detail: String) {
        if self.violation.is_none() {
            tr!(self, "VIOLATION {}: {detail}", invariant.name());
            self.violation = Some(Violation {
                invariant,
                detail,
                at_ms: self.t - T0,
            });
        }
    }

    fn latency(&mut self) -> f64 {
        let max = self.shape.latency_max_ms;
        self.rng.range(1.0, max.max(1.0))
    }

    /// A fault, or something like one (a sleep, an outage), lasting until `until`.
    fn faulted(&mut self, until: f64) {
        self.stats.faults += 1;
        self.last_fault = self.last_fault.max(until);
    }

    /// Whether the world was calm for a while before `since` and ever after:
    /// no backoff can still be running from a fault.
    fn calm_since(&self, since: f64) -> bool {
        self.last_fault + CALM_MS < since
    }

    fn fault(&mut self) -> bool {
        if self.active && self.rng.chance(self.shape.fault_rate) {
            self.faulted(self.t);
            true
        } else {
            false
        }
    }

    fn go(&mut self) {
        let shape_line = format!("{:?}", self.shape);
        tr!(self, "shape {shape_line}");
        self.stats.dpop_schedules = u64::from(self.shape.dpop);
        if self.shape.dpop_nonce {
            self.rotate_nonce();
        }
        let first = self.open_tab();
        self.login(first);
        let gap = self.gap();
        self.push(self.t + gap, Ev::Chaos);
        let end = self.t + self.shape.active_ms;
        self.push(end, Ev::Quiesce);
        while let Some(item) = self.queue.pop() {
            self.t = self.t.max(item.at);
            self.stats.steps += 1;
            if self.stats.steps > 2_000_000 {
                self.fail(Invariant::CallsSettle, "the world spins".into());
            }
            let end = matches!(item.ev, Ev::End);
            self.handle(item.ev);
            self.check_step();
            if end || self.violation.is_some() {
                break;
            }
        }
        self.stats.simulated_ms = self.t - T0;
    }

    /// The server demands a new DPoP nonce (until the world quiesces), and
    /// again at a random moment.
    fn rotate_nonce(&mut self) {
        if self.server.nonce.is_some() && !self.active {
            return;
        }
        self.server.nonces += 1;
        let nonce = format!("n-{}", self.server.nonces);
        tr!(self, "server: the DPoP nonce is {nonce} now");
        self.server.nonce = Some(nonce);
        let at = self.t + self.rng.range(1_000.0, 120_000.0);
        self.push(at, Ev::NonceRotates);
    }

    fn gap(&mut self) -> f64 {
        // Exponential gaps: bursts and lulls.
        -self.shape.mean_gap_ms * (1.0 - self.rng.f64()).ln()
    }

    // ----- tabs ---------------------------------------------------------

    fn open_tab(&mut self) -> usize {
        let seed = self.rng.u64();
        let env = Env {
            tabs: true,
            locks: self.shape.locks,
            seed,
        };
        #[allow(unused_mut)]
        let mut keeper = Keeper::new(self.settings.clone(), env);
        #[cfg(feature = "planted-faults")]
        if let Some(f) = self.plant {
            keeper.plant(f);
        }
        let throttle_ms = if self.rng.chance(0.5) {
            1_000.0
        } else {
            60_000.0
        };
        self.tabs.push(Tab {
            keeper,
            open: true,
            frozen: false,
            visible: self.rng.chance(0.5),
            throttle_ms,
            nesting: 0,
            timer_at: None,
            timer_serial: 0,
            timer_pending: false,
            timer_fire: 0.0,
            held: Vec::new(),
            paused_ms: 0.0,
            frozen_since: 0.0,
            last_unfrozen: self.t,
            last_gen: 0,
            calls: HashMap::new(),
            family: None,
            auth_since: None,
            keys: Vec::new(),
            clock_known: false,
            nonce_asked: false,
        });
        let tab = self.tabs.len() - 1;
        tr!(self, "tab {tab} opens");
        // A new tab's app asks whether there is a session.
        self.start_op(tab, OpKind::Ready);
        tab
    }

    fn live(&self, tab: usize) -> bool {
        self.tabs[tab].open && !self.tabs[tab].frozen && self.t >= self.asleep_until
    }

    fn open_tabs(&self) -> Vec<usize> {
        (0..self.tabs.len())
            .filter(|t| self.tabs[*t].open)
            .collect()
    }

    fn live_tabs(&self) -> Vec<usize> {
        (0..self.tabs.len()).filter(|t| self.live(*t)).collect()
    }

    fn close_tab(&mut self, tab: usize) {
        tr!(self, "tab {tab} closes");
        self.tabs[tab].keeper.free();
        let family = self.tabs[tab].family;
        self.tabs[tab].open = false;
        self.drain(tab);
        // Tokens live in the tabs' memory: with the last tab that held
        // them, the session is gone (unless the cookie keeps it — but not
        // a DPoP one: its key lived in the tabs' memory too).
        if let (Some(f), false) = (family, self.shape.cookie && !self.shape.dpop) {
            if !self.tabs.iter().any(|t| t.open && t.family == Some(f)) {
                self.server.families[f].ended_in_browser = true;
            }
        }
        self.tabs[tab].held.clear();
        // And its executor's keys with it.
        self.tabs[tab].keys.clear();
        // The browser releases its locks and requests — after the messages
        // the tab posted before it closed are delivered (the model's
        // assumption of the browser: the README lists it).
        let posted = (0..self.tabs.len())
            .filter_map(|to| self.last_delivery.get(&(tab, to)).copied())
            .fold(self.t, f64::max);
        self.push(posted, Ev::Released { tab });
        // Its requests are cancelled: some never leave, the rest are
        // answered to nobody.
        for i in 0..self.reqs.len() {
            if self.reqs[i].tab == tab && !self.reqs[i].answered && !self.reqs[i].lost {
                self.reqs[i].lost = true;
                self.faulted(self.t);
                if self.rng.chance(0.5) {
                    self.reqs[i].cancelled = true;
                }
            }
        }
        for op in &mut self.ops {
            if op.tab == tab {
                op.done = true;
            }
        }
        self.reach.retain(|r| r.tab != tab);
    }

    fn freeze(&mut self, tab: usize) {
        tr!(self, "tab {tab} freezes");
        let t = self.t;
        let tb = &mut self.tabs[tab];
        tb.frozen = true;
        tb.frozen_since = t;
    }

    fn unfreeze(&mut self, tab: usize) {
        if !self.tabs[tab].open || !self.tabs[tab].frozen {
            return;
        }
        tr!(self, "tab {tab} resumes");
        let t = self.t;
        {
            let tb = &mut self.tabs[tab];
            tb.frozen = false;
            tb.paused_ms += t - tb.frozen_since;
            tb.last_unfrozen = t;
        }
        // What waited for it, and the page event, in an order the browser
        // does not promise.
        let mut held = std::mem::take(&mut self.tabs[tab].held);
        let count = held.len();
        let at = self.rng.below(count + 1);
        let page = if self.rng.chance(0.5) {
            PageEvent::PageShow
        } else {
            PageEvent::Visibility
        };
        for (i, ev) in held.drain(..).enumerate() {
            if i == at {
                self.page(tab, page);
            }
            self.handle(ev);
        }
        if at == count {
            self.page(tab, page);
        }
    }

    fn page(&mut self, tab: usize, event: PageEvent) {
        if !self.live(tab) {
            return;
        }
        let (now, visible) = (self.local(), self.tabs[tab].visible);
        tr!(self, "tab {tab} page {event:?} visible={visible}");
        self.tabs[tab].keeper.handle_page(now, event, visible);
        self.drain(tab);
    }

    /// Arms the tab's timer for the keeper's next moment, as the executor does.
    fn arm(&mut self, tab: usize) {
        let at = self.tabs[tab].keeper.poll_timeout();
        let tb = &self.tabs[tab];
        if at == tb.timer_at && (at.is_none() || tb.timer_pending) {
            return;
        }
        let delay = at.map(|at| (at - self.local()).ceil().clamp(0.0, 2_147_483_647.0));
        let in_timer = self.in_timer == Some(tab);
        let tb = &mut self.tabs[tab];
        tb.timer_serial += 1;
        tb.timer_at = at;
        tb.timer_pending = at.is_some();
        tb.nesting = if in_timer { tb.nesting + 1 } else { 1 };
        if let Some(delay) = delay {
            tb.timer_fire = self.t + delay;
            let (serial, fire) = (tb.timer_serial, self.throttled(tab, self.t + delay));
            self.push(fire, Ev::Timer { tab, serial });
        }
    }

    /// When a timer due at `at` runs: hidden tabs run timers on coarse
    /// boundaries.
    fn throttled(&self, tab: usize, at: f64) -> f64 {
        let tb = &self.tabs[tab];
        if tb.visible {
            at
        } else {
            let g = if tb.nesting >= 5 {
                tb.throttle_ms
            } else {
                1_000.0
            };
            ((at - T0) / g).ceil() * g + T0
        }
    }

    // ----- events -------------------------------------------------------

    fn handle(&mut self, ev: Ev) {
        // A frozen tab's events wait for it.
        let owner = match &ev {
            Ev::Timer { tab, .. }
            | Ev::Deliver { tab, .. }
            | Ev::Grant { tab, .. }
            | Ev::KeyMade { tab, .. } => Some(*tab),
            Ev::RefreshAnswer { req, .. } => Some(self.reqs[*req].tab),
            Ev::ApiAnswer { op, .. } | Ev::LoginAnswer { op, .. } => Some(self.ops[*op].tab),
            _ => None,
        };
        if let Some(tab) = owner {
            if !self.tabs[tab].open {
                if let Ev::RefreshAnswer { req, .. } = ev {
                    self.reqs[req].lost = true;
                }
                return;
            }
            if self.tabs[tab].frozen {
                self.tabs[tab].held.push(ev);
                return;
            }
        }
        match ev {
            Ev::Chaos => self.chaos(),
            Ev::Timer { tab, serial } => {
                let tb = &mut self.tabs[tab];
                if serial != tb.timer_serial || !tb.timer_pending {
                    return;
                }
                tb.timer_pending = false;
                tb.timer_at = None;
                let now = self.local();
                if self.trace.is_some() {
                    let k = &self.tabs[tab].keeper;
                    let (at, timeout) = (
                        k.refresh_at().map(|a| a - now),
                        k.poll_timeout().map(|a| a - now),
                    );
                    tr!(
                        self,
                        "tab {tab} timer (refresh in {at:?}, timeout in {timeout:?})"
                    );
                }
                self.tabs[tab].keeper.handle_timeout(now);
                self.in_timer = Some(tab);
                self.drain(tab);
                self.in_timer = None;
            }
            Ev::Deliver { tab, data, key } => {
                let now = self.local();
                if self.trace.is_some() {
                    let field = |k: &str| match OptValue::field(
                        match &data {
                            OptValue::Map(e) => e,
                            _ => &[],
                        },
                        k,
                    ) {
                        OptValue::Str(s) => s.clone(),
                        OptValue::Num(n) => format!("{n}"),
                        _ => String::new(),
                    };
                    tr!(self, "tab {tab} gets {} {}", field("type"), field("gen"));
                }
                if let (OptValue::Map(e), Some(f)) = (&data, self.tabs[tab].family) {
                    // (A backoff is for the tabs holding the same tokens.)
                    // (And one that tells this Retry-After: it lasts as long.)
                    let gen = self.tabs[tab].keeper.session().generation() as f64;
                    let skew = self.shape.skew_ms;
                    let until = match OptValue::field(e, "until") {
                        OptValue::Num(u) => Some(*u - skew),
                        _ => None,
                    };
                    if let (true, true, Some(until)) = (
                        matches!(OptValue::field(e, "type"), OptValue::Str(t) if t == "backoff"),
                        matches!(OptValue::field(e, "gen"), OptValue::Num(g) if *g == gen),
                        until,
                    ) {
                        let told = self.server.told.entry((f, tab)).or_insert(0.0);
                        *told = told.max(until);
                    }
                }
                let has_key = key.is_some();
                self.incoming = key;
                self.tabs[tab]
                    .keeper
                    .handle_tab_message(now, &data, has_key);
                self.drain(tab);
                self.incoming = None;
            }
            Ev::KeyMade { tab, call } => {
                // Each key pair new (WebCrypto's generateKey): its public
                // coordinates, and its real thumbprint.
                self.stats.keys_made += 1;
                let (x, y) = coordinates(self.stats.keys_made);
                let real = dpop::key(&x, &y).map(|k| k.jkt).unwrap_or_default();
                let now = self.local();
                let name =
                    self.tabs[tab]
                        .keeper
                        .key_made(now, call, Some((x.as_str(), y.as_str())));
                tr!(self, "tab {tab} made key {real}, kept as {name:?}");
                if let Some(name) = name {
                    self.tabs[tab].keys.retain(|(n, _)| *n != name);
                    self.tabs[tab].keys.push((name, real));
                }
                self.drain(tab);
            }
            Ev::Grant { tab, contended } => {
                let now = self.local();
                tr!(self, "tab {tab} granted the lock (contended={contended})");
                self.granted = true;
                self.tabs[tab].keeper.handle_lock_granted(now, contended);
                self.drain(tab);
            }
            Ev::RefreshArrive { req } => self.refresh_arrive(req),
            Ev::RefreshAnswer { req, answer } => {
                let tab = self.reqs[req].tab;
                if self.reqs[req].lost {
                    // The connection failed: the tab sees a network error.
                    self.reqs[req].answered = true;
                    return self.refresh_answer(tab, TokenAnswer::no_answer(), None);
                }
                self.reqs[req].answered = true;
                // The tab is told of the Retry-After its answer carries.
                if let (Some(until), Some(f)) = (self.reqs[req].retry_until, self.tabs[tab].family)
                {
                    let told = self.server.told.entry((f, tab)).or_insert(0.0);
                    *told = told.max(until);
                }
                if self.shape.cookie {
                    if let TokenAnswer::Grant { grant, .. } = &answer {
                        if let Some(rt) = &grant.refresh_token {
                            self.jar = Some(rt.clone());
                        }
                    }
                }
                let nonce = self.reqs[req].nonce.clone();
                self.refresh_answer(tab, answer_for_keeper(&answer, self.shape.cookie), nonce);
            }
            Ev::ApiArrive { op, access, proof } => self.api_arrive(op, access, proof),
            Ev::ApiAnswer {
                op,
                status,
                nonce,
                challenge,
            } => self.api_answer(op, status, nonce, challenge),
            Ev::LoginAnswer {
                op,
                answer,
                call,
                nonce,
            } => {
                let tab = self.ops[op].tab;
                let call = match call {
                    Some(call) => call,
                    None => self.new_call(tab, op),
                };
                let now = self.local();
                if let TokenAnswer::Grant { grant, .. } = &answer {
                    if self.shape.cookie {
                        self.jar = grant.refresh_token.clone();
                    }
                }
                tr!(self, "tab {tab} login answer {}", describe(&answer));
                if let Some(n) = &nonce {
                    self.tabs[tab].keeper.handle_token_nonce(call, n);
                }
                self.tabs[tab].keeper.handle_login_answer(
                    now,
                    call,
                    answer_for_keeper(&answer, self.shape.cookie),
                );
                self.drain(tab);
            }
            Ev::LogoutArrive { family } => {
                if let Some(f) = family {
                    tr!(self, "server: logout revokes family {f}");
                    self.revoke(f);
                }
            }
            Ev::Unfreeze { tab } => self.unfreeze(tab),
            Ev::Released { tab } => {
                let head = self.lock.front().copied();
                self.lock.retain(|t| *t != tab);
                if head == Some(tab) {
                    self.granted = false;
                    self.grant_head();
                }
            }
            Ev::Wake => {
                tr!(self, "the laptop wakes");
                for tab in self.live_tabs() {
                    if self.tabs[tab].visible {
                        self.page(tab, PageEvent::Visibility);
                    }
                }
            }
            Ev::Online => {
                if self.offline {
                    tr!(self, "online");
                    self.offline = false;
                    for tab in self.live_tabs() {
                        self.page(tab, PageEvent::Online);
                    }
                }
            }
            Ev::OutageEnd => tr!(self, "server: outage ends"),
            Ev::NonceRotates => self.rotate_nonce(),
            Ev::Quiesce => self.quiesce(),
            Ev::End => self.final_check(),
        }
    }

    fn refresh_answer(&mut self, tab: usize, answer: TokenAnswer, nonce: Option<String>) {
        let now = self.local();
        tr!(self, "tab {tab} refresh answer {}", describe(&answer));
        if let Some(n) = &nonce {
            self.tabs[tab].keeper.handle_token_nonce(CallId(0), n);
        }
        self.tabs[tab].nonce_asked = matches!(&answer, TokenAnswer::Failure { oauth_error: Some(e), .. } if e == dpop::USE_DPOP_NONCE);
        self.tabs[tab].keeper.handle_refresh_answer(now, answer);
        self.drain(tab);
        self.tabs[tab].nonce_asked = false;
    }

    fn new_call(&mut self, tab: usize, op: usize) -> CallId {
        self.next_call += 1;
        let id = CallId(self.next_call);
        self.tabs[tab].calls.insert(id, op);
        id
    }

    // ----- commands -----------------------------------------------------

    /// Carries out a tab's commands, as the executor does, then arms its timer.
    fn drain(&mut self, tab: usize) {
        while let Some(command) = self.tabs[tab].keeper.poll_command() {
            match command {
                Command::Refresh {
                    refresh_token,
                    proof,
                } => self.send_refresh(tab, refresh_token, proof),
                Command::AcquireLock => {
                    let contended = !self.lock.is_empty();
                    self.lock.push_back(tab);
                    if !contended {
                        let at = self.t + self.rng.range(0.0, 2.0);
                        self.push(
                            at,
                            Ev::Grant {
                                tab,
                                contended: false,
                            },
                        );
                    }
                }
                Command::ReleaseLock => {
                    // The shell releases the lock it holds, if it holds one
                    // (a request still waiting is not held).
                    if self.lock.front() == Some(&tab) && self.granted {
                        self.lock.pop_front();
                        self.granted = false;
                        self.grant_head();
                    }
                }
                Command::Post(message) => self.post(tab, &message),
                Command::Emit(event) => self.event(tab, event),
                Command::Settle { call, reply } => self.settle(tab, call, reply),
                // The model's keepers have no identity provider.
                c @ (Command::Discover { .. }
                | Command::Exchange { .. }
                | Command::Navigate { .. }
                | Command::History { .. }
                | Command::Forget) => panic!("a keeper without issuer asked for {c:?}"),
                // DPoP: the executor holds the private keys by name.
                Command::Login {
                    call, url, proof, ..
                } if self.shape.dpop => self.login_request(tab, call, &url, proof),
                Command::MakeKey { call } if self.shape.dpop => {
                    // (WebCrypto's generateKey takes a moment.)
                    let at = self.t + self.rng.range(1.0, 30.0);
                    self.push(at, Ev::KeyMade { tab, call });
                }
                Command::TakeKey { jkt } if self.shape.dpop => match self.incoming.clone() {
                    Some(real) => {
                        tr!(self, "tab {tab} keeps the key that came, {real}, as {jkt}");
                        self.tabs[tab].keys.retain(|(n, _)| *n != jkt);
                        self.tabs[tab].keys.push((jkt, real));
                    }
                    None => self.fail(
                        Invariant::KeysFollowTheSession,
                        format!("tab {tab} keeps key {jkt}, but no key came with the message"),
                    ),
                },
                Command::DropKey { jkt } if self.shape.dpop => {
                    tr!(self, "tab {tab} drops key {jkt}");
                    self.tabs[tab].keys.retain(|(n, _)| *n != jkt);
                }
                c @ (Command::Login { .. }
                | Command::MakeKey { .. }
                | Command::TakeKey { .. }
                | Command::DropKey { .. }) => self.fail(
                    Invariant::KeysFollowTheSession,
                    format!("tab {tab}, without dpop, asks for {c:?}"),
                ),
            }
        }
        if self.tabs[tab].open {
            self.after_change(tab);
            self.arm(tab);
        }
        // What the next input's proofs may count on (9's `iat`).
        self.tabs[tab].clock_known = self.tabs[tab].keeper.session().skew().is_some();
    }

    /// The executor signs a proof with the key it holds under the proof's
    /// name: `Some(None)` when there is no proof to sign, `None` when it
    /// holds no such key (then the request fails as a network error would,
    /// and 9 is broken).
    fn sign(&mut self, tab: usize, proof: Option<&Proof>, what: &str) -> Option<Option<Signed>> {
        let Some(proof) = proof else {
            return Some(None);
        };
        if !self.shape.dpop {
            self.fail(
                Invariant::KeysFollowTheSession,
                format!("tab {tab}, without dpop, sends a {what} with a proof"),
            );
            return None;
        }
        let held = self.tabs[tab]
            .keys
            .iter()
            .find(|(name, _)| *name == proof.jkt)
            .map(|(_, real)| real.clone());
        match held {
            Some(signer) => Some(Some(Signed {
                input: proof.input.clone(),
                signer,
                clock_known: self.tabs[tab].clock_known,
            })),
            None => {
                self.fail(
                    Invariant::KeysFollowTheSession,
                    format!(
                        "tab {tab} sends a {what} with a proof by key {}, which it does not hold",
                        proof.jkt
                    ),
                );
                None
            }
        }
    }

    fn grant_head(&mut self) {
        if let Some(&next) = self.lock.front() {
            let at = self.t + self.rng.range(0.0, 2.0);
            self.push(
                at,
                Ev::Grant {
                    tab: next,
                    contended: true,
                },
            );
        }
    }

    fn post(&mut self, from: usize, message: &Message) {
        let data = encode(message, self.tabs[from].keeper.tab_id());
        tr!(self, "tab {from} posts {message:?}");
        // A DPoP session's key goes beside it: the executor attaches the
        // key it holds under the session's name (none, if it holds none).
        let key = match message {
            Message::Session { tokens, .. } => tokens.key.as_ref().and_then(|k| {
                self.tabs[from]
                    .keys
                    .iter()
                    .find(|(name, _)| *name == k.jkt)
                    .map(|(_, real)| real.clone())
            }),
            _ => None,
        };
        for to in 0..self.tabs.len() {
            if to == from || !self.tabs[to].open {
                continue;
            }
            let delay = self.rng.range(0.0, self.shape.bus_max_ms);
            let last = self.last_delivery.get(&(from, to)).copied().unwrap_or(0.0);
            let at = (self.t + delay).max(last);
            self.last_delivery.insert((from, to), at);
            self.push(
                at,
                Ev::Deliver {
                    tab: to,
                    data: data.clone(),
                    key: key.clone(),
                },
            );
        }
    }

    fn send_refresh(&mut self, tab: usize, token: Option<String>, proof: Option<Proof>) {
        // (The one retry a `use_dpop_nonce` earns is the same request again,
        // its need checked when it was first sent.)
        if !self.tabs[tab].nonce_asked {
            self.check_needed(tab);
        }
        if self.shape.locks {
            let overlapping = self.reqs.iter().position(|r| !r.answered && !r.lost);
            if let Some(other) = overlapping {
                let who = self.reqs[other].tab;
                self.fail(
                    Invariant::OneRequestPerRotation,
                    format!("tab {tab} sends a refresh while tab {who}'s is in flight"),
                );
            }
        }
        let req = self.reqs.len();
        let joining = !self.tabs[tab].keeper.session().is_authenticated();
        tr!(self, "tab {tab} sends refresh #{req}");
        let signed = self.sign(tab, proof.as_ref(), "refresh");
        self.reqs.push(Req {
            tab,
            sent: self.t,
            token,
            lost: false,
            answered: false,
            cancelled: false,
            refused_family: None,
            retry_until: None,
            joining,
            proof: signed.clone().flatten(),
            nonce_retry: self.tabs[tab].nonce_asked,
            nonce: None,
        });
        if self.offline || signed.is_none() {
            // Fails at once, and never leaves (offline, or with a proof its
            // executor could not sign).
            self.reqs[req].cancelled = true;
            let at = self.t + 1.0;
            return self.push(
                at,
                Ev::RefreshAnswer {
                    req,
                    answer: TokenAnswer::no_answer(),
                },
            );
        }
        let at = self.t + self.latency();
        self.push(at, Ev::RefreshArrive { req });
    }

    /// Invariant 3, second half: the tab needs this refresh.
    fn check_needed(&mut self, tab: usize) {
        let now = self.local();
        let keeper = &self.tabs[tab].keeper;
        let session = keeper.session();
        let due = keeper.refresh_at().is_none_or(|at| at <= now)
            || session.is_expired(now)
            || !session.is_authenticated();
        let gen = session.generation();
        let asked = self.ops.iter().any(|o| {
            o.tab == tab
                && !o.done
                && match o.kind {
                    OpKind::Refresh | OpKind::GetToken => true,
                    // A 401 for the token it holds now (not a resource's
                    // `use_dpop_nonce`: it refused the proof, not the token).
                    OpKind::Fetch => {
                        o.access.is_some() && o.carried_gen == gen && o.sent > 0.0 && !o.nonce_401
                    }
                    _ => false,
                }
        });
        let no_expiry = session.tokens().is_some_and(|t| t.expires_at.is_none());
        if !due && !asked && !no_expiry {
            let left = keeper.refresh_at().map_or(0.0, |at| at - now);
            let nonce = self
                .ops
                .iter()
                .any(|o| o.tab == tab && !o.done && o.nonce_401 && o.carried_gen == gen);
            if nonce {
                return self.fail(
                    Invariant::OneRequestPerRotation,
                    format!(
                        "tab {tab} refreshes at generation {gen}, {left:.0} ms before it needs to, for a resource's use_dpop_nonce"
                    ),
                );
            }
            self.fail(
                Invariant::OneRequestPerRotation,
                format!(
                    "tab {tab} refreshes at generation {gen}, {left:.0} ms before it needs to, unasked"
                ),
            );
        }
    }

    fn refresh_arrive(&mut self, req: usize) {
        if self.reqs[req].cancelled {
            return;
        }
        self.stats.refreshes += 1;
        let t = self.t;
        let down = self.latency();
        let answer_at = t + down;
        let tab = self.reqs[req].tab;
        if self.shape.cookie {
            self.reqs[req].token = self.jar.clone();
        }
        let family = self.reqs[req]
            .token
            .as_ref()
            .and_then(|p| self.server.refresh.get(p).copied());
        let not_before = family
            .and_then(|f| self.server.retry_not_before.get(&f).copied())
            .unwrap_or(0.0);
        let told = family
            .and_then(|f| self.server.told.get(&(f, tab)).copied())
            .unwrap_or(0.0);
        if self.shape.locks && t < not_before.min(told) && !self.reqs[req].joining {
            let early = not_before - t;
            self.fail(
                Invariant::HonoursRetryAfter,
                format!("refresh #{req} from tab {tab} arrives {early:.0} ms before Retry-After"),
            );
        }
        let answer = |w: &mut World, answer: TokenAnswer| {
            w.push(answer_at, Ev::RefreshAnswer { req, answer });
        };
        if t < self.server.outage_until {
            tr!(self, "server: refresh #{req} in an outage: 503");
            return answer(self, status(503, None, None));
        }
        // What the server answers carries its nonce.
        self.reqs[req].nonce = self.server.nonce.clone();
        if self.fault() {
            let kind = self.rng.below(5);
            tr!(self, "server: refresh #{req} meets fault {kind}");
            match kind {
                0 => {
                    let code = 500 + self.rng.below(4) as u16;
                    return answer(self, status(code, None, None));
                }
                1 => {
                    let ra = if self.rng.chance(0.7) {
                        Some(self.rng.range(1.0, MAX_RETRY_AFTER_S).round())
                    } else {
                        None
                    };
                    if let Some(s) = ra {
                        if let Some(f) = family {
                            let e = self.server.retry_not_before.entry(f).or_insert(0.0);
                            *e = e.max(t + s * 1000.0);
                            self.reqs[req].retry_until = Some(t + s * 1000.0);
                        }
                    }
                    return answer(self, status(429, None, ra.map(|s| s * 1000.0)));
                }
                2 => {
                    // Dropped on the way: never processed.
                    self.reqs[req].lost = true;
                    return answer(self, TokenAnswer::no_answer());
                }
                3 => {
                    // Processed, and the answer lost.
                    self.reqs[req].lost = true;
                }
                _ => {
                    return answer(
                        self,
                        TokenAnswer::Grant {
                            grant: RawGrant::default(),
                            timing: self.timing(req),
                        },
                    )
                }
            }
        }
        let presented = self.reqs[req].token.clone();
        let fam = presented
            .as_ref()
            .and_then(|p| self.server.refresh.get(p).copied());
        tr!(
            self,
            "server: refresh #{req} presents {presented:?} (family {fam:?})"
        );
        if let Some(refused) = self.refresh_proof(req, fam) {
            return answer(self, refused);
        }
        let result = self.rotate(req, presented.as_deref());
        answer(self, result);
    }

    /// The token endpoint's check of a refresh's DPoP proof: a bound
    /// family's refresh token is honoured only with its key's proof. A
    /// refused proof uses (and revokes) nothing — and breaks 9: no tab's
    /// proof is ever refused.
    fn refresh_proof(&mut self, req: usize, family: Option<usize>) -> Option<TokenAnswer> {
        if !self.shape.dpop {
            return None;
        }
        let bound = family.and_then(|f| self.server.bound.get(&f).cloned());
        let proof = self.reqs[req].proof.clone();
        if bound.is_none() && proof.is_none() {
            return None;
        }
        let url = self.settings.refresh_url.clone();
        match self.judge_proof(proof.as_ref(), "POST", &url, None, bound.as_deref()) {
            Verdict::Good(_) => None,
            Verdict::Nonce => {
                tr!(
                    self,
                    "server: refresh #{req} needs the nonce: use_dpop_nonce"
                );
                // (The nonce changed between the keeper's try and its one
                // retry: a failure it may show.)
                if self.reqs[req].nonce_retry {
                    self.faulted(self.t);
                }
                Some(status(400, Some(dpop::USE_DPOP_NONCE), None))
            }
            Verdict::Bad(why) => {
                let tab = self.reqs[req].tab;
                tr!(self, "server: refresh #{req}'s proof refused: {why}");
                self.fail(
                    Invariant::KeysFollowTheSession,
                    format!("the server refuses the proof of tab {tab}'s refresh #{req}: {why}"),
                );
                Some(status(400, Some("invalid_dpop_proof"), None))
            }
        }
    }

    /// The server's check of a DPoP proof (RFC 9449 §4.3) of a request to
    /// `url`: its header and key, the signature (by the header's key),
    /// `htm`, `htu`, `iat` (60 s), `jti` (once), `ath` (with a token), and
    /// the key the family is bound to (`bound`). The header key's
    /// thumbprint and the proof's nonce, or why it is refused.
    fn check_proof(
        &mut self,
        proof: Option<&Signed>,
        method: &str,
        url: &str,
        access: Option<&str>,
        bound: Option<&str>,
    ) -> Result<(String, Option<String>), String> {
        let Some(proof) = proof else {
            return Err("no proof".into());
        };
        let parts = (|| {
            let mut parts = proof.input.split('.');
            let header: serde_json::Value =
                serde_json::from_str(&dpop::decoded(parts.next()?)?).ok()?;
            let claims: serde_json::Value =
                serde_json::from_str(&dpop::decoded(parts.next()?)?).ok()?;
            parts.next().is_none().then_some((header, claims))
        })();
        let Some((header, claims)) = parts else {
            return Err("not a JWS signing input".into());
        };
        if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" {
            return Err("typ or alg".into());
        }
        let jwk = &header["jwk"];
        if jwk["kty"] != "EC" || jwk["crv"] != "P-256" || !jwk["d"].is_null() {
            return Err("jwk".into());
        }
        let Some(key) = dpop::key(
            jwk["x"].as_str().unwrap_or_default(),
            jwk["y"].as_str().unwrap_or_default(),
        ) else {
            return Err("jwk coordinates".into());
        };
        if key.jkt != proof.signer {
            return Err(format!(
                "signed by key {}, not the header's {}",
                proof.signer, key.jkt
            ));
        }
        if let Some(bound) = bound.filter(|b| *b != key.jkt) {
            return Err(format!(
                "by key {}, the family is bound to {bound}",
                key.jkt
            ));
        }
        if claims["htm"] != method {
            return Err(format!("htm {}", claims["htm"]));
        }
        if claims["htu"] != dpop::htu(url) {
            return Err(format!("htu {}", claims["htu"]));
        }
        // (Before the keeper measured the server's clock — a session of
        // opaque tokens never does — it can date a proof only by the
        // browser's: a server strict about that would refuse every proof
        // of a browser whose clock is off.)
        let iat = claims["iat"].as_f64().unwrap_or(f64::NAN);
        let near = |clock: f64| (clock / 1000.0 - iat).abs() <= 60.0;
        let dated = near(self.t) || (!proof.clock_known && near(self.local()));
        if !dated || iat.fract() != 0.0 {
            return Err(format!("iat {iat}, {:.0} s off", self.t / 1000.0 - iat));
        }
        let Some(jti) = claims["jti"].as_str().filter(|j| j.len() >= 16) else {
            return Err("jti".into());
        };
        if !self.server.jtis.insert(jti.to_string()) {
            return Err(format!("jti {jti} replayed"));
        }
        match access {
            Some(a) if claims["ath"] != dpop::ath(a).as_str() => return Err("ath".into()),
            None if !claims["ath"].is_null() => return Err("ath on a token request".into()),
            _ => {}
        }
        let nonce = claims["nonce"].as_str().map(String::from);
        Ok((key.jkt, nonce))
    }

    /// [`World::check_proof`], and the nonce the server demands.
    fn judge_proof(
        &mut self,
        proof: Option<&Signed>,
        method: &str,
        url: &str,
        access: Option<&str>,
        bound: Option<&str>,
    ) -> Verdict {
        match self.check_proof(proof, method, url, access, bound) {
            Err(why) => Verdict::Bad(why),
            Ok((_, nonce)) if self.server.nonce.is_some() && nonce != self.server.nonce => {
                self.stats.nonce_challenges += 1;
                Verdict::Nonce
            }
            Ok((jkt, _)) => {
                self.stats.proofs += 1;
                Verdict::Good(jkt)
            }
        }
    }

    fn timing(&self, req: usize) -> Timing {
        // What the shell would read: sent and received in the local clock
        // (filled in by the tab), the Date header in the server's.
        let date = match self.shape.token {
            TokenKind::Jwt { date: false } => None,
            _ => Some((self.t / 1000.0).floor() * 1000.0),
        };
        Timing {
            sent_at: self.reqs[req].sent + self.shape.skew_ms,
            received_at: self.t + self.shape.skew_ms,
            server_date: date,
            fresh: true,
        }
    }

    /// The token endpoint proper.
    fn rotate(&mut self, req: usize, presented: Option<&str>) -> TokenAnswer {
        let refused = |w: &mut World, family: Option<usize>| {
            w.reqs[req].refused_family = family;
            status(400, Some("invalid_grant"), None)
        };
        let Some(rt) = presented else {
            return refused(self, None);
        };
        let Some(&f) = self.server.refresh.get(rt) else {
            return refused(self, None);
        };
        if !self.server.families[f].alive {
            return refused(self, Some(f));
        }
        let timing = self.timing(req);
        let fam = &self.server.families[f];
        let grace = fam
            .previous
            .as_ref()
            .is_some_and(|(p, at)| p == rt && self.t - at <= self.shape.grace_ms);
        let earlier = self.server.consumed.get(rt).cloned().unwrap_or_default();
        // Without Web Locks tabs cannot exclude each other: two may present
        // one refresh token within a round trip. The promise there is only
        // that the session then recovers in the grace window or ends
        // cleanly everywhere (invariants 4, 5 and 7; the README says so).
        if !earlier.is_empty() && self.shape.locks {
            self.reuse(req, &earlier);
        }
        let fam = &self.server.families[f];
        if fam.refresh == rt {
            // Serving a refresh, the server has moved on from its Retry-After.
            self.server.retry_not_before.remove(&f);
            self.server
                .consumed
                .entry(rt.to_string())
                .or_default()
                .push(req);
            let grant = self.issue(f, Some(rt.to_string()));
            tr!(self, "server: refresh #{req} rotates family {f}");
            return TokenAnswer::Grant { grant, timing };
        }
        if grace {
            self.stats.grace_reuses += 1;
            self.server
                .consumed
                .entry(rt.to_string())
                .or_default()
                .push(req);
            tr!(
                self,
                "server: refresh #{req} reuses inside the grace window"
            );
            let fam = &self.server.families[f];
            // The last pair again, with the access token's remaining life.
            let left = self
                .server
                .access
                .get(&fam.access)
                .map(|i| ((i.expires - self.t) / 1000.0).floor().max(0.0));
            let grant = RawGrant {
                access_token: Some(fam.access.clone()),
                refresh_token: Some(fam.refresh.clone()),
                expires_in: self.expires_in().and(left),
                id_token: None,
                token_type: self.token_type(),
            };
            return TokenAnswer::Grant { grant, timing };
        }
        tr!(
            self,
            "server: refresh #{req} presents a used token: family {f} revoked"
        );
        self.stats.reuse_revocations += 1;
        if !self.shape.locks {
            self.stats.lockless_revocations += 1;
        }
        self.revoke(f);
        refused(self, Some(f))
    }

    /// Invariant 1: a consumed refresh token came back. Excused only when an
    /// earlier answer for it never reached the browser (it may still be on
    /// its way: then whether it is lost is checked when it lands).
    fn reuse(&mut self, req: usize, earlier: &[usize]) {
        // (Or this one is a closed tab's request, already on its way: the
        // browser frees the lock of a tab that closes while its refresh is
        // out, and the next tab's rotation comes first.)
        let excused = self.reqs[req].lost
            || earlier
                .iter()
                .any(|e| self.reqs[*e].lost || !self.reqs[*e].answered);
        if !excused {
            let tab = self.reqs[req].tab;
            let first = earlier.first().map_or(0, |e| self.reqs[*e].tab);
            self.fail(
                Invariant::NoReuse,
                format!(
                    "tab {tab} presents a refresh token tab {first} already presented (refresh #{req}), no response lost"
                ),
            );
        }
    }

    /// The `token_type` of the server's answers: DPoP, with DPoP (every
    /// family is bound to its login's key).
    fn token_type(&self) -> Option<String> {
        self.shape.dpop.then(|| "DPoP".into())
    }

    fn expires_in(&self) -> Option<f64> {
        match self.shape.token {
            TokenKind::Opaque => Some(self.shape.ttl_s),
            TokenKind::Jwt { .. } => None,
        }
    }

    /// A new pair for family `f` (rotating `previous` out).
    fn issue(&mut self, f: usize, previous: Option<String>) -> RawGrant {
        let t = self.t;
        let ttl_ms = self.shape.ttl_s * 1000.0;
        let fam = &mut self.server.families[f];
        fam.serial += 1;
        let serial = fam.serial;
        let (access, expires) = match self.shape.token {
            TokenKind::Opaque => (format!("f{f}-a{serial}"), t + ttl_ms),
            TokenKind::Jwt { .. } => {
                let iat = (t / 1000.0).floor();
                let exp = iat + self.shape.ttl_s;
                let payload = format!(r#"{{"sub":"f{f}-a{serial}","iat":{iat},"exp":{exp}}}"#);
                (
                    format!("eyJhbGciOiJIUzI1NiJ9.{}.sig", b64(&payload)),
                    exp * 1000.0,
                )
            }
        };
        let refresh = format!("f{f}-r{serial}");
        if self.shape.revoke_on_rotation {
            let old = fam.access.clone();
            if let Some(i) = self.server.access.get_mut(&old) {
                i.revoked = true;
            }
        }
        let fam = &mut self.server.families[f];
        fam.access = access.clone();
        fam.refresh = refresh.clone();
        if let Some(p) = previous {
            fam.previous = Some((p, t));
        }
        self.server.access.insert(
            access.clone(),
            Issued {
                family: f,
                expires,
                revoked: false,
            },
        );
        self.server.refresh.insert(refresh.clone(), f);
        RawGrant {
            access_token: Some(access),
            refresh_token: Some(refresh),
            expires_in: self.expires_in(),
            id_token: None,
            token_type: self.token_type(),
        }
    }

    fn revoke(&mut self, f: usize) {
        self.server.families[f].alive = false;
        for i in self.server.access.values_mut() {
            if i.family == f {
                i.revoked = true;
            }
        }
    }

    fn login(&mut self, tab: usize) {
        let op = self.start_op(tab, OpKind::Login);
        if self.shape.dpop {
            // The keeper's `login()`: a key first, then the request with
            // its proof (`login_request`).
            let call = self.new_call(tab, op);
            tr!(self, "tab {tab} logs in (DPoP: a key first)");
            let url = format!("{TEST_ORIGIN}/login");
            let body = r#"{"user":"u"}"#.to_string();
            self.tabs[tab].keeper.login(call, Ok((url, body)));
            return self.drain(tab);
        }
        self.login_answer(tab, op, None, None);
    }

    /// A DPoP login's request (`Command::Login`), signed by its executor.
    fn login_request(&mut self, tab: usize, call: CallId, url: &str, proof: Option<Proof>) {
        let Some(&op) = self.tabs[tab].calls.get(&call) else {
            return;
        };
        match self.sign(tab, proof.as_ref(), "login") {
            Some(signed) => self.login_answer(tab, op, Some(call), Some((url, signed))),
            None => {
                let at = self.t + 1.0;
                let answer = TokenAnswer::no_answer();
                let (call, nonce) = (Some(call), None);
                self.push(
                    at,
                    Ev::LoginAnswer {
                        op,
                        answer,
                        call,
                        nonce,
                    },
                );
            }
        }
    }

    /// The login endpoint: a new family — with DPoP (`dpop`: the request's
    /// URL and proof), bound to the proof's key — answered after a round
    /// trip (to `call`, the keeper's `login()`, with DPoP).
    fn login_answer(
        &mut self,
        tab: usize,
        op: usize,
        call: Option<CallId>,
        dpop: Option<(&str, Option<Signed>)>,
    ) {
        let up = self.latency();
        let down = self.latency();
        let (sent, t) = (self.t, self.t);
        self.t += up;
        let verdict = match dpop {
            None => Verdict::Good(String::new()),
            Some((url, ref proof)) => self.judge_proof(proof.as_ref(), "POST", url, None, None),
        };
        let answer = match verdict {
            Verdict::Good(jkt) => {
                let f = self.server.families.len();
                self.server.families.push(Family {
                    alive: true,
                    access: String::new(),
                    refresh: String::new(),
                    previous: None,
                    serial: 0,
                    ended_in_browser: false,
                    held: false,
                });
                tr!(self, "tab {tab} logs in: family {f}");
                if dpop.is_some() {
                    tr!(self, "server: family {f} bound to key {jkt}");
                    self.server.bound.insert(f, jkt);
                }
                let grant = self.issue(f, None);
                let date = match self.shape.token {
                    TokenKind::Jwt { date: false } => None,
                    _ => Some((self.t / 1000.0).floor() * 1000.0),
                };
                let timing = Timing {
                    sent_at: sent + self.shape.skew_ms,
                    received_at: sent + up + down + self.shape.skew_ms,
                    server_date: date,
                    fresh: true,
                };
                TokenAnswer::Grant { grant, timing }
            }
            Verdict::Nonce => {
                tr!(
                    self,
                    "server: tab {tab}'s login needs the nonce: use_dpop_nonce"
                );
                if self.ops[op].nonce_replayed {
                    self.faulted(self.t);
                }
                self.ops[op].nonce_replayed = true;
                status(400, Some(dpop::USE_DPOP_NONCE), None)
            }
            Verdict::Bad(why) => {
                tr!(self, "server: the login's proof refused: {why}");
                self.fail(
                    Invariant::KeysFollowTheSession,
                    format!("the server refuses the proof of tab {tab}'s login: {why}"),
                );
                status(400, Some("invalid_dpop_proof"), None)
            }
        };
        self.t = t;
        let nonce = self.server.nonce.clone();
        self.push(
            sent + up + down,
            Ev::LoginAnswer {
                op,
                answer,
                call,
                nonce,
            },
        );
    }

    // ----- the app ------------------------------------------------------

    fn start_op(&mut self, tab: usize, kind: OpKind) -> usize {
        self.stats.calls += 1;
        let op = self.ops.len();
        self.pending.push(op);
        self.ops.push(Op {
            tab,
            kind,
            started: self.t,
            paused_at_start: self.tabs[tab].paused_ms,
            done: false,
            carried_gen: 0,
            access: None,
            replayed: false,
            sent: 0.0,
            outcome: "not settled".into(),
            valid: false,
            nonce_replayed: false,
            nonce_401: false,
        });
        if kind == OpKind::Login {
            return op;
        }
        let call = self.new_call(tab, op);
        let now = self.local();
        tr!(self, "tab {tab} app {kind:?} (op {op})");
        let keeper = &mut self.tabs[tab].keeper;
        match kind {
            OpKind::Fetch => keeper.fetch(now, call, &format!("{TEST_ORIGIN}/api"), "cors", "GET"),
            OpKind::GetToken => keeper.need_token(now, call),
            OpKind::Refresh => keeper.refresh(now, call),
            OpKind::Ready => keeper.ready(now, call),
            OpKind::Login => {}
        }
        self.drain(tab);
        op
    }

    fn settle(&mut self, tab: usize, call: CallId, reply: Reply) {
        let Some(op) = self.tabs[tab].calls.remove(&call) else {
            return;
        };
        let described = describe_reply(&reply);
        tr!(self, "tab {tab} op {op} settles {described}");
        self.ops[op].outcome = described;
        let kind = self.ops[op].kind;
        match (kind, reply) {
            (
                OpKind::Fetch,
                Reply::Token {
                    generation,
                    access,
                    proof,
                },
            ) => {
                self.ops[op].carried_gen = generation;
                self.send_api(op, Some(access), proof);
            }
            (
                OpKind::Fetch,
                Reply::Replay {
                    access,
                    proof,
                    nonce,
                },
            ) => {
                if nonce {
                    self.ops[op].nonce_replayed = true;
                } else {
                    self.ops[op].replayed = true;
                }
                self.ops[op].carried_gen = self.tabs[tab].keeper.session().generation();
                self.send_api(op, Some(access), proof);
            }
            (OpKind::Fetch, Reply::Passthrough) => self.send_api(op, None, None),
            (OpKind::Fetch, Reply::Return) => self.end_op(op, "a 401"),
            (OpKind::GetToken, Reply::Token { access, .. }) => {
                self.check_fresh(tab, &access, "getAccessToken hands out");
                self.ops[op].valid = self.server.access.get(&access).is_some_and(|i| {
                    self.server.families[i.family].alive && self.t < i.expires && !i.revoked
                });
                self.ops[op].access = Some(access);
                self.end_op(op, "");
            }
            (OpKind::Ready, Reply::Ready(false)) => {
                if self.tabs[tab].open {
                    self.check_joined(op);
                }
                self.end_op(op, "");
            }
            (_, Reply::Failed(e)) => {
                let expected = match e {
                    Error::NotAuthenticated | Error::Freed | Error::SessionEnded { .. } => true,
                    Error::RefreshThrottled { .. } => kind == OpKind::Refresh,
                    _ => false,
                };
                let calm = self.calm_since(self.ops[op].started);
                if !expected && calm {
                    self.fail(
                        Invariant::CallsSettle,
                        format!("{kind:?} in tab {tab} fails with {e} though nothing failed"),
                    );
                }
                self.end_op(op, "");
            }
            _ => self.end_op(op, ""),
        }
    }

    /// Invariant 6: a new tab joins the session a live tab holds.
    fn check_joined(&mut self, op: usize) {
        let o = self.ops[op].clone();
        let holder = (0..self.tabs.len()).find(|t| {
            *t != o.tab
                && self.live(*t)
                && self.tabs[*t].last_unfrozen <= o.started
                && self.tabs[*t].auth_since.is_some_and(|a| a <= o.started)
                && self.tabs[*t]
                    .family
                    .is_some_and(|f| self.server.families[f].alive)
        });
        let answered_in_time =
            2.0 * self.shape.bus_max_ms + 5.0 < tokenkeeper_core::keeper::ASK_WAIT_MS;
        let calm = self.t < self.asleep_until || self.calm_since(o.started);
        if let (Some(h), true, true) = (holder, answered_in_time, calm) {
            self.fail(
                Invariant::CallsSettle,
                format!(
                    "ready() in tab {} says no session while tab {h} holds one",
                    o.tab
                ),
            );
        }
    }

    fn end_op(&mut self, op: usize, outcome: &str) {
        self.ops[op].done = true;
        if outcome == "a 401" {
            // A user expects a 401 only when the session is gone.
            let o = &self.ops[op];
            let tab = o.tab;
            let alive = self.tabs[tab].keeper.session().is_authenticated()
                && self.tabs[tab]
                    .family
                    .is_some_and(|f| self.server.families[f].alive);
            if alive && self.calm_since(o.started) && !self.shape.revoke_on_rotation {
                self.fail(
                    Invariant::CallsSettle,
                    format!("a fetch in tab {tab} gets a 401 while its session lives"),
                );
            }
        }
    }

    fn send_api(&mut self, op: usize, access: Option<String>, proof: Option<Proof>) {
        self.ops[op].access = access.clone();
        self.ops[op].sent = self.t;
        self.ops[op].nonce_401 = false;
        let tab = self.ops[op].tab;
        if let Some(a) = &access {
            self.check_fresh(tab, a, "sends");
        }
        let signed = self.sign(tab, proof.as_ref(), "request");
        let Some(proof) = signed.filter(|_| !self.offline) else {
            // Offline, or with a proof its executor could not sign.
            let at = self.t + 1.0;
            let (status, nonce, challenge) = (0, None, None);
            return self.push(
                at,
                Ev::ApiAnswer {
                    op,
                    status,
                    nonce,
                    challenge,
                },
            );
        };
        let at = self.t + self.latency();
        self.push(at, Ev::ApiArrive { op, access, proof });
    }

    /// Invariant 2 for a token handed out now (it reaches the server after
    /// at least one latency more).
    fn check_fresh(&mut self, tab: usize, access: &str, what: &str) {
        if let Some(i) = self.server.access.get(access) {
            if self.t > i.expires + SKEW_BOUND_MS {
                let late = self.t - i.expires;
                self.fail(
                    Invariant::NoExpiredToken,
                    format!("tab {tab} {what} a token {late:.0} ms past its expiry"),
                );
            }
        }
    }

    fn api_arrive(&mut self, op: usize, access: Option<String>, proof: Option<Signed>) {
        self.stats.api_requests += 1;
        let t = self.t;
        let status = match &access {
            None => 401,
            Some(a) => {
                match self.server.access.get(a) {
                    Some(i) if t > i.expires + SKEW_BOUND_MS => {
                        let late = t - i.expires;
                        let tab = self.ops[op].tab;
                        self.fail(
                        Invariant::NoExpiredToken,
                        format!("tab {tab}'s API request arrives {late:.0} ms after its token expired"),
                    );
                        401
                    }
                    Some(i) if t < i.expires && !i.revoked => 200,
                    _ => 401,
                }
            }
        };
        let challenge = match &access {
            Some(a) if self.shape.dpop => self.api_proof(op, a, proof.as_ref()),
            _ => None,
        };
        let status = if challenge.is_some() { 401 } else { status };
        let status = if status == 200 && self.fault() {
            503
        } else {
            status
        };
        let at = t + self.latency();
        let nonce = self.server.nonce.clone();
        self.push(
            at,
            Ev::ApiAnswer {
                op,
                status,
                nonce,
                challenge,
            },
        );
    }

    /// The API's check of a request's DPoP proof: a bound family's access
    /// token is honoured only with its key's proof, for this request and
    /// this token (a refused one breaks 9), and with the nonce the server
    /// demands. The 401's challenge, when it is refused.
    fn api_proof(
        &mut self,
        op: usize,
        access: &str,
        proof: Option<&Signed>,
    ) -> Option<&'static str> {
        let family = self.server.access.get(access).map(|i| i.family);
        let bound = family.and_then(|f| self.server.bound.get(&f).cloned());
        if bound.is_none() && proof.is_none() {
            return None;
        }
        let url = format!("{TEST_ORIGIN}/api");
        match self.judge_proof(proof, "GET", &url, Some(access), bound.as_deref()) {
            Verdict::Good(_) => None,
            Verdict::Nonce => {
                tr!(self, "server: op {op} needs the nonce: use_dpop_nonce");
                // (The nonce changed while its one nonce replay travelled.)
                if self.ops[op].nonce_replayed {
                    self.faulted(self.t);
                }
                Some(r#"DPoP error="use_dpop_nonce""#)
            }
            Verdict::Bad(why) => {
                let tab = self.ops[op].tab;
                tr!(self, "server: op {op}'s proof refused: {why}");
                self.fail(
                    Invariant::KeysFollowTheSession,
                    format!("the API refuses the proof of tab {tab}'s request (op {op}): {why}"),
                );
                Some(r#"DPoP error="invalid_token""#)
            }
        }
    }

    fn api_answer(
        &mut self,
        op: usize,
        status: u16,
        nonce: Option<String>,
        challenge: Option<&'static str>,
    ) {
        if self.ops[op].done {
            return;
        }
        let tab = self.ops[op].tab;
        let url = format!("{TEST_ORIGIN}/api");
        if status != tokenkeeper_core::keeper::REJECTED || self.ops[op].access.is_none() {
            // Anything but a 401 of a token is the app's business (its
            // `DPoP-Nonce` the keeper's, for the next proofs).
            if let (Some(n), Some(_)) = (&nonce, &self.ops[op].access) {
                self.tabs[tab].keeper.handle_nonce(&url, n);
                self.drain(tab);
            }
            self.ops[op].done = true;
            return;
        }
        let call = self.new_call(tab, op);
        let now = self.local();
        self.ops[op].nonce_401 = challenge.is_some_and(dpop::asks_for_nonce);
        let o = &self.ops[op];
        let answered = Answered {
            generation: o.carried_gen,
            status,
            renewed: None,
            server_date: None,
            sent_at: o.sent + self.shape.skew_ms,
            replayable: true,
            replayed: o.replayed,
            url: &url,
            method: "GET",
            nonce: nonce.as_deref(),
            challenge,
            nonce_replayed: o.nonce_replayed,
        };
        tr!(
            self,
            "tab {tab} op {op}: 401 {challenge:?} (replayed={}, nonce replayed={})",
            o.replayed,
            o.nonce_replayed
        );
        self.tabs[tab].keeper.response(now, call, answered);
        self.drain(tab);
    }

    // ----- what the keeper says -----------------------------------------

    fn event(&mut self, tab: usize, event: Event) {
        match event {
            Event::Logout { reason } => {
                tr!(self, "tab {tab} logout event ({})", reason.as_str());
                let family = self.tabs[tab].family.take();
                if reason == LogoutReason::RefreshFailed {
                    let refused = self
                        .reqs
                        .iter()
                        .rev()
                        .find(|r| r.tab == tab && r.answered)
                        .and_then(|r| r.refused_family);
                    let alive = family.is_some_and(|f| self.server.families[f].alive);
                    if alive || refused.is_some_and(|f| self.server.families[f].alive) {
                        self.fail(
                            Invariant::NoSpuriousLogout,
                            format!("tab {tab} ends a session whose family lives"),
                        );
                    }
                }
                if reason != LogoutReason::Remote {
                    if let Some(f) = family {
                        self.server.families[f].ended_in_browser = true;
                    }
                    let gen = self.tabs[tab].keeper.session().generation();
                    for other in self.open_tabs() {
                        if other != tab {
                            self.reach.push(Reach {
                                tab: other,
                                gen,
                                since: self.t,
                                paused_at: self.tabs[other].paused_ms,
                                from: tab,
                            });
                        }
                    }
                }
            }
            Event::Refresh { .. } | Event::Change { .. } => {}
            _ => {}
        }
    }

    /// After a tab's session may have changed: its family, and invariant 7's
    /// first half (generations only grow).
    fn after_change(&mut self, tab: usize) {
        let session = self.tabs[tab].keeper.session();
        let gen = session.generation();
        let last = self.tabs[tab].last_gen;
        let family = session.tokens().and_then(|t| {
            self.server
                .access
                .get(&t.access)
                .map(|i| i.family)
                .or_else(|| {
                    t.refresh
                        .as_ref()
                        .and_then(|r| self.server.refresh.get(r).copied())
                })
        });
        if session.is_authenticated() {
            if let Some(f) = family {
                let old = self.tabs[tab].family.replace(f);
                self.server.families[f].held = true;
                // A newer session supersedes an older one: when no tab holds
                // the old one any more, the browser has let it go.
                if let Some(o) = old.filter(|o| *o != f) {
                    if !self.tabs.iter().any(|t| t.open && t.family == Some(o)) {
                        self.server.families[o].ended_in_browser = true;
                    }
                }
            }
            if self.tabs[tab].auth_since.is_none() {
                self.tabs[tab].auth_since = Some(self.t);
            }
        } else {
            self.tabs[tab].family = None;
            self.tabs[tab].auth_since = None;
        }
        if gen != last {
            if !protocol::is_newer(gen, last) {
                self.fail(
                    Invariant::Converges,
                    format!("tab {tab}'s generation goes from {last} back to {gen}"),
                );
            }
            self.tabs[tab].last_gen = gen;
        }
    }

    /// Invariant 9 at every step (with DPoP: without, a key command or a
    /// proof broke it already): every open tab holding a session holds the
    /// key it is bound to, named for what it is (every key it holds is),
    /// and no key but its session's — or, while it logs in, its login's.
    fn check_keys(&mut self) {
        if !self.shape.dpop {
            return;
        }
        for tab in 0..self.tabs.len() {
            let tb = &self.tabs[tab];
            if !tb.open {
                continue;
            }
            if let Some((name, real)) = tb.keys.iter().find(|(name, real)| name != real) {
                let detail = format!("tab {tab} holds key {real} under the name {name}");
                return self.fail(Invariant::KeysFollowTheSession, detail);
            }
            let session = tb.keeper.session().tokens().map(|t| t.key.clone());
            let jkt = match session {
                Some(None) => {
                    let detail = format!("tab {tab} holds a session bound to no key");
                    return self.fail(Invariant::KeysFollowTheSession, detail);
                }
                Some(Some(key)) => Some(key.jkt),
                None => None,
            };
            if let Some(jkt) = &jkt {
                if !tb.keys.iter().any(|(name, _)| name == jkt) {
                    let detail =
                        format!("tab {tab} holds a session bound to key {jkt}, not the key");
                    return self.fail(Invariant::KeysFollowTheSession, detail);
                }
            }
            let extra = tb
                .keys
                .iter()
                .find(|(name, _)| Some(name) != jkt.as_ref())
                .map(|(name, _)| name.clone());
            if let Some(extra) = extra {
                let logging_in = self
                    .ops
                    .iter()
                    .any(|o| o.tab == tab && o.kind == OpKind::Login && !o.done);
                if !logging_in {
                    let detail = format!("tab {tab} holds key {extra}, not its session's");
                    return self.fail(Invariant::KeysFollowTheSession, detail);
                }
            }
        }
    }

    /// After every step: the invariants with a deadline.
    fn check_step(&mut self) {
        // 9: the keys follow the session.
        self.check_keys();
        // 4: logouts reach every live tab.
        let mut i = 0;
        while i < self.reach.len() {
            let r = self.reach[i].clone();
            let tb = &self.tabs[r.tab];
            let session = tb.keeper.session();
            let reached = !tb.open
                || !session.is_authenticated()
                || session.generation() == r.gen
                || protocol::is_newer(session.generation(), r.gen);
            if reached {
                self.reach.swap_remove(i);
                continue;
            }
            let paused = tb.paused_ms - r.paused_at
                + if tb.frozen {
                    self.t - tb.frozen_since
                } else {
                    0.0
                };
            let lived = self.t - r.since - paused;
            if lived > LOGOUT_REACH_MS && self.t >= self.asleep_until {
                self.fail(
                    Invariant::LogoutReachesEveryTab,
                    format!(
                        "tab {} still holds generation {} {lived:.0} ms after tab {} logged out at {}",
                        r.tab,
                        session.generation(),
                        r.from,
                        r.gen
                    ),
                );
            }
            i += 1;
        }
        // 6: calls settle.
        let ops = &self.ops;
        self.pending.retain(|op| !ops[*op].done);
        for i in 0..self.pending.len() {
            let op = self.pending[i];
            let o = &self.ops[op];
            if o.done || !self.tabs[o.tab].open {
                continue;
            }
            let tb = &self.tabs[o.tab];
            let paused = tb.paused_ms - o.paused_at_start
                + if tb.frozen {
                    self.t - tb.frozen_since
                } else {
                    0.0
                };
            if self.t - o.started - paused > CALL_BOUND_MS {
                let (kind, tab) = (o.kind, o.tab);
                self.ops[op].done = true;
                self.fail(
                    Invariant::CallsSettle,
                    format!("{kind:?} in tab {tab} (op {op}) has not settled"),
                );
            }
        }
    }

    // ----- the world ----------------------------------------------------

    fn chaos(&mut self) {
        if !self.active {
            return;
        }
        let gap = self.gap();
        self.push(self.t + gap, Ev::Chaos);
        if self.t < self.asleep_until {
            return;
        }
        let live = self.live_tabs();
        let open = self.open_tabs();
        let pick = |w: &mut World, from: &[usize]| from.get(w.rng.below(from.len())).copied();
        let roll = self.rng.below(1000);
        match roll {
            0..=539 => {
                let kind = match roll {
                    0..=399 => OpKind::Fetch,
                    400..=479 => OpKind::GetToken,
                    480..=509 => OpKind::Refresh,
                    _ => OpKind::Ready,
                };
                if let Some(tab) = pick(self, &live) {
                    self.start_op(tab, kind);
                }
            }
            540..=559 => {
                // Someone logs in again where there is no session. (Not while
                // a refresh is out: a login does not take the refresh lock,
                // and in cookie mode the old session's answer landing after
                // the login's would leave its cookie in the jar — a known
                // limit, in the README.)
                if self.reqs.iter().any(|r| !r.answered && !r.cancelled) {
                    return;
                }
                let out: Vec<usize> = live
                    .iter()
                    .copied()
                    .filter(|t| !self.tabs[*t].keeper.session().is_authenticated())
                    .collect();
                if let Some(tab) = pick(self, &out) {
                    self.login(tab);
                }
            }
            560..=569 => {
                if let Some(tab) = pick(self, &live) {
                    tr!(self, "tab {tab} app logout");
                    let now = self.local();
                    let notice = self.tabs[tab].keeper.logout(now).ok().flatten();
                    let family = self.tabs[tab].family;
                    self.drain(tab);
                    if let Some(_n) = notice {
                        let at = self.t + self.latency();
                        let family = if self.fault() { None } else { family };
                        self.push(at, Ev::LogoutArrive { family });
                    }
                }
            }
            570..=649 => {
                if open.len() < self.shape.max_tabs {
                    self.open_tab();
                }
            }
            650..=699 => {
                if open.len() > 1 {
                    if let Some(tab) = pick(self, &open) {
                        self.close_tab(tab);
                    }
                }
            }
            700..=759 => {
                // Freeze a tab the browser would freeze: no lock, no refresh out.
                let can: Vec<usize> = live
                    .iter()
                    .copied()
                    .filter(|t| {
                        !self.lock.contains(t)
                            && !self.reqs.iter().any(|r| r.tab == *t && !r.answered)
                            && !self
                                .queue
                                .iter()
                                .any(|i| matches!(i.ev, Ev::Grant { tab, .. } if tab == *t))
                    })
                    .collect();
                if let Some(tab) = pick(self, &can) {
                    self.freeze(tab);
                    let at = self.t + self.rng.range(1_000.0, 20.0 * 60_000.0);
                    self.push(at, Ev::Unfreeze { tab });
                }
            }
            760..=859 => {
                if let Some(tab) = pick(self, &live) {
                    let visible = !self.tabs[tab].visible;
                    self.tabs[tab].visible = visible;
                    if visible {
                        // Its timer runs at its own moment again.
                        let tb = &self.tabs[tab];
                        if tb.timer_pending {
                            let (serial, at) = (tb.timer_serial, tb.timer_fire.max(self.t));
                            self.push(at, Ev::Timer { tab, serial });
                        }
                    }
                    self.page(tab, PageEvent::Visibility);
                }
            }
            860..=879 => self.sleep(),
            880..=919 => {
                if !self.offline {
                    tr!(self, "offline");
                    self.offline = true;
                    let at = self.t + self.rng.range(500.0, 5.0 * 60_000.0);
                    self.faulted(at);
                    self.push(at, Ev::Online);
                }
            }
            920..=959 => {
                if self.t >= self.server.outage_until {
                    let until = self.t + self.rng.range(1_000.0, 10.0 * 60_000.0);
                    tr!(self, "server: outage until {:.0}", until - T0);
                    self.server.outage_until = until;
                    self.faulted(until);
                    self.push(until, Ev::OutageEnd);
                }
            }
            960..=964 => {
                // The server revokes the family (an admin, a password change).
                let families: Vec<usize> = (0..self.server.families.len())
                    .filter(|f| self.server.families[*f].alive)
                    .collect();
                if let Some(f) = pick(self, &families) {
                    tr!(self, "server: family {f} revoked by an admin");
                    self.revoke(f);
                }
            }
            _ => {
                if let Some(tab) = pick(self, &live) {
                    self.page(tab, PageEvent::Focus);
                }
            }
        }
    }

    /// The laptop sleeps: no timer runs, no message moves, connections drop.
    fn sleep(&mut self) {
        let d = self.rng.range(60_000.0, 2.0 * 3_600_000.0);
        let (s, wake) = (self.t, self.t + d);
        tr!(self, "the laptop sleeps {:.0} s", d / 1000.0);
        self.asleep_until = wake;
        // What the browser waits for (the network back) waits longer.
        if self.offline {
            self.last_fault += d;
        }
        self.faulted(wake);
        let items: Vec<Item> = std::mem::take(&mut self.queue).into_vec();
        for mut item in items {
            if item.at >= s {
                match &mut item.ev {
                    Ev::Timer { .. }
                    | Ev::Deliver { .. }
                    | Ev::Grant { .. }
                    | Ev::KeyMade { .. }
                    | Ev::Chaos
                    | Ev::Online
                    | Ev::Unfreeze { .. }
                    | Ev::Released { .. }
                    | Ev::Quiesce => item.at += d,
                    Ev::RefreshAnswer { req, .. } => {
                        self.reqs[*req].lost = true;
                        item.at = wake + 1.0;
                    }
                    Ev::ApiAnswer {
                        status,
                        nonce,
                        challenge,
                        ..
                    } => {
                        (*status, *nonce, *challenge) = (0, None, None);
                        item.at = wake + 1.0;
                    }
                    Ev::LoginAnswer { answer, nonce, .. } => {
                        (*answer, *nonce) = (TokenAnswer::no_answer(), None);
                        item.at = wake + 1.0;
                    }
                    _ => {}
                }
            }
            self.queue.push(item);
        }
        for tb in &mut self.tabs {
            tb.paused_ms += d;
            tb.timer_fire += d;
        }
        self.push(wake, Ev::Wake);
    }

    fn quiesce(&mut self) {
        tr!(self, "quiesce: the app stops, the faults end");
        self.active = false;
        self.server.outage_until = self.t.min(self.server.outage_until);
        let open = self.open_tabs();
        for tab in open {
            if self.tabs[tab].frozen {
                self.unfreeze(tab);
            }
        }
        if self.offline {
            self.handle(Ev::Online);
        }
        let at = self.t.max(self.asleep_until) + QUIESCENCE_MS + 3.0 * self.shape.ttl_s * 1000.0;
        self.push(at, Ev::End);
    }

    /// The session was kept alive: in every tab, a call for a token gets a
    /// valid one of the family at once, or after one refresh.
    fn kept_alive(&mut self, open: &[usize]) {
        let ops = self.settle_all(open, OpKind::GetToken);
        for op in ops {
            let o = &self.ops[op];
            // (Without locks two tabs may collide even now: a family revoked
            // for it ends at the next use, as 4 and 5 check.)
            // (Nor may its tokens stay current: a collision's second rotation
            // may revoke them, on a server that revokes on rotation.)
            let collided = !self.shape.locks;
            if !o.valid && !collided {
                let (tab, outcome) = (o.tab, o.outcome.clone());
                return self.fail(
                    Invariant::Converges,
                    format!("after quiescence getAccessToken in tab {tab} gets no valid token: {outcome}"),
                );
            }
        }
    }

    /// Starts `kind` in every tab of `open` and runs until they settle (10 s at most).
    fn settle_all(&mut self, open: &[usize], kind: OpKind) -> Vec<usize> {
        let ops: Vec<usize> = open.iter().map(|t| self.start_op(*t, kind)).collect();
        let deadline = self.t + 10_000.0;
        while ops.iter().any(|op| !self.ops[*op].done) && self.violation.is_none() {
            let Some(item) = self.queue.pop() else { break };
            if item.at > deadline {
                break;
            }
            self.t = self.t.max(item.at);
            self.handle(item.ev);
        }
        ops
    }

    /// Invariant 7, second half, and 6's: after quiescence every tab holds
    /// the family's current tokens (or none, when it ended), and no call
    /// still waits.
    fn final_check(&mut self) {
        // Let a refresh that is out land first.
        let mut guard = 0;
        let busy = |w: &World| {
            w.reqs.iter().any(|r| !r.answered && !r.lost)
                || w.queue
                    .iter()
                    .any(|i| matches!(i.ev, Ev::Deliver { .. } | Ev::Grant { .. }))
        };
        while busy(self) && guard < 10_000 {
            guard += 1;
            let Some(item) = self.queue.pop() else { break };
            self.t = self.t.max(item.at);
            self.handle(item.ev);
        }
        let open = self.open_tabs();
        // 9: the keys went with the sessions, no login's is left over.
        for &tab in &open {
            let tb = &self.tabs[tab];
            let jkt = tb.keeper.session().tokens().and_then(|t| t.key.as_ref());
            if let Some((name, _)) = tb.keys.iter().find(|(n, _)| Some(n) != jkt.map(|k| &k.jkt)) {
                let detail = format!(
                    "after quiescence tab {tab} holds key {name}, not its session's (session: {})",
                    jkt.is_some()
                );
                return self.fail(Invariant::KeysFollowTheSession, detail);
            }
        }
        let holding: Vec<Option<(String, Option<String>)>> = open
            .iter()
            .map(|t| {
                self.tabs[*t]
                    .keeper
                    .session()
                    .tokens()
                    .map(|k| (k.access.clone(), k.refresh.clone()))
            })
            .collect();
        if holding.windows(2).any(|w| w[0] != w[1]) {
            let which: Vec<String> = open
                .iter()
                .map(|t| {
                    format!(
                        "tab {t}: gen {}",
                        self.tabs[*t].keeper.session().generation()
                    )
                })
                .collect();
            return self.fail(
                Invariant::Converges,
                format!(
                    "after quiescence the tabs hold different tokens ({})",
                    which.join(", ")
                ),
            );
        }
        match holding.first().cloned().flatten() {
            Some((access, _)) => {
                let family = self.server.access.get(&access).map(|i| i.family);
                match family {
                    Some(f) if self.server.families[f].alive => {
                        // (A hidden tab's throttled timer may let the access
                        // token lapse: the next call refreshes it first.)
                        // (Without locks, a second rotation's answer may be
                        // dropped as stale: its older tokens still serve.)
                        if self.server.families[f].access != access && self.shape.locks {
                            return self.fail(
                                Invariant::Converges,
                                "after quiescence the tabs hold a rotated-out token".into(),
                            );
                        }
                        self.kept_alive(&open);
                    }
                    // (Without locks, after a collision, it ends at the next
                    // use; and a hidden tab, throttled to a timer a minute,
                    // takes minutes to go through the lockless pauses.)
                    _ if !self.shape.locks => {}
                    _ => self.fail(
                        Invariant::Converges,
                        "after quiescence the tabs hold tokens of a family the server ended".into(),
                    ),
                }
            }
            None if !open.is_empty() => {
                // None: the session must have ended in the browser, or at the
                // server; or it is in the cookie, for the next ready().
                let kept = if self.shape.cookie {
                    // The session the jar's cookie holds.
                    let jar = self
                        .jar
                        .as_ref()
                        .and_then(|c| self.server.refresh.get(c).copied());
                    jar.is_some_and(|f| {
                        let f = &self.server.families[f];
                        f.alive
                            && !f.ended_in_browser
                            && f.refresh == *self.jar.as_deref().unwrap_or("")
                    })
                } else {
                    self.server
                        .families
                        .iter()
                        .any(|f| f.held && f.alive && !f.ended_in_browser)
                };
                if kept {
                    if !self.shape.cookie {
                        return self.fail(
                            Invariant::NoSpuriousLogout,
                            "after quiescence no tab holds the session the server keeps alive"
                                .into(),
                        );
                    }
                    let ops = self.settle_all(&open, OpKind::Ready);
                    // (Without locks the joining tabs may collide, and the
                    // session end, cleanly.)
                    let strict = self.shape.locks;
                    let failed = ops
                        .iter()
                        .find(|op| self.ops[**op].outcome != "Ready(true)");
                    if let (Some(op), true) = (failed, strict) {
                        let (tab, outcome) = (self.ops[*op].tab, self.ops[*op].outcome.clone());
                        return self.fail(
                            Invariant::NoSpuriousLogout,
                            format!("after quiescence ready() in tab {tab} does not join the cookie's session: {outcome}"),
                        );
                    }
                    self.kept_alive(&open);
                }
            }
            None => {}
        }
        for op in 0..self.ops.len() {
            let o = &self.ops[op];
            if !o.done && self.tabs[o.tab].open {
                let (kind, tab) = (o.kind, o.tab);
                self.fail(
                    Invariant::CallsSettle,
                    format!("{kind:?} in tab {tab} (op {op}) never settled"),
                );
            }
        }
    }
}

/// The public coordinates of the `n`th DPoP key pair made: two base64url
/// texts of 32 bytes, different for every `n`.
fn coordinates(n: u64) -> (String, String) {
    let bytes = |salt: u8| {
        let mut b = [salt; 32];
        b[..8].copy_from_slice(&n.to_be_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    (bytes(0x11), bytes(0x22))
}

fn status(code: u16, error: Option<&str>, retry_after_ms: Option<f64>) -> TokenAnswer {
    TokenAnswer::Failure {
        status: code,
        oauth_error: error.map(String::from),
        retry_after_ms,
        malformed: None,
    }
}

/// The answer as the keeper gets it: in cookie mode the refresh token is in
/// the jar, not the page.
fn answer_for_keeper(answer: &TokenAnswer, cookie: bool) -> TokenAnswer {
    match answer {
        TokenAnswer::Grant { grant, timing } if cookie => TokenAnswer::Grant {
            grant: RawGrant {
                refresh_token: None,
                ..grant.clone()
            },
            timing: *timing,
        },
        other => other.clone(),
    }
}

fn describe(answer: &TokenAnswer) -> String {
    match answer {
        TokenAnswer::Grant { grant, .. } => {
            format!("grant (access: {})", grant.access_token.is_some())
        }
        TokenAnswer::Failure {
            status,
            oauth_error,
            retry_after_ms,
            ..
        } => {
            let mut s = format!("{status}");
            if let Some(e) = oauth_error {
                let _ = write!(s, " {e}");
            }
            if let Some(r) = retry_after_ms {
                let _ = write!(s, " retry-after {r:.0} ms");
            }
            s
        }
    }
}

fn describe_reply(reply: &Reply) -> String {
    match reply {
        Reply::Token { generation, .. } => format!("token of generation {generation}"),
        Reply::Replay { .. } => "replay".into(),
        Reply::Failed(e) => format!("failed: {e}"),
        other => format!("{other:?}"),
    }
}
