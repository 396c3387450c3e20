//! The protected `/api/*` resource: token transports, echo, renewal,
//! the no-expiry shape.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{claims, s, start, start_with};

#[tokio::test]
async fn me_and_echo() {
    let srv = start().await;
    let at = s(&srv.login().await, "access_token");
    let r = srv.me(&at).await;
    assert_eq!(r.status(), StatusCode::OK);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["sub"], "user1");
    assert_eq!(me["username"], "user1");
    assert_eq!(me["jti"], claims(&at)["jti"]);
    assert_eq!(me["token_exp"], claims(&at)["exp"]);

    let payload = r#"{"order":42,"note":"héllo"}"#;
    let r = srv
        .client
        .post(srv.url("/api/orders/7"))
        .bearer_auth(&at)
        .header("content-type", "application/json")
        .header("x-request-id", "r-1")
        .header("x-auth-token", &at)
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let echo: Value = r.json().await.unwrap();
    // The app's x- headers come back; the token's own header does not.
    assert_eq!(
        echo,
        json!({"method": "POST", "path": "/api/orders/7", "sub": "user1", "body": payload,
               "content_type": "application/json", "headers": {"x-request-id": "r-1"}})
    );

    for method in [
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::DELETE,
    ] {
        let r = srv
            .client
            .request(method.clone(), srv.url("/api/data"))
            .bearer_auth(&at)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let echo: Value = r.json().await.unwrap();
        assert_eq!(echo["method"], method.as_str());
        assert_eq!(echo["body"], Value::Null);
    }
    let stats = srv.stats().await;
    assert_eq!(stats["api_ok"], 5);
    assert_eq!(stats["by_endpoint"]["POST /api/orders/7"], 1);
    assert_eq!(stats["by_endpoint"]["GET /api/me"], 1);
}

#[tokio::test]
async fn x_auth_token_header() {
    let srv = start().await;
    let at = s(&srv.login().await, "access_token");
    let r = srv
        .client
        .get(srv.url("/api/data"))
        .header("x-auth-token", &at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["sub"], "user1");
}

#[tokio::test]
async fn unauthorized_shapes() {
    let srv = start().await;
    let r = srv.get("/api/data").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_token");

    for bad in ["garbage", "a.b.c"] {
        let r = srv.me(bad).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(challenge.contains("error_description="), "{challenge}");
    }
    // Signed by another server instance (another secret).
    let other = start().await;
    let foreign = s(&other.login().await, "access_token");
    assert_eq!(srv.me(&foreign).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(srv.stats().await["api_401"], 4);
}

#[tokio::test]
async fn renew_header() {
    let srv = start_with(|c| {
        c.runtime.access_ttl_ms = 2_000;
        c.runtime.renew_header = Some("x-renewed-token".into());
    })
    .await;
    // TTL 2 s < 2 × 10 s, so renewal kicks in at half the TTL (1 s left).
    let at = s(&srv.login().await, "access_token");
    let r = srv.me(&at).await;
    assert!(r.headers().get("x-renewed-token").is_none(), "fresh token");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let r = srv.me(&at).await;
    assert_eq!(r.status(), StatusCode::OK);
    let renewed = r.headers()["x-renewed-token"].to_str().unwrap().to_string();
    assert_ne!(renewed, at);
    assert_eq!(claims(&renewed)["fam"], claims(&at)["fam"]);
    assert_eq!(srv.stats().await["renewals"], 1);
    // The old token runs out; the renewed one lives on.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(srv.me(&at).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(srv.me(&renewed).await.status(), StatusCode::OK);

    // The renew header is exposed to loopback origins.
    let r = srv
        .client
        .get(srv.url("/api/me"))
        .bearer_auth(&renewed)
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    let expose = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(expose.contains("x-renewed-token"), "{expose}");
    assert!(expose.contains("www-authenticate"), "{expose}");

    // An explicit threshold above the TTL renews on every response.
    srv.configure(json!({"renew_within_ms": 3_600_000})).await;
    let fresh = s(&srv.login().await, "access_token");
    let r = srv.me(&fresh).await;
    assert!(r.headers().contains_key("x-renewed-token"));

    // And renewal can be switched off at run time.
    let cfg = srv.configure(json!({"renew_header": null})).await;
    assert_eq!(cfg["renew_header"], Value::Null);
}

#[tokio::test]
async fn no_expiry_shape() {
    let srv = start_with(|c| {
        c.runtime.no_expiry = true;
        c.runtime.access_ttl_ms = 500;
    })
    .await;
    let body = srv.login().await;
    assert!(body.get("expires_in").is_none(), "{body}");
    let at = s(&body, "access_token");
    let c = claims(&at);
    assert!(c.get("exp").is_none(), "{c}");
    assert!(c["iat"].is_u64());
    let me: Value = srv.me(&at).await.json().await.unwrap();
    assert!(me.get("token_exp").is_none(), "{me}");
    // The TTL is still enforced, so the client must refresh on 401.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(srv.me(&at).await.status(), StatusCode::UNAUTHORIZED);
    let r = srv.refresh(&s(&body, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let fresh: Value = r.json().await.unwrap();
    assert!(fresh.get("expires_in").is_none());
    assert_eq!(
        srv.me(&s(&fresh, "access_token")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn redirect_endpoint_answers_302() {
    let server = start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .get(server.url("/redirect?to=http%3A%2F%2F127.0.0.1%3A9%2Fapi%2Fme"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        "http://127.0.0.1:9/api/me"
    );
    let resp = client.get(server.url("/redirect")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
}
