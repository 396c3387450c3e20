//! The tab protocol: what tabs of one origin and channel tell each other over
//! `BroadcastChannel`, and how a received message is decoded. Decoding never
//! panics: own, older, malformed or unknown-version messages are rejected and
//! the caller ignores them.
//!
//! Every message carries the protocol version `v`, the sender's tab id
//! `from` and the sender's session generation `gen`. Generations move
//! forward on a ring ([`next_generation`], [`is_newer`]), so a message never
//! takes a tab back to an older state, and every generation a tab can reach
//! is one every tab accepts: even a message at the largest one (from a
//! script of the origin that is no honest tab) leaves tabs that rotate on.

use crate::token::{TokenSet, MAX_TOKEN_LEN};
use crate::value::OptValue;
use alloc::string::String;

/// The protocol version this build speaks.
pub const VERSION: f64 = 1.0;

/// A tab message.
#[derive(Clone, PartialEq)]
pub enum Message {
    /// "Who has something newer than my generation?" Sent by a new tab, a
    /// tab coming back (bfcache, visibility), and before giving a session up.
    Hello {
        /// The asking tab's generation.
        gen: u64,
    },
    /// "Here is my session": after a login or refresh, or in answer to a hello.
    Session {
        /// The sender's generation for these tokens.
        gen: u64,
        /// The tokens (same origin only, never logged).
        tokens: TokenSet,
        /// When answering a hello while backing off: no refresh before this
        /// moment (ms since the epoch). In the one message, so a tab that
        /// joins cannot refresh between the tokens and the wait.
        until: Option<f64>,
        /// The server's clock against the browser's (local − server, ms), as
        /// a response measured it in the sender ([`crate::session::Session::skew`]).
        skew: Option<f64>,
    },
    /// "The token endpoint asked us to wait" (a transient failure, maybe a
    /// `Retry-After`): tabs holding the same tokens wait until `until`.
    Backoff {
        /// The sender's generation (the tokens whose refresh failed).
        gen: u64,
        /// No refresh before this moment (ms since the epoch).
        until: f64,
    },
    /// "The session has ended" (logout, or a refresh refused for good).
    Logout {
        /// The sender's generation after ending it.
        gen: u64,
        /// Why it ended in the sender: `"local"` or `"refresh-failed"`.
        reason: String,
    },
}

impl core::fmt::Debug for Message {
    // Tokens never reach a log.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Message::Hello { gen } => write!(f, "Hello {{ gen: {gen} }}"),
            Message::Session {
                gen,
                tokens,
                until,
                skew,
            } => write!(
                f,
                "Session {{ gen: {gen}, tokens: {tokens:?}, until: {until:?}, skew: {skew:?} }}"
            ),
            Message::Logout { gen, reason } => {
                write!(f, "Logout {{ gen: {gen}, reason: {reason} }}")
            }
            Message::Backoff { gen, until } => {
                write!(f, "Backoff {{ gen: {gen}, until: {until} }}")
            }
        }
    }
}

impl Message {
    /// The sender's generation.
    pub fn gen(&self) -> u64 {
        match self {
            Message::Hello { gen }
            | Message::Session { gen, .. }
            | Message::Logout { gen, .. }
            | Message::Backoff { gen, .. } => *gen,
        }
    }
}

/// A decoded message with its sender.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The sender's tab id.
    pub from: String,
    /// The message.
    pub message: Message,
}

/// Why a message was not accepted (for tests and debugging; callers ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not an object, or a field missing or of the wrong type.
    Malformed,
    /// Another protocol version.
    Version,
    /// Sent by this tab.
    Own,
}

const MAX_ID: usize = 64;

/// The largest generation, 2^53 − 1: generations travel as JS numbers, in
/// which every integer up to it is exact. After it comes 1.
pub const MAX_GEN: u64 = (1 << 53) - 1;

/// The generation after `gen`: `gen + 1`, and 1 after [`MAX_GEN`]. (0 means
/// "nothing yet": a tab that never had a session; no change leads back to it.)
pub fn next_generation(gen: u64) -> u64 {
    if gen >= MAX_GEN {
        1
    } else {
        gen + 1
    }
}

/// The generation a new session starts at (a login, `setTokens`): the
/// moment, in ms of the local clock (or the next generation, when that is
/// newer). Every tab of the browser reads the same clock, so a session
/// started later is newer than anything an older one reached — even in a
/// tab that was frozen through it and comes back with that session's
/// messages — and its tokens win over the old ones, while the old one's
/// logout ends nothing of it. (One rotation per millisecond, sustained,
/// would be needed to catch up.)
pub fn first_generation(now: f64) -> u64 {
    if now.is_finite() && now >= 1.0 {
        (now as u64).min(MAX_GEN)
    } else {
        1
    }
}

