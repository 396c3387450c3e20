//! The keeper's policy, natively, in simulated time: tabs, the channel, the
//! lock and a token server with rotation and reuse detection (tests/sim).

mod sim;

use sim::*;
use tokenkeeper_core::keeper::{
    CallId, Command, Env, Event, ExpiredReason, Keeper, LogoutReason, PageEvent, Reply, Source,
    SyncKind, TokenAnswer, ASK_WAIT_MS, HOLD_AFTER_BROADCAST_MS, LATE_TIMER_MS,
};
use tokenkeeper_core::protocol::Message;
use tokenkeeper_core::token::{RawGrant, Timing};
use tokenkeeper_core::value::OptValue;
use tokenkeeper_core::Error;

fn world(tabs: usize, ttl_s: f64) -> World {
    let mut w = World::new(settings(&[]), ttl_s);
    for _ in 0..tabs {
        w.open_tab();
    }
    w
}

/// Every tab learns the session: the first logs in, the others join.
fn logged_in(tabs: usize, ttl_s: f64) -> World {
    let mut w = world(tabs, ttl_s);
    w.login(0);
    w.run_for(50.0);
    for t in 0..tabs {
        assert!(w.tabs[t].authenticated(), "tab {t} has the session");
    }
    w
}

/// One tab whose 2 s token expired while it slept: no timer refreshed it.
fn expired_while_asleep() -> World {
    let mut w = logged_in(1, 2.0);
    w.tabs[0].frozen = true;
    w.run_for(2_500.0);
    w.tabs[0].frozen = false;
    w
}

#[test]
fn refreshes_ahead_of_expiry_over_many_lifetimes() {
    let mut w = logged_in(1, 60.0);
    // Ten minutes of calls, one a second: none ever sees a 401.
    for _ in 0..600 {
        assert_eq!(w.api_call(0, 5_000.0), Ok(200));
        w.run_for(1_000.0);
    }
    // A 60 s token is refreshed 20 s ahead (a third of its lifetime, the lead
    // bounded), so about every 40 s: 15 in ten minutes, give or take jitter.
    let refreshes = w.server.refresh_requests;
    assert!((14..=17).contains(&refreshes), "{refreshes} refreshes");
    let timer = w.tabs[0]
        .events_of("refresh")
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Refresh {
                    source: Source::Timer,
                    ..
                }
            )
        })
        .count();
    assert_eq!(timer as u32, refreshes, "every refresh ahead, by the timer");
}

#[test]
fn four_tabs_make_one_refresh_per_rotation() {
    let mut w = logged_in(4, 30.0);
    let mut calls = 0;
    for round in 0..400 {
        let tab = round % 4;
        assert_eq!(w.api_call(tab, 5_000.0), Ok(200), "round {round}");
        calls += 1;
        w.run_for(750.0);
    }
    assert_eq!(w.server.reuse_detected, 0);
    // 300 s of 30 s tokens refreshed 10 s ahead: one every ~20 s in all tabs together.
    let r = w.server.refresh_requests;
    assert!((14..=17).contains(&r), "{r} refreshes for {calls} calls");
    // After quiescence every tab holds the same tokens.
    w.run_for(100.0);
    let gens: Vec<u64> = w
        .tabs
        .iter()
        .map(|t| t.keeper.session().generation())
        .collect();
    assert!(gens.windows(2).all(|g| g[0] == g[1]), "{gens:?}");
}

#[test]
fn tabs_without_web_locks_wait_for_a_rotation_already_under_way() {
    // Without Web Locks a tab pauses (a random spread, then the contended
    // wait) and re-checks: a refresh that another tab started a moment
    // before is joined through its broadcast, not repeated. (Timers that
    // fire within that pause of each other can still both refresh: best
    // effort, as the README's cross-tab section says.)
    let mut w = World::new(settings(&[]), 300.0);
    w.locks = false;
    for _ in 0..3 {
        w.open_tab();
    }
    w.login(0);
    w.run_for(50.0);
    let first = w.call(0, |k, now, id| k.refresh(now, id));
    w.run_for(120.0);
    let others: Vec<_> = (1..3)
        .map(|t| (t, w.call(t, |k, now, id| k.refresh(now, id))))
        .collect();
    assert_eq!(w.wait(0, first, 1_000.0), Some(Reply::Done));
    for (t, call) in others {
        assert_eq!(w.wait(t, call, 1_000.0), Some(Reply::Done), "tab {t}");
    }
    assert_eq!(w.server.refresh_requests, 1);
    assert_eq!(w.server.reuse_detected, 0);
}

#[test]
fn a_401_refreshes_once_and_replays() {
    let mut w = logged_in(2, 300.0);
    let access = w.tabs[0]
        .keeper
        .session()
        .tokens()
        .map(|t| t.access.clone());
    w.server.revoke_access(&access.unwrap_or_default());
    let before = w.server.refresh_requests;
    assert_eq!(w.api_call(0, 5_000.0), Ok(200));
    assert_eq!(w.server.refresh_requests, before + 1);
    // The other tab got the new tokens without a request of its own.
    w.run_for(50.0);
    assert_eq!(w.api_call(1, 5_000.0), Ok(200));
    assert_eq!(w.server.refresh_requests, before + 1);
}

#[test]
fn a_401_on_a_replaced_token_replays_without_refreshing() {
    let mut w = logged_in(1, 300.0);
    let url = format!("{ORIGIN}/api/me");
    let call = w.call(0, |k, now, id| k.fetch(now, id, &url, "cors", "GET"));
    let Some(Reply::Token { generation, .. }) = w.reply(0, call) else {
        panic!("no token")
    };
    let refresh = w.call(0, |k, now, id| k.refresh(now, id));
    assert_eq!(w.wait(0, refresh, 1_000.0), Some(Reply::Done));
    let before = w.server.refresh_requests;
    let a401 = answered(generation, 401, w.now, &url);
    let call = w.call(0, |k, now, id| k.response(now, id, a401));
    assert!(matches!(w.reply(0, call), Some(Reply::Replay { .. })));
    assert_eq!(w.server.refresh_requests, before);
}

#[test]
fn a_waiting_caller_sees_transient_failures_retried() {
    let mut w = logged_in(1, 300.0);
    w.server
        .faults
        .extend([Fault::Status(503, None, None), Fault::Drop]);
    let call = w.call(0, |k, now, id| k.refresh(now, id));
    let reply = w.wait(0, call, 20_000.0);
    assert_eq!(reply, Some(Reply::Done));
    assert_eq!(w.server.refresh_requests, 3);
    let errors = w.tabs[0].events_of("refresh-error");
    assert!(errors.len() >= 2, "{errors:?}");
    assert!(errors
        .iter()
        .all(|e| matches!(e, Event::RefreshError { retrying: true, .. })));
}

#[test]
fn a_refused_refresh_ends_the_session_in_every_tab() {
    let mut w = logged_in(3, 300.0);
    w.server.revoked = true;
    let call = w.call(1, |k, now, id| k.refresh(now, id));
    let reply = w.wait(1, call, 5_000.0);
    assert!(
        matches!(
            reply,
            Some(Reply::Failed(Error::SessionEnded { status: 400, .. }))
        ),
        "{reply:?}"
    );
    w.run_for(100.0);
    for (i, tab) in w.tabs.iter().enumerate() {
        assert!(!tab.authenticated(), "tab {i} logged out");
        let want = if i == 1 {
            LogoutReason::RefreshFailed
        } else {
            LogoutReason::Remote
        };
        assert_eq!(
            tab.events_of("logout"),
            vec![&Event::Logout { reason: want }],
            "tab {i}"
        );
    }
    // It asked the other tabs before giving up: one request, no second try.
    assert_eq!(w.server.refresh_requests, 1);
}

/// A `fetch()` whose token must be refreshed first, when the refresh token
/// is refused: the session ends and the request goes without a token (the
/// server's 401 then reaches the app, as an HTTP client reports an auth
/// error), not as an error that reads like a network failure. A
/// `getAccessToken()` in the same spot, with no request to send, fails.
#[test]
fn a_fetch_whose_refresh_ends_the_session_goes_without_the_token() {
    let mut w = expired_while_asleep();
    assert!(w.tabs[0].keeper.session().is_expired(w.now));
    w.server.revoked = true;
    let url = format!("{ORIGIN}/api/me");
    let fetch = w.call(0, |k, now, id| k.fetch(now, id, &url, "cors", "GET"));
    let token = w.call(0, |k, now, id| k.need_token(now, id));
    assert_eq!(w.wait(0, fetch, 5_000.0), Some(Reply::Passthrough));
    assert!(
        matches!(
            w.reply(0, token),
            Some(Reply::Failed(Error::SessionEnded { .. }))
        ),
        "getAccessToken has nothing to send: it fails"
    );
    assert!(!w.tabs[0].authenticated());
    assert_eq!(w.server.refresh_requests, 1, "one refresh for both");
}

