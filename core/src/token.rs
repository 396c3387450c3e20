//! Tokens and their time: the token response, JWT claims, expiry with clock
//! skew, and when to refresh. Pure Rust, time passed in as ms since the epoch.

use crate::error::Error;
use crate::json;
use alloc::string::String;

/// The fields of a token endpoint's answer, as read from its JSON body (the
/// field names are configurable, so the shell reads them and hands them here).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawGrant {
    /// The access token field, if it was a string.
    pub access_token: Option<String>,
    /// The refresh token field, if it was a string.
    pub refresh_token: Option<String>,
    /// The `expires_in` field in seconds, if present: a number (or a numeric
    /// string), or NaN for any other value (refused, as a negative one is).
    pub expires_in: Option<f64>,
    /// The `id_token` field (OpenID Connect), if it was a string.
    pub id_token: Option<String>,
    /// The `token_type` field, if it was a string (`Bearer`, `DPoP`).
    pub token_type: Option<String>,
}

/// When a token response was obtained, as the browser and the server saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Local clock when the request was sent (ms since epoch).
    pub sent_at: f64,
    /// Local clock when the answer arrived (ms since epoch).
    pub received_at: f64,
    /// The server's clock from the response's `Date` header (ms since epoch), if any.
    pub server_date: Option<f64>,
    /// Whether a response just issued the token (a login, a refresh, a
    /// renewal header): only then may it tell the server's clock. Tokens an
    /// app restored (`setTokens`) are read in the local clock.
    pub fresh: bool,
}

/// A validated set of tokens with its expiry in the local clock.
#[derive(Clone, PartialEq)]
pub struct TokenSet {
    /// The access token.
    pub access: String,
    /// The refresh token, when the page holds one (not in cookie mode).
    pub refresh: Option<String>,
    /// When the access token expires, local clock (ms since epoch); `None`
    /// when neither `expires_in` nor a JWT `exp` says (refreshed on 401 only).
    pub expires_at: Option<f64>,
    /// When the access token was obtained, local clock (ms since epoch).
    pub issued_at: f64,
    /// The ID token of an OpenID provider's session (checked when it came).
    pub id: Option<String>,
    /// The DPoP key the tokens are bound to (its public half: the private
    /// one is the executor's), when the session has one.
    pub key: Option<crate::dpop::Key>,
}

impl core::fmt::Debug for TokenSet {
    // Tokens never reach a log, even a debug one.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access", &"<redacted>")
            .field("refresh", &self.refresh.as_ref().map(|_| "<redacted>"))
            .field("expires_at", &self.expires_at)
            .field("issued_at", &self.issued_at)
            .field("id", &self.id.as_ref().map(|_| "<redacted>"))
            .field("key", &self.key)
            .finish()
    }
}

/// Claims of a JWT access token that matter for timing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Claims {
    /// `exp`, seconds since epoch, server clock.
    pub exp: Option<f64>,
    /// `iat`, seconds since epoch, server clock.
    pub iat: Option<f64>,
}

/// Longest token we accept, 16 KiB (a guard against absurd input, not a JWT
/// rule): from a token response and from another tab alike.
pub const MAX_TOKEN_LEN: usize = 16_384;
/// Skew smaller than this is within the clocks' one-second granularity: ignored.
pub const SKEW_THRESHOLD_MS: f64 = 1500.0;
/// A clock further off than this is no clock: such an estimate is ignored.
pub const MAX_SKEW_MS: f64 = 86_400_000.0;

/// Reads `exp` and `iat` from a JWT without verifying it (the client cannot
/// verify; it only needs the timing). Anything that is not a JWT gives `None`.
pub fn decode_claims(token: &str) -> Option<Claims> {
    let bytes = jwt_payload(token)?;
    let [exp, iat] = json::object_numbers(&bytes, ["exp", "iat"])?;
    Some(Claims { exp, iat })
}

/// The decoded payload of a JWT (three dot-separated parts, at most
/// [`MAX_TOKEN_LEN`] long), not verified; `None` for anything else.
pub(crate) fn jwt_payload(token: &str) -> Option<alloc::vec::Vec<u8>> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    base64url_decode(payload.trim_end_matches('=').as_bytes())
}