/// Whether generation `a` is newer than `b`. Every generation is newer than
/// 0; otherwise the generations 1 ..= [`MAX_GEN`] form a ring (serial number
/// arithmetic, as RFC 1982's): `a` is newer when it lies less than half the
/// ring ahead of `b`. Of two different generations exactly one is newer
/// (the ring has an odd number of them), and `next_generation(g)` is always
/// newer than `g`.
pub fn is_newer(a: u64, b: u64) -> bool {
    if a == 0 || a > MAX_GEN || b > MAX_GEN {
        return false;
    }
    if b == 0 {
        return true;
    }
    // The distance from b forward to a, in 1 ..= MAX_GEN − 1 (MAX_GEN, more
    // than half the ring, when a == b: not newer).
    let ahead = if a > b { a - b } else { MAX_GEN - (b - a) };
    ahead <= MAX_GEN / 2
}

fn string(entries: &[(String, OptValue)], key: &str, max: usize) -> Result<String, Reject> {
    match OptValue::field(entries, key) {
        OptValue::Str(s) if !s.is_empty() && s.len() <= max => Ok(s.clone()),
        _ => Err(Reject::Malformed),
    }
}

fn number(entries: &[(String, OptValue)], key: &str) -> Result<Option<f64>, Reject> {
    match OptValue::field(entries, key) {
        OptValue::Undefined | OptValue::Null => Ok(None),
        OptValue::Num(n) if n.is_finite() => Ok(Some(*n)),
        _ => Err(Reject::Malformed),
    }
}

fn generation(entries: &[(String, OptValue)]) -> Result<u64, Reject> {
    match number(entries, "gen")? {
        Some(g) if (0.0..=MAX_GEN as f64).contains(&g) && g == (g as u64) as f64 => Ok(g as u64),
        _ => Err(Reject::Malformed),
    }
}

/// Decodes a received message. `own_id` is this tab's id: its own messages
/// are rejected.
pub fn decode(value: &OptValue, own_id: &str) -> Result<Envelope, Reject> {
    let OptValue::Map(entries) = value else {
        return Err(Reject::Malformed);
    };
    match OptValue::field(entries, "v") {
        OptValue::Num(v) if *v == VERSION => {}
        OptValue::Num(_) => return Err(Reject::Version),
        _ => return Err(Reject::Malformed),
    }
    let from = string(entries, "from", MAX_ID)?;
    if from == own_id {
        return Err(Reject::Own);
    }
    let gen = generation(entries)?;
    let kind = string(entries, "type", 16)?;
    let message = match kind.as_str() {
        "hello" => Message::Hello { gen },
        "session" => {
            let access = string(entries, "access", MAX_TOKEN_LEN)?;
            if access.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
                return Err(Reject::Malformed);
            }
            let refresh = match OptValue::field(entries, "refresh") {
                OptValue::Undefined | OptValue::Null => None,
                _ => Some(string(entries, "refresh", MAX_TOKEN_LEN)?),
            };
            let id = match OptValue::field(entries, "id") {
                OptValue::Undefined | OptValue::Null => None,
                _ => Some(string(entries, "id", MAX_TOKEN_LEN)?),
            };
            // A DPoP session's key: the public half's coordinates (the
            // private half travels beside them, as a `CryptoKey`).
            let key = match (
                OptValue::field(entries, "kx"),
                OptValue::field(entries, "ky"),
            ) {
                (OptValue::Undefined, OptValue::Undefined) => None,
                (OptValue::Str(x), OptValue::Str(y)) => {
                    Some(crate::dpop::key(x, y).ok_or(Reject::Malformed)?)
                }
                _ => return Err(Reject::Malformed),
            };
            let expires_at = number(entries, "expiresAt")?;
            let issued_at = number(entries, "issuedAt")?.ok_or(Reject::Malformed)?;
            let until = number(entries, "until")?;
            let skew = number(entries, "skew")?.filter(|s| s.abs() <= crate::token::MAX_SKEW_MS);
            Message::Session {
                gen,
                tokens: TokenSet {
                    access,
                    refresh,
                    expires_at,
                    issued_at,
                    id,
                    key,
                },
                until,
                skew,
            }
        }
        "logout" => {
            let reason = string(entries, "reason", 32)?;
            Message::Logout { gen, reason }
        }
        "backoff" => {
            let until = number(entries, "until")?.ok_or(Reject::Malformed)?;
            Message::Backoff { gen, until }
        }
        _ => return Err(Reject::Malformed),
    };
    Ok(Envelope { from, message })
}

