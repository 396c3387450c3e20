//! The loop the whole product stands on, proven in both browsers against the
//! real dev server: log in, then call a protected endpoint with the token.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Without the SDK: obtain tokens from /login, call /api/me with the bearer.
#[wasm_bindgen_test]
async fn login_then_call_api_with_bearer() {
    let base = server();
    setup("").await;
    let resp = request(
        "POST",
        &url(base, "/login"),
        Some(r#"{"username":"user1","password":"password1"}"#),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body = json(&resp).await;
    let access = field(&body, "access_token").as_string().unwrap();
    assert_eq!(
        field(&body, "token_type").as_string().as_deref(),
        Some("Bearer")
    );
    assert!(num(&body, "expires_in") > 0.0);

    let init = web_sys::RequestInit::new();
    let headers = web_sys::Headers::new().unwrap();
    headers
        .set("Authorization", &format!("Bearer {access}"))
        .unwrap();
    init.set_headers(&headers);
    let req = web_sys::Request::new_with_str_and_init(&url(base, "/api/me"), &init).unwrap();
    let me: web_sys::Response =
        wasm_bindgen_futures::JsFuture::from(web_sys::window().unwrap().fetch_with_request(&req))
            .await
            .unwrap()
            .into();
    assert_eq!(me.status(), 200);
    let me = json(&me).await;
    assert_eq!(field(&me, "sub").as_string().as_deref(), Some("user1"));

    // Without the token the same endpoint refuses.
    let anon = request("GET", &url(base, "/api/me"), None).await;
    assert_eq!(anon.status(), 401);
}

/// Through the wasm module: TokenKeeper logs in and its fetch attaches the token.
#[wasm_bindgen_test]
async fn keeper_logs_in_and_fetch_attaches_the_token() {
    let base = server();
    setup("").await;
    let keeper = keeper(&[]);
    assert!(!keeper.is_authenticated());
    login(&keeper).await;
    assert!(keeper.is_authenticated());
    assert!(keeper.expires_at().unwrap() > js_sys::Date::now());

    let resp = kfetch(&keeper, &url(base, "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
    let me = json(&resp).await;
    assert_eq!(field(&me, "sub").as_string().as_deref(), Some("user1"));

    let log = request_log(base).await;
    let me_calls: Vec<JsValue> = log
        .iter()
        .filter(|r| {
            field(r, "path").as_string().as_deref() == Some("/api/me")
                && field(r, "method").as_string().as_deref() == Some("GET")
        })
        .collect();
    assert_eq!(me_calls.len(), 1, "{}", stringify(&log));
    assert_eq!(field(&me_calls[0], "authorization").as_bool(), Some(true));
    let s = stats(base).await;
    assert_eq!(num(&s, "logins"), 1.0);
    assert_eq!(num(&s, "api_401"), 0.0);
}

/// Wrong credentials are a typed error with the status, and no session.
#[wasm_bindgen_test]
async fn wrong_password_is_a_typed_error() {
    let base = server();
    let keeper = keeper(&[]);
    let creds = obj(&[("username", "user1".into()), ("password", "nope".into())]);
    let err = wasm_bindgen_futures::JsFuture::from(keeper.login(url(base, "/login").into(), creds))
        .await
        .unwrap_err();
    assert_eq!(
        field(&err, "name").as_string().as_deref(),
        Some("TokenKeeperError")
    );
    assert_eq!(
        field(&err, "code").as_string().as_deref(),
        Some("login_failed")
    );
    assert_eq!(field(&err, "status").as_f64(), Some(401.0));
    assert!(!keeper.is_authenticated());
}
