//! DPoP (RFC 9449), natively in simulated time: a login makes a key and
//! binds the session to it, every request carries a proof the model server
//! checks (header key, `htm`, `htu`, `iat`, `jti` once, `ath`, the nonce,
//! the signature by the key the executor holds under the proof's name),
//! tabs share the key with the session and only with it, a nonce earns one
//! retry and never a refresh, token types are never silently changed, and
//! the key goes when the session does.

mod sim;

use sim::*;
use tokenkeeper_core::dpop::Proof;
use tokenkeeper_core::keeper::{CallId, Command, Reply};
use tokenkeeper_core::value::OptValue;
use tokenkeeper_core::Error;

fn dpop_settings() -> tokenkeeper_core::config::Settings {
    settings(&[("dpop", OptValue::Bool(true))])
}

/// A world of `tabs` DPoP tabs against a DPoP server.
fn world(tabs: usize, ttl_s: f64) -> World {
    let mut w = World::new(dpop_settings(), ttl_s);
    w.server.dpop = true;
    for _ in 0..tabs {
        w.open_tab();
    }
    w.run_for(10.0);
    w
}

fn logged_in(w: &mut World, tab: usize) {
    assert_eq!(w.password_login(tab), Some(Reply::Done));
    w.run_for(50.0);
}

/// The thumbprint the session of `tab` is bound to.
fn session_key(w: &World, tab: usize) -> Option<String> {
    w.tabs[tab]
        .keeper
        .session()
        .tokens()
        .and_then(|t| t.key.as_ref().map(|k| k.jkt.clone()))
}

#[test]
fn a_login_binds_the_session_to_a_new_key_and_every_call_proves_it() {
    let mut w = world(1, 300.0);
    logged_in(&mut w, 0);
    let jkt = session_key(&w, 0).expect("the session is bound to a key");
    let access = w.tabs[0].keeper.session().tokens().unwrap().access.clone();
    assert_eq!(
        w.server.binding(&access),
        Some(jkt.as_str()),
        "the server bound it too"
    );
    assert_eq!(
        w.tabs[0].keys,
        vec![(jkt.clone(), jkt.clone())],
        "one key, named for what it is"
    );
    for _ in 0..5 {
        assert_eq!(w.api_call(0, 5_000.0), Ok(200));
    }
    assert_eq!(w.server.proofs_accepted, 6, "the login's and five calls'");
    assert_eq!(w.server.proofs_refused, 0, "{:?}", w.server.refused_why);
}

#[test]
fn refreshes_carry_proofs_and_stay_bound_to_the_same_key() {
    let mut w = world(1, 120.0);
    logged_in(&mut w, 0);
    let jkt = session_key(&w, 0);
    let before = w.server.refresh_requests;
    w.run_for(130_000.0);
    assert!(
        w.server.refresh_requests > before,
        "refreshed ahead of expiry"
    );
    assert_eq!(
        session_key(&w, 0),
        jkt,
        "rotated tokens stay bound to the key"
    );
    let access = w.tabs[0].keeper.session().tokens().unwrap().access.clone();
    assert_eq!(w.server.binding(&access), jkt.as_deref());
    assert_eq!(w.api_call(0, 5_000.0), Ok(200));
    assert_eq!(w.server.proofs_refused, 0, "{:?}", w.server.refused_why);
}

#[test]
fn tabs_share_the_key_with_the_session_and_sign_with_it() {
    let mut w = world(3, 120.0);
    logged_in(&mut w, 0);
    let jkt = session_key(&w, 0).unwrap();
    for tab in 1..3 {
        assert_eq!(
            session_key(&w, tab).as_ref(),
            Some(&jkt),
            "tab {tab} took the session"
        );
        assert_eq!(
            w.tabs[tab].keys,
            vec![(jkt.clone(), jkt.clone())],
            "tab {tab} holds the key"
        );
    }
    // A new tab joins with no token request, and signs with the same key.
    let requests = w.server.refresh_requests;
    let late = w.open_tab();
    let ready = w.call(late, |k, now, id| k.ready(now, id));
    assert_eq!(w.wait(late, ready, 1_000.0), Some(Reply::Ready(true)));
    assert_eq!(w.tabs[late].keys, vec![(jkt.clone(), jkt.clone())]);
    assert_eq!(w.server.refresh_requests, requests);
    // Hours of rotation: one refresh per rotation, every tab's calls good.
    for _ in 0..20 {
        w.run_for(30_000.0);
        for tab in 0..4 {
            assert_eq!(w.api_call(tab, 5_000.0), Ok(200), "tab {tab}");
        }
    }
    assert_eq!(w.server.reuse_detected, 0);
    assert_eq!(w.server.proofs_refused, 0, "{:?}", w.server.refused_why);
    for tab in 0..4 {
        assert_eq!(w.tabs[tab].unsigned, 0, "tab {tab} always held its key");
        assert_eq!(session_key(&w, tab).as_ref(), Some(&jkt));
    }
}

