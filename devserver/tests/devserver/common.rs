//! Starting a server in-process and talking to it.

use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use tokenkeeper_devserver::{spawn, Config, ServerHandle};

/// A server on a free port plus a client for it. Dropping it stops the server.
pub struct Server {
    pub base: String,
    pub client: Client,
    _handle: ServerHandle,
}

/// A fresh client: no connection reuse (so a dropped connection is seen as
/// such), a timeout so a hang fails the test instead of stalling it.
pub fn client() -> Client {
    Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

pub async fn start() -> Server {
    start_with(|_| {}).await
}

pub async fn start_with(customise: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config {
        port: 0,
        quiet: true,
        ..Config::default()
    };
    customise(&mut config);
    let (addr, handle) = spawn(config).await.expect("server starts");
    Server {
        base: format!("http://{addr}"),
        client: client(),
        _handle: handle,
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Logs in as user1 and returns the token body.
    pub async fn login(&self) -> Value {
        let r = self
            .post_json(
                "/login",
                json!({"username": "user1", "password": "password1"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("json")
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json("/token/refresh", json!({ "refresh_token": refresh_token }))
            .await
    }

    pub async fn oauth(&self, form: &str) -> Response {
        self.client
            .post(self.url("/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string())
            .send()
            .await
            .expect("request")
    }

    pub async fn me(&self, access_token: &str) -> Response {
        self.client
            .get(self.url("/api/me"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request")
    }

    pub async fn stats(&self) -> Value {
        self.get("/stats").await.json().await.expect("json")
    }

    pub async fn configure(&self, patch: Value) -> Value {
        let r = self.post_json("/admin/config", patch).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("json")
    }

    pub async fn fault(&self, spec: Value) {
        let r = self.post_json("/admin/faults", spec).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
}

/// `body["field"]` as a string.
pub fn s(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {body}"))
        .to_string()
}

/// The claims of a JWT, decoded without verification.
pub fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json claims")
}
