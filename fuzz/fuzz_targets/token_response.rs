#![no_main]
//! The token-response parser: any fields give tokens or a typed
//! InvalidTokenResponse, never a panic or a non-finite expiry.
use libfuzzer_sys::fuzz_target;
use tokenkeeper_core::token::{accept_grant, RawGrant, Timing};

fuzz_target!(|input: (Option<String>, Option<String>, Option<f64>, f64, f64, Option<f64>)| {
    let (access, refresh, expires_in, sent, rtt, date) = input;
    let raw = RawGrant { access_token: access, refresh_token: refresh, expires_in };
    let timing = Timing { sent_at: sent, received_at: sent + rtt, server_date: date, fresh: true };
    match accept_grant(raw, timing, Some("previous".into())) {
        Ok(t) => {
            assert!(!t.access.is_empty());
            assert!(t.refresh.is_some());
        }
        Err(tokenkeeper_core::Error::InvalidTokenResponse { .. }) => {}
        Err(e) => panic!("unexpected error {e:?}"),
    }
});