/// A `fetch()` waiting for its token when the keeper is freed fails with
/// `freed`: it is not sent without the token.
#[test]
fn a_fetch_waiting_when_the_keeper_is_freed_fails() {
    let mut w = expired_while_asleep();
    w.server.faults.push_back(Fault::Drop);
    let url = format!("{ORIGIN}/api/me");
    let fetch = w.call(0, |k, now, id| k.fetch(now, id, &url, "cors", "GET"));
    w.run_for(5.0);
    w.close_tab(0);
    assert_eq!(w.reply(0, fetch), Some(Reply::Failed(Error::Freed)));
}

/// A refresh that fails for now keeps the session: the waiting `fetch()`
/// fails (a network failure, as fetch's own are), it is not sent without
/// the token.
#[test]
fn a_fetch_whose_refresh_fails_for_now_fails() {
    let mut w = expired_while_asleep();
    w.server
        .faults
        .extend([Fault::Drop, Fault::Drop, Fault::Drop]);
    let url = format!("{ORIGIN}/api/me");
    let fetch = w.call(0, |k, now, id| k.fetch(now, id, &url, "cors", "GET"));
    let reply = w.wait(0, fetch, 60_000.0);
    assert!(
        matches!(reply, Some(Reply::Failed(Error::RefreshUnavailable { .. }))),
        "{reply:?}"
    );
    assert!(w.tabs[0].authenticated(), "the session is kept");
}

/// After a 401, a refresh that fails for now (the network, not the server's
/// verdict): the call fails as fetch does on a network failure, and the
/// session is kept; once the refresh token is refused instead, the app
/// gets the 401 and `expired` says why.
#[test]
fn a_401_whose_refresh_fails_for_now_fails_and_one_refused_returns_the_401() {
    let mut w = logged_in(1, 300.0);
    let access = w.tabs[0]
        .keeper
        .session()
        .tokens()
        .map(|t| t.access.clone());
    w.server.revoke_access(&access.unwrap_or_default());
    w.server
        .faults
        .extend([Fault::Drop, Fault::Drop, Fault::Drop]);
    let reply = w.api_call(0, 60_000.0);
    assert!(
        matches!(reply, Err(Reply::Failed(Error::RefreshUnavailable { .. }))),
        "{reply:?}"
    );
    assert!(w.tabs[0].authenticated(), "the session is kept");
    assert!(w.tabs[0].events_of("expired").is_empty());
    w.server.revoked = true;
    assert_eq!(w.api_call(0, 60_000.0), Ok(401), "the server's own answer");
    assert!(!w.tabs[0].authenticated());
    assert!(matches!(
        w.tabs[0].events_of("expired")[..],
        [Event::Expired {
            reason: ExpiredReason::RefreshFailed,
            ..
        }]
    ));
}

#[test]
fn a_refusal_after_another_tab_rotated_is_not_a_logout() {
    // Tab 1 holds the tokens of generation 1 but missed tab 0's rotation
    // (its message is still on the way when it refreshes).
    let mut w = logged_in(2, 300.0);
    // (Slower than the lock's hold, the contended wait and the question
    // together: tab 1 gives up before the message lands.)
    w.bus_delay_ms = 700.0;
    let r0 = w.call(0, |k, now, id| k.refresh(now, id));
    assert_eq!(w.wait(0, r0, 200.0), Some(Reply::Done));
    let r1 = w.call(1, |k, now, id| k.refresh(now, id));
    w.wait(1, r1, 2_000.0);
    w.run_for(1_000.0);
    // The refused refresh (reuse!) revokes the family: the model server
    // logs both out, and both tabs end cleanly — no tab keeps a dead session.
    for tab in &w.tabs {
        assert!(!tab.authenticated());
    }
    // With a lock and a prompt channel this cannot happen: see
    // four_tabs_make_one_refresh_per_rotation.
}

#[test]
fn retry_after_holds_for_every_tab() {
    let mut w = logged_in(2, 300.0);
    w.server
        .faults
        .push_back(Fault::Status(429, None, Some(40.0)));
    let call = w.call(0, |k, now, id| k.refresh(now, id));
    let reply = w.wait(0, call, 1_000.0);
    assert!(
        matches!(
            reply,
            Some(Reply::Failed(Error::RefreshUnavailable { status: 429, .. }))
        ),
        "{reply:?}"
    );
    w.run_for(50.0);
    // Tab 1 was told to wait too: its refresh() is throttled, not sent.
    let before = w.server.refresh_requests;
    let call = w.call(1, |k, now, id| k.refresh(now, id));
    let reply = w.wait(1, call, 1_000.0);
    assert!(
        matches!(reply, Some(Reply::Failed(Error::RefreshThrottled { .. }))),
        "{reply:?}"
    );
    assert_eq!(w.server.refresh_requests, before);
}

#[test]
fn a_new_tab_joins_with_no_request() {
    let mut w = logged_in(1, 300.0);
    let requests = w.server.refresh_requests;
    let tab = w.open_tab();
    let call = w.call(tab, |k, now, id| k.ready(now, id));
    assert_eq!(w.wait(tab, call, 1_000.0), Some(Reply::Ready(true)));
    assert_eq!(w.server.refresh_requests, requests);
    // It answered as soon as the session arrived, not after the whole wait.
    assert!(w.now < T0 + 50.0 + 100.0, "{}", w.now - T0);
    // A tab with a session answers at once, without asking.
    let call = w.call(0, |k, now, id| k.ready(now, id));
    assert_eq!(w.reply(0, call), Some(Reply::Ready(true)));
    // A tab alone waits its bounded moment and says false.
    let mut alone = world(1, 300.0);
    let call = alone.call(0, |k, now, id| k.ready(now, id));
    assert_eq!(alone.wait(0, call, 1_000.0), Some(Reply::Ready(false)));
}

#[test]
fn a_cookie_tab_joins_with_its_cookie_when_no_tab_answers() {
    let s = settings(&[("refreshStyle", OptValue::Str("cookie".into()))]);
    let mut w = World::new(s, 300.0);
    w.open_tab();
    let call = w.call(0, |k, now, id| k.ready(now, id));
    // The model server holds no cookie session for it: refused quietly.
    assert_eq!(w.wait(0, call, 1_000.0), Some(Reply::Ready(false)));
    assert_eq!(w.server.refresh_requests, 1);
    assert!(w.tabs[0].events_of("logout").is_empty());
    assert!(w.tabs[0].events_of("refresh-error").is_empty());
}

#[test]
fn logout_reaches_every_tab_and_names_the_endpoint() {
    let s = settings(&[("logoutUrl", OptValue::Str("/logout".into()))]);
    let mut w = World::new(s, 300.0);
    for _ in 0..3 {
        w.open_tab();
    }
    w.login(0);
    w.run_for(50.0);
    let notice = w.logout(2).expect("the logout endpoint is told");
    assert_eq!(notice.url, format!("{ORIGIN}/logout"));
    assert!(notice.access.is_some() && notice.refresh.is_some());
    w.run_for(50.0);
    assert!(w.tabs.iter().all(|t| !t.authenticated()));
    // A fetch now goes out without a token.
    let url = format!("{ORIGIN}/api/me");
    let call = w.call(0, |k, now, id| k.fetch(now, id, &url, "cors", "GET"));
    assert_eq!(w.reply(0, call), Some(Reply::Passthrough));
}

#[test]
fn a_stream_of_expired_tokens_trips_the_brake_without_spinning() {
    let mut w = logged_in(1, 0.0);
    // Every refresh answers with a token that is expired on arrival: the
    // timer must not loop; the brake holds refreshes to a handful a window.
    let mut steps = 0;
    let until = w.now + 60_000.0;
    while w.step(until) {
        steps += 1;
        assert!(steps < 10_000, "the keeper spins");
    }
    let r = w.server.refresh_requests;
    assert!(r <= 6 * 7, "{r} refreshes in a minute");
    // …and after each pause the timer goes on: braked, not stopped.
    assert!(r >= 6 * 5, "{r} refreshes in a minute");
}

