//! DPoP mode (RFC 9449): key-bound tokens, proof checks, refresh binding,
//! nonces, the admin switch, stats and CORS. Proofs are signed here with
//! real P-256 keys.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{claims, s, start, start_with, Server};

/// A P-256 key pair and the proofs it signs.
struct Key {
    signing: SigningKey,
    x: String,
    y: String,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap();
    b64(&bytes)
}

/// RFC 7638 thumbprint of an EC key, computed here independently.
fn thumbprint_of(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    b64(&Sha256::digest(canonical.as_bytes()))
}

/// `ath` of an access token.
fn ath(token: &str) -> String {
    b64(&Sha256::digest(token.as_bytes()))
}

impl Key {
    fn new() -> Key {
        loop {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).unwrap();
            let Ok(signing) = SigningKey::from_slice(&secret) else {
                continue;
            };
            let point = signing.verifying_key().to_encoded_point(false);
            return Key {
                x: b64(point.x().unwrap()),
                y: b64(point.y().unwrap()),
                signing,
            };
        }
    }

    fn jwk(&self) -> Value {
        json!({"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y})
    }

    fn thumbprint(&self) -> String {
        thumbprint_of(&self.x, &self.y)
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()})
    }

    /// Signs `header.claims` with ES256 (raw r||s), whatever `header` says.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature: Signature = self.signing.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }

    /// The claims of a fresh proof for `htm htu`; `extra` is merged in (a
    /// `null` member removes the claim).
    fn claims(htm: &str, htu: &str, extra: Value) -> Value {
        let mut claims = json!({
            "htm": htm,
            "htu": htu,
            "iat": now_secs(),
            "jti": random_jti(),
        });
        if let (Some(map), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            for (k, v) in extra {
                if v.is_null() {
                    map.remove(&k);
                } else {
                    map.insert(k, v);
                }
            }
        }
        claims
    }

    fn proof_with(&self, htm: &str, htu: &str, extra: Value) -> String {
        self.sign(&self.header(), &Key::claims(htm, htu, extra))
    }

    fn proof(&self, htm: &str, htu: &str) -> String {
        self.proof_with(htm, htu, json!({}))
    }

    /// A proof for `GET url` presenting `token`.
    fn api_proof(&self, url: &str, token: &str) -> String {
        self.proof_with("GET", url, json!({ "ath": ath(token) }))
    }
}

const USER: &str = r#"{"username":"user1","password":"password1"}"#;

async fn login_with(srv: &Server, proof: Option<&str>) -> Response {
    let mut request = srv
        .client
        .post(srv.url("/login"))
        .header("content-type", "application/json")
        .body(USER);
    if let Some(p) = proof {
        request = request.header("dpop", p);
    }
    request.send().await.unwrap()
}

/// Logs in with a proof by `key`; returns the token body.
async fn dpop_login(srv: &Server, key: &Key) -> Value {
    let r = login_with(srv, Some(&key.proof("POST", &srv.url("/login")))).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn refresh_with(srv: &Server, refresh_token: &str, proof: Option<&str>) -> Response {
    let mut request = srv
        .client
        .post(srv.url("/token/refresh"))
        .json(&json!({ "refresh_token": refresh_token }));
    if let Some(p) = proof {
        request = request.header("dpop", p);
    }
    request.send().await.unwrap()
}

async fn oauth_with(srv: &Server, refresh_token: &str, proof: Option<&str>) -> Response {
    let mut request = srv
        .client
        .post(srv.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=refresh_token&refresh_token={refresh_token}"
        ));
    if let Some(p) = proof {
        request = request.header("dpop", p);
    }
    request.send().await.unwrap()
}

/// `GET /api/me` with `Authorization: {scheme} {token}` and maybe a proof.
async fn me_with(srv: &Server, scheme: &str, token: &str, proof: Option<&str>) -> Response {
    let mut request = srv
        .client
        .get(srv.url("/api/me"))
        .header("authorization", format!("{scheme} {token}"));
    if let Some(p) = proof {
        request = request.header("dpop", p);
    }
    request.send().await.unwrap()
}