/// What a tab does with a message it received, given its own generation and
/// whether it has a session.
#[derive(Debug, Clone, PartialEq)]
pub enum Apply {
    /// Nothing: the message is not newer than what the tab has.
    Ignore,
    /// Adopt these tokens at this generation.
    Adopt,
    /// End the local session (it ended elsewhere).
    EndSession,
    /// Move the generation forward without a session (a logout newer than ours
    /// while we had no session anyway).
    Advance,
    /// Answer a hello with our own state (session or logout).
    Answer,
    /// Wait before refreshing: another tab with the same tokens backs off.
    Defer,
    /// Take these tokens at our own generation (two tabs rotated at once).
    Replace,
}

/// Of two different token sets at one generation (two tabs that refreshed
/// at once, without Web Locks), whether `a` is the one every tab keeps: the
/// later issued, then the greater access token — the same answer in every
/// tab, so they all settle on one.
pub fn wins_tie(a: &TokenSet, b: &TokenSet) -> bool {
    match a.issued_at.total_cmp(&b.issued_at) {
        core::cmp::Ordering::Greater => true,
        core::cmp::Ordering::Less => false,
        core::cmp::Ordering::Equal => a.access > b.access,
    }
}

/// Decides what to do with a message at generation `own_gen`, holding the
/// tokens `own` (`None`: no session).
pub fn apply(message: &Message, own_gen: u64, own: Option<&TokenSet>) -> Apply {
    let authenticated = own.is_some();
    match message {
        Message::Hello { gen } => {
            if is_newer(own_gen, *gen) {
                Apply::Answer
            } else {
                Apply::Ignore
            }
        }
        Message::Session { gen, tokens, .. } => {
            if is_newer(*gen, own_gen) {
                Apply::Adopt
            } else if *gen == own_gen && own.is_some_and(|own| wins_tie(tokens, own)) {
                Apply::Replace
            } else {
                Apply::Ignore
            }
        }
        Message::Backoff { gen, .. } => {
            if *gen == own_gen && authenticated {
                Apply::Defer
            } else {
                Apply::Ignore
            }
        }
        Message::Logout { gen, .. } => {
            let newer = is_newer(*gen, own_gen);
            if (newer || *gen == own_gen) && authenticated {
                Apply::EndSession
            } else if newer {
                Apply::Advance
            } else {
                Apply::Ignore
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn s(v: &str) -> OptValue {
        OptValue::Str(v.into())
    }
    fn n(v: f64) -> OptValue {
        OptValue::Num(v)
    }
    fn msg(pairs: Vec<(&str, OptValue)>) -> OptValue {
        OptValue::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
    fn session(gen: f64) -> Vec<(&'static str, OptValue)> {
        vec![
            ("v", n(1.0)),
            ("type", s("session")),
            ("from", s("tab-b")),
            ("gen", n(gen)),
            ("access", s("a.b.c")),
            ("refresh", s("r1")),
            ("expiresAt", n(2000.0)),
            ("issuedAt", n(1000.0)),
        ]
    }

    #[test]
    fn decodes_each_message() {
        let e = decode(&msg(session(7.0)), "tab-a").unwrap();
        assert_eq!(e.from, "tab-b");
        assert_eq!(
            e.message,
            Message::Session {
                gen: 7,
                tokens: TokenSet {
                    access: "a.b.c".into(),
                    refresh: Some("r1".into()),
                    expires_at: Some(2000.0),
                    issued_at: 1000.0,
                    id: None,
                    key: None,
                },
                until: None,
                skew: None,
            }
        );
        let hello = msg(vec![
            ("v", n(1.0)),
            ("type", s("hello")),
            ("from", s("x")),
            ("gen", n(0.0)),
        ]);
        assert_eq!(
            decode(&hello, "a").unwrap().message,
            Message::Hello { gen: 0 }
        );
        let logout = msg(vec![
            ("v", n(1.0)),
            ("type", s("logout")),
            ("from", s("x")),
            ("gen", n(3.0)),
            ("reason", s("local")),
        ]);
        assert_eq!(
            decode(&logout, "a").unwrap().message,
            Message::Logout {
                gen: 3,
                reason: "local".into()
            }
        );
    }

    #[test]
    fn decodes_backoff() {
        let m = msg(vec![
            ("v", n(1.0)),
            ("type", s("backoff")),
            ("from", s("x")),
            ("gen", n(3.0)),
            ("until", n(1234.5)),
        ]);
        assert_eq!(
            decode(&m, "a").unwrap().message,
            Message::Backoff {
                gen: 3,
                until: 1234.5
            }
        );
        let m = msg(vec![
            ("v", n(1.0)),
            ("type", s("backoff")),
            ("from", s("x")),
            ("gen", n(3.0)),
        ]);
        assert_eq!(decode(&m, "a"), Err(Reject::Malformed));
    }

    #[test]
    fn cookie_mode_sessions_carry_no_refresh_token() {
        let mut m = session(2.0);
        m.retain(|(k, _)| *k != "refresh");
        let Message::Session { tokens, .. } = decode(&msg(m), "a").unwrap().message else {
            panic!()
        };
        assert_eq!(tokens.refresh, None);
    }

    #[test]
    fn rejects_own_foreign_and_malformed() {
        assert_eq!(decode(&msg(session(1.0)), "tab-b"), Err(Reject::Own));
        let mut m = session(1.0);
        m[0] = ("v", n(2.0));
        assert_eq!(decode(&msg(m), "a"), Err(Reject::Version));
        let bad: Vec<OptValue> = vec![
            OptValue::Null,
            s("hello"),
            n(1.0),
            OptValue::List(vec![]),
            msg(vec![]),
            msg(vec![("v", s("1"))]),
        ];
        for b in bad {
            assert_eq!(decode(&b, "a"), Err(Reject::Malformed), "{b:?}");
        }
        for (key, value) in [
            ("type", s("nope")),
            ("type", n(1.0)),
            ("from", s("")),
            ("from", n(3.0)),
            ("gen", n(-1.0)),
            ("gen", n(1.5)),
            ("gen", n(f64::INFINITY)),
            ("gen", n(1e300)),
            ("gen", s("1")),
            ("access", s("")),
            ("access", s("has space")),
            ("access", n(1.0)),
            ("refresh", n(1.0)),
            ("refresh", s("")),
            ("expiresAt", s("soon")),
            ("issuedAt", OptValue::Null),
        ] {
            let mut m = session(1.0);
            for slot in m.iter_mut() {
                if slot.0 == key {
                    slot.1 = value.clone();
                }
            }
            assert_eq!(decode(&msg(m), "a"), Err(Reject::Malformed), "{key}");
        }
        let mut m = session(1.0);
        m.retain(|(k, _)| *k != "gen");
        assert_eq!(decode(&msg(m), "a"), Err(Reject::Malformed));
    }

    #[test]
    fn only_newer_state_is_applied() {
        let tokens = TokenSet {
            access: "a".into(),
            refresh: None,
            expires_at: None,
            issued_at: 0.0,
            id: None,
            key: None,
        };
        let sess = |gen| Message::Session {
            gen,
            tokens: tokens.clone(),
            until: None,
            skew: None,
        };
        let logout = |gen| Message::Logout {
            gen,
            reason: "local".into(),
        };
        assert_eq!(apply(&sess(5), 4, Some(&tokens)), Apply::Adopt);
        assert_eq!(apply(&sess(4), 4, Some(&tokens)), Apply::Ignore);
        assert_eq!(apply(&sess(3), 4, None), Apply::Ignore);
        assert_eq!(apply(&logout(5), 4, Some(&tokens)), Apply::EndSession);
        assert_eq!(
            apply(&logout(4), 4, Some(&tokens)),
            Apply::EndSession,
            "a race: logout wins"
        );
        assert_eq!(
            apply(&logout(3), 4, Some(&tokens)),
            Apply::Ignore,
            "from before our login"
        );
        assert_eq!(apply(&logout(5), 4, None), Apply::Advance);
        assert_eq!(apply(&logout(4), 4, None), Apply::Ignore);
        assert_eq!(
            apply(&Message::Hello { gen: 3 }, 4, Some(&tokens)),
            Apply::Answer
        );
        assert_eq!(apply(&Message::Hello { gen: 3 }, 4, None), Apply::Answer);
        assert_eq!(
            apply(&Message::Hello { gen: 4 }, 4, Some(&tokens)),
            Apply::Ignore
        );
        let backoff = |gen| Message::Backoff { gen, until: 5.0 };
        assert_eq!(apply(&backoff(4), 4, Some(&tokens)), Apply::Defer);
        assert_eq!(
            apply(&backoff(3), 4, Some(&tokens)),
            Apply::Ignore,
            "older tokens"
        );
        assert_eq!(apply(&backoff(4), 4, None), Apply::Ignore);
    }

    #[test]
    fn sizes_are_bounded_exactly() {
        let with = |key: &'static str, value: OptValue| {
            let mut m = session(1.0);
            m.retain(|(k, _)| *k != key);
            m.push((key, value));
            decode(&msg(m), "a")
        };
        let long = |n: usize| s(&"x".repeat(n));
        assert!(with("access", long(MAX_TOKEN_LEN)).is_ok(), "16 KiB fits");
        assert_eq!(
            with("access", long(MAX_TOKEN_LEN + 1)),
            Err(Reject::Malformed)
        );
        assert!(with("refresh", long(MAX_TOKEN_LEN)).is_ok());
        assert_eq!(
            with("refresh", long(MAX_TOKEN_LEN + 1)),
            Err(Reject::Malformed)
        );
        assert!(with("from", long(MAX_ID)).is_ok());
        assert_eq!(with("from", long(MAX_ID + 1)), Err(Reject::Malformed));
    }

    #[test]
    fn numbers_must_be_finite() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let m = msg(vec![
                ("v", n(1.0)),
                ("type", s("backoff")),
                ("from", s("x")),
                ("gen", n(3.0)),
                ("until", n(bad)),
            ]);
            assert_eq!(decode(&m, "a"), Err(Reject::Malformed), "{bad}");
            let mut m = session(1.0);
            m.push(("until", n(bad)));
            assert_eq!(decode(&msg(m), "a"), Err(Reject::Malformed), "{bad}");
        }
    }

    #[test]
    fn a_skew_is_believed_up_to_a_day() {
        let skew_of = |skew: f64| {
            let mut m = session(1.0);
            m.push(("skew", n(skew)));
            match decode(&msg(m), "a") {
                Ok(Envelope {
                    message: Message::Session { skew, .. },
                    ..
                }) => skew,
                other => panic!("{other:?}"),
            }
        };
        let day = crate::token::MAX_SKEW_MS;
        assert_eq!(skew_of(5_000.0), Some(5_000.0));
        assert_eq!(skew_of(-day), Some(-day));
        assert_eq!(skew_of(day), Some(day));
        assert_eq!(skew_of(day + 1.0), None, "not believed: dropped");
        assert_eq!(skew_of(-day - 1.0), None);
    }

    #[test]
    fn a_session_starts_at_its_moment() {
        assert_eq!(first_generation(1_700_000_000_123.0), 1_700_000_000_123);
        assert_eq!(first_generation(1_700_000_000_123.9), 1_700_000_000_123);
        assert_eq!(first_generation(1.0), 1);
        assert_eq!(first_generation(1e300), MAX_GEN, "never past the ring");
        // A clock that reads nothing sensible starts at 1, never at 0 (which
        // means "nothing yet") or at the ring's end.
        for odd in [0.0, 0.5, -5.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(first_generation(odd), 1, "{odd}");
        }
    }

    #[test]
    fn a_tie_is_won_by_the_later_then_the_greater_token() {
        let t = |access: &str, issued_at: f64| TokenSet {
            access: access.into(),
            refresh: None,
            expires_at: None,
            issued_at,
            id: None,
            key: None,
        };
        assert!(wins_tie(&t("a", 2.0), &t("b", 1.0)));
        assert!(!wins_tie(&t("b", 1.0), &t("a", 2.0)));
        assert!(wins_tie(&t("b", 1.0), &t("a", 1.0)));
        assert!(!wins_tie(&t("a", 1.0), &t("b", 1.0)));
        assert!(!wins_tie(&t("a", 1.0), &t("a", 1.0)), "the same: no change");
        let own = t("a", 1.0);
        let sess = |tokens| Message::Session {
            gen: 4,
            tokens,
            until: None,
            skew: None,
        };
        assert_eq!(apply(&sess(t("b", 1.0)), 4, Some(&own)), Apply::Replace);
        assert_eq!(apply(&sess(t("a", 1.0)), 4, Some(&own)), Apply::Ignore);
        assert_eq!(apply(&sess(t("b", 1.0)), 4, None), Apply::Ignore);
        assert_eq!(apply(&sess(t("b", 1.0)), 5, Some(&own)), Apply::Ignore);
    }

    #[test]
    fn debug_never_shows_tokens() {
        let e = decode(&msg(session(1.0)), "a").unwrap();
        let text = alloc::format!("{e:?}");
        assert!(!text.contains("a.b.c") && !text.contains("r1"), "{text}");
    }
}
