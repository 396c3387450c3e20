//! DPoP (RFC 9449) in a real browser against the dev server's verifier
//! (`dpop` / `dpop_nonce` in its config): the session bound to a key made
//! by WebCrypto that never leaves memory, every call and refresh with a
//! proof, nonces retried once and never taken for expiry, tabs (keepers on
//! one channel) sharing the key, and what a thief in the page gets away
//! with: tokens that are refused anywhere else, and a key it cannot export.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use tokenkeeper::TokenKeeper;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(inline_js = r#"
const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const text = (s) => new TextEncoder().encode(s);
const part = (o) => b64(text(JSON.stringify(o)));

/** A proof by a key the page never had (a thief's own, at home). */
export async function foreign_proof(htm, htu, access) {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  return proof_by(pair.privateKey, pair.publicKey, htm, htu, access);
}

/** A proof by `key`, whose public half is `pub` (a CryptoKey). */
export async function proof_by(key, pub, htm, htu, access) {
  const jwk = await crypto.subtle.exportKey("jwk", pub);
  const header = { typ: "dpop+jwt", alg: "ES256", jwk: { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y } };
  const claims = { jti: crypto.randomUUID(), htm, htu, iat: Math.floor(Date.now() / 1000) };
  if (access) claims.ath = b64(await crypto.subtle.digest("SHA-256", text(access)));
  const input = part(header) + "." + part(claims);
  const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, text(input));
  return input + "." + b64(sig);
}

/** What a script of the page hears on the keepers' channel: asks, and takes the session message. */
export function spy(channel) {
  const ch = new BroadcastChannel("tokenkeeper:" + channel);
  return new Promise((resolve) => {
    ch.onmessage = (e) => {
      if (e.data && e.data.type == "session") {
        ch.close();
        resolve(e.data);
      }
    };
    ch.postMessage({ v: 1, type: "hello", from: "spy-" + Math.random(), gen: 0 });
  });
}

/** Whether `key` is a private, non-extractable ECDSA P-256 key that exportKey refuses. */
export async function sealed(key) {
  if (!(key instanceof CryptoKey) || key.extractable || key.type != "private") return false;
  if (key.algorithm.name != "ECDSA" || key.algorithm.namedCurve != "P-256") return false;
  for (const format of ["jwk", "pkcs8"]) {
    try {
      await crypto.subtle.exportKey(format, key);
      return false;
    } catch {}
  }
  return true;
}

/** Whether the page keeps nothing anywhere: web storage, IndexedDB, cookies it can read. */
export async function nothing_stored() {
  const dbs = indexedDB.databases ? await indexedDB.databases() : [];
  return localStorage.length == 0 && sessionStorage.length == 0 && dbs.length == 0 && document.cookie == "";
}

/** fetch(url, {method, headers}) → [status, WWW-Authenticate, body text]. */
export async function raw(url, method, headers, body) {
  const res = await fetch(url, { method, headers, body });
  return [res.status, res.headers.get("WWW-Authenticate"), await res.text()];
}
"#)]
extern "C" {
    async fn foreign_proof(htm: &str, htu: &str, access: Option<String>) -> JsValue;
    async fn proof_by(
        key: JsValue,
        public: JsValue,
        htm: &str,
        htu: &str,
        access: Option<String>,
    ) -> JsValue;
    async fn spy(channel: &str) -> JsValue;
    async fn sealed(key: JsValue) -> JsValue;
    async fn nothing_stored() -> JsValue;
    async fn raw(url: &str, method: &str, headers: JsValue, body: JsValue) -> JsValue;
}

fn channel_name() -> String {
    format!("dpop-{}", (js_sys::Math::random() * 1e12) as u64)
}

fn dpop_keeper(channel: &str) -> TokenKeeper {
    keeper(&[("dpop", true.into()), ("channel", channel.into())])
}

async fn ready(k: &TokenKeeper) -> bool {
    JsFuture::from(k.ready()).await.unwrap().as_bool().unwrap()
}

async fn access_token(k: &TokenKeeper) -> String {
    JsFuture::from(k.get_access_token())
        .await
        .unwrap_or_else(|e| panic!("getAccessToken: {}", message(&e)))
        .as_string()
        .unwrap()
}

/// The status of `keeper.fetch(url)`.
async fn call(k: &TokenKeeper, path: &str) -> u16 {
    kfetch(k, &url(server(), path), JsValue::UNDEFINED)
        .await
        .status()
}

/// `[status, WWW-Authenticate, body]` of a raw request.
async fn raw_request(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, String) {
    let h = obj(&headers
        .iter()
        .map(|(k, v)| (*k, JsValue::from_str(v)))
        .collect::<Vec<_>>());
    let body = body.map_or(JsValue::UNDEFINED, JsValue::from_str);
    let r = js_sys::Array::from(&raw(url, method, h, body).await);
    (
        r.get(0).as_f64().unwrap() as u16,
        r.get(1).as_string().unwrap_or_default(),
        r.get(2).as_string().unwrap_or_default(),
    )
}

