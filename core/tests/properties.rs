//! Property tests of the parsers that take untrusted input: whatever comes in,
//! they return a value or a typed error, never panic. (The long runs are the
//! cargo-fuzz targets in fuzz/; these are the short version run by `make test`.)
//! And one of the session's backoff state, which its code relies on.
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use tokenkeeper_core::config::Settings;
use tokenkeeper_core::protocol::{self, Message};
use tokenkeeper_core::testing::TestUrls as Urls;
use tokenkeeper_core::token::{self, RawGrant, Timing, TokenSet};
use tokenkeeper_core::value::OptValue;
use tokenkeeper_core::Error;

fn opt_value() -> impl Strategy<Value = OptValue> {
    let leaf = prop_oneof![
        Just(OptValue::Undefined),
        Just(OptValue::Null),
        any::<bool>().prop_map(OptValue::Bool),
        any::<f64>().prop_map(OptValue::Num),
        prop_oneof![
            Just(1.0),
            Just(0.0),
            Just(-1.0),
            Just(2.0),
            Just(9_007_199_254_740_991.0)
        ]
        .prop_map(OptValue::Num),
        ".{0,24}".prop_map(OptValue::Str),
        prop_oneof![
            "hello", "session", "logout", "local", "/r", "json", "form", "cookie", "x", "a.b.c"
        ]
        .prop_map(OptValue::Str),
        Just(OptValue::Other("a function")),
    ];
    let key = prop_oneof![
        "[a-zA-Z]{1,12}",
        prop_oneof![
            "v",
            "type",
            "from",
            "gen",
            "access",
            "refresh",
            "expiresAt",
            "issuedAt",
            "reason",
            "refreshUrl",
            "refreshStyle",
            "header",
            "scheme",
            "allowedOrigins",
            "fields",
            "accessToken",
            "refreshLeadSeconds",
            "channel",
            "logoutUrl",
            "renewHeader"
        ]
        .prop_map(String::from),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(OptValue::List),
            prop::collection::vec((key.clone(), inner), 0..10).prop_map(OptValue::Map),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn jwt_decoder_never_panics(s in ".{0,200}") {
        let _ = token::decode_claims(&s);
    }

    #[test]
    fn jwt_decoder_reads_any_well_formed_payload(exp in 0u64..4_000_000_000, iat in 0u64..4_000_000_000, junk in "[a-z]{0,10}") {
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = format!(r#"{{"{junk}x":[1,{{"a":null}}],"exp":{exp},"iat":{iat}}}"#);
        let t = format!("{}.{}.sig", e.encode("{}"), e.encode(payload));
        let c = token::decode_claims(&t).unwrap();
        prop_assert_eq!(c.exp, Some(exp as f64));
        prop_assert_eq!(c.iat, Some(iat as f64));
    }

    #[test]
    fn jwt_decoder_survives_arbitrary_payload_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let _ = token::decode_claims(&format!("h.{}.s", e.encode(bytes)));
    }

    #[test]
    fn token_responses_are_accepted_or_typed_errors(
        access in proptest::option::of(".{0,40}"),
        refresh in proptest::option::of(".{0,40}"),
        expires_in in proptest::option::of(any::<f64>()),
        sent in 0.0f64..4e12,
        rtt in 0.0f64..60_000.0,
        date in proptest::option::of(0.0f64..4e12),
    ) {
        let timing = Timing { sent_at: sent, received_at: sent + rtt, server_date: date, fresh: true };
        let raw = RawGrant { access_token: access.clone(), refresh_token: refresh, expires_in, id_token: None, token_type: None };
        match token::accept_grant(raw, timing, Some("old".into())) {
            Ok(t) => {
                prop_assert_eq!(Some(t.access.clone()), access);
                prop_assert!(t.refresh.is_some(), "the old refresh token is kept");
                if let Some(at) = t.expires_at { prop_assert!(at.is_finite()); }
            }
            Err(Error::InvalidTokenResponse { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn tab_messages_decode_or_are_rejected(v in opt_value()) {
        if let Ok(envelope) = protocol::decode(&v, "me") {
            prop_assert_ne!(envelope.from.as_str(), "me");
            let gen = envelope.message.gen();
            prop_assert!(gen <= 9_007_199_254_740_991);
            if let Message::Session { tokens, .. } = &envelope.message {
                prop_assert!(!tokens.access.is_empty());
            }
        }
    }

    #[test]
    fn options_parse_or_name_the_option(v in opt_value()) {
        match Settings::from_options(&v, &Urls) {
            Ok(s) => prop_assert!(s.refresh_url.starts_with("https://")),
            Err(Error::InvalidOption { option, reason }) => {
                prop_assert!(!option.is_empty());
                prop_assert!(!reason.is_empty());
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn refresh_moment_is_before_expiry(lifetime in 0.0f64..1e10, lead in 0.0f64..86_400_000.0, jitter in any::<f64>()) {
        let t = TokenSet { access: "a".into(), refresh: None, expires_at: Some(1e12 + lifetime), issued_at: 1e12, id: None, key: None };
        let at = token::refresh_at(&t, lead, jitter).unwrap();
        prop_assert!(at <= 1e12 + lifetime);
        prop_assert!(at >= 1e12 + lifetime * (2.0 / 3.0) - lifetime * 0.034);
    }
}

proptest! {
    /// A session waits (backoff, Retry-After, another tab's) only after a
    /// failure: while `failures()` is 0 nothing holds refreshing back,
    /// whatever the calls and their values (the session relies on it).
    #[test]
    fn a_session_waits_only_after_a_failure(
        ops in prop::collection::vec((0u8..6, 0.0f64..1e6, any::<f64>()), 0..40),
    ) {
        use tokenkeeper_core::session::Session;
        let t0 = 1.7e12;
        let mut s = Session::new();
        for (op, dt, x) in ops {
            let now = t0 + dt;
            match op {
                0 => {
                    let tokens = TokenSet {
                        access: "a".into(),
                        refresh: Some("r".into()),
                        expires_at: Some(now + 60_000.0),
                        issued_at: now,
                        id: None,
                        key: None,
                    };
                    s.adopt(tokens, None, 0.5);
                }
                1 => {
                    s.clear();
                }
                2 => {
                    s.transient_failure(now, Some(x), 0.5);
                }
                3 => s.defer_until(now, t0 + x),
                4 => s.network_back(now),
                _ => {
                    let _ = s.begin_refresh(now);
                }
            }
            if s.failures() == 0 {
                prop_assert_eq!(s.backing_off(0.0), None);
                let mut online = s.clone();
                online.network_back(now);
                prop_assert_eq!(online.backing_off(0.0), None);
            }
        }
    }
}
