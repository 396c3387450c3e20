//! Helpers shared by the browser tests: where the dev servers are, and small
//! wrappers around `fetch` for talking to their admin endpoints.
#![allow(dead_code)]

use js_sys::{Object, Reflect, JSON};
use tokenkeeper::TokenKeeper;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

/// The dev server every test uses (started by scripts/browser-tests.sh).
pub fn server() -> &'static str {
    match option_env!("TOKENKEEPER_SERVER") {
        Some(s) => s,
        None => panic!("run the browser tests with scripts/browser-tests.sh (make test): TOKENKEEPER_SERVER is not set"),
    }
}

/// A second dev server: another origin.
pub fn other_server() -> &'static str {
    match option_env!("TOKENKEEPER_OTHER_SERVER") {
        Some(s) => s,
        None => panic!("run the browser tests with scripts/browser-tests.sh (make test)"),
    }
}

pub fn url(base: &str, path: &str) -> String {
    format!("{base}{path}")
}

/// `fetch(url, {method, body, headers: {content-type: json}})` → Response.
pub async fn request(method: &str, url: &str, body: Option<&str>) -> Response {
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(body) = body {
        init.set_body(&JsValue::from_str(body));
        let headers = web_sys::Headers::new().unwrap();
        headers.set("content-type", "application/json").unwrap();
        init.set_headers(&headers);
    }
    let req = Request::new_with_str_and_init(url, &init).unwrap();
    let window = web_sys::window().unwrap();
    JsFuture::from(window.fetch_with_request(&req))
        .await
        .unwrap()
        .unchecked_into()
}

/// The JSON body of a response.
pub async fn json(resp: &Response) -> JsValue {
    JsFuture::from(resp.json().unwrap()).await.unwrap()
}

pub fn field(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(key)).unwrap()
}

pub fn num(v: &JsValue, key: &str) -> f64 {
    field(v, key)
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {}", stringify(v)))
}

pub fn stringify(v: &JsValue) -> String {
    JSON::stringify(v).map(String::from).unwrap_or_default()
}

/// Builds a JS object from `(key, value)` pairs.
pub fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &JsValue::from_str(k), v).unwrap();
    }
    o.into()
}

/// `POST /admin/reset` on a server: counters, request log, faults, sessions.
pub async fn reset(base: &str) {
    let r = request("POST", &url(base, "/admin/reset"), Some("{}")).await;
    assert!(r.ok(), "reset failed: {}", r.status());
}

/// `POST /admin/config` with a JSON body.
pub async fn configure(base: &str, config: &str) {
    let r = request("POST", &url(base, "/admin/config"), Some(config)).await;
    assert!(r.ok(), "config failed: {}", r.status());
}

/// `GET /stats`.
pub async fn stats(base: &str) -> JsValue {
    json(&request("GET", &url(base, "/stats"), None).await).await
}

/// `GET /admin/requests`.
pub async fn request_log(base: &str) -> js_sys::Array {
    json(&request("GET", &url(base, "/admin/requests"), None).await)
        .await
        .unchecked_into()
}

/// A keeper for the main dev server with extra options.
pub fn keeper(extra: &[(&str, JsValue)]) -> TokenKeeper {
    let mut pairs: Vec<(&str, JsValue)> = vec![
        ("refreshUrl", url(server(), "/token/refresh").into()),
        (
            "allowedOrigins",
            js_sys::Array::of1(&server().into()).into(),
        ),
    ];
    pairs.extend(extra.iter().cloned());
    TokenKeeper::new(obj(&pairs)).unwrap_or_else(|e| panic!("new TokenKeeper: {}", message(&e)))
}

/// Logs a keeper in as user1.
pub async fn login(keeper: &TokenKeeper) {
    let creds = obj(&[
        ("username", "user1".into()),
        ("password", "password1".into()),
    ]);
    JsFuture::from(keeper.login(url(server(), "/login").into(), creds))
        .await
        .unwrap_or_else(|e| panic!("login: {}", message(&e)));
}

/// `keeper.fetch(url, init)` → Response.
pub async fn kfetch(keeper: &TokenKeeper, url: &str, init: JsValue) -> Response {
    kfetch_input(keeper, url.into(), init).await
}

/// `keeper.fetch(input, init)` with any input (a `URL`, a `Request`) → Response.
pub async fn kfetch_input(keeper: &TokenKeeper, input: JsValue, init: JsValue) -> Response {
    JsFuture::from(keeper.fetch(input.clone(), init))
        .await
        .unwrap_or_else(|e| panic!("keeper.fetch({input:?}): {}", message(&e)))
        .unchecked_into()
}

/// The message of a thrown JS value.
pub fn message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Waits `ms` milliseconds.
pub async fn sleep(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// The dev server's default runtime config: every test starts from it.
pub const DEFAULT_CONFIG: &str = r#"{"access_ttl_ms":30000,"refresh_ttl_ms":3600000,"reuse_grace_ms":0,"renew_header":null,"no_expiry":false,"refresh_cookie":false,"renew_within_ms":null,"dpop":false}"#;

/// Resets the main server and sets its config: defaults, then `overrides`.
pub async fn setup(overrides: &str) {
    reset(server()).await;
    configure(server(), DEFAULT_CONFIG).await;
    if !overrides.is_empty() {
        configure(server(), overrides).await;
    }
}

/// Queues a fault (`POST /admin/faults`) on the main server.
pub async fn fault(spec: &str) {
    let r = request("POST", &url(server(), "/admin/faults"), Some(spec)).await;
    assert!(r.ok(), "fault failed: {}", r.status());
}

/// Collects the details of one event of a keeper.
pub struct Recorder {
    pub events: std::rc::Rc<std::cell::RefCell<Vec<JsValue>>>,
    _closure: wasm_bindgen::closure::Closure<dyn FnMut(JsValue)>,
}

impl Recorder {
    pub fn len(&self) -> usize {
        self.events.borrow().len()
    }
    pub fn all(&self) -> Vec<JsValue> {
        self.events.borrow().clone()
    }
}

pub fn record(keeper: &TokenKeeper, event: &str) -> Recorder {
    let events = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = events.clone();
    let closure = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |d: JsValue| {
        sink.borrow_mut().push(d);
    });
    keeper.on(event.into(), closure.as_ref().clone()).unwrap();
    Recorder {
        events,
        _closure: closure,
    }
}

/// Awaits a promise returned by the keeper, as a Result.
pub async fn settle(p: js_sys::Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

/// The `code` of a TokenKeeperError.
pub fn code(e: &JsValue) -> String {
    field(e, "code").as_string().unwrap_or_default()
}

/// `n` concurrent `keeper.fetch(url)` calls, all awaited.
pub async fn fetch_all(keeper: &TokenKeeper, url: &str, n: usize) -> Vec<Response> {
    let promises = js_sys::Array::new();
    for _ in 0..n {
        promises.push(&keeper.fetch(url.into(), JsValue::UNDEFINED));
    }
    let all = JsFuture::from(js_sys::Promise::all(&promises))
        .await
        .unwrap_or_else(|e| panic!("a concurrent fetch failed: {}", message(&e)));
    js_sys::Array::from(&all)
        .iter()
        .map(|r| r.unchecked_into())
        .collect()
}
