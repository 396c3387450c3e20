//! keeper.fetch: the token goes to allowed origins only, a 401 refreshes once
//! and replays, concurrent callers share one refresh.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use wasm_bindgen::{JsCast, JsValue};
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

/// Every shape of init fetch takes keeps its headers and gets the token:
/// headers as a `Headers`, as pairs and as a record; the caller's init and
/// headers are left as they were (the token goes only into the request).
/// An init that inherits its members (not a plain object) is read as fetch
/// reads it, and a `URL` object is a URL.
#[wasm_bindgen_test]
async fn every_shape_of_input_and_init_keeps_its_headers_and_gets_the_token() {
    setup("").await;
    let keeper = keeper(&[]);
    login(&keeper).await;
    let json_type = "application/json";
    let as_headers = web_sys::Headers::new().unwrap();
    as_headers.set("content-type", json_type).unwrap();
    let pair = js_sys::Array::of2(&"content-type".into(), &json_type.into());
    let record = obj(&[("content-type", json_type.into())]);
    for headers in [
        JsValue::from(as_headers.clone()),
        js_sys::Array::of1(&pair).into(),
        record.clone(),
    ] {
        let init = obj(&[
            ("method", "POST".into()),
            ("body", r#"{"n":1}"#.into()),
            ("headers", headers.clone()),
        ]);
        let resp = kfetch(&keeper, &url(server(), "/api/echo"), init.clone()).await;
        assert_eq!(resp.status(), 200, "{}", stringify(&headers));
        let body = json(&resp).await;
        assert_eq!(
            field(&body, "content_type").as_string().as_deref(),
            Some(json_type),
            "{}",
            stringify(&headers)
        );
        assert_eq!(
            field(&body, "body").as_string().as_deref(),
            Some(r#"{"n":1}"#)
        );
        let init: &js_sys::Object = init.unchecked_ref();
        assert_eq!(
            js_sys::Object::keys(init).length(),
            3,
            "nothing added to the init"
        );
        assert!(js_sys::Object::is(&field(init, "headers"), &headers));
    }
    assert!(
        !as_headers.has("authorization").unwrap(),
        "the caller's Headers untouched"
    );
    assert_eq!(
        js_sys::Object::keys(record.unchecked_ref::<js_sys::Object>()).length(),
        1
    );

    // Members inherited from a prototype, as a class instance has them.
    let proto = obj(&[("method", "PUT".into()), ("body", "inherited".into())]);
    let init = js_sys::Object::create(proto.unchecked_ref::<js_sys::Object>());
    let resp = kfetch(&keeper, &url(server(), "/api/echo"), init.into()).await;
    assert_eq!(resp.status(), 200);
    let body = json(&resp).await;
    assert_eq!(field(&body, "method").as_string().as_deref(), Some("PUT"));
    assert_eq!(
        field(&body, "body").as_string().as_deref(),
        Some("inherited")
    );

    // A URL object.
    let target = web_sys::Url::new(&url(server(), "/api/me")).unwrap();
    let resp = kfetch_input(&keeper, target.into(), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
    let s = stats(server()).await;
    assert_eq!(num(&s, "api_401"), 0.0, "{}", stringify(&s));
}

/// A `Request` with a body for another origin goes out untouched, body and
/// all; an invalid URL fails as fetch fails it (a `TypeError`), and the
/// keeper goes on working.
#[wasm_bindgen_test]
async fn foreign_requests_and_invalid_urls_behave_as_fetch() {
    setup("").await;
    reset(other_server()).await;
    let keeper = keeper(&[]);
    login(&keeper).await;
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&"to another origin".into());
    let request =
        web_sys::Request::new_with_str_and_init(&url(other_server(), "/api/echo"), &init).unwrap();
    let resp = kfetch_input(&keeper, request.into(), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 401, "the other origin got no token");
    let log = request_log(other_server()).await;
    let posts: Vec<JsValue> = log
        .iter()
        .filter(|e| field(e, "method").as_string().as_deref() == Some("POST"))
        .collect();
    assert_eq!(posts.len(), 1, "{}", stringify(&log));
    assert_eq!(field(&posts[0], "authorization").as_bool(), Some(false));

    let bad = settle(keeper.fetch("http://[::bad/".into(), JsValue::UNDEFINED)).await;
    let err = bad.expect_err("an invalid URL rejects");
    assert_eq!(
        js_sys::Reflect::get(&err, &"name".into())
            .unwrap()
            .as_string()
            .as_deref(),
        Some("TypeError"),
        "{}",
        message(&err)
    );
    let resp = kfetch(&keeper, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
}