/// Decodes unpadded base64url (RFC 4648 §5), strictly: any other character,
/// or a length no encoding produces, is `None`. (A few lines here instead of
/// a crate: this is the only decoding the wasm needs.)
pub(crate) fn base64url_decode(text: &[u8]) -> Option<alloc::vec::Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = alloc::vec::Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero padding, as a canonical encoder writes them.
    (acc == 0).then_some(out)
}

/// Estimates `local clock − server clock` in ms, for a token a response
/// just issued (`timing.fresh`; otherwise 0). The response's `Date` header is
/// the server's clock, and is preferred: when it agrees with the local clock
/// the skew is 0, whatever the token says. Without one (a cross-origin
/// response that does not expose it), the token's `iat`, its moment of issue.
/// Differences within the one-second resolution of both count as 0, and one
/// of more than [`MAX_SKEW_MS`] is not believed (0 too).
pub fn estimate_skew(claims: Option<Claims>, timing: Timing) -> f64 {
    if !timing.fresh {
        return 0.0;
    }
    let midpoint = (timing.sent_at + timing.received_at) / 2.0;
    let server_now = match (timing.server_date, claims.and_then(|c| c.iat)) {
        // Both have one-second resolution: the true time is within the second after.
        (Some(date), _) => date + 500.0,
        (None, Some(iat)) => iat * 1000.0 + 500.0,
        (None, None) => return 0.0,
    };
    let skew = midpoint - server_now;
    if skew.is_finite() && skew.abs() > SKEW_THRESHOLD_MS && skew.abs() <= MAX_SKEW_MS {
        skew
    } else {
        0.0
    }
}

/// Validates a token response and computes its expiry in the local clock.
///
/// `previous_refresh` is kept when the response omits a refresh token
/// (RFC 6749 §6: the server may keep the old one valid). A response without an
/// access token is an [`Error::InvalidTokenResponse`] and must leave the current
/// session untouched (the caller only replaces its tokens on `Ok`).
pub fn accept_grant(
    raw: RawGrant,
    timing: Timing,
    previous_refresh: Option<String>,
) -> Result<TokenSet, Error> {
    let access = match raw.access_token {
        Some(t) if t.is_empty() => {
            return Err(Error::InvalidTokenResponse {
                reason: "the access token is empty",
            })
        }
        Some(t) if t.len() > MAX_TOKEN_LEN => {
            return Err(Error::InvalidTokenResponse {
                reason: "the access token is too long",
            })
        }
        Some(t) => t,
        None => {
            return Err(Error::InvalidTokenResponse {
                reason: "no access token in the response",
            })
        }
    };
    if access.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
        return Err(Error::InvalidTokenResponse {
            reason: "the access token has characters a header cannot carry",
        });
    }
    let refresh = match raw.refresh_token {
        Some(r) if !r.is_empty() && r.len() <= MAX_TOKEN_LEN => Some(r),
        Some(r) if r.is_empty() => previous_refresh,
        Some(_) => {
            return Err(Error::InvalidTokenResponse {
                reason: "the refresh token is too long",
            })
        }
        None => previous_refresh,
    };
    let expires_in = match raw.expires_in {
        Some(s) if !s.is_finite() || s < 0.0 => {
            return Err(Error::InvalidTokenResponse {
                reason: "expires_in is not a non-negative number",
            })
        }
        other => other,
    };
    let id = match raw.id_token {
        Some(t) if t.len() > MAX_TOKEN_LEN => {
            return Err(Error::InvalidTokenResponse {
                reason: "the ID token is too long",
            })
        }
        other => other.filter(|t| !t.is_empty()),
    };
    let expires_at = expiry(&access, expires_in, timing);
    Ok(TokenSet {
        access,
        refresh,
        expires_at,
        issued_at: timing.sent_at,
        id,
        key: None,
    })
}

/// The access token's expiry in the local clock: the earliest of
/// `sent_at + expires_in` (counted from the send time, so it is conservative)
/// and the JWT's `exp` corrected for clock skew.
pub fn expiry(access: &str, expires_in: Option<f64>, timing: Timing) -> Option<f64> {
    let claims = decode_claims(access);
    expiry_with(claims, expires_in, timing, estimate_skew(claims, timing))
}

/// [`expiry`] with the server's clock `skew` off ours (local − server, ms).
fn expiry_with(
    claims: Option<Claims>,
    expires_in: Option<f64>,
    timing: Timing,
    skew: f64,
) -> Option<f64> {
    let from_expires_in = expires_in.map(|s| timing.sent_at + s * 1000.0);
    let from_exp = claims.and_then(|c| c.exp).map(|exp| exp * 1000.0 + skew);
    match (from_expires_in, from_exp) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b).filter(|t| t.is_finite()),
    }
}

