//! What a message on the tabs' channel can make a tab do, when it comes from
//! a script of the origin that is no honest tab (or from a tab with a bug):
//! no more than an honest tab could say. Natively, in simulated time.

mod sim;

use serde_json::json;
use sim::*;
use tokenkeeper_core::keeper::Reply;
use tokenkeeper_core::protocol::{self, MAX_GEN};
use tokenkeeper_core::session::RETRY_AFTER_MAX_MS;

/// `tabs` tabs holding one session of `ttl_s`-second access tokens.
fn logged_in(tabs: usize, ttl_s: f64) -> World {
    let mut w = World::new(settings(&[]), ttl_s);
    for _ in 0..tabs {
        w.open_tab();
    }
    w.login(0);
    w.run_for(50.0);
    for t in 0..tabs {
        assert!(w.tabs[t].authenticated(), "tab {t} has the session");
    }
    w
}

fn generation(w: &World, tab: usize) -> u64 {
    w.tabs[tab].keeper.session().generation()
}

/// The message `fields` from tab id "intruder", as JSON the channel carries.
fn message(fields: serde_json::Value) -> tokenkeeper_core::value::OptValue {
    let mut m = json!({ "v": 1, "from": "intruder" });
    if let (Some(m), Some(f)) = (m.as_object_mut(), fields.as_object()) {
        m.extend(f.clone());
    }
    from_json(&m)
}

/// A session message carrying tab 0's own tokens, at `gen`.
fn session_at(w: &World, gen: f64) -> tokenkeeper_core::value::OptValue {
    let tokens = w.tabs[0].keeper.session().tokens().cloned();
    let Some(t) = tokens else {
        panic!("tab 0 has no session")
    };
    message(json!({
        "type": "session", "gen": gen, "access": t.access, "refresh": t.refresh,
        "expiresAt": t.expires_at, "issuedAt": t.issued_at,
    }))
}

#[test]
fn a_backoff_message_holds_no_longer_than_a_retry_after() {
    for until in [1e300, f64::MAX, 1e20] {
        let mut w = logged_in(3, 60.0);
        let gen = generation(&w, 0);
        w.inject(message(
            json!({ "type": "backoff", "gen": gen, "until": until }),
        ));
        w.run_for(10.0);
        let sync = w.tabs[1].events_of("sync").len();
        assert!(sync > 0, "the backoff was taken ({until})");
        // Past the token's expiry a call waits the pause out, which is at
        // most what a server's Retry-After can ask for.
        w.run_for(90_000.0);
        let before = w.server.refresh_requests;
        for tab in 0..3 {
            let call = w.call(tab, |k, now, id| k.refresh(now, id));
            match w.wait(tab, call, 1_000.0) {
                Some(Reply::Failed(tokenkeeper_core::Error::RefreshThrottled { retry_in_ms })) => {
                    assert!(
                        retry_in_ms <= RETRY_AFTER_MAX_MS,
                        "tab {tab} paused for {retry_in_ms} ms by until = {until}"
                    );
                }
                other => panic!("tab {tab}: {other:?}"),
            }
        }
        w.run_for(RETRY_AFTER_MAX_MS);
        assert!(
            w.server.refresh_requests > before,
            "refreshed after the pause"
        );
        for tab in 0..3 {
            assert_eq!(
                w.api_call(tab, 5_000.0),
                Ok(200),
                "tab {tab}, until = {until}"
            );
        }
        assert_eq!(w.server.reuse_detected, 0);
    }
}

