//! Silent refresh ahead of expiry and how refresh errors are handled.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// With a 3 s access lifetime the token is refreshed ahead of expiry, by the
/// timer, and the app sees no 401 over several lifetimes.
#[wasm_bindgen_test]
async fn refreshed_before_expiry_over_several_lifetimes() {
    setup(r#"{"access_ttl_ms":3000}"#).await;
    let keeper = keeper(&[]);
    let refreshes = record(&keeper, "refresh");
    login(&keeper).await;
    let started = js_sys::Date::now();
    let mut calls = 0;
    while js_sys::Date::now() - started < 10_000.0 {
        let resp = kfetch(&keeper, &url(server(), "/api/data"), JsValue::UNDEFINED).await;
        assert_eq!(resp.status(), 200, "call {calls} saw {}", resp.status());
        calls += 1;
        sleep(400).await;
    }
    let s = stats(server()).await;
    assert_eq!(num(&s, "api_401"), 0.0, "{}", stringify(&s));
    assert!(num(&s, "refreshes") >= 3.0, "{}", stringify(&s));
    assert_eq!(num(&s, "reuse_detections"), 0.0);
    let by_timer = refreshes
        .all()
        .iter()
        .filter(|d| field(d, "source").as_string().as_deref() == Some("timer"))
        .count();
    assert!(
        by_timer >= 2,
        "refreshes came from the timer: {by_timer} of {}",
        refreshes.len()
    );
    assert!(keeper.expires_at().unwrap() > js_sys::Date::now());
}

/// invalid_grant ends the session, with a `logout` event saying why.
#[wasm_bindgen_test]
async fn invalid_grant_ends_the_session() {
    setup("").await;
    let keeper = keeper(&[
        ("refreshUrl", url(server(), "/oauth/token").into()),
        ("refreshStyle", "form".into()),
    ]);
    login(&keeper).await;
    let logouts = record(&keeper, "logout");
    let errors = record(&keeper, "refresh-error");
    // Forget every session on the server: the refresh token is now unknown.
    reset(server()).await;
    let err = settle(keeper.refresh()).await.unwrap_err();
    assert_eq!(code(&err), "session_ended");
    assert_eq!(
        field(&err, "error").as_string().as_deref(),
        Some("invalid_grant")
    );
    assert_eq!(field(&err, "status").as_f64(), Some(400.0));
    assert!(!keeper.is_authenticated());
    assert_eq!(logouts.len(), 1);
    assert_eq!(
        field(&logouts.all()[0], "reason").as_string().as_deref(),
        Some("refresh-failed")
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(field(&errors.all()[0], "fatal").as_bool(), Some(true));
}

/// Two 500s then success: the session is kept and refreshed.
#[wasm_bindgen_test]
async fn two_500s_then_success_keep_the_session() {
    setup("").await;
    let keeper = keeper(&[]);
    login(&keeper).await;
    let errors = record(&keeper, "refresh-error");
    let generation = keeper.generation();
    fault(r#"{"kind":"status500","count":2}"#).await;
    settle(keeper.refresh())
        .await
        .unwrap_or_else(|e| panic!("refresh: {}", message(&e)));
    assert!(keeper.is_authenticated());
    assert!(keeper.generation() > generation);
    assert_eq!(errors.len(), 2);
    for e in errors.all() {
        assert_eq!(field(&e, "retrying").as_bool(), Some(true));
        assert_eq!(field(&e, "status").as_f64(), Some(500.0));
    }
    let s = stats(server()).await;
    assert_eq!(num(&s, "refresh_requests"), 3.0);
    assert_eq!(num(&s, "refreshes"), 1.0);
    let resp = kfetch(&keeper, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
}

/// A 429's Retry-After is honoured before the next attempt.
#[wasm_bindgen_test]
async fn retry_after_is_honoured() {
    setup("").await;
    let keeper = keeper(&[]);
    login(&keeper).await;
    let errors = record(&keeper, "refresh-error");
    fault(r#"{"kind":"status429","count":1,"retry_after":2}"#).await;
    let started = js_sys::Date::now();
    settle(keeper.refresh())
        .await
        .unwrap_or_else(|e| panic!("refresh: {}", message(&e)));
    let elapsed = js_sys::Date::now() - started;
    assert!(elapsed >= 2000.0, "waited only {elapsed} ms");
    assert_eq!(errors.len(), 1);
    assert!(num(&errors.all()[0], "retryInMs") >= 2000.0);
    assert_eq!(num(&stats(server()).await, "refreshes"), 1.0);
}

/// A malformed token response is a typed error and keeps the session.
#[wasm_bindgen_test]
async fn a_malformed_token_response_keeps_the_session() {
    setup("").await;
    // The keeper reads the access token from a field the server never sends.
    let keeper = keeper(&[("fields", obj(&[("accessToken", "token".into())]))]);
    let creds = obj(&[
        ("username", "user1".into()),
        ("password", "password1".into()),
    ]);
    let err = settle(keeper.login(url(server(), "/login").into(), creds))
        .await
        .unwrap_err();
    assert_eq!(code(&err), "invalid_token_response");
    assert!(!keeper.is_authenticated());

    // With a session, a malformed refresh answer leaves it in place.
    let keeper = common::keeper(&[]);
    login(&keeper).await;
    let before = keeper.generation();
    keeper
        .set_tokens(obj(&[("refresh_token", "x".into())]))
        .unwrap_err();
    assert_eq!(
        keeper.generation(),
        before,
        "setTokens without an access token changes nothing"
    );
    assert!(keeper.is_authenticated());
}

/// A refresh answer without a usable access token is a typed error and the
/// session stays as it was.
#[wasm_bindgen_test]
async fn a_malformed_refresh_answer_keeps_the_session() {
    setup("").await;
    // Log in by hand and hand the tokens over under the field name the keeper
    // expects; the server's refresh answers then lack that field.
    let resp = request(
        "POST",
        &url(server(), "/login"),
        Some(r#"{"username":"user1","password":"password1"}"#),
    )
    .await;
    let body = json(&resp).await;
    let keeper = keeper(&[("fields", obj(&[("accessToken", "token".into())]))]);
    keeper
        .set_tokens(obj(&[
            ("token", field(&body, "access_token")),
            ("refresh_token", field(&body, "refresh_token")),
            ("expires_in", field(&body, "expires_in")),
        ]))
        .unwrap();
    let before = keeper.generation();
    let errors = record(&keeper, "refresh-error");
    let logouts = record(&keeper, "logout");
    let err = settle(keeper.refresh()).await.unwrap_err();
    assert_eq!(code(&err), "invalid_token_response");
    assert!(keeper.is_authenticated());
    assert_eq!(keeper.generation(), before);
    assert_eq!(logouts.len(), 0);
    assert!(errors.len() >= 1);
    // The token in hand still works.
    let resp = kfetch(&keeper, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
}

/// free() cancels the refresh timer and the listeners: nothing runs after it.
#[wasm_bindgen_test]
async fn free_cancels_the_timer() {
    setup(r#"{"access_ttl_ms":1500}"#).await;
    let keeper = keeper(&[]);
    login(&keeper).await;
    let called = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = called.clone();
    let cb = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |_| flag.set(true));
    keeper.on("refresh".into(), cb.as_ref().clone()).unwrap();
    drop(keeper); // what free() does from JS
    sleep(2500).await;
    assert!(!called.get(), "a refresh ran after free()");
    assert_eq!(num(&stats(server()).await, "refresh_requests"), 0.0);
}

/// A logout while a refresh is out wins: the late answer does not bring the
/// session back.
#[wasm_bindgen_test]
async fn logout_during_a_refresh_is_final() {
    setup("").await;
    let keeper = keeper(&[]);
    login(&keeper).await;
    fault(r#"{"kind":"delay","count":1,"delay_ms":800}"#).await;
    let pending = keeper.refresh();
    sleep(100).await;
    settle(keeper.logout()).await.unwrap();
    let result = settle(pending).await;
    assert_eq!(code(&result.unwrap_err()), "not_authenticated");
    assert!(!keeper.is_authenticated());
    sleep(100).await;
    assert!(!keeper.is_authenticated());
}