/// The clock correction a token's expiry was computed with (local − server,
/// ms): its `expires_at` less its JWT `exp`, when it has both.
pub fn applied_skew(tokens: &TokenSet) -> Option<f64> {
    let exp = decode_claims(&tokens.access)?.exp?;
    let skew = tokens.expires_at? - exp * 1000.0;
    skew.is_finite().then_some(skew)
}

/// The expiry of fresh `tokens` (read from a response without a `Date`,
/// by its `iat`) when the server's clock was measured `skew` off before: a
/// token issued earlier than the response (a grace-window reuse hands the
/// last pair back) reads as a larger skew — the server's clock seemingly
/// behind — and as fresher than it is. A skew read more than the clocks'
/// resolution above the measured one is such a token: the measured skew
/// stays. (A smaller one is a better measurement.)
pub fn steady_expiry(
    tokens: &TokenSet,
    expires_in: Option<f64>,
    timing: Timing,
    skew: f64,
) -> Option<f64> {
    let claims = decode_claims(&tokens.access);
    let has_exp = claims.is_some_and(|c| c.exp.is_some());
    let read = estimate_skew(claims, timing);
    if has_exp && timing.server_date.is_none() && read - skew > SKEW_THRESHOLD_MS {
        expiry_with(claims, expires_in, timing, skew)
    } else {
        tokens.expires_at
    }
}