#[wasm_bindgen_test]
async fn a_dpop_session_proves_every_call_and_refresh() {
    setup(r#"{"dpop":true}"#).await;
    let k = dpop_keeper(&channel_name());
    login(&k).await;
    for _ in 0..5 {
        assert_eq!(call(&k, "/api/data").await, 200);
    }
    JsFuture::from(k.refresh())
        .await
        .unwrap_or_else(|e| panic!("refresh: {}", message(&e)));
    assert_eq!(call(&k, "/api/data").await, 200);
    let s = stats(server()).await;
    // The login, five calls, the refresh, one call.
    assert_eq!(num(&s, "dpop_proofs"), 8.0, "{}", stringify(&s));
    assert_eq!(num(&s, "dpop_refused"), 0.0, "{}", stringify(&s));
    // The requests carried `Authorization: DPoP` and a proof.
    let log = request_log(server()).await;
    let api: Vec<JsValue> = log
        .iter()
        .filter(|r| {
            field(r, "path")
                .as_string()
                .is_some_and(|p| p.starts_with("/api/"))
        })
        .collect();
    assert_eq!(api.len(), 6);
    assert!(
        nothing_stored().await.as_bool().unwrap(),
        "the key and tokens live in memory only"
    );
    k.close();
}

#[wasm_bindgen_test]
async fn nonces_are_retried_once_and_never_cost_a_refresh() {
    setup(r#"{"dpop":true,"dpop_nonce":true}"#).await;
    let k = dpop_keeper(&channel_name());
    // The login is asked for a nonce and sent again once with it.
    login(&k).await;
    let s = stats(server()).await;
    assert_eq!(num(&s, "dpop_nonce_challenges"), 1.0, "{}", stringify(&s));
    // The nonce came with the login's answer: calls need no retry.
    for _ in 0..3 {
        assert_eq!(call(&k, "/api/data").await, 200);
    }
    assert_eq!(num(&stats(server()).await, "dpop_nonce_challenges"), 1.0);
    // A new nonce: the next call is sent again once, without a refresh.
    let r = request("POST", &url(server(), "/admin/dpop-nonce"), Some("{}")).await;
    assert!(r.ok());
    assert_eq!(call(&k, "/api/data").await, 200);
    let s = stats(server()).await;
    assert_eq!(num(&s, "dpop_nonce_challenges"), 2.0, "{}", stringify(&s));
    assert_eq!(num(&s, "refresh_requests"), 0.0, "a nonce is not expiry");
    // And a refresh after a rotation: one retry, the same refresh token.
    let r = request("POST", &url(server(), "/admin/dpop-nonce"), Some("{}")).await;
    assert!(r.ok());
    JsFuture::from(k.refresh())
        .await
        .unwrap_or_else(|e| panic!("refresh: {}", message(&e)));
    let s = stats(server()).await;
    assert_eq!(num(&s, "dpop_nonce_challenges"), 3.0, "{}", stringify(&s));
    assert_eq!(num(&s, "refreshes"), 1.0);
    assert_eq!(num(&s, "reuse_detections"), 0.0);
    assert_eq!(call(&k, "/api/data").await, 200);
    k.close();
}

#[wasm_bindgen_test]
async fn tabs_share_the_key_in_memory_and_it_never_leaves() {
    setup(r#"{"dpop":true,"access_ttl_ms":4000}"#).await;
    let channel = channel_name();
    let first = dpop_keeper(&channel);
    login(&first).await;
    let others = [dpop_keeper(&channel), dpop_keeper(&channel)];
    for k in &others {
        assert!(ready(k).await, "a new tab joins the DPoP session");
    }
    assert_eq!(
        num(&stats(server()).await, "refresh_requests"),
        0.0,
        "joined with no network"
    );
    // Every tab signs with the shared key; a refresh in one serves all.
    for k in others.iter().chain([&first]) {
        assert_eq!(call(k, "/api/data").await, 200);
    }
    JsFuture::from(others[1].refresh()).await.unwrap();
    sleep(100).await;
    for k in others.iter().chain([&first]) {
        assert_eq!(call(k, "/api/data").await, 200);
        assert_eq!(k.generation(), first.generation());
    }
    let s = stats(server()).await;
    assert_eq!(num(&s, "dpop_refused"), 0.0, "{}", stringify(&s));
    // What the tabs hand each other is a key no script can export.
    let heard = spy(&channel).await;
    assert!(
        sealed(field(&heard, "key")).await.as_bool().unwrap(),
        "not extractable"
    );
    assert!(nothing_stored().await.as_bool().unwrap());
    first.close();
    for k in others {
        k.close();
    }
}

#[wasm_bindgen_test]
async fn stolen_tokens_are_refused_anywhere_else() {
    setup(r#"{"dpop":true}"#).await;
    let channel = channel_name();
    let k = dpop_keeper(&channel);
    login(&k).await;
    // A script of the page takes what the channel hands out.
    let heard = spy(&channel).await;
    let access = field(&heard, "access").as_string().unwrap();
    let refresh = field(&heard, "refresh").as_string().unwrap();
    assert_eq!(access, access_token(&k).await);
    let api = url(server(), "/api/data");
    // The access token as a Bearer token, or with the DPoP scheme and no
    // proof, or with a proof by the thief's own key: refused.
    let bearer = format!("Bearer {access}");
    let dpop = format!("DPoP {access}");
    let (status, challenge, _) =
        raw_request(&api, "GET", &[("Authorization", &bearer)], None).await;
    assert_eq!(status, 401, "as Bearer");
    assert!(challenge.contains("DPoP"), "{challenge}");
    let (status, _, _) = raw_request(&api, "GET", &[("Authorization", &dpop)], None).await;
    assert_eq!(status, 401, "without a proof");
    let foreign = foreign_proof("GET", &api, Some(access.clone()))
        .await
        .as_string()
        .unwrap();
    let (status, challenge, _) = raw_request(
        &api,
        "GET",
        &[("Authorization", &dpop), ("DPoP", &foreign)],
        None,
    )
    .await;
    assert_eq!(status, 401, "with another key's proof: {challenge}");
    // The refresh token, with another key's proof or none: refused, and
    // nothing of the session is revoked.
    let refresh_url = url(server(), "/token/refresh");
    let body = format!(r#"{{"refresh_token":"{refresh}"}}"#);
    let foreign = foreign_proof("POST", &refresh_url, None)
        .await
        .as_string()
        .unwrap();
    let json = ("Content-Type", "application/json");
    let (status, _, text) = raw_request(
        &refresh_url,
        "POST",
        &[json, ("DPoP", &foreign)],
        Some(&body),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("invalid_dpop_proof"), "{text}");
    let (status, _, _) = raw_request(&refresh_url, "POST", &[json], Some(&body)).await;
    assert_eq!(status, 400, "without a proof");
    // The page's own session goes on: the thief could not end it either.
    JsFuture::from(k.refresh())
        .await
        .unwrap_or_else(|e| panic!("refresh: {}", message(&e)));
    assert_eq!(call(&k, "/api/data").await, 200);
    // The key itself stays in the browser: usable while the page runs
    // (the boundary SECURITY.md draws), never exportable.
    assert!(sealed(field(&heard, "key")).await.as_bool().unwrap());
    k.close();
}

#[wasm_bindgen_test]
async fn bearer_tokens_for_a_dpop_keeper_are_an_error_not_a_downgrade() {
    // The server does not do DPoP: it ignores the proof and answers Bearer.
    setup(r#"{"dpop":false}"#).await;
    let k = dpop_keeper(&channel_name());
    let creds = obj(&[
        ("username", "user1".into()),
        ("password", "password1".into()),
    ]);
    let e = settle(k.login(url(server(), "/login").into(), creds))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "invalid_token_response", "{}", message(&e));
    assert!(message(&e).contains("not DPoP"), "{}", message(&e));
    assert!(!k.is_authenticated());
    // And a Bearer keeper refuses DPoP tokens it never asked for: it sends
    // no proof, so the server binds nothing and all is Bearer.
    setup(r#"{"dpop":true}"#).await;
    let b = keeper(&[("channel", channel_name().into())]);
    login(&b).await;
    assert_eq!(call(&b, "/api/data").await, 200);
    assert_eq!(num(&stats(server()).await, "dpop_proofs"), 0.0);
    k.close();
    b.close();
}

#[wasm_bindgen_test]
async fn a_post_keeps_its_body_through_a_nonce_replay_and_a_refresh_replay() {
    // A token that expires unseen (no exp, no expires_in), and a nonce the
    // server rotates: the POST is sent again with its body, once for the
    // nonce (no refresh), and once after the refresh its 401 earns.
    setup(r#"{"dpop":true,"dpop_nonce":true,"no_expiry":true,"access_ttl_ms":1500}"#).await;
    let k = dpop_keeper(&channel_name());
    login(&k).await;
    let post = || {
        obj(&[
            ("method", "POST".into()),
            ("body", r#"{"x":1}"#.into()),
            (
                "headers",
                obj(&[("content-type", "application/json".into())]),
            ),
        ])
    };
    let echoed = |body: &JsValue| {
        assert_eq!(field(body, "method").as_string().as_deref(), Some("POST"));
        assert_eq!(
            field(body, "body").as_string().as_deref(),
            Some(r#"{"x":1}"#)
        );
    };
    let r = request("POST", &url(server(), "/admin/dpop-nonce"), Some("{}")).await;
    assert!(r.ok());
    let resp = kfetch(&k, &url(server(), "/api/echo"), post()).await;
    assert_eq!(resp.status(), 200);
    echoed(&json(&resp).await);
    let s = stats(server()).await;
    assert_eq!(
        num(&s, "dpop_nonce_challenges"),
        2.0,
        "the login's and this one: {}",
        stringify(&s)
    );
    assert_eq!(num(&s, "refresh_requests"), 0.0, "a nonce is not expiry");
    sleep(1700).await;
    let resp = kfetch(&k, &url(server(), "/api/echo"), post()).await;
    assert_eq!(resp.status(), 200);
    echoed(&json(&resp).await);
    let s = stats(server()).await;
    assert_eq!(num(&s, "refreshes"), 1.0, "{}", stringify(&s));
    assert_eq!(num(&s, "reuse_detections"), 0.0);
    k.close();
}
