//! A keeper of an OpenID provider's session, natively in simulated time:
//! discovery, the login by redirect and its callback, the one code
//! exchange, the ID token's checks at login and refresh, tabs sharing the
//! session with its ID token, a session without a refresh token, and the
//! logout at the provider.

mod sim;

use sim::*;
use tokenkeeper_core::keeper::{Command, Event, LogoutReason, Reply};
use tokenkeeper_core::oidc::{self, Transaction};
use tokenkeeper_core::value::OptValue;
use tokenkeeper_core::{wire, Error};

const REDIRECT: &str = "https://app.example/callback";

fn provider(sub: &str) -> Provider {
    Provider {
        issuer: ISSUER.into(),
        client_id: "spa".into(),
        sub: sub.into(),
        nonce: None,
        on_refresh: true,
    }
}

/// A world of `tabs` tabs of an OpenID keeper, its discovery read.
fn world(tabs: usize, ttl_s: f64) -> World {
    let mut w = World::new(oidc_settings(&[]), ttl_s);
    w.server.provider = Some(provider("user1"));
    for _ in 0..tabs {
        w.open_tab();
    }
    w.run_for(100.0);
    w
}

fn random() -> Vec<u8> {
    (0..64u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect()
}

/// `loginRedirect(options)` in `tab`: the URL it goes to and the
/// transaction it keeps.
fn login_redirect(w: &mut World, tab: usize, options: OptValue) -> (String, Transaction) {
    let call = w.call(tab, |k, now, id| {
        k.login_redirect(now, id, "/here?x=1", &random(), &options)
    });
    w.run_for(100.0);
    let navigate = w.tabs[tab].browser.iter().rev().find_map(|c| match c {
        Command::Navigate {
            call: c,
            url,
            transaction: tx,
        } if *c == call => Some((url.clone(), tx.clone())),
        _ => None,
    });
    navigate.unwrap_or_else(|| panic!("no navigation: {:?}", w.reply(tab, call)))
}

/// The page's URL after the provider sent the browser back.
fn callback(query: &str) -> String {
    format!("{REDIRECT}?{query}")
}

/// The transaction as the tab's storage holds it.
fn stored(tx: &Transaction) -> OptValue {
    OptValue::from_json(Some(&wire::transaction_json(tx)), 1 << 16)
}

/// `handleRedirect()` on `href` with `tx` stored; its reply.
fn handle(w: &mut World, tab: usize, href: &str, tx: Option<&Transaction>) -> Reply {
    let stored = tx.map_or(OptValue::Undefined, stored);
    let call = w.call(tab, |k, now, id| k.handle_redirect(now, id, href, &stored));
    w.wait(tab, call, 5_000.0).expect("handleRedirect settles")
}

/// A whole login in `tab`: redirect, provider, callback.
fn log_in(w: &mut World, tab: usize) -> Reply {
    let (_, tx) = login_redirect(w, tab, OptValue::Undefined);
    let code = w.server.authorize(&tx.nonce);
    let href = callback(&format!("code={code}&state={}&iss={ISSUER}", tx.state));
    handle(w, tab, &href, Some(&tx))
}

fn param<'a>(url: &'a str, key: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == key).then_some(v)
    })
}

fn history(w: &World, tab: usize) -> Vec<String> {
    w.tabs[tab]
        .browser
        .iter()
        .filter_map(|c| match c {
            Command::History { url } => Some(url.clone()),
            _ => None,
        })
        .collect()
}