#[test]
fn a_session_message_without_its_key_is_not_taken() {
    let mut w = world(2, 300.0);
    logged_in(&mut w, 0);
    let tokens = w.tabs[0].keeper.session().tokens().unwrap().clone();
    let mut w2 = world(1, 300.0);
    let message = tokenkeeper_core::protocol::Message::Session {
        gen: 1 << 50,
        tokens: tokens.clone(),
        until: None,
        skew: None,
    };
    let data = encode(&message, "tab-x");
    // The key's name, without the key.
    w2.inject(data.clone());
    w2.run_for(50.0);
    assert!(!w2.tabs[0].authenticated(), "a DPoP session needs its key");
    // A Bearer session is no DPoP keeper's either.
    let bearer = tokenkeeper_core::protocol::Message::Session {
        gen: 1 << 50,
        tokens: tokenkeeper_core::token::TokenSet {
            key: None,
            ..tokens
        },
        until: None,
        skew: None,
    };
    w2.inject(encode(&bearer, "tab-x"));
    w2.run_for(50.0);
    assert!(!w2.tabs[0].authenticated());
    // And a keeper with dpop off takes no DPoP session, key or not.
    let mut bearer_world = World::new(settings(&[]), 300.0);
    bearer_world.open_tab();
    bearer_world.broadcast_with(&data, None, Some("some-key".into()));
    bearer_world.run_for(50.0);
    assert!(!bearer_world.tabs[0].authenticated());
    assert!(bearer_world.tabs[0].keys.is_empty());
}

#[test]
fn logout_and_a_new_login_drop_the_old_key_in_every_tab() {
    let mut w = world(2, 300.0);
    logged_in(&mut w, 0);
    let first = session_key(&w, 0).unwrap();
    // A second login (in the other tab) gets a new key; the old one goes.
    logged_in(&mut w, 1);
    let second = session_key(&w, 1).unwrap();
    assert_ne!(first, second, "a new session, a new key");
    for tab in 0..2 {
        assert_eq!(session_key(&w, tab).as_ref(), Some(&second), "tab {tab}");
        assert_eq!(
            w.tabs[tab].keys,
            vec![(second.clone(), second.clone())],
            "tab {tab}"
        );
    }
    w.logout(0);
    w.run_for(50.0);
    for tab in 0..2 {
        assert!(!w.tabs[tab].authenticated());
        assert!(w.tabs[tab].keys.is_empty(), "tab {tab} dropped the key");
    }
}