#[test]
fn a_response_for_another_origin_or_no_session_passes_through() {
    let mut w = logged_in(1, 300.0);
    let call = w.call(0, |k, now, id| {
        k.fetch(now, id, "https://other.example/api", "cors", "GET")
    });
    assert_eq!(w.reply(0, call), Some(Reply::Passthrough));
    let call = w.call(0, |k, now, id| {
        k.fetch(now, id, "https://app.example.evil/api", "cors", "GET")
    });
    assert_eq!(w.reply(0, call), Some(Reply::Passthrough));
}

#[test]
fn a_request_that_cannot_carry_the_token_costs_no_refresh() {
    let mut w = logged_in(1, 300.0);
    let url = format!("{ORIGIN}/api/me");
    let call = w.call(0, |k, now, id| k.fetch(now, id, &url, "no-cors", "GET"));
    assert_eq!(w.reply(0, call), Some(Reply::Passthrough));
    for mode in ["cors", "same-origin", "navigate"] {
        let call = w.call(0, |k, now, id| k.fetch(now, id, &url, mode, "GET"));
        assert!(
            matches!(w.reply(0, call), Some(Reply::Token { .. })),
            "{mode}"
        );
    }
    assert_eq!(w.server.refresh_requests, 0);
}

#[test]
fn a_restored_token_past_its_exp_is_expired_whatever_its_iat() {
    use base64::Engine;
    // Issued an hour ago, expired ten seconds ago; no expires_in.
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = format!(
        r#"{{"iat":{},"exp":{}}}"#,
        (T0 - 3_600_000.0) / 1000.0,
        (T0 - 10_000.0) / 1000.0
    );
    let access = format!("{}.{}.sig", e.encode(r#"{"alg":"none"}"#), e.encode(claims));
    let mut w = world(1, 300.0);
    let grant = tokenkeeper_core::token::RawGrant {
        access_token: Some(access),
        refresh_token: None,
        expires_in: None,
        id_token: None,
        token_type: None,
    };
    let now = w.now;
    assert_eq!(w.tabs[0].keeper.set_tokens(now, grant), Ok(()));
    assert_eq!(w.tabs[0].keeper.session().expires_at(), Some(T0 - 10_000.0));
    let call = w.call(0, |k, now, id| k.need_token(now, id));
    let reply = w.wait(0, call, 5_000.0);
    assert!(
        !matches!(reply, Some(Reply::Token { .. })),
        "the expired token was handed out"
    );
}

#[test]
fn a_final_401_is_handed_back_with_its_reason() {
    let mut w = logged_in(1, 300.0);
    let url = format!("{ORIGIN}/api/me");
    let replayed = tokenkeeper_core::keeper::Answered {
        replayed: true,
        ..answered(1, 401, T0, &url)
    };
    let call = w.call(0, |k, now, id| k.response(now, id, replayed));
    assert_eq!(w.reply(0, call), Some(Reply::Return));
    assert_eq!(
        w.tabs[0].events_of("expired"),
        vec![&Event::Expired {
            reason: ExpiredReason::RejectedAfterRefresh,
            url: url.clone()
        }]
    );
}

#[test]
fn a_renewed_token_in_a_response_header_is_adopted() {
    let s = settings(&[("renewHeader", OptValue::Str("x-renewed".into()))]);
    let mut w = World::new(s, 300.0);
    w.open_tab();
    w.login(0);
    let url = format!("{ORIGIN}/api/me");
    let renewed = tokenkeeper_core::keeper::Answered {
        renewed: Some("renewed-token".into()),
        ..answered(1, 200, w.now, &url)
    };
    let call = w.call(0, |k, now, id| k.response(now, id, renewed));
    assert_eq!(w.reply(0, call), Some(Reply::Return));
    let tokens = w.tabs[0]
        .keeper
        .session()
        .tokens()
        .cloned()
        .expect("tokens");
    assert_eq!(tokens.access, "renewed-token");
    assert_eq!(
        tokens.refresh.as_deref(),
        Some("rt-1"),
        "the refresh token is kept"
    );
    assert!(matches!(
        w.tabs[0].events_of("refresh")[..],
        [Event::Refresh {
            source: Source::RenewHeader,
            ..
        }]
    ));
}

#[test]
fn a_closed_tab_holding_the_lock_does_not_block_the_others() {
    let mut w = logged_in(2, 300.0);
    w.server.faults.push_back(Fault::LostAfterRotate);
    // Tab 0's refresh is lost after the server rotated; it closes mid-flight.
    let r0 = w.call(0, |k, now, id| k.refresh(now, id));
    w.run_for(5.0);
    w.close_tab(0);
    assert!(matches!(w.reply(0, r0), Some(Reply::Failed(Error::Freed))));
    // Tab 1 gets the lock, and its refresh is refused (the token rotated
    // on a lost answer; no grace here): the session ends cleanly.
    let r1 = w.call(1, |k, now, id| k.refresh(now, id));
    let reply = w.wait(1, r1, 5_000.0);
    assert!(
        matches!(reply, Some(Reply::Failed(Error::SessionEnded { .. }))),
        "{reply:?}"
    );
    assert!(!w.tabs[1].authenticated());
}

/// The quoted names of the union that `member:` has in `interface`, as the
/// shell's TypeScript declarations write it.
fn declared(interface: &str, member: &str) -> Vec<String> {
    let ts = include_str!("../../src/typescript.rs");
    let start = ts
        .find(&format!("interface {interface} "))
        .unwrap_or_else(|| panic!("interface {interface}"));
    let body = &ts[start..];
    let line = body
        .lines()
        .find(|l| {
            l.trim_start().starts_with(&format!("{member}:"))
                || l.trim_start().starts_with(&format!("\"{member}\""))
        })
        .unwrap_or_else(|| panic!("{interface}.{member}"));
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

#[test]
fn names_are_the_ones_the_typescript_types_declare() {
    use tokenkeeper_core::keeper::{EventKind, SyncKind};
    let kinds: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "refresh",
            "refresh-error",
            "expired",
            "logout",
            "change",
            "sync"
        ]
    );
    for k in EventKind::ALL {
        assert_eq!(EventKind::parse(k.as_str()), Some(k));
    }
    assert_eq!(EventKind::parse("Refresh"), None);
    assert_eq!(EventKind::parse(""), None);
    let ts = include_str!("../../src/typescript.rs");
    for k in EventKind::ALL {
        assert!(
            ts.contains(&format!("  \"{}\": ", k.as_str())),
            "{} in TokenKeeperEventMap",
            k.as_str()
        );
    }
    let sources = [
        Source::Timer,
        Source::Read,
        Source::OnDemand,
        Source::Join,
        Source::Tab,
        Source::RenewHeader,
        Source::Login,
        Source::SetTokens,
    ];
    let names: Vec<&str> = sources.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "timer",
            "read",
            "on-demand",
            "join",
            "tab",
            "renew-header",
            "login",
            "set-tokens"
        ]
    );
    // A login and setTokens raise `change`, not `refresh`: the others are
    // what RefreshDetail.source declares.
    let mut refreshing: Vec<String> = names[..6].iter().map(|s| s.to_string()).collect();
    let mut want = declared("RefreshDetail", "source");
    refreshing.sort();
    want.sort();
    assert_eq!(refreshing, want);
    let reasons = [
        LogoutReason::Local,
        LogoutReason::RefreshFailed,
        LogoutReason::Remote,
        LogoutReason::Expired,
    ];
    let names: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
    assert_eq!(names, ["local", "refresh-failed", "remote", "expired"]);
    assert_eq!(declared("LogoutDetail", "reason"), names);
    let reasons = [
        ExpiredReason::NoSession,
        ExpiredReason::RefreshFailed,
        ExpiredReason::RejectedAfterRefresh,
    ];
    let names: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        names,
        ["no-session", "refresh-failed", "rejected-after-refresh"]
    );
    assert_eq!(declared("ExpiredDetail", "reason"), names);
    let kinds = [
        SyncKind::Adopted,
        SyncKind::Logout,
        SyncKind::Backoff,
        SyncKind::Advanced,
        SyncKind::Answered,
    ];
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        ["adopted", "logout", "backoff", "advanced", "answered"]
    );
    assert_eq!(declared("SyncDetail", "type"), names);
}