fn logouts(w: &World, tab: usize) -> Vec<LogoutReason> {
    w.tabs[tab]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Logout { reason } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn the_authorization_request_carries_pkce_state_and_nonce() {
    let mut w = world(1, 300.0);
    let options = OptValue::Map(vec![
        ("returnTo".into(), OptValue::Str("/app?tab=2#top".into())),
        ("prompt".into(), OptValue::Str("none".into())),
        ("loginHint".into(), OptValue::Str("a b@example".into())),
    ]);
    let (url, tx) = login_redirect(&mut w, 0, options);
    assert!(url.starts_with(&format!("{ISSUER}/auth?")), "{url}");
    assert_eq!(param(&url, "response_type"), Some("code"));
    assert_eq!(param(&url, "client_id"), Some("spa"));
    assert_eq!(
        param(&url, "redirect_uri"),
        Some("https%3A%2F%2Fapp.example%2Fcallback")
    );
    assert_eq!(param(&url, "scope"), Some("openid+offline_access"));
    assert_eq!(param(&url, "state"), Some(tx.state.as_str()));
    assert_eq!(param(&url, "nonce"), Some(tx.nonce.as_str()));
    assert_eq!(param(&url, "code_challenge_method"), Some("S256"));
    assert_eq!(
        param(&url, "code_challenge"),
        Some(oidc::challenge(&tx.verifier).as_str())
    );
    assert_eq!(param(&url, "prompt"), Some("none"));
    assert_eq!(param(&url, "login_hint"), Some("a+b%40example"));
    // 32, 16 and 16 random bytes, base64url.
    assert_eq!(
        (tx.verifier.len(), tx.state.len(), tx.nonce.len()),
        (43, 22, 22)
    );
    assert_eq!(tx.return_to, "/app?tab=2#top");
    assert!(
        tx.at > w.now - 200.0 && tx.at <= w.now,
        "the login's moment"
    );
}

#[test]
fn return_to_defaults_to_the_page_and_refuses_other_origins() {
    let mut w = world(1, 300.0);
    let (_, tx) = login_redirect(&mut w, 0, OptValue::Undefined);
    assert_eq!(tx.return_to, "/here?x=1");
    let (_, tx) = login_redirect(
        &mut w,
        0,
        OptValue::Map(vec![(
            "returnTo".into(),
            OptValue::Str("https://app.example/deep/link".into()),
        )]),
    );
    assert_eq!(tx.return_to, "/deep/link");
    for (given, want) in [
        ("https://app.example", "/"),
        ("https://app.example?x=1", "/?x=1"),
        ("https://app.example#top", "/#top"),
        ("/", "/"),
    ] {
        let options = OptValue::Map(vec![("returnTo".into(), OptValue::Str(given.into()))]);
        let (_, tx) = login_redirect(&mut w, 0, options);
        assert_eq!(tx.return_to, want, "{given}");
    }
    for bad in [
        "https://evil.example/",
        "https://app.example.evil.example/",
        "https://app.example:444/",
        "//evil.example",
        "/\\evil",
        "app",
    ] {
        let options = OptValue::Map(vec![("returnTo".into(), OptValue::Str(bad.into()))]);
        let call = w.call(0, |k, now, id| {
            k.login_redirect(now, id, "/", &random(), &options)
        });
        assert!(
            matches!(
                w.reply(0, call),
                Some(Reply::Failed(Error::InvalidArgument {
                    argument: "returnTo",
                    ..
                }))
            ),
            "{bad}"
        );
    }
    let call = w.call(0, |k, now, id| {
        k.login_redirect(now, id, "/", &random()[..63], &OptValue::Undefined)
    });
    assert!(matches!(
        w.reply(0, call),
        Some(Reply::Failed(Error::Browser { .. }))
    ));
}

#[test]
fn a_login_by_redirect_is_shared_with_every_tab() {
    let mut w = world(2, 300.0);
    let (_, tx) = login_redirect(&mut w, 0, OptValue::Undefined);
    let code = w.server.authorize(&tx.nonce);
    let href = callback(&format!(
        "code={code}&state={}&iss={ISSUER}&keep=1#frag",
        tx.state
    ));
    let reply = handle(&mut w, 0, &href, Some(&tx));
    assert_eq!(reply, Reply::Redirected(Some("/here?x=1".into())));
    // The callback's parameters left the URL at once; then the app went
    // to returnTo. The transaction is forgotten.
    assert_eq!(
        history(&w, 0),
        vec![format!("{REDIRECT}?keep=1#frag"), "/here?x=1".into()]
    );
    assert!(w.tabs[0]
        .browser
        .iter()
        .any(|c| matches!(c, Command::Forget)));
    assert_eq!(w.server.exchanges, 1);
    w.run_for(50.0);
    for t in 0..2 {
        assert!(w.tabs[t].authenticated(), "tab {t}");
        let id = w.tabs[t].keeper.id_token().expect("an ID token");
        assert_eq!(oidc::string_claim(id, "sub").as_deref(), Some("user1"));
    }
    // A tab opened now joins with no request to the provider.
    let before = (w.server.exchanges, w.server.refresh_requests);
    let t = w.open_tab();
    let call = w.call(t, |k, now, id| k.ready(now, id));
    assert_eq!(w.wait(t, call, 1_000.0), Some(Reply::Ready(true)));
    assert!(w.tabs[t].keeper.id_token().is_some());
    assert_eq!((w.server.exchanges, w.server.refresh_requests), before);
}

#[test]
fn a_callback_is_exchanged_once() {
    let mut w = world(1, 300.0);
    let (_, tx) = login_redirect(&mut w, 0, OptValue::Undefined);
    let code = w.server.authorize(&tx.nonce);
    let href = callback(&format!("code={code}&state={}&iss={ISSUER}", tx.state));
    assert!(matches!(
        handle(&mut w, 0, &href, Some(&tx)),
        Reply::Redirected(Some(_))
    ));
    // The same URL again (a reload, the back button): the transaction is
    // gone, so is the code's use.
    assert_eq!(
        handle(&mut w, 0, &href, None),
        Reply::Failed(Error::InvalidCallback {
            reason: "no login was started in this tab (the state is unknown here)"
        })
    );
    assert_eq!(w.server.exchanges, 1);
}

#[test]
fn callbacks_that_are_not_this_tabs_login_are_refused_before_any_exchange() {
    let mut w = world(1, 300.0);
    let (_, tx) = login_redirect(&mut w, 0, OptValue::Undefined);
    let code = w.server.authorize(&tx.nonce);
    let cases = [
        (format!("code={code}&state=other&iss={ISSUER}"), "the state"),
        (
            format!(
                "code={code}&state={}&iss=https%3A%2F%2Fevil.example",
                tx.state
            ),
            "iss parameter",
        ),
        // The provider promises iss (RFC 9207): a callback without it is
        // another provider's (a mix-up).
        (format!("code={code}&state={}", tx.state), "has no iss"),
    ];
    for (query, why) in cases {
        match handle(&mut w, 0, &callback(&query), Some(&tx)) {
            Reply::Failed(Error::InvalidCallback { reason }) => {
                assert!(reason.contains(why), "{query}: {reason}")
            }
            other => panic!("{query}: {other:?}"),
        }
        assert_eq!(history(&w, 0).last().map(String::as_str), Some(REDIRECT));
    }
    // Ten minutes later, the login is over.
    w.run_for(oidc::TRANSACTION_MAX_AGE_MS);
    let query = format!("code={code}&state={}&iss={ISSUER}", tx.state);
    assert!(matches!(
        handle(&mut w, 0, &callback(&query), Some(&tx)),
        Reply::Failed(Error::InvalidCallback { reason }) if reason.contains("10 minutes")
    ));
    assert_eq!(w.server.exchanges, 0);
    assert!(!w.tabs[0].authenticated());
}

#[test]
fn the_providers_error_is_the_logins_error() {
    let mut w = world(1, 300.0);
    let (_, tx) = login_redirect(&mut w, 0, OptValue::Undefined);
    let query = format!(
        "error=login_required&error_description=End-User+is+not+logged%20in&state={}&iss={ISSUER}",
        tx.state
    );
    let reply = handle(&mut w, 0, &callback(&query), Some(&tx));
    let Reply::Failed(e) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(e.code(), "login_failed");
    assert_eq!(e.oauth_error(), Some("login_required"));
    assert_eq!(e.description(), Some("End-User is not logged in"));
    assert_eq!(e.status(), None);
    let json = wire::error(&e);
    assert!(
        json.contains(r#""errorDescription":"End-User is not logged in""#),
        "{json}"
    );
    assert_eq!(history(&w, 0), vec![REDIRECT.to_string()]);
    // An error with another state is no answer to this tab's login.
    let query = "error=access_denied&state=forged";
    assert!(matches!(
        handle(&mut w, 0, &callback(query), Some(&tx)),
        Reply::Failed(Error::InvalidCallback { .. })
    ));
}

#[test]
fn a_page_that_is_no_callback_is_left_alone() {
    let mut w = world(1, 300.0);
    for href in [
        "https://app.example/",
        "https://app.example/callback",
        "https://app.example/callback?state=x",
        "https://app.example/other?code=c&state=s",
    ] {
        assert_eq!(
            handle(&mut w, 0, href, None),
            Reply::Redirected(None),
            "{href}"
        );
    }
    assert!(w.tabs[0].browser.is_empty());
}

#[test]
fn an_id_token_for_another_login_is_refused() {
    let mut w = world(1, 300.0);
    let (_, tx) = login_redirect(&mut w, 0, OptValue::Undefined);
    // The provider answers with an ID token of another login's nonce.
    let code = w.server.authorize("someone-elses-nonce");
    let href = callback(&format!("code={code}&state={}&iss={ISSUER}", tx.state));
    assert_eq!(
        handle(&mut w, 0, &href, Some(&tx)),
        Reply::Failed(Error::InvalidIdToken {
            check: "nonce is not the login's"
        })
    );
    assert!(!w.tabs[0].authenticated());
    // A provider of another issuer's tokens.
    w.server.provider = Some(Provider {
        issuer: "https://other.example".into(),
        ..provider("user1")
    });
    let (_, tx) = login_redirect(&mut w, 0, OptValue::Undefined);
    let code = w.server.authorize(&tx.nonce);
    let href = callback(&format!("code={code}&state={}&iss={ISSUER}", tx.state));
    assert_eq!(
        handle(&mut w, 0, &href, Some(&tx)),
        Reply::Failed(Error::InvalidIdToken {
            check: "iss is not the issuer"
        })
    );
}

#[test]
fn a_refresh_keeps_the_subject_or_ends_the_session() {
    let mut w = world(2, 30.0);
    assert!(matches!(log_in(&mut w, 0), Reply::Redirected(Some(_))));
    w.run_for(31_000.0);
    assert_eq!(w.server.refresh_requests, 1, "one refresh for both tabs");
    for t in 0..2 {
        assert!(w.tabs[t].authenticated(), "tab {t}");
    }
    // Now the provider hands out another user's ID token.
    if let Some(p) = &mut w.server.provider {
        p.sub = "user2".into();
    }
    w.run_for(31_000.0);
    for t in 0..2 {
        assert!(!w.tabs[t].authenticated(), "tab {t} ended the session");
        assert_eq!(logouts(&w, t).len(), 1, "tab {t}");
    }
    let refreshed_by = (0..2)
        .find(|t| logouts(&w, *t) == vec![LogoutReason::RefreshFailed])
        .expect("the tab that refreshed says why");
    assert!(w.tabs[refreshed_by].events.iter().any(|e| matches!(
        e,
        Event::RefreshError { error: Error::InvalidIdToken { check }, retrying: false, .. }
            if check.contains("sub changed")
    )));
}

#[test]
fn a_refresh_without_an_id_token_keeps_the_first() {
    let mut w = world(1, 30.0);
    if let Some(p) = &mut w.server.provider {
        p.on_refresh = false;
    }
    log_in(&mut w, 0);
    let first = w.tabs[0].keeper.id_token().map(String::from);
    w.run_for(31_000.0);
    assert_eq!(w.server.refresh_requests, 1);
    assert!(w.tabs[0].authenticated());
    assert_eq!(w.tabs[0].keeper.id_token().map(String::from), first);
}

#[test]
fn without_a_refresh_token_the_session_ends_at_expiry_in_every_tab() {
    // As a provider that dropped offline_access: no refresh token.
    let mut w = world(2, 30.0);
    let (_, tx) = login_redirect(&mut w, 0, OptValue::Undefined);
    let code = w.server.authorize(&tx.nonce);
    w.server.no_refresh_tokens = true;
    let href = callback(&format!("code={code}&state={}&iss={ISSUER}", tx.state));
    assert!(matches!(
        handle(&mut w, 0, &href, Some(&tx)),
        Reply::Redirected(Some(_))
    ));
    w.run_for(50.0);
    assert!(w.tabs[1].authenticated());
    // refresh() cannot renew it, and says why; the session stays.
    let call = w.call(0, |k, now, id| k.refresh(now, id));
    assert!(matches!(
        w.wait(0, call, 100.0),
        Some(Reply::Failed(Error::InvalidTokenResponse { reason })) if reason.contains("offline_access")
    ));
    assert_eq!(w.tabs[0].keeper.refresh_at(), None);
    w.run_for(29_000.0);
    assert!(w.tabs[0].authenticated() && w.tabs[1].authenticated());
    w.run_for(2_000.0);
    for t in 0..2 {
        assert!(!w.tabs[t].authenticated(), "tab {t}");
        assert_eq!(logouts(&w, t), vec![LogoutReason::Expired], "tab {t}");
    }
    assert_eq!(w.server.refresh_requests, 0);
}

#[test]
fn a_failed_discovery_fails_ready_and_is_asked_again() {
    let mut w = World::new(oidc_settings(&[]), 300.0);
    let t = w.open_tab();
    w.tabs[t].discovery = Some((503, OptValue::Undefined));
    let call = w.call(t, |k, now, id| k.ready(now, id));
    match w.wait(t, call, 1_000.0) {
        Some(Reply::Failed(Error::DiscoveryFailed { reason })) => {
            assert_eq!(reason, "the issuer answered HTTP 503")
        }
        other => panic!("{other:?}"),
    }
    w.tabs[t].discovery = None;
    let call = w.call(t, |k, now, id| k.ready(now, id));
    assert_eq!(w.wait(t, call, 1_000.0), Some(Reply::Ready(false)));
    // A document of another issuer is refused, naming both.
    let mut w = World::new(oidc_settings(&[]), 300.0);
    let t = w.open_tab();
    let doc = OptValue::from_json(
        Some(
            r#"{"issuer":"https://idp.example/","authorization_endpoint":"https://idp.example/a","token_endpoint":"https://idp.example/t"}"#,
        ),
        1 << 16,
    );
    w.tabs[t].discovery = Some((200, doc));
    let call = w.call(t, |k, now, id| k.ready(now, id));
    match w.wait(t, call, 1_000.0) {
        Some(Reply::Failed(Error::DiscoveryFailed { reason })) => assert_eq!(
            reason,
            r#"the document's issuer "https://idp.example/" is not the configured one "https://idp.example""#
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_tab_takes_no_session_before_its_discovery_nor_another_clients() {
    let mut w = world(1, 300.0);
    log_in(&mut w, 0);
    // A new tab whose discovery has not come yet ignores the session.
    let t = w.open_tab();
    let session = tokenkeeper_core::protocol::Message::Session {
        gen: 5,
        tokens: w.tabs[0]
            .keeper
            .session()
            .tokens()
            .cloned()
            .expect("tokens"),
        until: None,
        skew: None,
    };
    let data = encode(&session, "tab-x");
    let now = w.now;
    w.tabs[t].keeper.handle_tab_message(now, &data, false);
    assert!(!w.tabs[t].authenticated());
    w.run_for(100.0);
    // After it, a session with another client's ID token is refused.
    let mut tokens = w.tabs[0]
        .keeper
        .session()
        .tokens()
        .cloned()
        .expect("tokens");
    tokens.id = Some(jwt(&format!(
        r#"{{"iss":"{ISSUER}","aud":"other","sub":"mallory","iat":1,"exp":2}}"#
    )));
    let hostile = tokenkeeper_core::protocol::Message::Session {
        gen: u64::from(u32::MAX),
        tokens,
        until: None,
        skew: None,
    };
    let now = w.now;
    w.tabs[t]
        .keeper
        .handle_tab_message(now, &encode(&hostile, "tab-x"), false);
    assert!(!w.tabs[t].authenticated());
    w.tabs[t].keeper.handle_tab_message(now, &data, false);
    assert!(w.tabs[t].authenticated());
}

#[test]
fn logout_revokes_at_the_provider_and_logout_redirect_ends_its_session() {
    let mut w = world(2, 300.0);
    log_in(&mut w, 0);
    w.run_for(50.0);
    let rt = w.tabs[0]
        .keeper
        .session()
        .refresh_token()
        .expect("a refresh token");
    let notice = w.logout(0).expect("a revocation");
    assert_eq!(notice.url, format!("{ISSUER}/revoke"));
    let request = wire::logout_request(w.tabs[0].keeper.settings(), &notice);
    assert!(
        request.contains(&format!(
            r#""b":"token={rt}&token_type_hint=refresh_token&client_id=spa""#
        )),
        "{request}"
    );
    assert!(!request.contains("Authorization"), "{request}");
    w.run_for(50.0);
    assert!(!w.tabs[1].authenticated());
    assert_eq!(logouts(&w, 1), vec![LogoutReason::Remote]);

    log_in(&mut w, 0);
    let id = w.tabs[0].keeper.id_token().map(String::from).expect("id");
    let now = w.now;
    let (notice, go) = w.tabs[0]
        .keeper
        .logout_redirect(now, Some("https://app.example/bye".into()))
        .expect("logoutRedirect");
    assert!(notice.is_some());
    let go = go.expect("a page to go to");
    assert!(go.starts_with(&format!("{ISSUER}/end?id_token_hint={id}&client_id=spa&")));
    assert_eq!(
        param(&go, "post_logout_redirect_uri"),
        Some("https%3A%2F%2Fapp.example%2Fbye")
    );
    assert!(!w.tabs[0].authenticated());
}

/// A command as the executor parses it.
fn parsed(command: &Command, settings: &tokenkeeper_core::config::Settings) -> serde_json::Value {
    serde_json::from_str(&wire::command(command, "tab-1", settings)).expect("JSON")
}

#[test]
fn the_executor_is_told_each_step_in_full() {
    let mut w = world(1, 300.0);
    let (_, tx) = login_redirect(&mut w, 0, OptValue::Undefined);
    let settings = w.tabs[0].keeper.settings().clone();
    let config: serde_json::Value =
        serde_json::from_str(&wire::executor_config(&settings)).expect("JSON");
    assert_eq!(
        config["logins"], true,
        "this keeper keeps logins in sessionStorage"
    );
    assert_eq!(
        parsed(
            &Command::Discover {
                url: oidc::discovery_url(ISSUER)
            },
            &settings
        ),
        serde_json::json!({"c": "discover", "url": "https://idp.example/.well-known/openid-configuration"})
    );
    let exchange = parsed(
        &Command::Exchange {
            call: tokenkeeper_core::keeper::CallId(7),
            code: "c o+de".into(),
            verifier: tx.verifier.clone(),
            proof: None,
        },
        &settings,
    );
    assert_eq!(exchange["c"], "exchange");
    assert_eq!(exchange["id"], 7);
    assert_eq!(exchange["q"]["url"], "https://idp.example/token");
    assert_eq!(exchange["q"]["cr"], "same-origin");
    assert_eq!(
        exchange["q"]["h"]["Content-Type"],
        "application/x-www-form-urlencoded;charset=UTF-8"
    );
    assert_eq!(
        exchange["q"]["b"],
        format!(
            "grant_type=authorization_code&code=c+o%2Bde&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback&client_id=spa&code_verifier={}",
            tx.verifier
        )
    );
    let navigate = w.tabs[0]
        .browser
        .iter()
        .find(|c| matches!(c, Command::Navigate { .. }))
        .cloned()
        .expect("navigate");
    let n = parsed(&navigate, &settings);
    assert_eq!(n["c"], "navigate");
    let stored = OptValue::from_json(n["tx"].as_str(), 1 << 16);
    assert_eq!(oidc::read_transaction(&stored), Some(tx));
    assert!(n["url"]
        .as_str()
        .unwrap()
        .starts_with("https://idp.example/auth?response_type=code&"));
    assert_eq!(
        parsed(&Command::History { url: "/app".into() }, &settings),
        serde_json::json!({"c": "history", "url": "/app"})
    );
    assert_eq!(
        parsed(&Command::Forget, &settings),
        serde_json::json!({"c": "forget"})
    );
    let settle = |reply| Command::Settle {
        call: tokenkeeper_core::keeper::CallId(3),
        reply,
    };
    assert_eq!(
        parsed(&settle(Reply::Redirected(Some("/x".into()))), &settings),
        serde_json::json!({"c": "settle", "id": 3, "r": "redirected", "to": "/x"})
    );
    assert_eq!(
        parsed(&settle(Reply::Redirected(None)), &settings),
        serde_json::json!({"c": "settle", "id": 3, "r": "redirected"})
    );
    // A refresh is the form grant with client_id, without the login's scope.
    log_in(&mut w, 0);
    let rt = w.tabs[0].keeper.session().refresh_token().expect("rt");
    let q: serde_json::Value = serde_json::from_str(&wire::refresh_request(
        w.tabs[0].keeper.settings(),
        Some(&rt),
        None,
    ))
    .expect("JSON");
    assert_eq!(q["url"], "https://idp.example/token");
    assert_eq!(
        q["b"],
        format!("grant_type=refresh_token&refresh_token={rt}&client_id=spa")
    );
}

#[test]
fn logout_redirect_without_an_end_session_endpoint_goes_to_the_uri() {
    let mut w = World::new(
        oidc_settings(&[("postLogoutRedirectUri", OptValue::Str("/bye".into()))]),
        300.0,
    );
    w.server.provider = Some(provider("user1"));
    let t = w.open_tab();
    let doc = OptValue::from_json(
        Some(&format!(
            r#"{{"issuer":"{ISSUER}","authorization_endpoint":"{ISSUER}/auth","token_endpoint":"{ISSUER}/token"}}"#
        )),
        1 << 16,
    );
    w.tabs[t].discovery = Some((200, doc));
    w.run_for(100.0);
    // No iss parameter promised: a callback without one is taken.
    let (_, tx) = login_redirect(&mut w, t, OptValue::Undefined);
    let code = w.server.authorize(&tx.nonce);
    let href = callback(&format!("code={code}&state={}", tx.state));
    assert!(matches!(
        handle(&mut w, t, &href, Some(&tx)),
        Reply::Redirected(Some(_))
    ));
    let now = w.now;
    let (notice, go) = w.tabs[t]
        .keeper
        .logout_redirect(now, None)
        .expect("logoutRedirect");
    // No revocation endpoint either: nothing to tell, and the option's URI.
    assert_eq!(notice, None);
    assert_eq!(go.as_deref(), Some("https://app.example/bye"));
    assert!(!w.tabs[t].authenticated());
    // A keeper without issuer has no such calls.
    let mut plain = World::new(settings(&[]), 300.0);
    let p = plain.open_tab();
    let now = plain.now;
    assert!(matches!(
        plain.tabs[p].keeper.logout_redirect(now, None),
        Err(Error::InvalidOption { option, .. }) if option == "issuer"
    ));
    let call = plain.call(p, |k, now, id| {
        k.handle_redirect(now, id, REDIRECT, &OptValue::Undefined)
    });
    assert!(matches!(
        plain.reply(p, call),
        Some(Reply::Failed(Error::InvalidOption { .. }))
    ));
}

#[test]
fn a_stale_transaction_is_forgotten_when_the_keeper_starts() {
    let mut w = world(1, 300.0);
    let (_, tx) = login_redirect(&mut w, 0, OptValue::Undefined);
    let stored = stored(&tx);
    let now = w.now;
    assert!(!w.tabs[0].keeper.stale_transaction(now, &stored));
    w.run_for(oidc::TRANSACTION_MAX_AGE_MS);
    let now = w.now;
    assert!(w.tabs[0].keeper.stale_transaction(now, &stored));
    assert_eq!(w.tabs[0].keeper.poll_command(), Some(Command::Forget));
    // And a page that is no callback forgets it too.
    assert_eq!(
        handle(&mut w, 0, "https://app.example/", Some(&tx)),
        Reply::Redirected(None)
    );
    assert!(matches!(w.tabs[0].browser.last(), Some(Command::Forget)));
}

#[test]
fn tokens_wait_for_the_discovery() {
    let mut w = World::new(oidc_settings(&[]), 300.0);
    let t = w.open_tab();
    let grant = tokenkeeper_core::token::RawGrant {
        access_token: Some("at".into()),
        expires_in: Some(60.0),
        ..Default::default()
    };
    let now = w.now;
    // The endpoints are not known yet: there would be nowhere to refresh.
    assert!(matches!(
        w.tabs[t].keeper.set_tokens(now, grant.clone()),
        Err(Error::DiscoveryFailed { reason }) if reason.contains("await ready()")
    ));
    w.run_for(100.0);
    let now = w.now;
    assert_eq!(w.tabs[t].keeper.set_tokens(now, grant), Ok(()));
    assert!(w.tabs[t].authenticated());
}

#[test]
fn a_discovery_answer_nobody_asked_for_changes_nothing() {
    let mut w = world(1, 300.0);
    let now = w.now;
    // A late second answer (another keeper's fetch, say) after this one's.
    w.tabs[0]
        .keeper
        .handle_discovery(now, 503, &OptValue::Undefined);
    let grant = tokenkeeper_core::token::RawGrant {
        access_token: Some("at".into()),
        expires_in: Some(60.0),
        ..Default::default()
    };
    assert_eq!(w.tabs[0].keeper.set_tokens(now, grant), Ok(()));
    // After free(), an answer settles nothing and asks for nothing.
    let mut w = World::new(oidc_settings(&[]), 300.0);
    let t = w.open_tab();
    let call = w.call(t, |k, now, id| k.ready(now, id));
    w.tabs[t].keeper.free();
    w.drain(t);
    assert_eq!(w.reply(t, call), Some(Reply::Failed(Error::Freed)));
    let replies = w.tabs[t].replies.len();
    let now = w.now;
    w.tabs[t]
        .keeper
        .handle_discovery(now, 200, &discovery_doc());
    w.drain(t);
    assert_eq!(w.tabs[t].replies.len(), replies);
    assert_eq!(w.tabs[t].keeper.poll_command(), None);
}

#[test]
fn login_options_are_checked() {
    let mut w = world(1, 300.0);
    let options = OptValue::Map(vec![
        ("returnTo".into(), OptValue::Undefined),
        ("prompt".into(), OptValue::Null),
        (
            "authorizationParams".into(),
            OptValue::Map(vec![(
                "audience".into(),
                OptValue::Str("https://api".into()),
            )]),
        ),
    ]);
    let (url, tx) = login_redirect(&mut w, 0, options);
    assert_eq!(
        tx.return_to, "/here?x=1",
        "an undefined returnTo is the default"
    );
    assert_eq!(param(&url, "prompt"), None);
    assert_eq!(param(&url, "audience"), Some("https%3A%2F%2Fapi"));
    let refused = |w: &mut World, options: OptValue| {
        let call = w.call(0, |k, now, id| {
            k.login_redirect(now, id, "/", &random(), &options)
        });
        match w.reply(0, call) {
            Some(Reply::Failed(e)) => e,
            other => panic!("{other:?}"),
        }
    };
    let e = refused(
        &mut w,
        OptValue::Map(vec![("prompt".into(), OptValue::Num(5.0))]),
    );
    assert_eq!(
        e,
        Error::InvalidArgument {
            argument: "options",
            reason: "returnTo, prompt and loginHint must be strings"
        }
    );
    let e = refused(
        &mut w,
        OptValue::Map(vec![("redirectUri".into(), OptValue::Str("/x".into()))]),
    );
    assert_eq!(
        e,
        Error::InvalidArgument {
            argument: "options",
            reason: "takes returnTo, prompt, loginHint and authorizationParams only"
        }
    );
    let e = refused(&mut w, OptValue::Str("/app".into()));
    assert!(matches!(
        e,
        Error::InvalidArgument {
            argument: "options",
            ..
        }
    ));
    let e = refused(
        &mut w,
        OptValue::Map(vec![(
            "authorizationParams".into(),
            OptValue::Map(vec![(
                "code_challenge".into(),
                OptValue::Str("mine".into()),
            )]),
        )]),
    );
    assert!(
        matches!(e, Error::InvalidOption { ref option, .. } if option == "authorizationParams"),
        "{e:?}"
    );
}

#[test]
fn two_code_exchanges_out_are_each_answered_by_their_own() {
    let mut w = world(1, 300.0);
    let options = |to: &str| OptValue::Map(vec![("returnTo".into(), OptValue::Str(to.into()))]);
    let (_, first) = login_redirect(&mut w, 0, options("/first"));
    let (_, second) = login_redirect(&mut w, 0, options("/second"));
    let code1 = w.server.authorize(&first.nonce);
    let code2 = w.server.authorize(&second.nonce);
    let (s1, s2) = (stored(&first), stored(&second));
    let href1 = callback(&format!("code={code1}&state={}&iss={ISSUER}", first.state));
    let href2 = callback(&format!("code={code2}&state={}&iss={ISSUER}", second.state));
    // Both out at once (a page that called handleRedirect twice, each with
    // its transaction); the second one's answer comes first.
    let a = w.call(0, |k, now, id| k.handle_redirect(now, id, &href1, &s1));
    let b = w.call(0, |k, now, id| k.handle_redirect(now, id, &href2, &s2));
    let mut other = Server::new(300.0);
    other.provider = Some(Provider {
        nonce: Some(second.nonce.clone()),
        ..provider("user1")
    });
    let now = w.now;
    let answer = tokenkeeper_core::keeper::TokenAnswer::Grant {
        grant: other.issue(now),
        timing: instant(now),
    };
    w.tabs[0].keeper.handle_login_answer(now, b, answer);
    w.drain(0);
    assert_eq!(
        w.reply(0, b),
        Some(Reply::Redirected(Some("/second".into())))
    );
    assert_eq!(
        w.wait(0, a, 1_000.0),
        Some(Reply::Redirected(Some("/first".into())))
    );
    assert_eq!(w.server.exchanges, 2);
}

#[test]
fn logout_redirect_as_the_executor_reads_it() {
    use tokenkeeper_core::testing::TestUrls;
    let mut w = world(1, 300.0);
    log_in(&mut w, 0);
    let now = w.now;
    let bad = OptValue::Map(vec![("postLogoutRedirectUri".into(), OptValue::Num(1.0))]);
    let e: serde_json::Value = serde_json::from_str(&wire::logout_redirect(
        &mut w.tabs[0].keeper,
        now,
        &bad,
        &TestUrls,
    ))
    .unwrap();
    assert_eq!(e["e"]["code"], "invalid_argument");
    assert!(w.tabs[0].authenticated(), "a bad argument logs nobody out");
    let e: serde_json::Value = serde_json::from_str(&wire::logout_redirect(
        &mut w.tabs[0].keeper,
        now,
        &OptValue::Str("/bye".into()),
        &TestUrls,
    ))
    .unwrap();
    assert_eq!(e["e"]["code"], "invalid_argument");
    let options = OptValue::Map(vec![(
        "postLogoutRedirectUri".into(),
        OptValue::Str("/bye".into()),
    )]);
    let out: serde_json::Value = serde_json::from_str(&wire::logout_redirect(
        &mut w.tabs[0].keeper,
        now,
        &options,
        &TestUrls,
    ))
    .unwrap();
    assert_eq!(out["q"]["url"], format!("{ISSUER}/revoke"));
    assert!(out["q"]["b"].as_str().unwrap().starts_with("token=rt-"));
    let go = out["go"].as_str().unwrap();
    assert!(
        go.starts_with(&format!("{ISSUER}/end?id_token_hint=")),
        "{go}"
    );
    assert!(
        go.ends_with("&client_id=spa&post_logout_redirect_uri=https%3A%2F%2Fapp.example%2Fbye"),
        "{go}"
    );
    assert!(!w.tabs[0].authenticated());
    // Logged out already: nothing to revoke, still the provider's logout.
    for options in [OptValue::Undefined, OptValue::Map(vec![])] {
        let out: serde_json::Value = serde_json::from_str(&wire::logout_redirect(
            &mut w.tabs[0].keeper,
            now,
            &options,
            &TestUrls,
        ))
        .unwrap();
        assert_eq!(out.get("q"), None);
        assert_eq!(out["go"], format!("{ISSUER}/end?client_id=spa"));
    }
}