#[test]
fn generations_wrap_on_a_ring_every_tab_accepts() {
    assert_eq!(
        MAX_GEN,
        (1u64 << 53) - 1,
        "every generation is an exact JS number"
    );
    assert_eq!(protocol::next_generation(0), 1);
    assert_eq!(protocol::next_generation(41), 42);
    assert_eq!(
        protocol::next_generation(MAX_GEN),
        1,
        "0 stays 'nothing yet'"
    );
    // Out of the ring (no decoded message has one): never newer, nor older.
    for (a, b) in [
        (MAX_GEN + 1, 5),
        (5, MAX_GEN + 1),
        (MAX_GEN + 1, 0),
        (u64::MAX, 1),
    ] {
        assert!(!protocol::is_newer(a, b), "{a} vs {b}");
    }
    let samples = [
        1,
        2,
        3,
        1 << 20,
        1 << 52,
        (1 << 52) + 1,
        MAX_GEN - 1,
        MAX_GEN,
    ];
    for &a in &samples {
        assert!(protocol::is_newer(a, 0), "{a} is newer than nothing");
        assert!(!protocol::is_newer(0, a));
        assert!(!protocol::is_newer(a, a));
        assert!(
            protocol::is_newer(protocol::next_generation(a), a),
            "{a} + 1"
        );
        for &b in &samples {
            if a != b {
                assert!(
                    protocol::is_newer(a, b) != protocol::is_newer(b, a),
                    "exactly one of {a} and {b} is newer"
                );
            }
        }
    }
}

#[test]
fn a_session_at_the_largest_generation_rotates_on_in_every_tab() {
    let mut w = logged_in(3, 60.0);
    // From the login's generation (its moment, T0 in ms), the largest is
    // behind on the ring: ignored. Half the ring ahead first, then the
    // largest, is how a script gets there.
    let login = generation(&w, 1);
    assert_eq!(login, protocol::first_generation(T0));
    w.inject(session_at(&w, MAX_GEN as f64));
    w.run_for(10.0);
    assert_eq!(
        generation(&w, 1),
        login,
        "the largest is behind the login's"
    );
    for gen in [1u64 << 52, MAX_GEN] {
        w.inject(session_at(&w, gen as f64));
        w.run_for(10.0);
    }
    for tab in 0..3 {
        assert_eq!(generation(&w, tab), MAX_GEN, "tab {tab} took the message");
    }
    // Rotations go on past the largest generation: every tab follows each.
    for round in 0..3 {
        let call = w.call(0, |k, now, id| k.refresh(now, id));
        assert_eq!(w.wait(0, call, 1_000.0), Some(Reply::Done));
        w.run_for(20.0);
        for tab in 0..3 {
            assert_eq!(generation(&w, tab), round + 1, "tab {tab}, round {round}");
        }
    }
    // Expiries pass: one refresh each, no reuse, every call answered.
    for _ in 0..200 {
        for tab in 0..3 {
            assert_eq!(w.api_call(tab, 5_000.0), Ok(200), "tab {tab}");
        }
        w.run_for(1_000.0);
    }
    assert_eq!(w.server.reuse_detected, 0);
}

#[test]
fn a_logout_at_the_largest_generation_leaves_tabs_that_follow_a_new_login() {
    let mut w = logged_in(2, 60.0);
    w.inject(session_at(&w, (1u64 << 52) as f64));
    w.run_for(10.0);
    w.inject(message(
        json!({ "type": "logout", "gen": MAX_GEN as f64, "reason": "local" }),
    ));
    w.run_for(10.0);
    assert_eq!(generation(&w, 1), MAX_GEN);
    assert!(!w.tabs[0].authenticated() && !w.tabs[1].authenticated());
    w.login(0);
    w.run_for(20.0);
    assert!(w.tabs[1].authenticated(), "the other tab follows the login");
    assert_eq!(generation(&w, 1), generation(&w, 0));
    // A new tab joins the new session, with no request.
    let requests = w.server.refresh_requests;
    let tab = w.open_tab();
    let call = w.call(tab, |k, now, id| k.ready(now, id));
    assert_eq!(w.wait(tab, call, 2_000.0), Some(Reply::Ready(true)));
    assert_eq!(w.server.refresh_requests, requests);
    for tab in 0..3 {
        assert_eq!(w.api_call(tab, 5_000.0), Ok(200), "tab {tab}");
    }
}

