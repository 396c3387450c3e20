//! keeper.fetch: the token goes to allowed origins only, a 401 refreshes once
//! and replays, concurrent callers share one refresh.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn post_json(body: &str) -> JsValue {
    obj(&[
        ("method", "POST".into()),
        ("body", body.into()),
        (
            "headers",
            obj(&[("content-type", "application/json".into())]),
        ),
    ])
}

/// A token the client cannot see expire (no exp, no expires_in) gets a 401:
/// the POST and its JSON body are replayed after one refresh.
#[wasm_bindgen_test]
async fn post_with_json_body_is_replayed_after_401() {
    setup(r#"{"no_expiry":true,"access_ttl_ms":1000}"#).await;
    let keeper = keeper(&[]);
    login(&keeper).await;
    assert_eq!(keeper.expires_at(), None, "no expiry hint: no timer");
    let refreshes = record(&keeper, "refresh");
    sleep(1300).await;
    let resp = kfetch(
        &keeper,
        &url(server(), "/api/echo"),
        post_json(r#"{"x":1}"#),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body = json(&resp).await;
    assert_eq!(field(&body, "method").as_string().as_deref(), Some("POST"));
    assert_eq!(
        field(&body, "body").as_string().as_deref(),
        Some(r#"{"x":1}"#)
    );
    let s = stats(server()).await;
    assert_eq!(num(&s, "refreshes"), 1.0);
    assert_eq!(num(&s, "api_401"), 1.0);
    assert_eq!(refreshes.len(), 1);
}

/// 20 concurrent calls on an expired token: one refresh.
#[wasm_bindgen_test]
async fn concurrent_calls_on_an_expired_token_share_one_refresh() {
    setup(r#"{"access_ttl_ms":1500}"#).await;
    let keeper = keeper(&[]);
    login(&keeper).await;
    sleep(1700).await;
    for resp in fetch_all(&keeper, &url(server(), "/api/data"), 20).await {
        assert_eq!(resp.status(), 200);
    }
    let s = stats(server()).await;
    assert_eq!(num(&s, "refreshes"), 1.0, "{}", stringify(&s));
    assert_eq!(num(&s, "refresh_requests"), 1.0);
    assert_eq!(num(&s, "api_401"), 0.0);
}

/// 20 concurrent calls that all get a 401 (no expiry hint): one refresh,
/// every call replayed with the new token.
#[wasm_bindgen_test]
async fn concurrent_401s_share_one_refresh() {
    setup(r#"{"no_expiry":true,"access_ttl_ms":1000}"#).await;
    let keeper = keeper(&[]);
    login(&keeper).await;
    sleep(1300).await;
    for resp in fetch_all(&keeper, &url(server(), "/api/data"), 20).await {
        assert_eq!(resp.status(), 200);
    }
    let s = stats(server()).await;
    assert_eq!(num(&s, "refreshes"), 1.0, "{}", stringify(&s));
    assert_eq!(num(&s, "reuse_detections"), 0.0);
}

/// The header never reaches an origin outside allowedOrigins.
#[wasm_bindgen_test]
async fn token_goes_only_to_allowed_origins() {
    setup("").await;
    reset(other_server()).await;
    let keeper = keeper(&[]);
    login(&keeper).await;
    let resp = kfetch(&keeper, &url(other_server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 401, "the other origin got no token");
    let log = request_log(other_server()).await;
    assert!(log.length() >= 1);
    for entry in log.iter() {
        assert_eq!(
            field(&entry, "authorization").as_bool(),
            Some(false),
            "{}",
            stringify(&entry)
        );
        assert_eq!(field(&entry, "x_auth_token").as_bool(), Some(false));
    }
    // A 401 from a foreign origin does not refresh anything.
    assert_eq!(num(&stats(server()).await, "refresh_requests"), 0.0);
    // The allowed origin does get it.
    let resp = kfetch(&keeper, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
}

/// A second 401 after the replay goes back to the app and raises `expired`.
#[wasm_bindgen_test]
async fn a_second_401_reaches_the_app_and_raises_expired() {
    // Access tokens die after 1 ms: even the refreshed one is refused.
    setup(r#"{"no_expiry":true,"access_ttl_ms":1}"#).await;
    let keeper = keeper(&[]);
    login(&keeper).await;
    let expired = record(&keeper, "expired");
    sleep(20).await;
    let resp = kfetch(&keeper, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(expired.len(), 1);
    let s = stats(server()).await;
    assert_eq!(num(&s, "refreshes"), 1.0, "refresh once, replay once");
    assert_eq!(num(&s, "api_401"), 2.0);
    assert!(
        keeper.is_authenticated(),
        "a 401 alone does not end the session"
    );
}

/// Without a session, keeper.fetch is plain fetch.
#[wasm_bindgen_test]
async fn without_a_session_requests_go_out_untouched() {
    setup("").await;
    let keeper = keeper(&[]);
    let resp = kfetch(&keeper, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 401);
    let log = request_log(server()).await;
    assert_eq!(field(&log.get(0), "authorization").as_bool(), Some(false));
}

/// A redirect from an allowed origin to another one never carries the token:
/// the browser drops `Authorization` itself; a custom header is kept by
/// browsers, so the keeper does not let such a request follow redirects.
#[wasm_bindgen_test]
async fn the_token_does_not_follow_a_redirect_to_another_origin() {
    for (header, scheme) in [
        ("Authorization", JsValue::from_str("Bearer")),
        ("x-auth-token", JsValue::NULL),
    ] {
        setup("").await;
        reset(other_server()).await;
        let keeper = keeper(&[("header", header.into()), ("scheme", scheme)]);
        login(&keeper).await;
        let target = url(other_server(), "/api/me");
        let via = url(
            server(),
            &format!(
                "/redirect?to={}",
                String::from(js_sys::encode_uri_component(&target))
            ),
        );
        // The final answer may be the other origin's 401 or a CORS failure:
        // what matters is what reached the other origin.
        let _ = settle(keeper.fetch(via.into(), JsValue::UNDEFINED)).await;
        let first = request_log(server()).await;
        assert!(
            first.iter().any(
                |e| field(&e, "path").as_string().as_deref() == Some("/redirect")
                    && (field(&e, "authorization").as_bool() == Some(true)
                        || field(&e, "x_auth_token").as_bool() == Some(true))
            ),
            "the allowed origin got the token: {}",
            stringify(&first)
        );
        let log = request_log(other_server()).await;
        for entry in log.iter() {
            assert_eq!(
                field(&entry, "authorization").as_bool(),
                Some(false),
                "{header}: {}",
                stringify(&entry)
            );
            assert_eq!(
                field(&entry, "x_auth_token").as_bool(),
                Some(false),
                "{header}: {}",
                stringify(&entry)
            );
        }
    }
}

/// A redirect within the allowed origin keeps working with the default header.
#[wasm_bindgen_test]
async fn a_same_origin_redirect_keeps_the_token() {
    setup("").await;
    let keeper = keeper(&[]);
    login(&keeper).await;
    let target = url(server(), "/api/me");
    let via = url(
        server(),
        &format!(
            "/redirect?to={}",
            String::from(js_sys::encode_uri_component(&target))
        ),
    );
    let resp = kfetch(&keeper, &via, JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.redirected());
}
