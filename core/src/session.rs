//! The session state machine: tokens, generations, refresh decisions, error
//! classification, backoff and the refresh-storm brake. Sans-IO: the shell
//! passes time in (ms since epoch) and randomness in (`[0, 1)`), and carries
//! out the decisions.

use crate::error::Error;
use crate::planted::{Fault, Planted};
use crate::protocol;
use crate::token::{self, TokenSet};
use alloc::string::String;

/// What a caller that wants a token should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// Use the current token; it belongs to this generation.
    Fresh {
        /// The generation of the token to attach.
        generation: u64,
    },
    /// The token is expired or inside the lead window: refresh first.
    RefreshFirst,
    /// There is no session.
    NoSession,
}

/// What to do with a request that got a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After401 {
    /// The request used a token that has since been replaced: replay with the current one.
    ReplayWithCurrent,
    /// The request used the current token: refresh, then replay.
    RefreshThenReplay,
    /// There is no session any more: hand the 401 back.
    GiveUp,
}

/// How a failed refresh is to be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The refresh token was refused (`invalid_grant`, 400/401/403): the session ends.
    Fatal,
    /// It may pass (network, 5xx, 429, anything else): keep the tokens, retry later.
    Transient,
}

/// Classifies a refresh endpoint's failure. `status` 0 means no answer.
pub fn classify(status: u16, oauth_error: Option<&str>) -> FailureClass {
    match oauth_error {
        Some("invalid_grant" | "invalid_client" | "unauthorized_client") => {
            return FailureClass::Fatal
        }
        // (A DPoP nonce asked for again after its one retry: not a refusal.)
        Some("temporarily_unavailable" | "server_error" | "slow_down" | "use_dpop_nonce") => {
            return FailureClass::Transient
        }
        _ => {}
    }
    match status {
        400 | 401 | 403 => FailureClass::Fatal,
        _ => FailureClass::Transient,
    }
}

/// Backoff for transient refresh failures: first wait, cap, and the longest
/// `Retry-After` honoured.
pub const BACKOFF_BASE_MS: f64 = 1_000.0;
/// The longest wait between two attempts.
pub const BACKOFF_MAX_MS: f64 = 60_000.0;
/// A `Retry-After` longer than this is capped to it.
pub const RETRY_AFTER_MAX_MS: f64 = 600_000.0;
/// A token is not sent in its last second (or last tenth of its lifetime).
pub const EXPIRY_MARGIN_MS: f64 = 1_000.0;
/// Storm brake: at most this many refresh attempts…
pub const STORM_LIMIT: usize = 6;
/// …within this window.
pub const STORM_WINDOW_MS: f64 = 10_000.0;

/// One tab's session.
#[derive(Debug, Clone, Default)]
pub struct Session {
    tokens: Option<TokenSet>,
    generation: u64,
    /// Jitter in `[0, 1)` chosen when the tokens were adopted, so the planned
    /// refresh moment does not move at every re-check.
    jitter: f64,
    /// Consecutive transient failures.
    failures: u32,
    /// No refresh attempt before this moment (backoff / Retry-After); 0
    /// while `failures` is 0, as is `asked_until`.
    not_before: f64,
    /// The part of it a server asked for (a `Retry-After`, here or in
    /// another tab): the network coming back does not shorten it.
    asked_until: f64,
    /// The server's clock against ours (local − server, ms), as measured by
    /// a response that issued tokens with a JWT `exp` (`None`: not yet).
    skew: Option<f64>,
    /// Start times of recent refresh attempts (storm brake), oldest first.
    recent: [f64; STORM_LIMIT],
    recent_len: usize,
    planted: Planted,
}

impl Session {
    /// An empty session (logged out).
    pub fn new() -> Session {
        Session::default()
    }

    /// The current tokens, if any.
    pub fn tokens(&self) -> Option<&TokenSet> {
        self.tokens.as_ref()
    }

