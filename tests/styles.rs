//! The server shapes the SDK must drive unmodified: JSON and form refresh,
//! cookie mode, a custom raw header, a renewed token in a response header.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn refresh_and_call(keeper: &tokenkeeper::TokenKeeper) {
    let before = keeper.generation();
    settle(keeper.refresh())
        .await
        .unwrap_or_else(|e| panic!("refresh: {}", message(&e)));
    assert!(keeper.generation() > before);
    let resp = kfetch(keeper, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
    let s = stats(server()).await;
    assert_eq!(num(&s, "refreshes"), 1.0, "{}", stringify(&s));
    assert_eq!(num(&s, "reuse_detections"), 0.0);
}

#[wasm_bindgen_test]
async fn json_style() {
    setup("").await;
    let keeper = keeper(&[("refreshStyle", "json".into())]);
    login(&keeper).await;
    refresh_and_call(&keeper).await;
    assert_eq!(
        num(
            &field(&stats(server()).await, "by_endpoint"),
            "POST /token/refresh"
        ),
        1.0
    );
}

#[wasm_bindgen_test]
async fn form_style_rfc6749() {
    setup("").await;
    let keeper = keeper(&[
        ("refreshUrl", url(server(), "/oauth/token").into()),
        ("refreshStyle", "form".into()),
        ("clientId", "demo-spa".into()),
    ]);
    login(&keeper).await;
    refresh_and_call(&keeper).await;
    assert_eq!(
        num(
            &field(&stats(server()).await, "by_endpoint"),
            "POST /oauth/token"
        ),
        1.0
    );
}

#[wasm_bindgen_test]
async fn cookie_style_refresh_token_never_seen_by_the_page() {
    setup(r#"{"refresh_cookie":true}"#).await;
    let keeper = keeper(&[("refreshStyle", "cookie".into())]);
    login(&keeper).await;
    refresh_and_call(&keeper).await;
    // Refresh twice more: the cookie rotates each time.
    settle(keeper.refresh()).await.unwrap();
    settle(keeper.refresh()).await.unwrap();
    assert_eq!(num(&stats(server()).await, "refreshes"), 3.0);
    let html: web_sys::HtmlDocument =
        wasm_bindgen::JsCast::unchecked_into(web_sys::window().unwrap().document().unwrap());
    assert!(
        !html.cookie().unwrap().contains("tk_refresh"),
        "the cookie is HttpOnly"
    );
    settle(keeper.logout()).await.unwrap();
}

#[wasm_bindgen_test]
async fn custom_raw_header() {
    setup("").await;
    let keeper = keeper(&[("header", "x-auth-token".into()), ("scheme", JsValue::NULL)]);
    login(&keeper).await;
    let resp = kfetch(&keeper, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
    let log = request_log(server()).await;
    let entry = log
        .iter()
        .find(|e| {
            field(e, "path").as_string().as_deref() == Some("/api/me")
                && field(e, "method").as_string().as_deref() == Some("GET")
        })
        .unwrap();
    assert_eq!(field(&entry, "x_auth_token").as_bool(), Some(true));
    assert_eq!(field(&entry, "authorization").as_bool(), Some(false));
}

#[wasm_bindgen_test]
async fn renewed_token_in_a_response_header_is_adopted() {
    setup(r#"{"renew_header":"x-renewed-token","renew_within_ms":3600000}"#).await;
    let keeper = keeper(&[("renewHeader", "x-renewed-token".into())]);
    login(&keeper).await;
    let refreshes = record(&keeper, "refresh");
    let before = keeper.generation();
    let resp = kfetch(&keeper, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
    assert!(
        keeper.generation() > before,
        "the renewed token was adopted"
    );
    assert_eq!(refreshes.len(), 1);
    assert_eq!(
        field(&refreshes.all()[0], "source").as_string().as_deref(),
        Some("renew-header")
    );
    let resp = kfetch(&keeper, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
    assert!(num(&stats(server()).await, "renewals") >= 1.0);
}