/// When to refresh ahead of expiry.
///
/// The lead is the configured one, bounded to a third of the token's
/// lifetime so a short-lived token is not refreshed continuously; `jitter` in
/// `[0, 1)` moves the moment earlier by up to a tenth of the lead so that tabs
/// and devices do not refresh in lockstep.
pub fn refresh_at(tokens: &TokenSet, lead_ms: f64, jitter: f64) -> Option<f64> {
    let expires_at = tokens.expires_at?;
    let lifetime = (expires_at - tokens.issued_at).max(0.0);
    let lead = lead_ms.min(lifetime / 3.0).max(0.0);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let jitter = jitter * lead * 0.1;
    Some(expires_at - lead - jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    use base64::Engine;

    fn jwt(payload: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            e.encode(payload)
        )
    }

    const T0: f64 = 1_700_000_000_000.0;

    fn timing(server_skew_ms: f64) -> Timing {
        Timing {
            sent_at: T0,
            received_at: T0 + 100.0,
            server_date: Some(T0 - server_skew_ms),
            fresh: true,
        }
    }

    #[test]
    fn base64url_matches_the_reference() {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        for len in 0..40 {
            let data: alloc::vec::Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64url_decode(e.encode(&data).as_bytes()), Some(data));
        }
        assert_eq!(base64url_decode(b"a"), None);
        assert_eq!(base64url_decode(b"ab+/"), None);
        assert_eq!(base64url_decode(b"ab=="), None);
        assert_eq!(base64url_decode(b"AB"), None, "non-zero leftover bits");
    }

    #[test]
    fn decodes_claims() {
        let t = jwt(r#"{"sub":"u","exp":1700000060,"iat":1700000000}"#);
        assert_eq!(
            decode_claims(&t),
            Some(Claims {
                exp: Some(1_700_000_060.0),
                iat: Some(1_700_000_000.0)
            })
        );
        assert_eq!(decode_claims("opaque-token"), None);
        assert_eq!(decode_claims("a.b"), None);
        assert_eq!(decode_claims("a.b.c.d"), None);
        assert_eq!(decode_claims("a.!!!.c"), None);
        assert_eq!(decode_claims(&jwt("not json")), None);
    }

    #[test]
    fn expiry_from_expires_in_counts_from_send() {
        let g = RawGrant {
            access_token: Some("opaque".into()),
            refresh_token: Some("r1".into()),
            expires_in: Some(30.0),
            id_token: None,
            token_type: None,
        };
        let t = accept_grant(g, timing(0.0), None).unwrap();
        assert_eq!(t.expires_at, Some(T0 + 30_000.0));
        assert_eq!(t.refresh.as_deref(), Some("r1"));
    }

    #[test]
    fn expiry_takes_the_earliest_and_corrects_skew() {
        // Server clock one hour behind the browser: exp must be moved forward.
        let hour = 3_600_000.0;
        let iat = (T0 - hour) / 1000.0;
        let access = jwt(&format!(r#"{{"exp":{},"iat":{}}}"#, iat + 60.0, iat));
        let at = expiry(&access, None, timing(hour)).unwrap();
        assert!((at - (T0 + 60_000.0)).abs() < 1000.0, "{at}");
        // expires_in shorter than exp: expires_in wins.
        let at = expiry(&access, Some(10.0), timing(hour)).unwrap();
        assert_eq!(at, T0 + 10_000.0);
        // Browser one hour behind the server.
        let iat = (T0 + hour) / 1000.0;
        let access = jwt(&format!(r#"{{"exp":{},"iat":{}}}"#, iat + 60.0, iat));
        let at = expiry(&access, None, timing(-hour)).unwrap();
        assert!((at - (T0 + 60_000.0)).abs() < 1000.0, "{at}");
    }

    #[test]
    fn skew_from_date_header_when_no_iat() {
        let hour = 3_600_000.0;
        let access = jwt(&format!(r#"{{"exp":{}}}"#, (T0 - hour) / 1000.0 + 60.0));
        let at = expiry(&access, None, timing(hour)).unwrap();
        assert!((at - (T0 + 60_000.0)).abs() < 1000.0, "{at}");
    }

    #[test]
    fn only_a_fresh_token_tells_the_servers_clock() {
        // Issued an hour ago, expired ten seconds ago, on a clock that agrees
        // with ours: restored (setTokens) or handed out again by a server
        // that keeps tokens, it is expired, not valid for another hour.
        let hour = 3_600_000.0;
        let access = jwt(&format!(
            r#"{{"iat":{},"exp":{}}}"#,
            (T0 - hour) / 1000.0,
            (T0 - 10_000.0) / 1000.0
        ));
        let restored = Timing {
            sent_at: T0,
            received_at: T0,
            server_date: None,
            fresh: false,
        };
        assert_eq!(expiry(&access, None, restored), Some(T0 - 10_000.0));
        // A response whose Date agrees with the local clock: no skew, whatever iat says.
        assert_eq!(expiry(&access, None, timing(0.0)), Some(T0 - 10_000.0));
        // Without a Date, a fresh token's iat is the server's clock…
        let no_date = Timing {
            server_date: None,
            ..timing(0.0)
        };
        let at = expiry(&access, None, no_date).unwrap_or(0.0);
        assert!((at - (T0 + hour - 10_000.0)).abs() < 1_000.0, "{at}");
        // …unless it puts the clocks more than a day apart.
        let ancient = jwt(&format!(r#"{{"iat":1000,"exp":{}}}"#, T0 / 1000.0 - 10.0));
        assert_eq!(expiry(&ancient, None, no_date), Some(T0 - 10_000.0));
        assert_eq!(estimate_skew(None, timing(MAX_SKEW_MS + 10_000.0)), 0.0);
        // Exactly: the server's clock is half a second past what it says
        // (one-second resolution), seen at the request's midpoint.
        assert_eq!(
            estimate_skew(None, timing(10_000.0)),
            50.0 + 10_000.0 - 500.0
        );
        let t = Timing {
            server_date: None,
            ..timing(0.0)
        };
        let iat = Claims {
            exp: None,
            iat: Some((T0 - 10_000.0) / 1000.0),
        };
        assert_eq!(estimate_skew(Some(iat), t), 50.0 + 10_000.0 - 500.0);
        // A skew of exactly the threshold is within the clocks' resolution.
        assert_eq!(
            estimate_skew(None, timing(SKEW_THRESHOLD_MS + 500.0 - 50.0)),
            0.0
        );
        assert_ne!(
            estimate_skew(None, timing(SKEW_THRESHOLD_MS + 501.0 - 50.0)),
            0.0
        );
        let day = estimate_skew(None, timing(MAX_SKEW_MS - 10_000.0));
        assert!((day - (MAX_SKEW_MS - 10_000.0)).abs() < 1_000.0, "{day}");
    }

    #[test]
    fn small_skew_is_ignored() {
        assert_eq!(estimate_skew(None, timing(800.0)), 0.0);
        assert_eq!(
            estimate_skew(
                None,
                Timing {
                    server_date: None,
                    ..timing(0.0)
                }
            ),
            0.0
        );
    }

    #[test]
    fn a_token_without_expiry_has_no_timer() {
        let g = RawGrant {
            access_token: Some("seed-style".into()),
            ..RawGrant::default()
        };
        let t = accept_grant(g, timing(0.0), None).unwrap();
        assert_eq!(t.expires_at, None);
        assert_eq!(refresh_at(&t, 60_000.0, 0.5), None);
    }

    #[test]
    fn missing_refresh_token_keeps_the_previous_one() {
        let g = RawGrant {
            access_token: Some("a2".into()),
            refresh_token: None,
            expires_in: Some(5.0),
            id_token: None,
            token_type: None,
        };
        let t = accept_grant(g.clone(), timing(0.0), Some("r-old".into())).unwrap();
        assert_eq!(t.refresh.as_deref(), Some("r-old"));
        // An empty one is no new refresh token either.
        let empty = RawGrant {
            refresh_token: Some(String::new()),
            ..g
        };
        let t = accept_grant(empty, timing(0.0), Some("r-old".into())).unwrap();
        assert_eq!(t.refresh.as_deref(), Some("r-old"));
    }

    #[test]
    fn base64url_refuses_lengths_no_encoder_writes() {
        for bad in ["A", "AAAAA", "AAAAAAAAA"] {
            assert_eq!(base64url_decode(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(base64url_decode(b"AA"), Some(alloc::vec![0]));
        assert_eq!(base64url_decode(b""), Some(alloc::vec![]));
    }

    #[test]
    fn malformed_grants_are_typed_errors() {
        for (g, want) in [
            (RawGrant::default(), "no access token in the response"),
            (
                RawGrant {
                    access_token: Some(String::new()),
                    ..RawGrant::default()
                },
                "the access token is empty",
            ),
            (
                RawGrant {
                    access_token: Some("a b".into()),
                    ..RawGrant::default()
                },
                "the access token has characters a header cannot carry",
            ),
            (
                RawGrant {
                    access_token: Some("a".into()),
                    expires_in: Some(-1.0),
                    ..RawGrant::default()
                },
                "expires_in is not a non-negative number",
            ),
        ] {
            assert_eq!(
                accept_grant(g, timing(0.0), None),
                Err(Error::InvalidTokenResponse { reason: want })
            );
        }
    }

    #[test]
    fn tokens_up_to_16_kib_are_taken() {
        let grant = |access: usize, refresh: usize| RawGrant {
            access_token: Some("a".repeat(access)),
            refresh_token: Some("r".repeat(refresh)),
            expires_in: Some(60.0),
            id_token: None,
            token_type: None,
        };
        assert!(accept_grant(grant(MAX_TOKEN_LEN, MAX_TOKEN_LEN), timing(0.0), None).is_ok());
        assert_eq!(
            accept_grant(grant(MAX_TOKEN_LEN + 1, 1), timing(0.0), None),
            Err(Error::InvalidTokenResponse {
                reason: "the access token is too long"
            })
        );
        assert_eq!(
            accept_grant(grant(1, MAX_TOKEN_LEN + 1), timing(0.0), None),
            Err(Error::InvalidTokenResponse {
                reason: "the refresh token is too long"
            })
        );
        assert_eq!(MAX_TOKEN_LEN, 16 * 1024);
        // An ID token too: exactly the bound is taken, one byte more refused;
        // an empty one is none.
        let with_id = |n: usize| RawGrant {
            id_token: Some("i".repeat(n)),
            ..grant(1, 1)
        };
        let ok = accept_grant(with_id(MAX_TOKEN_LEN), timing(0.0), None).unwrap();
        assert_eq!(ok.id.map(|i| i.len()), Some(MAX_TOKEN_LEN));
        assert_eq!(
            accept_grant(with_id(MAX_TOKEN_LEN + 1), timing(0.0), None),
            Err(Error::InvalidTokenResponse {
                reason: "the ID token is too long"
            })
        );
        assert_eq!(
            accept_grant(with_id(0), timing(0.0), None).unwrap().id,
            None
        );
        // A JWT that long is still read; a longer one is not.
        let payload = r#"{"exp":1700000060}"#;
        let short = jwt(payload);
        let pad = MAX_TOKEN_LEN - short.len();
        let long = alloc::format!("{short}{}", "A".repeat(pad));
        assert_eq!(long.len(), MAX_TOKEN_LEN);
        assert!(
            decode_claims(&long).is_some(),
            "a signature padded to 16 KiB"
        );
        let longer = alloc::format!("{long}A");
        assert_eq!(decode_claims(&longer), None);
    }

    #[test]
    fn lead_is_bounded_by_lifetime_and_jitter_is_bounded() {
        let t = TokenSet {
            access: "a".into(),
            refresh: None,
            expires_at: Some(T0 + 3_000.0),
            issued_at: T0,
            id: None,
            key: None,
        };
        // 60 s lead on a 3 s token: bounded to a third of the lifetime.
        assert_eq!(refresh_at(&t, 60_000.0, 0.0), Some(T0 + 2_000.0));
        let earliest = refresh_at(&t, 60_000.0, 0.999_999).unwrap();
        assert!(earliest > T0 + 1_899.0 && earliest <= T0 + 2_000.0);
        let t = TokenSet {
            expires_at: Some(T0 + 3_600_000.0),
            ..t
        };
        assert_eq!(refresh_at(&t, 60_000.0, 0.0), Some(T0 + 3_540_000.0));
        for j in [-5.0, 0.0, 0.3, 1.0, 7.0, f64::NAN] {
            let at = refresh_at(&t, 60_000.0, j).unwrap();
            assert!(
                (T0 + 3_534_000.0..=T0 + 3_540_000.0).contains(&at),
                "{j} {at}"
            );
        }
    }

    #[test]
    fn debug_output_never_shows_tokens() {
        let t = TokenSet {
            access: "secret-access".into(),
            refresh: Some("secret-refresh".into()),
            expires_at: None,
            issued_at: 0.0,
            id: None,
            key: None,
        };
        let s = format!("{t:?}");
        assert!(!s.contains("secret"));
    }

    #[test]
    fn a_token_issued_before_its_response_keeps_the_measured_skew() {
        // The server's clock is 10 s behind ours (measured before); a
        // grace-window reuse hands back a token issued 6 s before this
        // response, which has no Date: by its iat the clock seems 16 s off.
        let now = T0 + 100_000.0;
        let skew = 10_000.0;
        let iat = (now - skew - 6_000.0) / 1000.0;
        let access = jwt(&format!(r#"{{"exp":{},"iat":{}}}"#, iat + 30.0, iat));
        let timing = Timing {
            sent_at: now - 50.0,
            received_at: now,
            server_date: None,
            fresh: true,
        };
        let g = RawGrant {
            access_token: Some(access.clone()),
            refresh_token: None,
            expires_in: None,
            id_token: None,
            token_type: None,
        };
        let read = accept_grant(g, timing, None).unwrap();
        // Read alone, it lives its full 30 s from now: 6 s too long.
        assert!((read.expires_at.unwrap() - (now + 30_000.0)).abs() < 1_000.0);
        let steady = steady_expiry(&read, None, timing, skew).unwrap();
        assert_eq!(steady, (iat + 30.0) * 1000.0 + skew);
        assert_eq!(
            applied_skew(&TokenSet {
                expires_at: Some(steady),
                ..read.clone()
            }),
            Some(skew)
        );
        // A skew read close to the measured one (or smaller) is the measurement.
        assert_eq!(
            steady_expiry(&read, None, timing, skew + 5_000.0),
            read.expires_at
        );
        assert_eq!(
            steady_expiry(&read, None, timing, 30_000.0),
            read.expires_at
        );
        // The edge: read − measured = SKEW_THRESHOLD_MS is still the clocks'
        // resolution; a millisecond more is an older token.
        let read_skew = estimate_skew(decode_claims(&access), timing);
        assert_eq!(read_skew, 15_475.0);
        let edge = read_skew - SKEW_THRESHOLD_MS;
        assert_eq!(steady_expiry(&read, None, timing, edge), read.expires_at);
        assert_eq!(
            steady_expiry(&read, None, timing, edge - 1.0),
            Some((iat + 30.0) * 1000.0 + edge - 1.0)
        );
        // With a Date header the response's clock is read, not the token's.
        let dated = Timing {
            server_date: Some(now - skew),
            ..timing
        };
        assert_eq!(steady_expiry(&read, None, dated, skew), read.expires_at);
        // And expires_in, when shorter, still wins.
        let short = steady_expiry(&read, Some(5.0), timing, skew).unwrap();
        assert_eq!(short, timing.sent_at + 5_000.0);
    }
}