    /// The generation of the current tokens (0 before the first login).
    /// Every change of tokens, logout included, makes a newer one
    /// ([`protocol::next_generation`]: one larger, up to 2^53 − 1); a new
    /// session starts at its moment ([`protocol::first_generation`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether there is a session.
    pub fn is_authenticated(&self) -> bool {
        self.tokens.is_some()
    }

    /// When the access token expires (local clock), if known.
    pub fn expires_at(&self) -> Option<f64> {
        self.tokens.as_ref().and_then(|t| t.expires_at)
    }

    /// Adopts new tokens (login, refresh, renewal, another tab) and returns
    /// their generation. `generation` may be given (by another tab); it only
    /// moves forward.
    pub fn adopt(&mut self, tokens: TokenSet, generation: Option<u64>, jitter: f64) -> u64 {
        self.generation = match generation {
            Some(g)
                if protocol::is_newer(g, self.generation) || self.planted.is(Fault::AdoptOlder) =>
            {
                g
            }
            _ => protocol::next_generation(self.generation),
        };
        self.tokens = Some(tokens);
        self.jitter = jitter;
        self.failures = 0;
        self.not_before = 0.0;
        self.asked_until = 0.0;
        self.generation
    }

    /// Takes `tokens` in place of the current ones at generation `gen`, the
    /// current one ([`protocol::wins_tie`]); the backoff state stays.
    pub fn replace(&mut self, tokens: TokenSet, gen: u64) {
        if gen == self.generation && self.tokens.is_some() {
            self.tokens = Some(tokens);
        }
    }

    /// Moves the generation forward to `gen` (a newer state seen in another tab).
    pub fn advance_to(&mut self, gen: u64) {
        if protocol::is_newer(gen, self.generation) {
            self.generation = gen;
        }
    }

    /// Ends the session; returns whether there was one.
    pub fn clear(&mut self) -> bool {
        let had = self.tokens.take().is_some();
        if had {
            self.generation = protocol::next_generation(self.generation);
        }
        self.failures = 0;
        self.not_before = 0.0;
        self.asked_until = 0.0;
        had
    }

    /// When a refresh is planned (local clock): the backoff moment after a
    /// failure, otherwise the lead-time moment before expiry.
    pub fn refresh_at(&self, lead_ms: f64) -> Option<f64> {
        let tokens = self.tokens.as_ref()?;
        if self.failures > 0 {
            return Some(self.not_before);
        }
        token::refresh_at(tokens, lead_ms, self.jitter)
    }

    /// Refresh on read: may a caller use the current token at `now`?
    pub fn read(&self, now: f64, lead_ms: f64) -> Read {
        let Some(tokens) = self.tokens.as_ref() else {
            return Read::NoSession;
        };
        let due = match token::refresh_at(tokens, lead_ms, self.jitter) {
            Some(at) => now >= at,
            None => false,
        };
        // While backing off after a failure, a token that is still valid is
        // used as it is; only an expired one makes the caller wait for a
        // refresh. "Expired" starts a little early: a request sent in the
        // token's last moment would arrive after it.
        let expired = self.is_expired(now);
        if expired || (due && self.failures == 0) {
            Read::RefreshFirst
        } else {
            Read::Fresh {
                generation: self.generation,
            }
        }
    }

    /// Whether the current access token is past its expiry at `now` — or in
    /// its last moment ([`EXPIRY_MARGIN_MS`], at most a tenth of its
    /// lifetime): a request sent then would arrive after it.
    pub fn is_expired(&self, now: f64) -> bool {
        self.tokens.as_ref().is_some_and(|t| {
            t.expires_at.is_some_and(|at| {
                let margin = ((at - t.issued_at) / 10.0).clamp(0.0, EXPIRY_MARGIN_MS);
                now >= at - margin
            })
        })
    }

    /// A request that used the token of `generation` got a 401.
    pub fn after_401(&self, generation: u64) -> After401 {
        if self.tokens.is_none() {
            After401::GiveUp
        } else if generation == self.generation || self.planted.is(Fault::RefreshOnStale401) {
            After401::RefreshThenReplay
        } else {
            After401::ReplayWithCurrent
        }
    }