#[test]
fn a_login_that_fails_keeps_no_key_and_the_session_it_had() {
    let mut w = world(1, 300.0);
    logged_in(&mut w, 0);
    let jkt = session_key(&w, 0).unwrap();
    w.server.bearer_answers = true; // Refused, never taken.
    match w.password_login(0) {
        Some(Reply::Failed(Error::InvalidTokenResponse { reason })) => {
            assert!(reason.contains("not DPoP"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        session_key(&w, 0).as_ref(),
        Some(&jkt),
        "the good session stays"
    );
    assert_eq!(
        w.tabs[0].keys,
        vec![(jkt.clone(), jkt)],
        "the failed login's key went"
    );
}

#[test]
fn token_types_are_never_silently_changed() {
    // A DPoP keeper refuses Bearer tokens from a refresh too: never
    // adopted (the server rotated, so the session ends in the end).
    let mut w = world(1, 120.0);
    logged_in(&mut w, 0);
    let access = w.tabs[0].keeper.session().tokens().unwrap().access.clone();
    w.server.bearer_answers = true;
    let at = w.tabs[0].keeper.refresh_at().expect("a refresh is planned");
    w.run_until(at + 100.0);
    let errors = w.tabs[0].events_of("refresh-error");
    assert!(!errors.is_empty(), "the Bearer answer is an error");
    assert!(format!("{errors:?}").contains("not DPoP"), "{errors:?}");
    assert_eq!(
        w.tabs[0].keeper.session().tokens().unwrap().access,
        access,
        "kept, not downgraded"
    );
    w.run_for(200_000.0);
    assert!(
        w.tabs[0].events_of("refresh").is_empty(),
        "no Bearer token was ever taken"
    );
    // A Bearer keeper refuses DPoP tokens.
    let mut b = World::new(settings(&[]), 300.0);
    b.server.dpop = true;
    b.open_tab();
    let call = b.new_call();
    let mut grant = b.server.issue(b.now);
    grant.token_type = Some("DPoP".into());
    let now = b.now;
    b.tabs[0].keeper.handle_login_answer(
        now,
        call,
        tokenkeeper_core::keeper::TokenAnswer::Grant {
            grant,
            timing: instant(now),
        },
    );
    b.drain(0);
    match b.reply(0, call) {
        Some(Reply::Failed(Error::InvalidTokenResponse { reason })) => {
            assert!(reason.contains("dpop off"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_token_endpoint_nonce_earns_one_retry_of_the_same_request() {
    let mut w = world(2, 120.0);
    w.server.dpop_nonce = Some("n-1".into());
    // The login: asked for a nonce, sent again once with it.
    logged_in(&mut w, 0);
    assert_eq!(w.server.nonce_challenges, 1);
    // The refresh: the server's nonce changed; one retry, no reuse.
    w.server.dpop_nonce = Some("n-2".into());
    let before = w.server.refresh_requests;
    w.run_for(110_000.0);
    assert_eq!(w.server.nonce_challenges, 2);
    assert_eq!(
        w.server.refresh_requests,
        before + 2,
        "the refresh, sent again once"
    );
    assert_eq!(w.server.reuse_detected, 0);
    assert!(w.tabs[0].events_of("refresh-error").is_empty());
    assert!(w.tabs[1].events_of("refresh-error").is_empty());
    for tab in 0..2 {
        assert_eq!(w.api_call(tab, 5_000.0), Ok(200), "tab {tab}");
    }
    // Asked again right after its retry: no third request, a transient failure.
    w.server.faults.extend([
        Fault::Status(400, Some("use_dpop_nonce"), None),
        Fault::Status(400, Some("use_dpop_nonce"), None),
    ]);
    let before = w.server.refresh_requests;
    let call = w.call(0, |k, now, id| k.refresh(now, id));
    w.run_for(200.0);
    assert_eq!(w.server.refresh_requests, before + 2, "one retry, not more");
    let errors = w.tabs[0].events_of("refresh-error");
    assert!(
        format!("{errors:?}").contains("retrying: true"),
        "{errors:?}"
    );
    assert!(w.tabs[0].authenticated(), "a nonce is no refusal");
    let _ = w.wait(0, call, 60_000.0);
}

#[test]
fn a_login_is_sent_again_once_only() {
    // A server that wants a new nonce with every proof: the login's one
    // retry is refused too, and the login fails with the endpoint's answer.
    let mut w = world(1, 300.0);
    w.server.dpop_nonce = Some("n".into());
    w.server.nonce_every_proof = true;
    match w.password_login(0) {
        Some(Reply::Failed(Error::LoginFailed {
            status: 400,
            oauth_error,
            ..
        })) => assert_eq!(oauth_error.as_deref(), Some("use_dpop_nonce")),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.server.nonce_challenges, 2, "the login and its one retry");
    assert!(w.tabs[0].keys.is_empty(), "its key went with it");
}

#[test]
fn a_resource_nonce_is_not_expiry() {
    let mut w = world(1, 300.0);
    logged_in(&mut w, 0);
    // The resource starts to want nonces: one replay with it, no refresh.
    w.server.dpop_nonce = Some("r-1".into());
    let refreshes = w.server.refresh_requests;
    assert_eq!(w.api_call(0, 5_000.0), Ok(200));
    assert_eq!(w.server.nonce_challenges, 1);
    assert_eq!(
        w.server.refresh_requests, refreshes,
        "a nonce costs no refresh"
    );
    // The nonce is remembered: the next calls need no replay.
    for _ in 0..3 {
        assert_eq!(w.api_call(0, 5_000.0), Ok(200));
    }
    assert_eq!(w.server.nonce_challenges, 1);
    assert!(w.tabs[0].events_of("expired").is_empty());
    // A new nonce, and the token revoked: the nonce replay, then the 401
    // earns the refresh and its replay — two replays, the call succeeds.
    w.server.dpop_nonce = Some("r-2".into());
    let access = w.tabs[0].keeper.session().tokens().unwrap().access.clone();
    w.server.revoke_access(&access);
    assert_eq!(w.api_call(0, 5_000.0), Ok(200));
    assert_eq!(w.server.nonce_challenges, 2);
    assert_eq!(w.server.refresh_requests, refreshes + 1);
}

#[test]
fn without_webcrypto_a_dpop_login_fails_typed_and_set_tokens_is_refused() {
    let mut w = world(1, 300.0);
    w.tabs[0].no_crypto = true;
    match w.password_login(0) {
        Some(Reply::Failed(e)) => assert_eq!(e.code(), "dpop_unsupported", "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(!w.tabs[0].authenticated());
    let debug = format!("{:?}", w.tabs[0].keeper);
    assert!(debug.contains("logins: []"), "the login is gone: {debug}");
    let now = w.now;
    let grant = w.server.issue(now);
    let e = w.tabs[0].keeper.set_tokens(now, grant).unwrap_err();
    assert_eq!(e.code(), "invalid_argument");
    assert!(e.message().contains("DPoP"), "{e}");
}

#[test]
fn a_cookie_session_bound_to_a_key_is_not_tried_by_a_new_tab() {
    let s = settings(&[
        ("dpop", OptValue::Bool(true)),
        ("refreshStyle", OptValue::Str("cookie".into())),
    ]);
    let mut w = World::new(s, 300.0);
    w.server.dpop = true;
    let tab = w.open_tab();
    let ready = w.call(tab, |k, now, id| k.ready(now, id));
    assert_eq!(w.wait(tab, ready, 1_000.0), Some(Reply::Ready(false)));
    assert_eq!(
        w.server.refresh_requests, 0,
        "no key can prove the cookie's binding"
    );
}

#[test]
fn options_name_what_dpop_cannot_go_with() {
    let from = |pairs: &[(&str, OptValue)]| {
        let mut entries = vec![("refreshUrl".to_string(), OptValue::Str("/t".into()))];
        entries.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
        tokenkeeper_core::config::Settings::from_options(
            &OptValue::Map(entries),
            &tokenkeeper_core::testing::TestUrls,
        )
    };
    let option = |r: Result<_, Error>| match r {
        Err(Error::InvalidOption { option, reason }) => (option, reason),
        other => panic!("{other:?}"),
    };
    let (o, r) = option(from(&[("dpop", OptValue::Str("auto".into()))]));
    assert_eq!(o, "dpop");
    assert!(r.contains("issuer"), "{r}");
    let (o, _) = option(from(&[("dpop", OptValue::Str("yes".into()))]));
    assert_eq!(o, "dpop");
    for name in ["header", "scheme"] {
        let (o, r) = option(from(&[
            ("dpop", OptValue::Bool(true)),
            (name, OptValue::Str("X".into())),
        ]));
        assert_eq!(o, name);
        assert!(r.contains("Authorization: DPoP"), "{r}");
    }
    assert!(from(&[
        ("dpop", OptValue::Bool(false)),
        ("header", OptValue::Str("X".into()))
    ])
    .is_ok());
}

/// A proof's claims.
fn claims(proof: &Proof) -> serde_json::Value {
    let part = proof.input.split('.').nth(1).expect("two parts");
    serde_json::from_str(&tokenkeeper_core::dpop::decoded(part).expect("base64url")).expect("JSON")
}

/// `keeper.fetch(url)` in `tab`: the proof its token comes with.
fn fetch_proof(w: &mut World, tab: usize, url: &str) -> Proof {
    let call = w.call(tab, |k, now, id| k.fetch(now, id, url, "cors", "GET"));
    match w.wait(tab, call, 1_000.0) {
        Some(Reply::Token { proof: Some(p), .. }) => p,
        other => panic!("{other:?}"),
    }
}

#[test]
fn nonces_are_kept_per_origin_the_latest_for_sixteen_origins() {
    let origins: Vec<String> = (0..17).map(|i| format!("https://api{i}.example")).collect();
    let allowed = OptValue::List(origins.iter().map(|o| OptValue::Str(o.clone())).collect());
    let mut w = World::new(
        settings(&[("dpop", OptValue::Bool(true)), ("allowedOrigins", allowed)]),
        300.0,
    );
    w.server.dpop = true;
    w.open_tab();
    logged_in(&mut w, 0);
    // Each origin answers with its nonce (on a success), in order.
    for (i, origin) in origins.iter().enumerate() {
        let url = format!("{origin}/x?q=1");
        let nonce = format!("n-{i}");
        let answer = tokenkeeper_core::keeper::Answered {
            nonce: Some(&nonce),
            ..answered(1, 200, w.now, &url)
        };
        let call = w.call(0, |k, now, id| k.response(now, id, answer));
        assert_eq!(w.wait(0, call, 100.0), Some(Reply::Return));
    }
    // The oldest origin's nonce made room for the 17th; each other proof
    // carries its origin's own.
    for (i, origin) in origins.iter().enumerate() {
        let c = claims(&fetch_proof(&mut w, 0, &format!("{origin}/y#f")));
        let want = (i > 0).then(|| format!("n-{i}"));
        assert_eq!(c["nonce"].as_str(), want.as_deref(), "{origin}");
        assert_eq!(c["htu"], format!("{origin}/y"));
    }
    // A newer nonce replaces the one before; junk changes nothing.
    for nonce in ["n-5b", "bad nonce", ""] {
        let url = format!("{}/z", origins[5]);
        let answer = tokenkeeper_core::keeper::Answered {
            nonce: Some(nonce),
            ..answered(1, 200, w.now, &url)
        };
        let call = w.call(0, |k, now, id| k.response(now, id, answer));
        w.wait(0, call, 100.0);
    }
    let c = claims(&fetch_proof(&mut w, 0, &format!("{}/y", origins[5])));
    assert_eq!(c["nonce"], "n-5b");
}

#[test]
fn a_nonce_challenge_never_costs_a_refresh() {
    let mut w = world(1, 300.0);
    logged_in(&mut w, 0);
    let url = format!("{ORIGIN}/api/me");
    let refreshes = w.server.refresh_requests;
    let gen = w.tabs[0].keeper.session().generation();
    let challenge = Some(r#"DPoP error="use_dpop_nonce""#);
    // No nonce came with it: nothing to send again with; the app gets it.
    let bare = tokenkeeper_core::keeper::Answered {
        challenge,
        ..answered(gen, 401, w.now, &url)
    };
    let call = w.call(0, |k, now, id| k.response(now, id, bare));
    assert_eq!(w.wait(0, call, 5_000.0), Some(Reply::Return));
    // Asked again after the one nonce replay: the app gets it too.
    let again = tokenkeeper_core::keeper::Answered {
        challenge,
        nonce: Some("n-2"),
        nonce_replayed: true,
        ..answered(gen, 401, w.now, &url)
    };
    let call = w.call(0, |k, now, id| k.response(now, id, again));
    assert_eq!(w.wait(0, call, 5_000.0), Some(Reply::Return));
    // After a refresh's replay, a nonce still earns its one replay.
    let after_refresh = tokenkeeper_core::keeper::Answered {
        challenge,
        nonce: Some("n-3"),
        replayed: true,
        ..answered(gen, 401, w.now, &url)
    };
    let call = w.call(0, |k, now, id| k.response(now, id, after_refresh));
    assert!(matches!(
        w.wait(0, call, 5_000.0),
        Some(Reply::Replay { nonce: true, .. })
    ));
    assert_eq!(
        w.server.refresh_requests, refreshes,
        "no refresh for a nonce"
    );
    assert!(w.tabs[0].events_of("expired").is_empty());
}

#[test]
fn a_nonce_challenge_to_an_expired_token_is_an_ordinary_401() {
    // A tab frozen past its token's expiry hears the resource's nonce
    // challenge only now: the token is expired, so a refresh comes first
    // (seed 3440 of the simulator with nonces).
    let mut w = world(1, 120.0);
    logged_in(&mut w, 0);
    let url = format!("{ORIGIN}/api/me");
    let gen = w.tabs[0].keeper.session().generation();
    let old = w.tabs[0].keeper.session().tokens().unwrap().access.clone();
    let sent = w.now;
    w.tabs[0].frozen = true;
    w.run_for(600_000.0);
    w.tabs[0].frozen = false;
    let refreshes = w.server.refresh_requests;
    let late = tokenkeeper_core::keeper::Answered {
        challenge: Some(r#"DPoP error="use_dpop_nonce""#),
        nonce: Some("n-1"),
        ..answered(gen, 401, sent, &url)
    };
    let call = w.call(0, |k, now, id| k.response(now, id, late));
    match w.wait(0, call, 5_000.0) {
        Some(Reply::Replay {
            nonce: false,
            access,
            proof: Some(_),
        }) => assert_ne!(access, old, "a new token"),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.server.refresh_requests, refreshes + 1);
}

#[test]
fn a_login_endpoints_nonce_is_its_own_origins() {
    let mut w = world(1, 300.0);
    w.server.dpop_nonce = Some("auth-1".into());
    let call = w.call(0, |k, _, id| {
        k.login(id, Ok(("https://auth.example/login".into(), "{}".into())))
    });
    assert_eq!(w.wait(0, call, 5_000.0), Some(Reply::Done));
    assert_eq!(
        w.server.nonce_challenges, 1,
        "one retry, with the nonce of auth.example"
    );
    // The app's own origin has none yet: its first proof carries none.
    let c = claims(&fetch_proof(&mut w, 0, &format!("{ORIGIN}/api")));
    assert!(c["nonce"].is_null(), "{c}");
}

#[test]
fn proofs_are_dated_by_the_servers_clock() {
    // The server's clock is 50 s ahead (inside its 60 s window, so the
    // login's proof, dated by the browser before anything was measured,
    // passes): its token's iat tells the keeper, and every later proof
    // says the server's time.
    let mut w = world(1, 300.0);
    w.server.clock_ahead_ms = 50_000.0;
    logged_in(&mut w, 0);
    for _ in 0..3 {
        let c = claims(&fetch_proof(&mut w, 0, &format!("{ORIGIN}/api")));
        let iat = c["iat"].as_f64().unwrap();
        let server_now = (w.now + 50_000.0) / 1000.0;
        assert!(
            (iat - server_now).abs() <= 2.0,
            "iat {iat}, server {server_now}"
        );
        w.run_for(10_000.0);
    }
    assert_eq!(w.api_call(0, 5_000.0), Ok(200));
    assert_eq!(w.server.proofs_refused, 0, "{:?}", w.server.refused_why);
}

#[test]
fn only_a_nonce_answer_earns_the_token_endpoints_one_retry() {
    // A nonce is known (the login's answer carried it); other refusals and
    // failures are sent once, as they are without DPoP.
    for (fault, what) in [
        (Fault::Status(503, None, None), "a 503"),
        (Fault::Status(400, Some("invalid_grant"), None), "a refusal"),
        (
            Fault::Status(400, Some("invalid_dpop_proof"), None),
            "a refused proof",
        ),
        (
            Fault::Status(401, Some("use_dpop_nonce"), None),
            "a nonce error with another status",
        ),
    ] {
        let mut w = world(1, 300.0);
        w.server.dpop_nonce = Some("n".into());
        logged_in(&mut w, 0);
        w.server.faults.push_back(fault);
        let before = w.server.refresh_requests;
        let _ = w.call(0, |k, now, id| k.refresh(now, id));
        w.run_for(200.0);
        assert_eq!(w.server.refresh_requests, before + 1, "{what}: sent once");
    }
}

#[test]
fn each_call_gets_the_proof_of_its_own_request() {
    // Calls wait together for one refresh; each proof names its own
    // method and URL, and a call that fails leaves nothing behind.
    let mut w = world(1, 120.0);
    logged_in(&mut w, 0);
    let expires = w.tabs[0].keeper.session().expires_at().unwrap();
    w.run_until(expires + 1.0);
    w.server.faults.push_back(Fault::Drop);
    let urls: Vec<String> = (0..4).map(|i| format!("{ORIGIN}/api/{i}")).collect();
    let methods = ["GET", "POST", "PUT", "DELETE"];
    let calls: Vec<_> = urls
        .iter()
        .zip(methods)
        .map(|(u, m)| w.call(0, |k, now, id| k.fetch(now, id, u, "cors", m)))
        .collect();
    w.run_for(30_000.0);
    for ((call, url), method) in calls.iter().zip(&urls).zip(methods) {
        match w.reply(0, *call) {
            Some(Reply::Token { proof: Some(p), .. }) => {
                let c = claims(&p);
                assert_eq!(c["htu"], url.as_str());
                assert_eq!(c["htm"], method);
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    // A call that fails (the token expired, the endpoint down) keeps no
    // request waiting.
    w.server
        .faults
        .extend(std::iter::repeat_n(Fault::Status(503, None, None), 50));
    let expires = w.tabs[0].keeper.session().expires_at().unwrap();
    w.run_until(expires + 1.0);
    let call = w.call(0, |k, now, id| k.fetch(now, id, &urls[0], "cors", "GET"));
    match w.wait(0, call, 120_000.0) {
        Some(Reply::Failed(e)) => assert_eq!(e.code(), "refresh_unavailable"),
        other => panic!("{other:?}"),
    }
    let debug = format!("{:?}", w.tabs[0].keeper);
    assert!(debug.contains("requests: []"), "{debug}");
}

#[test]
fn a_key_is_taken_only_by_the_call_waiting_for_it() {
    let mut w = world(1, 300.0);
    let (x, y) = coordinates(99);
    let now = w.now;
    // No call waits for a key.
    assert_eq!(
        w.tabs[0].keeper.key_made(now, CallId(77), Some((&x, &y))),
        None
    );
    // A login waits for one: it takes the first, not a second.
    let call = w.call(0, |k, _, id| {
        k.login(id, Ok((format!("{ORIGIN}/login"), "{}".into())))
    });
    let first = w.tabs[0].keeper.key_made(now, call, Some((&x, &y)));
    assert!(first.is_some());
    let (x2, y2) = coordinates(100);
    assert_eq!(
        w.tabs[0].keeper.key_made(now, call, Some((&x2, &y2))),
        None,
        "a second key"
    );
    w.tabs[0]
        .keys
        .push((first.clone().unwrap(), first.clone().unwrap()));
    w.drain(0);
    assert_eq!(w.wait(0, call, 5_000.0), Some(Reply::Done));
    assert_eq!(session_key(&w, 0), first);
    // After free(), nothing is taken.
    let call = w.call(0, |k, _, id| {
        k.login(id, Ok((format!("{ORIGIN}/login"), "{}".into())))
    });
    w.tabs[0].keeper.free();
    w.drain(0);
    assert_eq!(w.tabs[0].keeper.key_made(now, call, Some((&x2, &y2))), None);
    assert_eq!(
        w.reply(0, call),
        Some(Reply::Failed(Error::Freed)),
        "the waiting login ends"
    );
    assert!(w.tabs[0].keys.is_empty(), "free() drops every key");
}

// ----- with an OpenID provider ----------------------------------------------

fn discovery(dpop_algs: Option<&str>) -> OptValue {
    let algs = dpop_algs.map_or(String::new(), |a| {
        format!(r#","dpop_signing_alg_values_supported":{a}"#)
    });
    OptValue::from_json(
        Some(&format!(
            r#"{{"issuer":"{ISSUER}","authorization_endpoint":"{ISSUER}/auth","token_endpoint":"{ISSUER}/token",
        "revocation_endpoint":"{ISSUER}/revoke","code_challenge_methods_supported":["S256"]{algs}}}"#
        )),
        1 << 20,
    )
}

/// A world of one tab of a keeper of [`ISSUER`] with `dpop`, whose
/// discovery lists `algs`.
fn provider_world(dpop: OptValue, algs: Option<&str>) -> World {
    let mut w = World::new(oidc_settings(&[("dpop", dpop)]), 300.0);
    w.server.dpop = true;
    w.server.provider = Some(Provider {
        issuer: ISSUER.into(),
        client_id: "spa".into(),
        sub: "user1".into(),
        nonce: None,
        on_refresh: true,
    });
    w.open_tab();
    w.tabs[0].discovery = Some((200, discovery(algs)));
    w.run_for(100.0);
    w
}

/// A login by redirect: the provider's code, the callback handled.
fn redirect_login(w: &mut World) -> Reply {
    let call = start_redirect_login(w);
    w.wait(0, call, 5_000.0).expect("handleRedirect settles")
}

/// A login by redirect up to its callback: the `handleRedirect()` call.
fn start_redirect_login(w: &mut World) -> CallId {
    let random: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(31)).collect();
    let call = w.call(0, |k, now, id| {
        k.login_redirect(now, id, "/", &random, &OptValue::Undefined)
    });
    w.run_for(100.0);
    let tx = w.tabs[0]
        .browser
        .iter()
        .find_map(|c| match c {
            Command::Navigate { transaction, .. } => Some(transaction.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no navigation: {:?}", w.reply(0, call)));
    let code = w.server.authorize(&tx.nonce);
    let href = format!(
        "https://app.example/callback?code={code}&state={}&iss={ISSUER}",
        tx.state
    );
    let stored = OptValue::from_json(
        Some(&tokenkeeper_core::wire::transaction_json(&tx)),
        1 << 16,
    );
    w.call(0, |k, now, id| k.handle_redirect(now, id, &href, &stored))
}

#[test]
fn a_code_exchange_takes_one_key_once() {
    let mut w = provider_world(OptValue::Bool(true), Some(r#"["ES256"]"#));
    let call = start_redirect_login(&mut w);
    // The key is made, the exchange goes out: a second key for the same
    // call is not taken (it would send the code twice).
    w.run_for(5.0);
    let (x, y) = coordinates(500);
    let now = w.now;
    assert_eq!(w.tabs[0].keeper.key_made(now, call, Some((&x, &y))), None);
    assert!(matches!(
        w.wait(0, call, 5_000.0),
        Some(Reply::Redirected(Some(_)))
    ));
    assert_eq!(w.server.exchanges, 1);
    // Without WebCrypto the callback fails typed, and nothing waits on.
    let mut w = provider_world(OptValue::Bool(true), Some(r#"["ES256"]"#));
    w.tabs[0].no_crypto = true;
    match redirect_login(&mut w) {
        Reply::Failed(e) => assert_eq!(e.code(), "dpop_unsupported"),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.server.exchanges, 0, "the code was never sent");
    let debug = format!("{:?}", w.tabs[0].keeper);
    assert!(debug.contains("exchanges: []"), "{debug}");
}

#[test]
fn a_code_exchange_is_proved_by_a_key_made_on_the_callback_page() {
    let mut w = provider_world(OptValue::Bool(true), Some(r#"["ES256","EdDSA"]"#));
    w.server.dpop_nonce = Some("idp-1".into());
    assert!(matches!(redirect_login(&mut w), Reply::Redirected(Some(_))));
    let jkt = session_key(&w, 0).expect("bound");
    let access = w.tabs[0].keeper.session().tokens().unwrap().access.clone();
    assert_eq!(w.server.binding(&access), Some(jkt.as_str()));
    assert_eq!(w.server.nonce_challenges, 1, "asked for a nonce once");
    assert_eq!(
        w.server.exchanges, 1,
        "the code was used once: the nonce retry burnt nothing"
    );
    assert_eq!(w.api_call(0, 5_000.0), Ok(200));
}

#[test]
fn auto_follows_the_providers_discovery() {
    let mut on = provider_world(OptValue::Str("auto".into()), Some(r#"["ES256"]"#));
    assert!(matches!(
        redirect_login(&mut on),
        Reply::Redirected(Some(_))
    ));
    assert!(
        session_key(&on, 0).is_some(),
        "DPoP where the provider lists ES256"
    );
    for algs in [None, Some(r#"["EdDSA"]"#)] {
        let mut off = provider_world(OptValue::Str("auto".into()), algs);
        assert!(matches!(
            redirect_login(&mut off),
            Reply::Redirected(Some(_))
        ));
        assert!(off.tabs[0].authenticated());
        assert!(
            session_key(&off, 0).is_none(),
            "Bearer otherwise ({algs:?})"
        );
    }
}

#[test]
fn dpop_true_with_a_provider_without_it_fails_ready() {
    let mut w = provider_world(OptValue::Bool(true), None);
    let call = w.call(0, |k, now, id| k.ready(now, id));
    match w.wait(0, call, 1_000.0) {
        Some(Reply::Failed(e)) => {
            assert_eq!(e.code(), "dpop_unsupported");
            assert!(e.message().contains("ES256"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}