#[test]
fn every_tab_has_its_own_id() {
    let w = world(3, 300.0);
    let ids: Vec<&str> = w.tabs.iter().map(|t| t.keeper.tab_id()).collect();
    for id in &ids {
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
}

#[test]
fn wakeups_when_nothing_is_due_change_nothing() {
    // The same scenarios, with every tab's timer firing at every step of
    // the world: a wake-up decides from the clock, not from being called.
    SPURIOUS_WAKEUPS.with(|s| s.set(true));
    refreshes_ahead_of_expiry_over_many_lifetimes();
    four_tabs_make_one_refresh_per_rotation();
    tabs_without_web_locks_wait_for_a_rotation_already_under_way();
    a_waiting_caller_sees_transient_failures_retried();
    a_refused_refresh_ends_the_session_in_every_tab();
    retry_after_holds_for_every_tab();
    a_new_tab_joins_with_no_request();
    a_cookie_tab_joins_with_its_cookie_when_no_tab_answers();
    a_closed_tab_holding_the_lock_does_not_block_the_others();
    SPURIOUS_WAKEUPS.with(|s| s.set(false));
}

#[test]
fn a_tab_back_from_the_bfcache_catches_up() {
    let mut w = logged_in(2, 30.0);
    w.tabs[1].frozen = true;
    // Two rotations and a logout in tab 0 while tab 1 is frozen; then a new login.
    for _ in 0..2 {
        let r = w.call(0, |k, now, id| k.refresh(now, id));
        assert_eq!(w.wait(0, r, 1_000.0), Some(Reply::Done));
    }
    w.run_for(20.0); // what was posted meanwhile is lost
    let gen = w.tabs[0].keeper.session().generation();
    assert!(w.tabs[1].keeper.session().generation() < gen);
    // Hidden, it does not ask.
    w.tabs[1].frozen = false;
    let now = w.now;
    w.tabs[1]
        .keeper
        .handle_page(now, PageEvent::PageShow, false);
    w.drain(1);
    w.run_for(50.0);
    assert!(w.tabs[1].keeper.session().generation() < gen);
    // Shown, it asks and adopts the newer tokens, with no request.
    let requests = w.server.refresh_requests;
    let now = w.now;
    w.tabs[1].keeper.handle_page(now, PageEvent::PageShow, true);
    w.drain(1);
    w.run_for(50.0);
    assert_eq!(w.tabs[1].keeper.session().generation(), gen);
    assert_eq!(w.server.refresh_requests, requests);
    assert_eq!(w.api_call(1, 1_000.0), Ok(200));
    // Its token was due while it slept: shown again, it refreshes ahead at once.
    w.tabs[1].frozen = true;
    w.run_for(25_000.0);
    let requests = w.server.refresh_requests;
    w.tabs[1].frozen = false;
    let now = w.now;
    w.tabs[1]
        .keeper
        .handle_page(now, PageEvent::Visibility, true);
    w.drain(1);
    w.run_for(100.0);
    assert!(w.server.refresh_requests <= requests + 1);
    assert!(!w.tabs[1].keeper.session().is_expired(w.now));
}

#[test]
fn back_online_a_backed_off_refresh_is_tried_at_once() {
    let mut w = logged_in(1, 30.0);
    // The timer's refresh ahead of expiry finds no network, twice: the
    // backoff grows.
    w.server.faults.push_back(Fault::Drop);
    w.server.faults.push_back(Fault::Drop);
    w.run_until(T0 + 20_000.0);
    // Until the second failure's answer is in and a retry planned.
    while w.server.refresh_requests < 2 || w.tabs[0].keeper.session().failures() < 2 {
        assert!(w.step(T0 + 30_000.0));
    }
    let next = w.tabs[0].keeper.refresh_at().expect("a retry is planned");
    assert!(next > w.now + 500.0, "it backs off");
    // Coming back online lifts the wait: the retry is due now.
    let now = w.now;
    w.tabs[0].keeper.handle_page(now, PageEvent::Online, false);
    w.drain(0);
    assert_eq!(w.tabs[0].keeper.poll_timeout(), Some(now));
    w.run_for(100.0);
    assert_eq!(w.server.refresh_requests, 3);
    assert_eq!(w.api_call(0, 1_000.0), Ok(200));
}

#[test]
fn back_online_a_retry_after_the_server_asked_for_still_holds() {
    let mut w = logged_in(1, 30.0);
    // The timer's refresh ahead of expiry gets a 503 with a long Retry-After.
    w.server
        .faults
        .push_back(Fault::Status(503, None, Some(300.0)));
    w.run_for(21_000.0);
    assert_eq!(w.server.refresh_requests, 1);
    let next = w.tabs[0].keeper.poll_timeout().expect("a retry is planned");
    assert!(next > w.now + 60_000.0, "it waits for the Retry-After");
    // The server asked for the wait: the network coming back changes nothing.
    let now = w.now;
    w.tabs[0].keeper.handle_page(now, PageEvent::Online, false);
    w.drain(0);
    assert_eq!(w.tabs[0].keeper.poll_timeout(), Some(next));
    w.run_for(60_000.0);
    assert_eq!(w.server.refresh_requests, 1);
}

#[test]
fn a_logout_elsewhere_moves_a_tab_without_a_session_forward() {
    let mut w = world(1, 300.0);
    w.login(0);
    let late = w.open_tab(); // opened after the login, never asked
    w.run_for(10.0);
    assert!(!w.tabs[late].authenticated());
    w.logout(0);
    w.run_for(10.0);
    let gen = w.tabs[0].keeper.session().generation();
    assert_eq!(w.tabs[late].keeper.session().generation(), gen);
    assert!(matches!(
        w.tabs[late].events_of("sync")[..],
        [Event::Sync {
            kind: SyncKind::Advanced,
            ..
        }]
    ));
    // An older session message cannot bring the ended session back.
    assert!(!w.tabs[late].authenticated());
}

#[test]
fn a_freed_keeper_ignores_messages_and_calls() {
    let mut w = logged_in(2, 300.0);
    w.close_tab(1);
    let msg = encode(
        &Message::Session {
            gen: 99,
            tokens: w.tabs[0]
                .keeper
                .session()
                .tokens()
                .cloned()
                .expect("tokens"),
            until: None,
            skew: None,
        },
        "someone",
    );
    let now = w.now;
    w.tabs[1].keeper.handle_tab_message(now, &msg, false);
    assert!(!w.tabs[1].authenticated());
    assert_eq!(w.tabs[1].keeper.poll_command(), None);
    for f in [
        |k: &mut tokenkeeper_core::keeper::Keeper, now, id| k.need_token(now, id),
        |k: &mut tokenkeeper_core::keeper::Keeper, now, id| k.refresh(now, id),
        |k: &mut tokenkeeper_core::keeper::Keeper, now, id| k.ready(now, id),
    ] {
        let call = w.new_call();
        f(&mut w.tabs[1].keeper, now, call);
        assert_eq!(
            w.tabs[1].keeper.poll_command(),
            Some(Command::Settle {
                call,
                reply: Reply::Failed(Error::Freed)
            })
        );
    }
}

#[test]
fn a_caller_that_needs_a_token_waits_out_a_short_backoff() {
    let mut w = logged_in(2, 30.0);
    // The timer's refresh ahead of expiry (at ~20 s) gets a 429: wait 10 s.
    w.server
        .faults
        .push_back(Fault::Status(429, None, Some(10.0)));
    w.run_for(21_000.0);
    assert_eq!(w.server.refresh_requests, 1);
    let failed_at = w
        .tabs
        .iter()
        .flat_map(|t| t.events_of("refresh-error"))
        .count();
    assert_eq!(failed_at, 1);
    // Tab 1 needs a new token now: it waits the backoff out, then refreshes.
    let started = w.now;
    let call = w.call(1, |k, now, id| k.refresh(now, id));
    w.run_for(5_000.0);
    assert_eq!(w.reply(1, call), None, "still waiting");
    assert_eq!(w.server.refresh_requests, 1);
    assert_eq!(w.wait(1, call, 10_000.0), Some(Reply::Done));
    assert_eq!(w.server.refresh_requests, 2);
    assert!(w.now - started >= 8_000.0, "waited {} ms", w.now - started);
    // The tab that needed it made the request (a timer's refresh ahead
    // does not wait out a backoff: it ends, and tries again at the moment).
    assert!(matches!(
        w.tabs[1].events_of("refresh").last(),
        Some(Event::Refresh {
            source: Source::OnDemand,
            ..
        })
    ));
}

#[test]
fn a_waiting_caller_gives_up_after_three_attempts_and_keeps_the_session() {
    let mut w = logged_in(1, 300.0);
    w.server.faults.extend([
        Fault::Status(503, None, None),
        Fault::Status(503, None, None),
        Fault::Status(503, None, None),
    ]);
    let call = w.call(0, |k, now, id| k.refresh(now, id));
    let reply = w.wait(0, call, 30_000.0);
    assert!(
        matches!(
            reply,
            Some(Reply::Failed(Error::RefreshUnavailable { status: 503, .. }))
        ),
        "{reply:?}"
    );
    assert_eq!(w.server.refresh_requests, 3);
    assert!(w.tabs[0].authenticated());
    // The timer tries again later, and then it works.
    w.run_for(60_000.0);
    assert_eq!(w.server.refresh_requests, 4);
    assert_eq!(w.api_call(0, 1_000.0), Ok(200));
}

#[test]
fn a_read_inside_the_lead_window_is_not_held_back_by_a_failing_refresh() {
    let mut w = logged_in(1, 30.0);
    // Asleep past the planned refresh (a third of the lifetime ahead), not
    // past the expiry.
    w.tabs[0].frozen = true;
    w.run_for(25_000.0);
    w.tabs[0].frozen = false;
    let before = w.tabs[0]
        .keeper
        .session()
        .tokens()
        .map(|t| t.access.clone());
    w.server.faults.push_back(Fault::Status(503, None, None));
    let call = w.call(0, |k, now, id| k.need_token(now, id));
    let reply = w.wait(0, call, 1_000.0);
    // One attempt, and the still-valid token at once (no retry in the call).
    assert_eq!(w.server.refresh_requests, 1);
    match reply {
        Some(Reply::Token { access, .. }) => assert_eq!(Some(access), before),
        other => panic!("{other:?}"),
    }
    assert!(w.now - T0 < 25_000.0 + 1_000.0);
}

#[test]
fn an_expired_token_is_not_handed_out_while_refreshing_is_paused() {
    let mut w = logged_in(1, 30.0);
    w.server
        .faults
        .push_back(Fault::Status(503, None, Some(120.0)));
    w.run_for(31_000.0); // the refresh ahead failed; the token expired since
    assert!(w.tabs[0].keeper.session().is_expired(w.now));
    let call = w.call(0, |k, now, id| k.need_token(now, id));
    let reply = w.wait(0, call, 1_000.0);
    assert!(
        matches!(reply, Some(Reply::Failed(Error::RefreshThrottled { .. }))),
        "{reply:?}"
    );
    assert!(w.tabs[0].authenticated(), "the session is kept");
}

#[test]
fn a_malformed_answer_keeps_the_session_and_is_not_retried_at_once() {
    let mut w = logged_in(2, 300.0);
    w.server.faults.push_back(Fault::Malformed);
    let call = w.call(0, |k, now, id| k.refresh(now, id));
    let reply = w.wait(0, call, 5_000.0);
    assert!(
        matches!(
            reply,
            Some(Reply::Failed(Error::InvalidTokenResponse { .. }))
        ),
        "{reply:?}"
    );
    assert_eq!(w.server.refresh_requests, 1);
    assert!(w.tabs[0].authenticated() && w.tabs[1].authenticated());
    assert!(matches!(
        w.tabs[0].events_of("refresh-error")[..],
        [Event::RefreshError { retrying: true, .. }]
    ));
    // The other tab was told to back off too.
    w.run_for(10.0);
    let call = w.call(1, |k, now, id| k.refresh(now, id));
    w.run_for(100.0);
    assert_eq!(w.reply(1, call), None, "it waits the backoff out");
    assert_eq!(w.server.refresh_requests, 1);
    // A first failure backs off for at most a second.
    assert_eq!(w.wait(1, call, 1_500.0), Some(Reply::Done));
    assert_eq!(w.server.refresh_requests, 2);
}

#[test]
fn a_cookie_tab_that_cannot_join_for_now_says_nothing_to_the_others() {
    let s = settings(&[("refreshStyle", OptValue::Str("cookie".into()))]);
    let mut w = World::new(s, 300.0);
    w.open_tab();
    w.open_tab();
    w.server.faults.push_back(Fault::Status(503, None, None));
    let call = w.call(0, |k, now, id| k.ready(now, id));
    assert_eq!(w.wait(0, call, 1_000.0), Some(Reply::Ready(false)));
    w.run_for(50.0);
    assert!(w.tabs[0].events_of("refresh-error").is_empty());
    // No backoff was broadcast: the other tab joins right away.
    let call = w.call(1, |k, now, id| k.ready(now, id));
    assert_eq!(w.wait(1, call, 1_000.0), Some(Reply::Ready(false)));
    assert_eq!(w.server.refresh_requests, 2);
    assert!(w.tabs[1].events_of("sync").is_empty());
}

#[test]
fn without_web_locks_a_tab_pauses_at_most_the_spread() {
    let mut w = World::new(settings(&[]), 300.0);
    w.locks = false;
    w.open_tab();
    w.open_tab();
    w.login(0);
    w.run_for(50.0);
    let now = w.now;
    let _ = w.call(1, |k, now, id| k.refresh(now, id));
    let at = w.tabs[1].keeper.poll_timeout().expect("a pause");
    assert!(at >= now && at < now + 100.0, "{}", at - now);
    w.run_until(at);
    let next = w.tabs[1].keeper.poll_timeout().expect("the contended wait");
    assert!((next - at - 200.0).abs() < 1.0, "{}", next - at);
}

#[test]
fn the_lock_is_held_a_moment_after_the_broadcast() {
    let mut w = logged_in(2, 300.0);
    let call = w.call(0, |k, now, id| k.refresh(now, id));
    assert_eq!(w.wait(0, call, 1_000.0), Some(Reply::Done));
    let done = w.now;
    assert_eq!(w.lock_holder(), Some(0));
    w.run_until(done + HOLD_AFTER_BROADCAST_MS - 1.0);
    assert_eq!(
        w.lock_holder(),
        Some(0),
        "held a moment after the broadcast"
    );
    w.run_until(done + HOLD_AFTER_BROADCAST_MS + 1.0);
    assert_eq!(w.lock_holder(), None);
    // A tab that waited for it adopts the broadcast tokens at once (no 200 ms wait).
    let r0 = w.call(0, |k, now, id| k.refresh(now, id));
    let r1 = w.call(1, |k, now, id| k.refresh(now, id));
    assert_eq!(w.wait(0, r0, 1_000.0), Some(Reply::Done));
    let first = w.now;
    assert_eq!(w.wait(1, r1, 1_000.0), Some(Reply::Done));
    assert!(w.now - first < 100.0, "{} ms later", w.now - first);
    assert_eq!(w.server.refresh_requests, 2);
    // Tab 1's run ended with the broadcast, before its grant (tab 0 still
    // holds the lock): the grant, when it comes, is released at once.
    assert_eq!(w.lock_holder(), Some(0));
    w.run_for(HOLD_AFTER_BROADCAST_MS + 1.0);
    assert_eq!(w.lock_holder(), None);
    assert_eq!(w.server.refresh_requests, 2);
}

#[test]
fn a_refused_refresh_is_rescued_by_a_tab_with_newer_tokens() {
    // Tab 1 slept through a rotation; its refresh is then refused. It asks
    // the other tabs before giving up, and tab 0 has the newer tokens: no
    // logout anywhere.
    let mut w = logged_in(2, 300.0);
    w.tabs[1].frozen = true;
    let r = w.call(0, |k, now, id| k.refresh(now, id));
    assert_eq!(w.wait(0, r, 1_000.0), Some(Reply::Done));
    w.run_for(HOLD_AFTER_BROADCAST_MS + 50.0);
    w.tabs[1].frozen = false;
    w.server
        .faults
        .push_back(Fault::Status(400, Some("invalid_grant"), None));
    let asked = w.now;
    let call = w.call(1, |k, now, id| k.refresh(now, id));
    assert_eq!(w.wait(1, call, 1_000.0), Some(Reply::Done));
    // The request and the answer (40 ms), the question and its answer
    // (4 ms): done as soon as told, not at the end of the wait.
    assert!(w.now - asked < 100.0, "{} ms", w.now - asked);
    for tab in &w.tabs {
        assert!(tab.authenticated());
        assert!(tab.events_of("logout").is_empty());
    }
    assert_eq!(w.api_call(1, 1_000.0), Ok(200));
}

#[test]
fn newer_tokens_from_another_tab_end_a_retry_wait() {
    let mut w = logged_in(2, 300.0);
    w.server.faults.push_back(Fault::Status(503, None, None));
    let call = w.call(0, |k, now, id| k.refresh(now, id));
    w.run_for(100.0);
    assert_eq!(w.reply(0, call), None, "waiting to retry");
    // Someone logs in again in tab 1 meanwhile.
    w.login(1);
    w.run_for(10.0);
    assert_eq!(w.reply(0, call), Some(Reply::Done));
    assert_eq!(w.server.refresh_requests, 1, "no second attempt");
}

#[test]
fn a_renewed_token_never_starts_a_session() {
    let s = settings(&[("renewHeader", OptValue::Str("x-renewed".into()))]);
    let mut w = World::new(s, 300.0);
    w.open_tab();
    w.login(0);
    w.logout(0);
    let url = format!("{ORIGIN}/api/me");
    let renewed = tokenkeeper_core::keeper::Answered {
        renewed: Some("renewed-token".into()),
        ..answered(1, 200, w.now, &url)
    };
    let call = w.call(0, |k, now, id| k.response(now, id, renewed));
    assert_eq!(w.reply(0, call), Some(Reply::Return));
    assert!(!w.tabs[0].authenticated());
}

#[test]
fn change_events_follow_the_session() {
    let mut w = logged_in(2, 300.0);
    let r = w.call(0, |k, now, id| k.refresh(now, id));
    assert_eq!(w.wait(0, r, 1_000.0), Some(Reply::Done));
    w.run_for(10.0);
    w.logout(1);
    w.run_for(10.0);
    for (i, tab) in w.tabs.iter().enumerate() {
        let changes: Vec<bool> = tab
            .events_of("change")
            .iter()
            .map(|e| match e {
                Event::Change { authenticated, .. } => *authenticated,
                _ => unreachable!(),
            })
            .collect();
        // Login (or joining), the refresh, the logout.
        assert_eq!(changes, [true, true, false], "tab {i}");
        let gens: Vec<u64> = tab
            .events_of("change")
            .iter()
            .map(|e| match e {
                Event::Change { generation, .. } => *generation,
                _ => unreachable!(),
            })
            .collect();
        assert!(gens.windows(2).all(|g| g[0] < g[1]), "tab {i}: {gens:?}");
    }
}

#[test]
fn a_freed_keeper_tells_no_tab_anything() {
    let mut w = logged_in(2, 300.0);
    w.close_tab(1);
    let now = w.now;
    assert_eq!(
        w.tabs[1].keeper.logout(now),
        Err(Error::Freed),
        "logout() after free() is refused"
    );
    while let Some(c) = w.tabs[1].keeper.poll_command() {
        assert!(!matches!(c, Command::Post(_)), "{c:?}");
    }
}

/// The executor hands the keeper only responses with the refused-token
/// status or a renewed token: for every other response, `response` would
/// settle the call `Return` and change nothing else, whatever the flags.
#[test]
fn responses_the_executor_keeps_to_itself_change_nothing() {
    use tokenkeeper_core::keeper::REJECTED;
    let mut w = logged_in(2, 60.0);
    w.run_for(30_000.0);
    let url = format!("{ORIGIN}/api/me");
    let generation = w.tabs[0].keeper.session().generation();
    for status in [0, 200, 204, 302, 400, 403, 404, 429, 500, 503] {
        assert_ne!(status, REJECTED);
        for (gen, replayable, replayed) in [
            (generation, true, false),
            (generation, false, false),
            (generation, true, true),
            (generation.saturating_sub(1), true, false),
        ] {
            let k = &mut w.tabs[0].keeper;
            let before = (format!("{k:?}"), k.poll_timeout(), k.refresh_at());
            let a = tokenkeeper_core::keeper::Answered {
                replayable,
                replayed,
                ..answered(gen, status, w.now, &url)
            };
            k.response(w.now + 5.0, CallId(999), a);
            assert_eq!(
                k.poll_command(),
                Some(Command::Settle {
                    call: CallId(999),
                    reply: Reply::Return
                }),
                "status {status}"
            );
            assert_eq!(k.poll_command(), None, "status {status}");
            assert_eq!(
                (format!("{k:?}"), k.poll_timeout(), k.refresh_at()),
                before,
                "status {status}"
            );
        }
    }
}

#[test]
fn a_tab_that_joins_during_a_retry_after_waits_it_out() {
    // Tab 0's refresh ahead of expiry gets a 429 with a 40 s Retry-After.
    let mut w = logged_in(1, 30.0);
    w.server
        .faults
        .push_back(Fault::Status(429, None, Some(40.0)));
    w.run_for(21_000.0);
    assert_eq!(w.server.refresh_requests, 1);
    let until = w.tabs[0].keeper.refresh_at().expect("a retry is planned");
    // A new tab joins: the answer to its question carries the wait.
    let late = w.open_tab();
    let ready = w.call(late, |k, now, id| k.ready(now, id));
    assert_eq!(w.wait(late, ready, 1_000.0), Some(Reply::Ready(true)));
    assert_eq!(w.tabs[late].keeper.refresh_at(), Some(until));
    // Past the token's expiry, neither tab asks again before the wait is over.
    w.run_until(until - 1.0);
    assert_eq!(
        w.server.refresh_requests, 1,
        "no request before the Retry-After"
    );
    w.run_for(5_000.0);
    assert_eq!(w.server.refresh_requests, 2, "one, after it");
    assert_eq!(w.server.reuse_detected, 0);
}

#[test]
fn a_tab_back_from_a_freeze_asks_before_it_refreshes_with_what_it_holds() {
    // Tab 1 is frozen (its timers stop, the messages to it are lost) while
    // tab 0 rotates the tokens; it resumes long past its own planned
    // refresh. Its late timer must not send the refresh token tab 0 already
    // used: it asks, and takes tab 0's answer.
    let mut w = logged_in(2, 30.0);
    w.tabs[1].frozen = true;
    w.run_for(60_000.0);
    let rotated = w.server.refresh_requests;
    assert!(rotated >= 2, "tab 0 went on rotating");
    let planned = w.tabs[1].keeper.poll_timeout().expect("tab 1 has a timer");
    assert!(planned + LATE_TIMER_MS < w.now, "tab 1's timer is late");
    w.tabs[1].frozen = false;
    let now = w.now;
    w.tabs[1].keeper.handle_timeout(now);
    w.drain(1);
    assert_eq!(
        w.server.refresh_requests, rotated,
        "no refresh before the answers"
    );
    w.run_for(ASK_WAIT_MS + 100.0);
    assert_eq!(
        w.server.reuse_detected, 0,
        "the used refresh token was not sent"
    );
    let (a, b) = (w.tabs[0].keeper.session(), w.tabs[1].keeper.session());
    assert_eq!(a.generation(), b.generation());
    assert_eq!(
        a.tokens().map(|t| &t.access),
        b.tokens().map(|t| &t.access),
        "tab 1 took tab 0's tokens"
    );
    assert_eq!(w.api_call(1, 1_000.0), Ok(200));
}

/// Lets tab 0's planned refresh fire `late` ms after its moment; returns
/// the refresh requests made at that moment and after the answers' wait.
fn timer_fired_late_by(late: f64) -> (u32, u32) {
    let mut w = logged_in(1, 30.0);
    let at = w.tabs[0]
        .keeper
        .poll_timeout()
        .expect("a refresh is planned");
    w.run_until(at - 1.0);
    assert_eq!(w.server.refresh_requests, 0);
    w.now = at + late;
    let now = w.now;
    w.tabs[0].keeper.handle_timeout(now);
    w.drain(0);
    w.run_until(now);
    let at_once = w.server.refresh_requests;
    w.run_for(ASK_WAIT_MS + 100.0);
    (at_once, w.server.refresh_requests)
}

#[test]
fn a_timer_up_to_a_second_late_refreshes_at_once_a_later_one_asks_first() {
    assert_eq!(timer_fired_late_by(0.0), (1, 1), "on time");
    assert_eq!(timer_fired_late_by(500.0), (1, 1));
    assert_eq!(timer_fired_late_by(LATE_TIMER_MS), (1, 1), "a second late");
    assert_eq!(
        timer_fired_late_by(LATE_TIMER_MS + 1.0),
        (0, 1),
        "later: the other tabs are asked first, then it refreshes"
    );
    assert_eq!(timer_fired_late_by(3_600_000.0), (0, 1), "after a sleep");
}

#[test]
fn a_late_timer_asks_once_even_when_the_next_is_late_too() {
    // A throttled tab: the timer that ends the question fires late as well.
    let mut w = logged_in(1, 30.0);
    let at = w.tabs[0]
        .keeper
        .poll_timeout()
        .expect("a refresh is planned");
    w.now = at + 5_000.0;
    let now = w.now;
    w.tabs[0].keeper.handle_timeout(now);
    w.drain(0);
    assert_eq!(w.server.refresh_requests, 0, "asks first");
    let end = w.tabs[0].keeper.poll_timeout().expect("the question ends");
    assert_eq!(end, now + ASK_WAIT_MS);
    w.now = end + 5_000.0;
    let now = w.now;
    w.tabs[0].keeper.handle_timeout(now);
    w.drain(0);
    w.run_until(now);
    assert_eq!(w.server.refresh_requests, 1, "no second question");
}

#[test]
fn a_question_asked_before_a_freeze_is_asked_again_after_it() {
    // Tab 1 asks (it became visible), then freezes before the answers' wait
    // ends, while tab 0 rotates. Back long after, its timer must not take
    // the old question's silence for an answer.
    let mut w = logged_in(2, 30.0);
    let now = w.now;
    w.tabs[1]
        .keeper
        .handle_page(now, PageEvent::Visibility, true);
    w.drain(1);
    w.tabs[1].frozen = true;
    w.run_for(60_000.0);
    let rotated = w.server.refresh_requests;
    assert!(rotated >= 2, "tab 0 went on rotating");
    w.tabs[1].frozen = false;
    let now = w.now;
    w.tabs[1].keeper.handle_timeout(now);
    w.drain(1);
    assert_eq!(w.server.refresh_requests, rotated, "asks again first");
    w.run_for(ASK_WAIT_MS + 100.0);
    assert_eq!(w.server.reuse_detected, 0);
    assert_eq!(
        w.tabs[1].keeper.session().generation(),
        w.tabs[0].keeper.session().generation()
    );
}

#[test]
fn a_stale_401_when_the_current_token_expired_too_refreshes_first() {
    // A request with the first token got its 401 late: the tokens were
    // replaced meanwhile, and the tab froze long enough for the new ones
    // to expire as well. Replaying with them would only earn another 401.
    let mut w = logged_in(1, 30.0);
    let url = format!("{ORIGIN}/api/me");
    let call = w.call(0, |k, now, id| k.fetch(now, id, &url, "cors", "GET"));
    let Some(Reply::Token { generation, .. }) = w.reply(0, call) else {
        panic!("no token")
    };
    let sent = w.now;
    let refresh = w.call(0, |k, now, id| k.refresh(now, id));
    assert_eq!(w.wait(0, refresh, 1_000.0), Some(Reply::Done));
    let replaced = w.tabs[0]
        .keeper
        .session()
        .tokens()
        .map(|t| t.access.clone());
    w.now += 31_000.0;
    let before = w.server.refresh_requests;
    let a401 = answered(generation, 401, sent, &url);
    let call = w.call(0, |k, now, id| k.response(now, id, a401));
    let Some(Reply::Replay { access, .. }) = w.wait(0, call, 5_000.0) else {
        panic!("no replay")
    };
    assert_ne!(Some(&access), replaced.as_ref(), "not the expired one");
    assert_eq!(w.server.refresh_requests, before + 1);
    assert_eq!(w.server.api(w.now, &access), 200);
}

#[test]
fn a_stray_lock_grant_while_sending_is_given_back() {
    let mut w = logged_in(1, 300.0);
    w.latency_ms = 500.0;
    let call = w.call(0, |k, now, id| k.refresh(now, id));
    w.run_for(100.0);
    assert_eq!(w.server.refresh_requests, 1, "sent");
    assert_eq!(w.lock_holder(), Some(0));
    // A grant the tab no longer waits for (an executor's duplicate).
    let now = w.now;
    w.tabs[0].keeper.handle_lock_granted(now, false);
    let mut released = false;
    while let Some(c) = w.tabs[0].keeper.poll_command() {
        assert!(matches!(c, Command::ReleaseLock), "{c:?}");
        released = true;
    }
    assert!(released, "given back");
    assert_eq!(w.wait(0, call, 5_000.0), Some(Reply::Done));
    assert_eq!(w.server.refresh_requests, 1);
}

/// A keeper driven directly, outside the world: a channel or none (with
/// Web Locks there either way).
fn bare_keeper(tabs: bool) -> Keeper {
    let env = Env {
        tabs,
        locks: true,
        seed: 7,
    };
    Keeper::new(settings(&[]), env)
}

/// A keeper without a channel, logged in at T0 with `server`'s tokens.
fn alone(server: &mut Server) -> Keeper {
    let mut k = bare_keeper(false);
    let grant = server.issue(T0);
    let timing = instant(T0);
    k.handle_login_answer(T0, CallId(1), TokenAnswer::Grant { grant, timing });
    while k.poll_command().is_some() {}
    k
}

fn jwt(claims: &str) -> String {
    use base64::Engine;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}.sig", e.encode(r#"{"alg":"none"}"#), e.encode(claims))
}