fn www_authenticate(r: &Response) -> String {
    r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string()
}

/// A 401 from `/api/*` with `DPoP error="{error}"`; returns the challenge.
async fn assert_dpop_401(r: Response, error: &str) -> String {
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = www_authenticate(&r);
    assert!(
        challenge.starts_with(&format!("DPoP error=\"{error}\", error_description=\"")),
        "{challenge}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    challenge
}

/// A 400 from a token endpoint with `{"error": error}`; returns the
/// description.
async fn assert_400(r: Response, error: &str) -> String {
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    s(&body, "error_description")
}

async fn dpop_server() -> Server {
    start_with(|c| c.runtime.dpop = true).await
}

#[test]
fn thumbprint_matches_rfc_9449_example() {
    // The key of RFC 9449 §4.2's example proof and the jkt of §6.1.
    assert_eq!(
        thumbprint_of(
            "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"
        ),
        "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    );
    let x = URL_SAFE_NO_PAD
        .decode("l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs")
        .unwrap();
    let y = URL_SAFE_NO_PAD
        .decode("9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA")
        .unwrap();
    assert_eq!(
        tokenkeeper_devserver::dpop::thumbprint(&x, &y),
        "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    );
}

#[tokio::test]
async fn bound_tokens_need_the_dpop_scheme_and_a_proof_by_their_key() {
    let srv = dpop_server().await;
    let key = Key::new();
    let body = dpop_login(&srv, &key).await;
    assert_eq!(body["token_type"], "DPoP");
    assert!(body["refresh_token"].is_string());
    let at = s(&body, "access_token");
    assert_eq!(claims(&at)["cnf"], json!({ "jkt": key.thumbprint() }));

    let me = srv.url("/api/me");
    let good = key.api_proof(&me, &at);
    let r = me_with(&srv, "DPoP", &at, Some(&good)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("dpop-nonce").is_none(), "no nonce mode");
    assert_eq!(r.json::<Value>().await.unwrap()["sub"], "user1");

    // The same proof again: a replayed jti.
    let challenge = assert_dpop_401(
        me_with(&srv, "DPoP", &at, Some(&good)).await,
        "invalid_dpop_proof",
    )
    .await;
    assert!(challenge.contains("jti"), "{challenge}");
    // The bound token as a Bearer token, with or without a proof.
    assert_dpop_401(me_with(&srv, "Bearer", &at, None).await, "invalid_token").await;
    let fresh = key.api_proof(&me, &at);
    assert_dpop_401(
        me_with(&srv, "Bearer", &at, Some(&fresh)).await,
        "invalid_token",
    )
    .await;
    let r = srv
        .client
        .get(&me)
        .header("x-auth-token", &at)
        .send()
        .await
        .unwrap();
    assert_dpop_401(r, "invalid_token").await;
    // The DPoP scheme without a proof.
    assert_dpop_401(me_with(&srv, "DPoP", &at, None).await, "invalid_token").await;
    // A (valid) proof by another key.
    let thief = Key::new();
    let challenge = assert_dpop_401(
        me_with(&srv, "DPoP", &at, Some(&thief.api_proof(&me, &at))).await,
        "invalid_token",
    )
    .await;
    assert!(challenge.contains("key"), "{challenge}");
    // ath of another token, or none.
    let wrong_ath = key.proof_with("GET", &me, json!({ "ath": ath("another token") }));
    let challenge = assert_dpop_401(
        me_with(&srv, "DPoP", &at, Some(&wrong_ath)).await,
        "invalid_dpop_proof",
    )
    .await;
    assert!(challenge.contains("ath"), "{challenge}");
    let no_ath = key.proof("GET", &me);
    assert_dpop_401(
        me_with(&srv, "DPoP", &at, Some(&no_ath)).await,
        "invalid_dpop_proof",
    )
    .await;
    // A proof for another method or URL.
    let post = key.proof_with("POST", &me, json!({ "ath": ath(&at) }));
    assert_dpop_401(
        me_with(&srv, "DPoP", &at, Some(&post)).await,
        "invalid_dpop_proof",
    )
    .await;
    let elsewhere = key.api_proof(&srv.url("/api/other"), &at);
    assert_dpop_401(
        me_with(&srv, "DPoP", &at, Some(&elsewhere)).await,
        "invalid_dpop_proof",
    )
    .await;
    // Still fine with a fresh proof; and on other paths and methods.
    let r = me_with(&srv, "DPoP", &at, Some(&key.api_proof(&me, &at))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let orders = srv.url("/api/orders/7");
    let r = srv
        .client
        .post(&orders)
        .header("authorization", format!("DPoP {at}"))
        .header(
            "dpop",
            key.proof_with("POST", &orders, json!({ "ath": ath(&at) })),
        )
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["path"], "/api/orders/7");

    let stats = srv.stats().await;
    // Accepted: login, /api/me twice, the thief's (valid, wrong key), POST.
    assert_eq!(stats["dpop_proofs"], 5, "{stats}");
    // Refused: replay, Bearer ×2, x-auth-token, no proof, thief, wrong ath,
    // no ath, wrong htm, wrong htu.
    assert_eq!(stats["dpop_refused"], 10, "{stats}");
    assert_eq!(stats["dpop_nonce_challenges"], 0);
    assert_eq!(stats["api_ok"], 3);
    assert_eq!(stats["api_401"], 10);
}

#[tokio::test]
async fn expired_and_revoked_bound_tokens_get_the_dpop_challenge() {
    let srv = start_with(|c| {
        c.runtime.dpop = true;
        c.runtime.access_ttl_ms = 300;
    })
    .await;
    let key = Key::new();
    let at = s(&dpop_login(&srv, &key).await, "access_token");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let me = srv.url("/api/me");
    for (scheme, proof) in [("DPoP", Some(key.api_proof(&me, &at))), ("Bearer", None)] {
        let challenge = assert_dpop_401(
            me_with(&srv, scheme, &at, proof.as_deref()).await,
            "invalid_token",
        )
        .await;
        assert!(
            challenge.contains("error_description=\"The access token has expired\""),
            "{challenge}"
        );
    }
    // Revoked (logout by refresh token): the DPoP challenge too.
    let body = dpop_login(&srv, &key).await;
    let at = s(&body, "access_token");
    let r = srv
        .post_json(
            "/logout",
            json!({ "refresh_token": s(&body, "refresh_token") }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let challenge = assert_dpop_401(
        me_with(&srv, "DPoP", &at, Some(&key.api_proof(&me, &at))).await,
        "invalid_token",
    )
    .await;
    assert!(challenge.contains("revoked"), "{challenge}");
    // An unbound token keeps the Bearer challenge.
    let r = login_with(&srv, None).await;
    let bearer = s(&r.json::<Value>().await.unwrap(), "access_token");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = me_with(&srv, "Bearer", &bearer, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(www_authenticate(&r).starts_with("Bearer error=\"invalid_token\""));
    // No token at all: both challenges.
    let r = srv.get("/api/me").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenges: Vec<_> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(challenges, ["Bearer", "DPoP algs=\"ES256\""]);
}

#[tokio::test]
async fn token_endpoints_refuse_bad_proofs() {
    let srv = dpop_server().await;
    let key = Key::new();
    let login = srv.url("/login");
    let now = now_secs();
    let claims = |extra: Value| Key::claims("POST", &login, extra);
    let header_with = |k: &str, v: Value| {
        let mut h = key.header();
        h[k] = v;
        h
    };
    let mut jwk_with_d = key.jwk();
    jwk_with_d["d"] = json!(b64(&key.signing.to_bytes()));
    let mut rsa_jwk = key.jwk();
    rsa_jwk["kty"] = json!("RSA");
    let mut short_x = key.jwk();
    short_x["x"] = json!(b64(&[7u8; 31]));
    let good = key.proof("POST", &login);
    let (good_input, _) = good.rsplit_once('.').unwrap();
    let other_sig = key.proof("POST", &login);
    let (_, other_sig) = other_sig.rsplit_once('.').unwrap();
    let (_, good_claims_and_sig) = good.split_once('.').unwrap();
    let mut unsigned_header = key.header();
    unsigned_header["alg"] = json!("none");
    let cases: Vec<(&str, String, &str)> = vec![
        ("wrong htm", key.proof("GET", &login), "htm"),
        (
            "wrong htu",
            key.proof("POST", &srv.url("/token/refresh")),
            "htu",
        ),
        (
            "htu of another host",
            key.proof("POST", &login.replace("127.0.0.1", "localhost")),
            "htu",
        ),
        (
            "htu with a query",
            key.proof("POST", &format!("{login}?x=1")),
            "query",
        ),
        (
            "htu with a fragment",
            key.proof("POST", &format!("{login}#f")),
            "fragment",
        ),
        (
            "no htu",
            key.sign(&key.header(), &claims(json!({"htu": null}))),
            "htu",
        ),
        (
            "iat 120 s ago",
            key.sign(&key.header(), &claims(json!({"iat": now - 120}))),
            "iat",
        ),
        (
            "iat 120 s ahead",
            key.sign(&key.header(), &claims(json!({"iat": now + 120}))),
            "iat",
        ),
        (
            "iat a string",
            key.sign(&key.header(), &claims(json!({"iat": now.to_string()}))),
            "iat",
        ),
        (
            "no jti",
            key.sign(&key.header(), &claims(json!({"jti": null}))),
            "jti",
        ),
        (
            "empty jti",
            key.sign(&key.header(), &claims(json!({"jti": ""}))),
            "jti",
        ),
        (
            "signature of another proof",
            format!("{good_input}.{other_sig}"),
            "signature",
        ),
        (
            "signed by another key",
            Key::new().sign(&key.header(), &claims(json!({}))),
            "signature",
        ),
        (
            "typ jwt",
            key.sign(&header_with("typ", json!("jwt")), &claims(json!({}))),
            "typ",
        ),
        (
            "no typ",
            key.sign(&header_with("typ", Value::Null), &claims(json!({}))),
            "typ",
        ),
        (
            "alg none",
            key.sign(&header_with("alg", json!("none")), &claims(json!({}))),
            "alg",
        ),
        (
            "alg none, unsigned",
            format!(
                "{}.{}",
                b64(unsigned_header.to_string().as_bytes()),
                good_claims_and_sig.rsplit_once('.').unwrap().0
            ) + ".",
            "alg",
        ),
        (
            "alg HS256",
            key.sign(&header_with("alg", json!("HS256")), &claims(json!({}))),
            "alg",
        ),
        (
            "jwk with d",
            key.sign(&header_with("jwk", jwk_with_d), &claims(json!({}))),
            "private",
        ),
        (
            "no jwk",
            key.sign(&header_with("jwk", Value::Null), &claims(json!({}))),
            "jwk",
        ),
        (
            "RSA jwk",
            key.sign(&header_with("jwk", rsa_jwk), &claims(json!({}))),
            "P-256",
        ),
        (
            "31-byte x",
            key.sign(&header_with("jwk", short_x), &claims(json!({}))),
            "32 bytes",
        ),
        ("two parts", good_input.to_string(), "three"),
        ("four parts", format!("{good}.x"), "three"),
        ("garbage", "garbage".to_string(), "three"),
        (
            "header not JSON",
            format!("{}.{good_claims_and_sig}", b64(b"nope")),
            "header",
        ),
    ];
    let refused = cases.len();
    for (name, proof, keyword) in cases {
        let description =
            assert_400(login_with(&srv, Some(&proof)).await, "invalid_dpop_proof").await;
        assert!(
            description.contains(keyword),
            "{name}: {description:?} should mention {keyword:?}"
        );
    }
    // Two DPoP headers.
    let r = srv
        .client
        .post(&login)
        .header("content-type", "application/json")
        .header("dpop", key.proof("POST", &login))
        .header("dpop", key.proof("POST", &login))
        .body(USER)
        .send()
        .await
        .unwrap();
    assert_400(r, "invalid_dpop_proof").await;
    // A login proof replayed.
    let r = login_with(&srv, Some(&good)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let description = assert_400(login_with(&srv, Some(&good)).await, "invalid_dpop_proof").await;
    assert!(description.contains("jti"), "{description}");
    // A float iat within the window is fine.
    let float_iat = key.sign(&key.header(), &claims(json!({"iat": now as f64 + 0.5})));
    assert_eq!(
        login_with(&srv, Some(&float_iat)).await.status(),
        StatusCode::OK
    );

    let stats = srv.stats().await;
    assert_eq!(stats["logins"], 2, "only the good proofs logged in");
    assert_eq!(stats["dpop_proofs"], 2);
    assert_eq!(stats["dpop_refused"], refused as u64 + 2);
}

#[tokio::test]
async fn refresh_needs_the_bound_key_and_keeps_the_binding() {
    let srv = dpop_server().await;
    let key = Key::new();
    let thief = Key::new();
    let first = dpop_login(&srv, &key).await;
    let rt1 = s(&first, "refresh_token");
    let at1 = s(&first, "access_token");
    let refresh = srv.url("/token/refresh");
    let oauth = srv.url("/oauth/token");

    // Another key's proof, or none: 400 invalid_dpop_proof, nothing rotated.
    let d = assert_400(
        refresh_with(&srv, &rt1, Some(&thief.proof("POST", &refresh))).await,
        "invalid_dpop_proof",
    )
    .await;
    assert!(d.contains("key"), "{d}");
    let d = assert_400(refresh_with(&srv, &rt1, None).await, "invalid_dpop_proof").await;
    assert!(d.contains("proof"), "{d}");
    assert_400(
        oauth_with(&srv, &rt1, Some(&thief.proof("POST", &oauth))).await,
        "invalid_dpop_proof",
    )
    .await;
    assert_400(oauth_with(&srv, &rt1, None).await, "invalid_dpop_proof").await;
    // An invalid proof by the right key is refused too.
    assert_400(
        refresh_with(&srv, &rt1, Some(&key.proof("POST", &oauth))).await,
        "invalid_dpop_proof",
    )
    .await;

    // The right key still refreshes: the refusals revoked nothing.
    let r = refresh_with(&srv, &rt1, Some(&key.proof("POST", &refresh))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["token_type"], "DPoP");
    let at2 = s(&second, "access_token");
    let rt2 = s(&second, "refresh_token");
    assert_eq!(claims(&at2)["cnf"]["jkt"], key.thumbprint());
    assert_eq!(claims(&at2)["fam"], claims(&at1)["fam"]);
    let me = srv.url("/api/me");
    let r = me_with(&srv, "DPoP", &at2, Some(&key.api_proof(&me, &at2))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = me_with(&srv, "DPoP", &at1, Some(&key.api_proof(&me, &at1))).await;
    assert_eq!(r.status(), StatusCode::OK, "the family is intact");

    // The rotated token, replayed by a thief without the key: refused
    // without revoking the family.
    assert_400(
        refresh_with(&srv, &rt1, Some(&thief.proof("POST", &refresh))).await,
        "invalid_dpop_proof",
    )
    .await;
    // The OAuth form grant, with the right key, keeps the binding.
    let r = oauth_with(&srv, &rt2, Some(&key.proof("POST", &oauth))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let third: Value = r.json().await.unwrap();
    assert_eq!(third["token_type"], "DPoP");
    assert_eq!(
        claims(&s(&third, "access_token"))["cnf"]["jkt"],
        key.thumbprint()
    );

    let stats = srv.stats().await;
    assert_eq!(stats["refreshes"], 2);
    assert_eq!(stats["reuse_detections"], 0);
    // Thief ×3 (proofs valid, keys wrong), none ×2, wrong htu.
    assert_eq!(stats["dpop_refused"], 6, "{stats}");
    // Login, thief ×3, the 2 refreshes and the 2 /api/me calls.
    assert_eq!(stats["dpop_proofs"], 8, "{stats}");
}

#[tokio::test]
async fn cookie_mode_refresh_is_bound_too() {
    let srv = start_with(|c| {
        c.runtime.dpop = true;
        c.runtime.refresh_cookie = true;
    })
    .await;
    let key = Key::new();
    let r = login_with(&srv, Some(&key.proof("POST", &srv.url("/login")))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    assert!(body.get("refresh_token").is_none());

    let refresh = srv.url("/token/refresh");
    let send = |proof: Option<String>| {
        let mut request = srv.client.post(&refresh).header("cookie", &cookie);
        if let Some(p) = proof {
            request = request.header("dpop", p);
        }
        request.send()
    };
    assert_400(send(None).await.unwrap(), "invalid_dpop_proof").await;
    assert_400(
        send(Some(Key::new().proof("POST", &refresh)))
            .await
            .unwrap(),
        "invalid_dpop_proof",
    )
    .await;
    let r = send(Some(key.proof("POST", &refresh))).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().contains_key("set-cookie"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(
        claims(&s(&body, "access_token"))["cnf"]["jkt"],
        key.thumbprint()
    );
}

#[tokio::test]
async fn bearer_tokens_keep_working_in_dpop_mode() {
    let srv = dpop_server().await;
    let r = login_with(&srv, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let at = s(&body, "access_token");
    assert!(claims(&at).get("cnf").is_none());
    assert_eq!(srv.me(&at).await.status(), StatusCode::OK);
    let r = srv
        .client
        .get(srv.url("/api/me"))
        .header("x-auth-token", &at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A stray DPoP header does not matter to a Bearer token.
    let r = me_with(&srv, "Bearer", &at, Some("not a proof")).await;
    assert_eq!(r.status(), StatusCode::OK);
    // An unbound token with the DPoP scheme, even with a good proof.
    let key = Key::new();
    let me = srv.url("/api/me");
    let challenge = assert_dpop_401(
        me_with(&srv, "DPoP", &at, Some(&key.api_proof(&me, &at))).await,
        "invalid_token",
    )
    .await;
    assert!(challenge.contains("not DPoP-bound"), "{challenge}");

    // Refresh without a proof: Bearer again.
    let rt = s(&body, "refresh_token");
    let r = refresh_with(&srv, &rt, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["token_type"], "Bearer");
    // With a proof, the new access token is bound to it (the family stays
    // unbound, as at login).
    let refresh = srv.url("/token/refresh");
    let r = refresh_with(
        &srv,
        &s(&second, "refresh_token"),
        Some(&key.proof("POST", &refresh)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let third: Value = r.json().await.unwrap();
    assert_eq!(third["token_type"], "DPoP");
    assert_eq!(
        claims(&s(&third, "access_token"))["cnf"]["jkt"],
        key.thumbprint()
    );
    let r = refresh_with(&srv, &s(&third, "refresh_token"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["token_type"], "Bearer");
}

#[tokio::test]
async fn dpop_off_ignores_proofs() {
    let srv = start().await;
    let key = Key::new();
    let r = login_with(&srv, Some(&key.proof("POST", &srv.url("/login")))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(claims(&s(&body, "access_token")).get("cnf").is_none());
    // Even a broken proof.
    assert_eq!(
        login_with(&srv, Some("garbage")).await.status(),
        StatusCode::OK
    );
    let stats = srv.stats().await;
    assert_eq!(stats["dpop_proofs"], 0);
    assert_eq!(stats["dpop_refused"], 0);
}

#[tokio::test]
async fn nonce_mode() {
    let srv = dpop_server().await;
    let cfg = srv.configure(json!({"dpop_nonce": true})).await;
    assert_eq!(
        (cfg["dpop"].clone(), cfg["dpop_nonce"].clone()),
        (json!(true), json!(true))
    );
    let key = Key::new();
    let login = srv.url("/login");

    // No nonce: 400 use_dpop_nonce with the nonce to use.
    let r = login_with(&srv, Some(&key.proof("POST", &login))).await;
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_string();
    assert!(nonce.len() >= 22, "{nonce}");
    assert!(nonce
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_400(r, "use_dpop_nonce").await;
    // A wrong nonce: the same.
    let r = login_with(
        &srv,
        Some(&key.proof_with("POST", &login, json!({"nonce": "stale"}))),
    )
    .await;
    assert_eq!(r.headers()["dpop-nonce"], nonce.as_str());
    assert_400(r, "use_dpop_nonce").await;
    // With it: success, and the nonce comes along.
    let r = login_with(
        &srv,
        Some(&key.proof_with("POST", &login, json!({ "nonce": nonce }))),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["dpop-nonce"], nonce.as_str());
    let at = s(&r.json::<Value>().await.unwrap(), "access_token");

    // The resource: 401 use_dpop_nonce, then success.
    let me = srv.url("/api/me");
    let r = me_with(&srv, "DPoP", &at, Some(&key.api_proof(&me, &at))).await;
    assert_eq!(r.headers()["dpop-nonce"], nonce.as_str());
    assert_dpop_401(r, "use_dpop_nonce").await;
    let with_nonce = |n: &str| key.proof_with("GET", &me, json!({"ath": ath(&at), "nonce": n}));
    let r = me_with(&srv, "DPoP", &at, Some(&with_nonce(&nonce))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["dpop-nonce"], nonce.as_str());

    // Rotation: the old nonce is refused at once.
    let r = srv.post_json("/admin/dpop-nonce", json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let fresh = s(&r.json::<Value>().await.unwrap(), "nonce");
    assert_ne!(fresh, nonce);
    let current: Value = srv.get("/admin/dpop-nonce").await.json().await.unwrap();
    assert_eq!(current["nonce"], fresh.as_str());
    let r = me_with(&srv, "DPoP", &at, Some(&with_nonce(&nonce))).await;
    assert_eq!(r.headers()["dpop-nonce"], fresh.as_str());
    assert_dpop_401(r, "use_dpop_nonce").await;
    let r = me_with(&srv, "DPoP", &at, Some(&with_nonce(&fresh))).await;
    assert_eq!(r.status(), StatusCode::OK);

    // A request without a proof needs no nonce and gets none.
    let r = login_with(&srv, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("dpop-nonce").is_none());
    // An invalid proof is invalid_dpop_proof, still with the nonce.
    let r = login_with(
        &srv,
        Some(&key.proof_with("GET", &login, json!({"nonce": fresh}))),
    )
    .await;
    assert_eq!(r.headers()["dpop-nonce"], fresh.as_str());
    assert_400(r, "invalid_dpop_proof").await;

    let stats = srv.stats().await;
    assert_eq!(stats["dpop_nonce_challenges"], 4, "{stats}");
    assert_eq!(stats["dpop_refused"], 5, "{stats}");
    assert_eq!(stats["dpop_proofs"], 3, "{stats}");

    // Reset zeroes the counters and rotates the nonce.
    let r = srv.post_json("/admin/reset", json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let stats = srv.stats().await;
    for counter in ["dpop_proofs", "dpop_refused", "dpop_nonce_challenges"] {
        assert_eq!(stats[counter], 0, "{counter}");
    }
    let after: Value = srv.get("/admin/dpop-nonce").await.json().await.unwrap();
    assert_ne!(after["nonce"], fresh.as_str());
}

#[tokio::test]
async fn admin_config_switches() {
    let srv = start().await;
    let cfg: Value = srv.get("/admin/config").await.json().await.unwrap();
    assert_eq!(cfg["dpop"], false);
    assert_eq!(cfg["dpop_nonce"], false);
    // What the browser tests post between tests: leaves DPoP as it is.
    let reset = json!({"access_ttl_ms":30000,"refresh_ttl_ms":3600000,"reuse_grace_ms":0,
        "renew_header":null,"no_expiry":false,"refresh_cookie":false,"renew_within_ms":null});
    let both = |cfg: &Value| (cfg["dpop"].clone(), cfg["dpop_nonce"].clone());
    let cfg = srv.configure(reset.clone()).await;
    assert_eq!(both(&cfg), (json!(false), json!(false)));
    let cfg = srv.configure(json!({"dpop": true})).await;
    assert_eq!(both(&cfg), (json!(true), json!(false)));
    let cfg = srv.configure(reset.clone()).await;
    assert_eq!(both(&cfg), (json!(true), json!(false)));
    let cfg = srv
        .configure(json!({"dpop": true, "dpop_nonce": true}))
        .await;
    assert_eq!(both(&cfg), (json!(true), json!(true)));
    let cfg = srv.configure(reset.clone()).await;
    assert_eq!(both(&cfg), (json!(true), json!(true)));
    // Off ends nonce mode too; nonce mode alone starts DPoP mode.
    let cfg = srv.configure(json!({"dpop": false})).await;
    assert_eq!(both(&cfg), (json!(false), json!(false)));
    let cfg = srv.configure(json!({"dpop_nonce": true})).await;
    assert_eq!(both(&cfg), (json!(true), json!(true)));
    let cfg = srv.configure(json!({"dpop_nonce": false})).await;
    assert_eq!(both(&cfg), (json!(true), json!(false)));
    let r = srv
        .post_json("/admin/config", json!({"dpop": false, "dpop_nonce": true}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let cfg: Value = srv.get("/admin/config").await.json().await.unwrap();
    assert_eq!(both(&cfg), (json!(true), json!(false)), "unchanged");
    // /admin/reset keeps the configuration, as for every other field.
    srv.post_json("/admin/reset", json!({})).await;
    let cfg: Value = srv.get("/admin/config").await.json().await.unwrap();
    assert_eq!(cfg["dpop"], true);
}

#[tokio::test]
async fn logout_honours_a_bound_access_token_only_with_its_proof() {
    let srv = dpop_server().await;
    let key = Key::new();
    let at = s(&dpop_login(&srv, &key).await, "access_token");
    let logout = srv.url("/logout");
    let me = srv.url("/api/me");
    // As Bearer, or with another key: 204 but nothing revoked.
    let thief = Key::new();
    for (scheme, proof) in [
        ("Bearer", None),
        (
            "DPoP",
            Some(thief.proof_with("POST", &logout, json!({ "ath": ath(&at) }))),
        ),
    ] {
        let mut request = srv
            .client
            .post(&logout)
            .header("authorization", format!("{scheme} {at}"));
        if let Some(p) = proof {
            request = request.header("dpop", p);
        }
        assert_eq!(
            request.send().await.unwrap().status(),
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            me_with(&srv, "DPoP", &at, Some(&key.api_proof(&me, &at)))
                .await
                .status(),
            StatusCode::OK
        );
    }
    let r = srv
        .client
        .post(&logout)
        .header("authorization", format!("DPoP {at}"))
        .header(
            "dpop",
            key.proof_with("POST", &logout, json!({ "ath": ath(&at) })),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        me_with(&srv, "DPoP", &at, Some(&key.api_proof(&me, &at)))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn cors_allows_the_dpop_header_and_exposes_the_nonce() {
    let srv = start_with(|c| {
        c.runtime.dpop = true;
        c.runtime.dpop_nonce = true;
    })
    .await;
    let origin = "http://localhost:5173";
    for requested in [Some("authorization, dpop, content-type"), None] {
        let mut request = srv
            .client
            .request(reqwest::Method::OPTIONS, srv.url("/api/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET");
        if let Some(h) = requested {
            request = request.header("access-control-request-headers", h);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let allowed = r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(allowed.split(',').any(|h| h.trim() == "dpop"), "{allowed}");
    }
    let r = srv
        .client
        .get(srv.url("/api/me"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.split(',').any(|h| h.trim() == "dpop-nonce"),
        "{exposed}"
    );
    assert!(exposed.contains("www-authenticate"), "{exposed}");
}
