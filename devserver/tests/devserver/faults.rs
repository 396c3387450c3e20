//! Injected faults on the token endpoints, and on the API.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{s, start};

#[tokio::test]
async fn status_500_and_429_leave_the_token_alone() {
    let srv = start().await;
    let rt = s(&srv.login().await, "refresh_token");
    srv.fault(json!({"kind": "status500"})).await;
    srv.fault(json!({"kind": "status429", "retry_after": 7}))
        .await;
    let pending: Value = srv.get("/admin/faults").await.json().await.unwrap();
    assert_eq!(pending.as_array().map(Vec::len), Some(2));

    let r = srv.refresh(&rt).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "server_error");

    let r = srv
        .oauth(&format!("grant_type=refresh_token&refresh_token={rt}"))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );

    // The token was never touched: it still rotates normally.
    assert_eq!(srv.refresh(&rt).await.status(), StatusCode::OK);
    let stats = srv.stats().await;
    assert_eq!(stats["faults_applied"], 2);
    assert_eq!(stats["refresh_failures"], 2);
    assert_eq!(stats["refreshes"], 1);
}

#[tokio::test]
async fn count_and_clear() {
    let srv = start().await;
    let rt = s(&srv.login().await, "refresh_token");
    srv.fault(json!({"kind": "status500", "count": 2})).await;
    assert_eq!(
        srv.refresh(&rt).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        srv.refresh(&rt).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(srv.refresh(&rt).await.status(), StatusCode::OK);

    srv.fault(json!({"kind": "status500", "count": 5})).await;
    let r = srv
        .client
        .delete(srv.url("/admin/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let pending: Value = srv.get("/admin/faults").await.json().await.unwrap();
    assert_eq!(pending, json!([]));

    let r = srv
        .post_json("/admin/faults", json!({"kind": "meteor"}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn delay() {
    let srv = start().await;
    let rt = s(&srv.login().await, "refresh_token");
    srv.fault(json!({"kind": "delay", "delay_ms": 300})).await;
    let started = Instant::now();
    let r = srv.refresh(&rt).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn drop_keeps_the_token_valid() {
    let srv = start().await;
    let rt = s(&srv.login().await, "refresh_token");
    srv.fault(json!({"kind": "drop"})).await;
    let err = srv
        .client
        .post(srv.url("/token/refresh"))
        .json(&json!({ "refresh_token": rt }))
        .send()
        .await
        .expect_err("connection dropped without a response");
    assert!(!err.is_timeout(), "{err}");
    assert_eq!(srv.refresh(&rt).await.status(), StatusCode::OK);
    let stats = srv.stats().await;
    assert_eq!(stats["faults_applied"], 1);
    assert_eq!(stats["refreshes"], 1);
}

#[tokio::test]
async fn lost_response_rotates_the_token() {
    let srv = start().await;
    let rt = s(&srv.login().await, "refresh_token");
    srv.fault(json!({"kind": "lost_response"})).await;
    let err = srv
        .oauth_err(&format!("grant_type=refresh_token&refresh_token={rt}"))
        .await;
    assert!(!err.is_timeout(), "{err}");
    let stats = srv.stats().await;
    assert_eq!(stats["refreshes"], 1, "the rotation happened");
    // The client never saw the new token; retrying with the old one is reuse.
    assert_eq!(srv.refresh(&rt).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(srv.stats().await["reuse_detections"], 1);
}

impl crate::common::Server {
    async fn oauth_err(&self, form: &str) -> reqwest::Error {
        self.client
            .post(self.url("/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string())
            .send()
            .await
            .expect_err("connection dropped without a response")
    }
}

/// Browsers resend a request that dies on a reused keep-alive connection,
/// which would hide a dropped connection from the SDK; so while such a fault
/// is pending the server closes idle connections and reuses none.
#[tokio::test]
async fn connection_faults_force_fresh_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let srv = start().await;
    let rt = s(&srv.login().await, "refresh_token");
    let addr = srv.base.trim_start_matches("http://").to_string();

    // An idle keep-alive connection...
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /stats HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 8192];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // ...is closed when a drop fault is queued.
    let r = srv
        .client
        .post(srv.url("/admin/faults"))
        .json(&json!({"kind": "drop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["connection"], "close");
    let n = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut buf))
        .await
        .expect("closed promptly")
        .unwrap_or(0);
    assert_eq!(n, 0, "EOF on the idle connection");

    // While it is pending no response keeps its connection open.
    let r = srv.get("/stats").await;
    assert_eq!(r.headers()["connection"], "close");

    // A pooling client still sees the drop as an error, not a silent retry.
    let pooled = reqwest::Client::new();
    let err = pooled
        .post(srv.url("/token/refresh"))
        .json(&json!({ "refresh_token": rt }))
        .send()
        .await
        .expect_err("dropped");
    assert!(!err.is_timeout(), "{err}");
    let r = pooled
        .post(srv.url("/token/refresh"))
        .json(&json!({ "refresh_token": rt }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("connection").is_none(), "keep-alive again");
}

/// `"on": "api"`: the fault hits the next API call whose token passed, not
/// a call refused for its token, nor the token endpoints.
#[tokio::test]
async fn api_faults_hit_the_api_after_the_token() {
    let srv = start().await;
    let grant = srv.login().await;
    let (at, rt) = (s(&grant, "access_token"), s(&grant, "refresh_token"));
    srv.fault(json!({"kind": "status500", "on": "api"})).await;
    assert_eq!(srv.me("forged").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(srv.refresh(&rt).await.status(), StatusCode::OK);
    let r = srv.me(&at).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "server_error");
    let pending: Value = srv.get("/admin/faults").await.json().await.unwrap();
    assert_eq!(pending, json!([]));
    assert_eq!(srv.stats().await["faults_applied"], 1);
}