    /// Checks the backoff and the storm brake before a refresh attempt at `now`.
    /// `Ok` records the attempt; `Err` says how long to wait.
    pub fn begin_refresh(&mut self, now: f64) -> Result<(), Error> {
        if now < self.not_before {
            return Err(Error::RefreshThrottled {
                retry_in_ms: self.not_before - now,
            });
        }
        let window_start = now - STORM_WINDOW_MS;
        let recent = self.recent.get(..self.recent_len).unwrap_or(&[]);
        let in_window = recent.iter().filter(|t| **t > window_start).count();
        if in_window >= STORM_LIMIT {
            // At most STORM_LIMIT are kept: all of them are in the window.
            let oldest = recent.iter().copied().fold(f64::INFINITY, f64::min);
            return Err(Error::RefreshThrottled {
                retry_in_ms: (oldest + STORM_WINDOW_MS - now).max(0.0),
            });
        }
        if self.recent_len == STORM_LIMIT {
            self.recent.rotate_left(1);
            self.recent_len -= 1;
        }
        if let Some(slot) = self.recent.get_mut(self.recent_len) {
            *slot = now;
            self.recent_len += 1;
        }
        Ok(())
    }

    /// A refresh failed transiently: plans the next attempt and returns how
    /// long to wait, in ms. `random` in `[0, 1)` spreads the waits ("equal
    /// jitter": between half and all of the exponential step).
    pub fn transient_failure(&mut self, now: f64, retry_after_ms: Option<f64>, random: f64) -> f64 {
        self.failures = self.failures.saturating_add(1);
        let step = BACKOFF_BASE_MS * crate::json::powi(2.0, self.failures.min(16) as i32 - 1);
        let unbounded = self.planted.is(Fault::UnboundedBackoff);
        let step = if unbounded {
            step
        } else {
            step.min(BACKOFF_MAX_MS)
        };
        let random = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let mut wait = step * (0.5 + 0.5 * random);
        let retry_after = retry_after_ms.filter(|r| r.is_finite() && *r > 0.0);
        if let Some(ra) = retry_after.filter(|_| !self.planted.is(Fault::IgnoreRetryAfter)) {
            let ra = if unbounded {
                ra
            } else {
                ra.min(RETRY_AFTER_MAX_MS)
            };
            wait = wait.max(ra);
            self.asked_until = self.asked_until.max(now + ra);
        }
        self.not_before = now + wait;
        wait
    }

    /// Another tab holding the same tokens was told to back off until
    /// `until`: this tab waits too (a `Retry-After` is for every tab).
    pub fn defer_until(&mut self, now: f64, until: f64) {
        // No longer than a server's Retry-After could ask for: a message
        // from another tab can say no more than an honest tab was told.
        let until = if self.planted.is(Fault::UnboundedBackoff) {
            until
        } else {
            until.min(now + RETRY_AFTER_MAX_MS)
        };
        if self.tokens.is_some() {
            // A wait the server asked for outlasts `online` — even when this
            // tab's own backoff already ended at that moment.
            self.asked_until = self.asked_until.max(until);
            if until > self.not_before {
                self.not_before = until;
                self.failures = self.failures.max(1);
            }
        }
    }

    /// The network is back (`online`): a backed-off refresh may be tried
    /// now — unless a server asked for the wait (`Retry-After`).
    pub fn network_back(&mut self, now: f64) {
        // (Without a failure both moments are 0: nothing changes.)
        self.not_before = self.not_before.min(now).max(self.asked_until);
    }

    /// The moment refreshing waits for after a failure (a backoff, a
    /// `Retry-After`, another tab's), while it is still ahead of `now`.
    pub fn backing_off(&self, now: f64) -> Option<f64> {
        // (Without a failure `not_before` is 0.)
        (self.tokens.is_some() && self.not_before > now).then_some(self.not_before)
    }

