//! HTTP plumbing: CORS, bad input, limits, 404, stats, request log, reset,
//! static files, the loopback guard.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokenkeeper_devserver::state::AppState;
use tokenkeeper_devserver::{routes, Config, RuntimeConfig};
use tower::ServiceExt;

use crate::common::{s, start, start_with};

#[tokio::test]
async fn cors_any_answers_every_origin_like_a_third_party() {
    let srv = start_with(|c| c.runtime.cors_any = true).await;
    for origin in ["null", "http://evil.example"] {
        let r = srv
            .client
            .request(reqwest::Method::OPTIONS, srv.url("/api/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "x-auth-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()["access-control-allow-origin"], origin);
    }
}

#[tokio::test]
async fn cors_preflight_loopback_and_evil() {
    let srv = start().await;
    let preflight = |origin: &'static str| {
        srv.client
            .request(reqwest::Method::OPTIONS, srv.url("/api/data"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, x-custom",
            )
            .send()
    };
    let r = preflight("http://127.0.0.1:5555").await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "http://127.0.0.1:5555");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        assert!(methods.contains(m), "{m} in {methods}");
    }
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("x-custom"));
    assert!(h.contains_key("access-control-max-age"));

    let r = preflight("http://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert!(r
        .headers()
        .get("access-control-allow-credentials")
        .is_none());

    // Actual requests.
    let r = srv
        .client
        .get(srv.url("/api/data"))
        .header("origin", "http://[::1]:8000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://[::1]:8000"
    );
    let expose = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    for name in ["WWW-Authenticate", "Retry-After", "Date"] {
        assert!(expose.contains(name), "{name} in {expose}");
    }
    let r = srv
        .client
        .get(srv.url("/api/data"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn bad_input_is_refused_not_fatal() {
    let srv = start().await;
    let post = |path: &'static str, content_type: &'static str, body: Vec<u8>| {
        srv.client
            .post(srv.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("/login", "application/json", b"{\"username\":".to_vec()),
        ("/login", "application/json", b"[1,2]".to_vec()),
        ("/login", "application/json", vec![0xff, 0xfe, 0x00]),
        ("/login", "text/plain", b"username=user1".to_vec()),
        (
            "/login",
            "application/json",
            b"{\"username\":5,\"password\":[]}".to_vec(),
        ),
        ("/token/refresh", "application/json", b"{{{".to_vec()),
        (
            "/token/refresh",
            "application/json",
            b"{\"refresh_token\":7}".to_vec(),
        ),
        ("/oauth/token", "application/json", b"{}".to_vec()),
        ("/oauth/token", "multipart/form-data", b"--x".to_vec()),
        ("/logout", "application/json", b"nope".to_vec()),
        (
            "/admin/config",
            "application/json",
            b"{\"bogus\":1}".to_vec(),
        ),
        (
            "/admin/config",
            "application/json",
            b"{\"renew_header\":\"bad header\"}".to_vec(),
        ),
    ];
    for (path, content_type, body) in cases {
        let r = post(path, content_type, body.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path} {body:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}");
        assert!(body["error_description"].is_string(), "{path}");
    }

    let big = vec![b'a'; 20 * 1024];
    for path in ["/login", "/token/refresh", "/oauth/token", "/api/data"] {
        let r = post(path, "application/json", big.clone()).await.unwrap();
        let status = r.status();
        // /api/* authenticates first; everything else reads the body first.
        if path == "/api/data" {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        } else {
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        }
    }
    let at = s(&srv.login().await, "access_token");
    let r = srv
        .client
        .post(srv.url("/api/data"))
        .bearer_auth(&at)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let r = srv.get("/no/such/route").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().contains_key("date"));
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "not_found"})
    );

    let r = srv.get("/login").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Still alive and well.
    srv.login().await;
}