#[test]
fn the_servers_clock_is_measured_by_responses_not_by_restored_tokens() {
    let mut k = bare_keeper(true);
    // The server's clock is 30 s behind: its Date header says so.
    let server_now = T0 - 30_000.0;
    let grant = RawGrant {
        access_token: Some(jwt(&format!(r#"{{"exp":{}}}"#, server_now / 1000.0 + 60.0))),
        refresh_token: Some("rt".into()),
        expires_in: Some(60.0),
        id_token: None,
        token_type: None,
    };
    let timing = Timing {
        server_date: Some(server_now),
        ..instant(T0)
    };
    let login = CallId(1);
    k.handle_login_answer(T0, login, TokenAnswer::Grant { grant, timing });
    let skew = k
        .session()
        .skew()
        .expect("a login answer measures the clock");
    assert!((skew - 29_500.0).abs() < 1.0, "{skew}");
    // Tokens the app restores say nothing of the server's clock now.
    let restored = RawGrant {
        access_token: Some(jwt(&format!(r#"{{"exp":{}}}"#, T0 / 1000.0 + 60.0))),
        refresh_token: Some("rt2".into()),
        expires_in: None,
        id_token: None,
        token_type: None,
    };
    assert_eq!(k.set_tokens(T0 + 1.0, restored), Ok(()));
    assert_eq!(k.session().skew(), Some(skew), "unchanged by setTokens");
}

#[test]
fn a_tab_without_a_channel_posts_nothing() {
    let mut server = Server::new(60.0);
    let mut k = alone(&mut server);
    k.refresh(T0 + 10.0, CallId(2));
    let mut sent = false;
    while let Some(c) = k.poll_command() {
        assert!(!matches!(c, Command::Post(_)), "{c:?}");
        assert!(!matches!(c, Command::AcquireLock), "alone: no lock {c:?}");
        sent |= matches!(c, Command::Refresh { .. });
    }
    assert!(sent, "the refresh went out");
    let grant = server.issue(T0 + 50.0);
    let timing = instant(T0 + 50.0);
    k.handle_refresh_answer(T0 + 50.0, TokenAnswer::Grant { grant, timing });
    // Nor does it read one: a message that reaches it anyway changes nothing.
    let gen = k.session().generation();
    let tokens = k.session().tokens().cloned().expect("tokens");
    let newer = Message::Logout {
        gen: gen + 1,
        reason: "local".into(),
    };
    k.handle_tab_message(T0 + 55.0, &encode(&newer, "other-tab"), false);
    assert_eq!(k.session().tokens(), Some(&tokens));
    assert_eq!(k.session().generation(), gen);
    assert!(k.logout(T0 + 60.0).is_ok());
    while let Some(c) = k.poll_command() {
        assert!(!matches!(c, Command::Post(_)), "{c:?}");
    }
}

#[test]
fn a_run_that_took_over_its_own_hold_releases_when_the_hold_ends() {
    // A refresh ahead of expiry fails (503): the lock is held 150 ms for
    // the broadcast. A call that needs a refresh takes the hold over and
    // waits out the backoff; newer tokens from another tab end its wait.
    // The lock goes back when the first hold ends, not 150 ms later.
    let mut w = logged_in(1, 30.0);
    w.server.faults.push_back(Fault::Status(503, None, None));
    let planned = w.tabs[0].keeper.poll_timeout().expect("planned");
    w.run_until(planned);
    w.run_for(45.0);
    assert_eq!(w.server.refresh_requests, 1, "failed");
    assert_eq!(w.lock_holder(), Some(0), "held for the broadcast");
    let release = w.tabs[0].keeper.poll_timeout().expect("the release");
    let call = w.call(0, |k, now, id| k.refresh(now, id));
    assert_eq!(w.lock_holder(), Some(0));
    let gen = w.tabs[0].keeper.session().generation();
    let tokens = w.tabs[0]
        .keeper
        .session()
        .tokens()
        .cloned()
        .expect("tokens");
    let newer = Message::Session {
        gen: gen + 1,
        tokens,
        until: None,
        skew: None,
    };
    w.inject(encode(&newer, "other-tab"));
    w.run_for(10.0);
    assert_eq!(w.reply(0, call), Some(Reply::Done), "the newer tokens");
    assert!(w.now < release);
    w.run_until(release);
    assert_eq!(w.lock_holder(), None, "released when the first hold ended");
    assert_eq!(w.server.refresh_requests, 1);
}

#[test]
fn without_web_locks_the_pauses_spread_over_the_window() {
    let mut w = World::new(settings(&[]), 300.0);
    w.locks = false;
    for _ in 0..9 {
        w.open_tab();
    }
    w.login(0);
    w.run_for(50.0);
    let now = w.now;
    let pauses: Vec<f64> = (1..9)
        .map(|t| {
            let _ = w.call(t, |k, now, id| k.refresh(now, id));
            w.tabs[t].keeper.poll_timeout().expect("a pause") - now
        })
        .collect();
    let max = pauses.iter().copied().fold(0.0, f64::max);
    let min = pauses.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(max > 50.0 && min < 50.0, "{pauses:?}");
    assert!(
        pauses.iter().all(|p| (0.0..100.0).contains(p)),
        "{pauses:?}"
    );
}

/// Tab 0's refresh ahead of expiry is out (`latency` each way) when a
/// caller asks for a token `after` ms; the refresh gets a 503.
fn a_caller_joins_a_slow_refresh_ahead(
    latency: f64,
    after: f64,
) -> (World, Option<Reply>, Option<Reply>) {
    let mut w = logged_in(1, 30.0);
    w.latency_ms = latency;
    w.server.faults.push_back(Fault::Status(503, None, None));
    let planned = w.tabs[0].keeper.poll_timeout().expect("planned");
    w.run_until(planned);
    assert_eq!(w.server.refresh_requests, 1, "out");
    w.run_until(planned + after);
    assert_eq!(w.server.refresh_requests, 1, "not answered yet");
    let call = w.call(0, |k, now, id| k.need_token(now, id));
    w.run_until(planned + 2.0 * latency + 1.0);
    let at_answer = w.reply(0, call);
    let reply = w.wait(0, call, 60_000.0);
    (w, reply, at_answer)
}

#[test]
fn a_caller_that_needs_a_token_makes_a_refresh_ahead_one_that_does() {
    // The token expired while the refresh was out: the caller's run
    // retries the 503 and hands out the new token.
    let (mut w, reply, _) = a_caller_joins_a_slow_refresh_ahead(10_000.0, 12_000.0);
    assert!(reply.is_some());
    match reply {
        Some(Reply::Token { access, .. }) => assert_eq!(w.server.api(w.now, &access), 200),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.server.refresh_requests, 2, "retried once");
}

#[test]
fn a_caller_whose_token_still_works_does_not_hold_a_refresh_ahead_back() {
    // Still valid (inside the lead window): the failing refresh ahead is
    // not retried for it; it gets the current token when the 503 lands.
    let (w, _, at_answer) = a_caller_joins_a_slow_refresh_ahead(1_000.0, 1_000.0);
    assert!(
        matches!(at_answer, Some(Reply::Token { .. })),
        "{at_answer:?}"
    );
    assert_eq!(w.server.refresh_requests, 1, "no retry in the call");
    assert!(w.tabs[0].authenticated());
}

#[test]
fn a_caller_waits_out_at_most_three_backoffs_in_a_row() {
    // Another tab keeps being told to back off, 1 s at a time, just before
    // this tab's caller would try: the caller waits three of them out, and
    // at the fourth gives up (the session stays).
    let mut w = logged_in(1, 300.0);
    let gen = w.tabs[0].keeper.session().generation();
    let backoff = |until: f64| {
        let m = Message::Backoff { gen, until };
        encode(&m, "other-tab")
    };
    w.inject(backoff(w.now + 1_000.0));
    w.run_for(10.0);
    let call = w.call(0, |k, now, id| k.refresh(now, id));
    w.run_for(5.0); // the lock's grant
    let mut waited = 0;
    while w.reply(0, call).is_none() && waited < 10 {
        let at = w.tabs[0].keeper.poll_timeout().expect("a wait");
        w.run_until(at - 20.0);
        w.inject(backoff(w.now + 1_000.0));
        w.run_until(at + 1.0);
        waited += 1;
    }
    assert_eq!(waited, 3, "three waits, then the fourth is refused");
    assert!(
        matches!(
            w.reply(0, call),
            Some(Reply::Failed(Error::RefreshThrottled { .. }))
        ),
        "{:?}",
        w.reply(0, call)
    );
    assert_eq!(w.server.refresh_requests, 0);
    assert!(w.tabs[0].authenticated());
}

#[test]
fn a_refresh_whose_retry_is_held_off_past_the_call_says_so() {
    // refresh() gets a 503; before its retry, another tab is told to wait
    // a minute. The call does not wait that long, and does not claim a
    // refresh that did not happen: it fails with the wait; the session stays.
    let mut w = logged_in(1, 300.0);
    w.server.faults.push_back(Fault::Status(503, None, None));
    let call = w.call(0, |k, now, id| k.refresh(now, id));
    w.run_for(100.0);
    assert_eq!(w.server.refresh_requests, 1);
    assert_eq!(w.reply(0, call), None, "a retry is planned");
    let gen = w.tabs[0].keeper.session().generation();
    let m = Message::Backoff {
        gen,
        until: w.now + 60_000.0,
    };
    w.inject(encode(&m, "other-tab"));
    let reply = w.wait(0, call, 5_000.0);
    assert!(
        matches!(
            reply,
            Some(Reply::Failed(Error::RefreshThrottled { retry_in_ms })) if retry_in_ms > 50_000.0
        ),
        "{reply:?}"
    );
    assert_eq!(w.server.refresh_requests, 1);
    assert!(w.tabs[0].authenticated());
}

/// A keeper alone (no channel) logged in at T0 with 60 s tokens, whose
/// caller needs a token at T0 + 61 s; the refresh answer takes `trip` ms
/// and says `expires_in`. Returns whether the caller got that answer's
/// token, and whether a second refresh went out.
fn a_slow_answer(trip: f64, expires_in: f64) -> (bool, bool) {
    let mut k = alone(&mut Server::new(60.0));
    let sent = T0 + 61_000.0;
    k.need_token(sent, CallId(2));
    let mut out = false;
    while let Some(c) = k.poll_command() {
        out |= matches!(c, Command::Refresh { .. });
    }
    assert!(out, "the refresh went out");
    let grant = RawGrant {
        access_token: Some("at-slow".into()),
        refresh_token: Some("rt-slow".into()),
        expires_in: Some(expires_in),
        id_token: None,
        token_type: None,
    };
    let timing = Timing {
        received_at: sent + trip,
        ..instant(sent)
    };
    k.handle_refresh_answer(sent + trip, TokenAnswer::Grant { grant, timing });
    let (mut token, mut again) = (false, false);
    while let Some(c) = k.poll_command() {
        match c {
            Command::Settle {
                call: CallId(2),
                reply: Reply::Token { access, .. },
            } => token = access == "at-slow",
            Command::Refresh { .. } => again = true,
            _ => {}
        }
    }
    (token, again)
}

#[test]
fn a_token_that_lapsed_on_a_slow_way_back_counts_from_its_arrival() {
    // 1 s tokens, 3 s on the way: counted from the sending it lapsed; from
    // its arrival it is good — the caller gets it, no second refresh.
    assert_eq!(a_slow_answer(3_000.0, 1.0), (true, false));
    assert_eq!(a_slow_answer(0.0, 60.0), (true, false));
    // A token good for nothing even from its arrival is no answer: the
    // caller waits for another refresh.
    assert_eq!(a_slow_answer(3_000.0, 0.0), (false, true));
}