    /// The skew a response measured ([`Session::measured`]), if one did.
    pub fn skew(&self) -> Option<f64> {
        self.skew
    }

    /// Another tab's response measured the server's clock `skew` off: the
    /// smaller of it and any measured here.
    pub fn learn_skew(&mut self, skew: f64) {
        if skew.is_finite() {
            self.skew = Some(self.skew.map_or(skew, |k| k.min(skew)));
        }
    }

    /// A response that just issued the current tokens measured the
    /// server's clock: keep what their expiry was computed with, or the
    /// smaller skew measured before (a token issued earlier than its
    /// response only ever reads as a larger one: [`token::steady_expiry`]).
    pub fn measured(&mut self) {
        if let Some(s) = self.tokens.as_ref().and_then(token::applied_skew) {
            self.learn_skew(s);
        }
    }

    /// Consecutive transient failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Plants `fault` (test-only).
    #[cfg(feature = "planted-faults")]
    pub(crate) fn plant(&mut self, planted: Planted) {
        self.planted = planted;
    }

    /// The refresh token to send (json/form styles).
    pub fn refresh_token(&self) -> Option<String> {
        self.tokens.as_ref().and_then(|t| t.refresh.clone())
    }
}

/// Parses a `Retry-After` header: delay-seconds or an HTTP date (given the
/// date already parsed by the browser as `date_ms`), into ms from `now`.
pub fn retry_after_ms(value: &str, date_ms: Option<f64>, now: f64) -> Option<f64> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return crate::json::decimal(v.as_bytes()).map(|s| s * 1000.0);
    }
    date_ms.map(|d| (d - now).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_700_000_000_000.0;

    fn tokens(lifetime_ms: f64) -> TokenSet {
        TokenSet {
            access: "a".into(),
            refresh: Some("r".into()),
            expires_at: Some(T0 + lifetime_ms),
            issued_at: T0,
            id: None,
            key: None,
        }
    }

    #[test]
    fn generations_move_forward_only() {
        let mut s = Session::new();
        assert_eq!(s.read(T0, 60_000.0), Read::NoSession);
        assert_eq!(s.adopt(tokens(60_000.0), None, 0.0), 1);
        assert_eq!(s.adopt(tokens(60_000.0), Some(7), 0.0), 7);
        assert_eq!(s.adopt(tokens(60_000.0), Some(3), 0.0), 8);
        assert!(s.clear());
        assert_eq!(s.generation(), 9);
        assert!(!s.clear());
        assert_eq!(s.generation(), 9);
    }

    #[test]
    fn refresh_on_read_inside_the_lead_window() {
        let mut s = Session::new();
        let g = s.adopt(tokens(300_000.0), None, 0.0);
        assert_eq!(s.read(T0, 60_000.0), Read::Fresh { generation: g });
        assert_eq!(
            s.read(T0 + 239_999.0, 60_000.0),
            Read::Fresh { generation: g }
        );
        assert_eq!(s.read(T0 + 240_000.0, 60_000.0), Read::RefreshFirst);
        assert_eq!(s.read(T0 + 400_000.0, 60_000.0), Read::RefreshFirst);
        assert!(s.is_expired(T0 + 300_000.0));
    }

    #[test]
    fn a_token_without_expiry_is_always_fresh() {
        let mut s = Session::new();
        let t = TokenSet {
            expires_at: None,
            ..tokens(0.0)
        };
        let g = s.adopt(t, None, 0.5);
        assert_eq!(s.read(T0 + 1e12, 60_000.0), Read::Fresh { generation: g });
        assert_eq!(s.refresh_at(60_000.0), None);
    }

    #[test]
    fn stale_401s_replay_without_refreshing() {
        let mut s = Session::new();
        let g1 = s.adopt(tokens(60_000.0), None, 0.0);
        assert_eq!(s.after_401(g1), After401::RefreshThenReplay);
        let g2 = s.adopt(tokens(60_000.0), None, 0.0);
        assert_eq!(s.after_401(g1), After401::ReplayWithCurrent);
        assert_eq!(s.after_401(g2), After401::RefreshThenReplay);
        s.clear();
        assert_eq!(s.after_401(g2), After401::GiveUp);
    }

    #[test]
    fn classification() {
        use FailureClass::*;
        assert_eq!(classify(400, Some("invalid_grant")), Fatal);
        assert_eq!(classify(401, None), Fatal);
        assert_eq!(classify(400, None), Fatal);
        assert_eq!(classify(403, None), Fatal);
        assert_eq!(classify(200, Some("invalid_grant")), Fatal);
        assert_eq!(classify(0, None), Transient);
        assert_eq!(classify(500, None), Transient);
        assert_eq!(classify(503, Some("temporarily_unavailable")), Transient);
        assert_eq!(classify(429, None), Transient);
        assert_eq!(classify(400, Some("temporarily_unavailable")), Transient);
        assert_eq!(classify(404, None), Transient);
    }

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let mut s = Session::new();
        s.adopt(tokens(60_000.0), None, 0.0);
        let mut last_max = 0.0;
        for n in 1..=10 {
            for r in [0.0, 0.999] {
                let mut c = s.clone();
                for _ in 1..n {
                    c.transient_failure(T0, None, 0.5);
                }
                let w = c.transient_failure(T0, None, r);
                let step = (1000.0 * 2f64.powi(n - 1)).min(60_000.0);
                assert!(w >= step * 0.5 && w <= step, "n={n} r={r} w={w}");
                last_max = w;
            }
        }
        assert!(last_max <= BACKOFF_MAX_MS);
        let w = s.transient_failure(T0, Some(5_000.0), 0.0);
        assert_eq!(w, 5_000.0);
        assert_eq!(s.refresh_at(60_000.0), Some(T0 + 5_000.0));
        assert!(matches!(
            s.begin_refresh(T0 + 4_000.0),
            Err(Error::RefreshThrottled { .. })
        ));
        assert!(s.begin_refresh(T0 + 5_000.0).is_ok());
        let w = s.transient_failure(T0, Some(1e12), 0.0);
        assert_eq!(w, RETRY_AFTER_MAX_MS);
        // Success resets the backoff.
        s.adopt(tokens(60_000.0), None, 0.0);
        assert_eq!(s.failures(), 0);
        assert_eq!(s.refresh_at(0.0), Some(T0 + 60_000.0));
    }

    #[test]
    fn while_backing_off_a_valid_token_is_still_used() {
        let mut s = Session::new();
        let g = s.adopt(tokens(30_000.0), None, 0.0);
        s.transient_failure(T0 + 25_000.0, None, 0.0);
        assert_eq!(
            s.read(T0 + 25_500.0, 10_000.0),
            Read::Fresh { generation: g }
        );
        assert_eq!(s.read(T0 + 30_000.0, 10_000.0), Read::RefreshFirst);
    }

    #[test]
    fn another_tabs_backoff_is_honoured() {
        let mut s = Session::new();
        let g = s.adopt(tokens(60_000.0), None, 0.0);
        s.defer_until(T0, T0 + 2_000.0);
        assert_eq!(s.refresh_at(10_000.0), Some(T0 + 2_000.0));
        assert!(s.begin_refresh(T0 + 1_000.0).is_err());
        assert_eq!(
            s.read(T0 + 1_000.0, 10_000.0),
            Read::Fresh { generation: g }
        );
        s.defer_until(T0, T0 + 1_000.0); // an earlier moment changes nothing
        assert_eq!(s.refresh_at(10_000.0), Some(T0 + 2_000.0));
        assert!(s.begin_refresh(T0 + 2_000.0).is_ok());
        let mut empty = Session::new();
        empty.defer_until(T0, T0 + 5.0);
        assert_eq!(empty.refresh_at(0.0), None);
    }

    #[test]
    fn storm_brake() {
        let mut s = Session::new();
        for i in 0..STORM_LIMIT {
            assert!(s.begin_refresh(T0 + i as f64).is_ok());
        }
        match s.begin_refresh(T0 + 100.0) {
            Err(Error::RefreshThrottled { retry_in_ms }) => {
                assert_eq!(retry_in_ms, STORM_WINDOW_MS - 100.0)
            }
            other => panic!("{other:?}"),
        }
        assert!(s.begin_refresh(T0 + STORM_WINDOW_MS + 1.0).is_ok());
        // Spaced-out refreshes never trip it.
        let mut s = Session::new();
        for i in 0..1000 {
            assert!(s.begin_refresh(T0 + i as f64 * 2_000.0).is_ok());
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after_ms("2", None, T0), Some(2000.0));
        assert_eq!(retry_after_ms(" 10 ", None, T0), Some(10_000.0));
        assert_eq!(retry_after_ms("soon", None, T0), None);
        assert_eq!(
            retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", Some(T0 + 3000.0), T0),
            Some(3000.0)
        );
        assert_eq!(retry_after_ms("date", Some(T0 - 5.0), T0), Some(0.0));
    }

    #[test]
    fn the_smallest_skew_measured_is_kept_and_learned() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let jwt_tokens = |exp: f64, skew: f64| {
            let payload = alloc::format!(r#"{{"exp":{exp}}}"#);
            TokenSet {
                access: alloc::format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(payload)),
                refresh: None,
                expires_at: Some(exp * 1000.0 + skew),
                issued_at: T0,
                id: None,
                key: None,
            }
        };
        let mut s = Session::new();
        assert_eq!(s.skew(), None);
        s.adopt(jwt_tokens(1_700_000_060.0, 5_000.0), None, 0.0);
        s.measured();
        assert_eq!(s.skew(), Some(5_000.0));
        // A larger one (an old token) does not replace it; a smaller one does.
        s.adopt(jwt_tokens(1_700_000_090.0, 9_000.0), None, 0.0);
        s.measured();
        assert_eq!(s.skew(), Some(5_000.0));
        s.adopt(jwt_tokens(1_700_000_120.0, 2_000.0), None, 0.0);
        s.measured();
        assert_eq!(s.skew(), Some(2_000.0));
        // From another tab, the same rule; a token without `exp` measures nothing.
        s.learn_skew(3_000.0);
        assert_eq!(s.skew(), Some(2_000.0));
        s.learn_skew(-1_000.0);
        assert_eq!(s.skew(), Some(-1_000.0));
        s.learn_skew(f64::NAN);
        assert_eq!(s.skew(), Some(-1_000.0));
        s.adopt(tokens(60_000.0), None, 0.0);
        s.measured();
        assert_eq!(s.skew(), Some(-1_000.0));
        let mut fresh = Session::new();
        fresh.learn_skew(7.0);
        assert_eq!(fresh.skew(), Some(7.0));
    }

    #[test]
    fn replace_takes_tokens_only_at_the_current_generation() {
        let mut s = Session::new();
        let g = s.adopt(tokens(60_000.0), None, 0.0);
        let other = TokenSet {
            access: "b".into(),
            ..tokens(60_000.0)
        };
        s.replace(other.clone(), g + 1);
        assert_eq!(
            s.tokens().map(|t| t.access.as_str()),
            Some("a"),
            "other gen"
        );
        s.replace(other.clone(), g);
        assert_eq!(s.tokens().map(|t| t.access.as_str()), Some("b"));
        s.clear();
        s.replace(other, s.generation());
        assert!(s.tokens().is_none(), "no session: nothing to replace");
    }

    #[test]
    fn a_short_token_expires_a_tenth_of_its_life_early() {
        let mut s = Session::new();
        s.adopt(tokens(5_000.0), None, 0.0);
        assert!(!s.is_expired(T0 + 4_499.0));
        assert!(s.is_expired(T0 + 4_500.0));
        // A long one: at most EXPIRY_MARGIN_MS early.
        s.adopt(tokens(600_000.0), None, 0.0);
        assert!(!s.is_expired(T0 + 600_000.0 - EXPIRY_MARGIN_MS - 1.0));
        assert!(s.is_expired(T0 + 600_000.0 - EXPIRY_MARGIN_MS));
        // Issued "after" its expiry (a clock jump): no margin, never negative.
        s.adopt(
            TokenSet {
                issued_at: T0 + 10_000.0,
                ..tokens(5_000.0)
            },
            None,
            0.0,
        );
        assert!(!s.is_expired(T0 + 4_999.0));
        assert!(s.is_expired(T0 + 5_000.0));
    }

    #[test]
    fn the_storm_window_is_exactly_ten_seconds() {
        let mut s = Session::new();
        for _ in 0..STORM_LIMIT {
            assert!(s.begin_refresh(T0).is_ok());
        }
        match s.begin_refresh(T0 + STORM_WINDOW_MS - 1.0) {
            Err(Error::RefreshThrottled { retry_in_ms }) => assert_eq!(retry_in_ms, 1.0),
            other => panic!("{other:?}"),
        }
        assert!(
            s.begin_refresh(T0 + STORM_WINDOW_MS).is_ok(),
            "ten seconds on, the first ones are out of the window"
        );
    }

    #[test]
    fn a_retry_after_that_says_nothing_is_ignored() {
        for ra in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            let mut s = Session::new();
            s.adopt(tokens(60_000.0), None, 0.0);
            let w = s.transient_failure(T0, Some(ra), 0.0);
            assert_eq!(w, BACKOFF_BASE_MS / 2.0, "{ra}");
            // Nothing was asked: the network coming back ends the wait, even
            // with the clock set back.
            s.network_back(T0 - 1_000.0);
            assert_eq!(s.backing_off(T0 - 1_000.0), None, "{ra}");
        }
        let mut s = Session::new();
        s.adopt(tokens(60_000.0), None, 0.0);
        s.transient_failure(T0, Some(1.0), 0.0);
        s.network_back(T0 - 1_000.0);
        assert_eq!(
            s.backing_off(T0 - 1_000.0),
            Some(T0 + 1.0),
            "asked for 1 ms"
        );
    }

    #[test]
    fn another_tabs_wait_outlasts_online_and_a_past_one_changes_nothing() {
        let mut s = Session::new();
        s.adopt(tokens(60_000.0), None, 0.0);
        let lead = 10_000.0;
        let planned = s.refresh_at(lead);
        s.defer_until(T0, 0.0);
        s.defer_until(T0, -1.0);
        assert_eq!(s.failures(), 0, "a wait that ended long ago");
        assert_eq!(s.refresh_at(lead), planned);
        // Our own backoff ends at the very moment another tab was told to
        // wait for: that wait is the server's, `online` does not lift it.
        let w = s.transient_failure(T0, None, 0.0);
        s.defer_until(T0, T0 + w);
        s.network_back(T0 + 100.0);
        assert_eq!(s.backing_off(T0 + 100.0), Some(T0 + w));
        assert_eq!(s.failures(), 1);
    }

    #[test]
    fn backing_off_says_until_when_while_it_lasts() {
        let mut s = Session::new();
        assert_eq!(s.backing_off(T0), None);
        s.adopt(tokens(60_000.0), None, 0.0);
        assert_eq!(s.backing_off(T0), None, "no failure, no wait");
        let w = s.transient_failure(T0, Some(30_000.0), 0.0);
        assert_eq!(w, 30_000.0);
        assert_eq!(s.backing_off(T0), Some(T0 + 30_000.0));
        assert_eq!(s.backing_off(T0 + 29_999.0), Some(T0 + 30_000.0));
        assert_eq!(s.backing_off(T0 + 30_000.0), None, "over");
        // The network coming back does not shorten a server's wait.
        s.network_back(T0 + 1_000.0);
        assert_eq!(s.backing_off(T0 + 1_000.0), Some(T0 + 30_000.0));
        s.clear();
        assert_eq!(s.backing_off(T0), None, "no session, no wait");
    }
}