#[tokio::test]
async fn stats_request_log_and_reset() {
    let srv = start().await;
    let body = srv.login().await;
    let at = s(&body, "access_token");
    srv.me(&at).await;
    srv.client
        .get(srv.url("/api/data"))
        .header("x-auth-token", &at)
        .header("origin", "http://localhost:9999")
        .send()
        .await
        .unwrap();
    srv.client
        .post(srv.url("/token/refresh"))
        .header("cookie", "tk_refresh=zzz")
        .send()
        .await
        .unwrap();

    let log: Vec<Value> = srv.get("/admin/requests").await.json().await.unwrap();
    let entry = |path: &str| {
        log.iter()
            .find(|e| e["path"] == path)
            .unwrap_or_else(|| panic!("{path} logged"))
            .clone()
    };
    let login = entry("/login");
    assert_eq!(login["method"], "POST");
    assert_eq!(login["authorization"], false);
    assert_eq!(login["origin"], Value::Null);
    let me = entry("/api/me");
    assert_eq!(me["authorization"], true);
    assert_eq!(me["x_auth_token"], false);
    let data = entry("/api/data");
    assert_eq!(data["authorization"], false);
    assert_eq!(data["x_auth_token"], true);
    assert_eq!(data["origin"], "http://localhost:9999");
    assert_eq!(entry("/token/refresh")["cookie"], true);

    let stats = srv.stats().await;
    assert_eq!(stats["logins"], 1);
    assert_eq!(stats["api_ok"], 2);
    assert_eq!(stats["refresh_requests"], 1);
    assert_eq!(stats["refresh_failures"], 1);
    assert_eq!(stats["by_endpoint"]["POST /login"], 1);
    assert_eq!(stats["by_endpoint"]["GET /api/data"], 1);
    for counter in [
        "login_failures",
        "refreshes",
        "reuse_detections",
        "grace_reuses",
        "api_401",
        "renewals",
        "logouts",
        "faults_applied",
        "dpop_proofs",
        "dpop_refused",
        "dpop_nonce_challenges",
    ] {
        assert_eq!(stats[counter], 0, "{counter}");
    }

    srv.configure(json!({"reuse_grace_ms": 5})).await;
    srv.fault(json!({"kind": "status500"})).await;
    let r = srv
        .client
        .post(srv.url("/admin/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let stats = srv.stats().await;
    assert_eq!(stats["logins"], 0);
    assert_eq!(stats["by_endpoint"], json!({"GET /stats": 1}));
    let log: Vec<Value> = srv.get("/admin/requests").await.json().await.unwrap();
    assert!(log.iter().all(|e| e["path"] != "/login"));
    let faults: Value = srv.get("/admin/faults").await.json().await.unwrap();
    assert_eq!(faults, json!([]));
    // Sessions are gone, configuration stays.
    assert_eq!(
        srv.refresh(&s(&body, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(srv.me(&at).await.status(), StatusCode::UNAUTHORIZED);
    let cfg: Value = srv.get("/admin/config").await.json().await.unwrap();
    assert_eq!(cfg["reuse_grace_ms"], 5);
}

#[tokio::test]
async fn runtime_config_roundtrip() {
    let srv = start().await;
    let cfg: Value = srv.get("/admin/config").await.json().await.unwrap();
    assert_eq!(
        cfg,
        json!({
            "access_ttl_ms": 30000,
            "refresh_ttl_ms": 86400000,
            "reuse_grace_ms": 0,
            "refresh_cookie": false,
            "renew_header": null,
            "renew_within_ms": null,
            "no_expiry": false,
            "cors_any": false,
            "dpop": false,
            "dpop_nonce": false,
        })
    );
    let cfg = srv
        .configure(json!({"access_ttl_ms": 1500, "renew_header": "x-new-token", "no_expiry": true}))
        .await;
    assert_eq!(cfg["access_ttl_ms"], 1500);
    assert_eq!(cfg["renew_header"], "x-new-token");
    assert_eq!(cfg["no_expiry"], true);
    assert_eq!(cfg["refresh_ttl_ms"], 86400000);
    let r = srv
        .post_json("/admin/config", json!({"access_ttl_ms": 0}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn static_files() {
    let dir = std::env::temp_dir().join(format!("tk-devserver-www-{}", std::process::id()));
    let pkg = dir.join("pkg-out");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::write(dir.join("app.mjs"), "export {}").unwrap();
    std::fs::write(pkg.join("tokenkeeper_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(pkg.join("tokenkeeper.js"), "export default 1").unwrap();
    let (www, pkg_dir) = (dir.clone(), pkg.clone());
    let srv = start_with(move |c| {
        c.www = Some(www);
        c.pkg = Some(pkg_dir);
    })
    .await;

    let r = srv.get("/").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(r.text().await.unwrap(), "<h1>demo</h1>");
    let r = srv.get("/app.mjs").await;
    assert_eq!(r.headers()["content-type"], "text/javascript");
    let r = srv.get("/pkg/tokenkeeper_bg.wasm").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/wasm");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let r = srv.get("/pkg/tokenkeeper.js").await;
    assert_eq!(r.headers()["content-type"], "text/javascript");
    let r = srv.get("/missing.html").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");
    // API routes still win over the static fallback.
    assert_eq!(srv.get("/api/me").await.status(), StatusCode::UNAUTHORIZED);
    let r = srv.client.post(srv.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn admin_and_stats_are_loopback_only() {
    let state = Arc::new(AppState::new(RuntimeConfig::default(), true).unwrap());
    let app = routes::router(state, &Config::default());
    for (path, peer, expected) in [
        ("/stats", "192.0.2.7:4000", 403),
        ("/admin/requests", "192.0.2.7:4000", 403),
        ("/admin/config", "[2001:db8::1]:4000", 403),
        ("/admin/config", "127.0.0.1:4000", 200),
        ("/stats", "[::1]:4000", 200),
        ("/stats", "[::ffff:127.0.0.1]:4000", 200),
    ] {
        let mut request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{path} from {peer}");
    }
}