#[test]
fn messages_from_far_behind_on_the_ring_change_nothing() {
    let mut w = logged_in(2, 60.0);
    let gen = generation(&w, 0);
    let behind = (gen + (1 << 52) + 7) as f64;
    w.inject(message(
        json!({ "type": "logout", "gen": behind, "reason": "local" }),
    ));
    w.inject(session_at(&w, behind));
    w.run_for(10.0);
    for tab in 0..2 {
        assert!(w.tabs[tab].authenticated(), "tab {tab}");
        assert_eq!(generation(&w, tab), gen, "tab {tab}");
    }
}

/// Two token sets at one generation (two tabs that rotated at once without
/// Web Locks): every tab keeps the later issued, at that generation — and
/// an earlier-issued one at the same generation changes nothing.
#[test]
fn at_one_generation_the_later_issued_tokens_win_in_every_tab() {
    let mut w = logged_in(2, 60.0);
    let gen = generation(&w, 0);
    let Some(own) = w.tabs[0].keeper.session().tokens().cloned() else {
        panic!("tab 0 has no session")
    };
    let tokens = |access: &str, issued_at: f64| {
        message(json!({
            "type": "session", "gen": gen, "access": access, "refresh": "r-other",
            "expiresAt": own.expires_at, "issuedAt": issued_at,
        }))
    };
    // Issued earlier: ignored.
    w.inject(tokens("older", own.issued_at - 1.0));
    w.run_for(10.0);
    for tab in 0..2 {
        let t = w.tabs[tab].keeper.session().tokens().cloned();
        assert_eq!(t.map(|t| t.access), Some(own.access.clone()), "tab {tab}");
    }
    // Issued later: taken, at the same generation, with its refresh token.
    w.inject(tokens("later", own.issued_at + 1.0));
    w.run_for(10.0);
    for tab in 0..2 {
        let t = w.tabs[tab].keeper.session().tokens().cloned();
        assert_eq!(
            t.map(|t| (t.access, t.refresh)),
            Some(("later".to_string(), Some("r-other".to_string()))),
            "tab {tab}"
        );
        assert_eq!(generation(&w, tab), gen, "tab {tab} keeps its generation");
    }
    // At an equal moment the greater token wins: "later" > "earlier".
    w.inject(tokens("earlier", own.issued_at + 1.0));
    w.run_for(10.0);
    let t = w.tabs[1].keeper.session().tokens().cloned();
    assert_eq!(t.map(|t| t.access).as_deref(), Some("later"));
    w.inject(tokens("zed", own.issued_at + 1.0));
    w.run_for(10.0);
    let t = w.tabs[1].keeper.session().tokens().cloned();
    assert_eq!(t.map(|t| t.access).as_deref(), Some("zed"));
}

#[test]
fn a_retry_after_on_an_answer_that_lost_the_race_is_kept_as_asked() {
    // Tab 0's refresh is out when newer tokens arrive; its answer, a 429
    // asking for 5 s, is the endpoint's word for whatever tokens: 5 s.
    let mut w = logged_in(1, 300.0);
    w.server
        .faults
        .push_back(Fault::Status(429, None, Some(5.0)));
    let gen = generation(&w, 0);
    w.latency_ms = 50.0;
    let call = w.call(0, |k, now, id| k.refresh(now, id));
    w.run_for(10.0);
    assert_eq!(w.server.refresh_requests, 1);
    w.inject(session_at(&w, (gen + 1) as f64));
    w.run_for(20.0);
    assert_eq!(generation(&w, 0), gen + 1, "the newer tokens were taken");
    assert!(w.wait(0, call, 1_000.0).is_some());
    let answered_at = w.now;
    let until = w.tabs[0].keeper.refresh_at().expect("a wait");
    assert!(
        (until - (answered_at + 5_000.0)).abs() <= 100.0,
        "waits 5 s from the answer, not {} ms",
        until - answered_at
    );
}
