//! Login, refresh rotation, reuse detection, grace, OAuth form, cookie mode,
//! logout, expiry.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{claims, s, start};

#[tokio::test]
async fn login_ok_and_bad() {
    let srv = start().await;
    let r = srv
        .post_json(
            "/login",
            json!({"username": "user2", "password": "password2"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 30);
    let rt = s(&body, "refresh_token");
    assert!(rt.len() >= 22, "at least 128 bits: {rt}");
    let c = claims(&s(&body, "access_token"));
    assert_eq!(c["sub"], "user2");
    for claim in ["iat", "exp", "jti", "fam"] {
        assert!(!c[claim].is_null(), "{claim} in {c}");
    }

    let r = srv
        .post_json("/login", json!({"username": "user1", "password": "nope"}))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_credentials");
    assert!(body["error_description"].is_string());

    let r = srv.post_json("/login", json!({"username": "user1"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let stats = srv.stats().await;
    assert_eq!(stats["logins"], 1);
    assert_eq!(stats["login_failures"], 1);
}

#[tokio::test]
async fn each_login_starts_a_family() {
    let srv = start().await;
    let a = claims(&s(&srv.login().await, "access_token"));
    let b = claims(&s(&srv.login().await, "access_token"));
    assert_ne!(a["fam"], b["fam"]);
}

#[tokio::test]
async fn rotation_then_reuse_revokes_family() {
    let srv = start().await;
    let first = srv.login().await;
    let rt1 = s(&first, "refresh_token");
    let fam = claims(&s(&first, "access_token"))["fam"].clone();

    let r = srv.refresh(&rt1).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let second: Value = r.json().await.unwrap();
    let rt2 = s(&second, "refresh_token");
    let at2 = s(&second, "access_token");
    assert_ne!(rt1, rt2);
    assert_eq!(claims(&at2)["fam"], fam, "same family");
    assert_eq!(srv.me(&at2).await.status(), StatusCode::OK);

    // The rotated token comes back: reuse, whole family revoked.
    let r = srv.refresh(&rt1).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    let r = srv.refresh(&rt2).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "Refresh token has been revoked"
    );
    let r = srv.me(&at2).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );

    let stats = srv.stats().await;
    assert_eq!(stats["reuse_detections"], 1);
    assert_eq!(stats["refreshes"], 1);
    assert_eq!(stats["refresh_requests"], 3);
    assert_eq!(stats["refresh_failures"], 2);
}

#[tokio::test]
async fn grace_window() {
    let srv = start().await;
    srv.configure(json!({"reuse_grace_ms": 500})).await;
    let rt1 = s(&srv.login().await, "refresh_token");
    let second: Value = srv.refresh(&rt1).await.json().await.unwrap();
    let rt2 = s(&second, "refresh_token");

    // Within the grace window: the current token again, family intact.
    let r = srv.refresh(&rt1).await;
    assert_eq!(r.status(), StatusCode::OK);
    let again: Value = r.json().await.unwrap();
    assert_eq!(s(&again, "refresh_token"), rt2);
    assert_eq!(
        srv.me(&s(&again, "access_token")).await.status(),
        StatusCode::OK
    );
    let stats = srv.stats().await;
    assert_eq!(stats["grace_reuses"], 1);
    assert_eq!(stats["reuse_detections"], 0);

    // After it: reuse detected, family revoked.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(srv.refresh(&rt1).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(srv.refresh(&rt2).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(srv.stats().await["reuse_detections"], 1);
}

#[tokio::test]
async fn refresh_missing_and_invalid() {
    let srv = start().await;
    let r = srv.post_json("/token/refresh", json!({})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "Refresh token is missing"
    );
    let r = srv
        .client
        .post(srv.url("/token/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = srv.refresh("not-a-token").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "Invalid refresh token"
    );
}

#[tokio::test]
async fn expired_refresh_and_access_tokens() {
    let srv = start().await;
    srv.configure(json!({"access_ttl_ms": 500, "refresh_ttl_ms": 500}))
        .await;
    let body = srv.login().await;
    assert_eq!(body["expires_in"], 1, "ceil of 0.5 s");
    let at = s(&body, "access_token");
    assert_eq!(srv.me(&at).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(600)).await;

    let r = srv.me(&at).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("expired"), "{challenge}");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_token");

    let r = srv.refresh(&s(&body, "refresh_token")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "Refresh token has expired"
    );
}

#[tokio::test]
async fn oauth_form_success_and_errors() {
    let srv = start().await;
    let rt = s(&srv.login().await, "refresh_token");
    let r = srv
        .oauth(&format!(
            "grant_type=refresh_token&refresh_token={rt}&client_id=demo&scope=read%20write"
        ))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "read write");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 30);
    let rt2 = s(&body, "refresh_token");

    let cases: &[(&str, &str)] = &[
        ("refresh_token=x", "invalid_request"),
        (
            "grant_type=refresh_token&grant_type=refresh_token&refresh_token=x",
            "invalid_request",
        ),
        ("grant_type=refresh_token", "invalid_request"),
        ("grant_type=password&username=a", "unsupported_grant_type"),
        (
            "grant_type=refresh_token&refresh_token=bogus",
            "invalid_grant",
        ),
    ];
    for (form, error) in cases {
        let r = srv.oauth(form).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{form}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], *error, "{form}");
    }

    // Not a form at all.
    let r = srv
        .post_json("/oauth/token", json!({"grant_type": "refresh_token"}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");

    // Reuse of the rotated token: invalid_grant, and the family is gone.
    let r = srv
        .oauth(&format!("grant_type=refresh_token&refresh_token={rt}"))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let r = srv
        .oauth(&format!("grant_type=refresh_token&refresh_token={rt2}"))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(srv.stats().await["reuse_detections"], 1);
}

#[tokio::test]
async fn cookie_mode() {
    let srv = start().await;
    srv.configure(json!({"refresh_cookie": true})).await;
    let r = srv
        .post_json(
            "/login",
            json!({"username": "user1", "password": "password1"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.starts_with("tk_refresh="), "{set_cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{attr} in {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"));
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    let cookie1 = set_cookie.split(';').next().unwrap().to_string();

    // Refresh with the cookie only (empty body): rotated, new cookie.
    let r = srv
        .client
        .post(srv.url("/token/refresh"))
        .header("cookie", &cookie1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie2 = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie2 = cookie2.split(';').next().unwrap().to_string();
    assert_ne!(cookie1, cookie2);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    let at = s(&body, "access_token");

    // The OAuth endpoint reads the cookie too.
    let r = srv
        .client
        .post(srv.url("/oauth/token"))
        .header("cookie", &cookie2)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie3 = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie3 = cookie3.split(';').next().unwrap().to_string();

    // Logout clears the cookie and revokes the family.
    let r = srv
        .client
        .post(srv.url("/logout"))
        .header("cookie", &cookie3)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let cleared = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(srv.me(&at).await.status(), StatusCode::UNAUTHORIZED);
    let r = srv
        .client
        .post(srv.url("/token/refresh"))
        .header("cookie", &cookie3)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cookie_mode_with_a_cookie_jar() {
    let srv = start().await;
    srv.configure(json!({"refresh_cookie": true})).await;
    let jar = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let r = jar
        .post(srv.url("/login"))
        .json(&json!({"username": "user1", "password": "password1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for _ in 0..3 {
        let r = jar.post(srv.url("/token/refresh")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "the jar follows the rotation");
    }
    let r = jar.post(srv.url("/logout")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = jar.post(srv.url("/token/refresh")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "cookie cleared");
    assert_eq!(srv.stats().await["refreshes"], 3);
}

#[tokio::test]
async fn logout_by_refresh_token_or_bearer_is_idempotent() {
    let srv = start().await;
    let a = srv.login().await;
    let r = srv
        .post_json("/logout", json!({"refresh_token": s(&a, "refresh_token")}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        srv.me(&s(&a, "access_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = srv
        .post_json("/logout", json!({"refresh_token": s(&a, "refresh_token")}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "idempotent");

    let b = srv.login().await;
    let r = srv
        .client
        .post(srv.url("/logout"))
        .bearer_auth(s(&b, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        srv.refresh(&s(&b, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(srv.stats().await["logouts"], 3);
}
