//! Every binding to the browser that is not plain web-sys, and every
//! conversion between `JsValue` and the core's types, in one place.

use crate::config::{OptValue, UrlResolver};
use crate::error::Error;
use alloc::string::String;
use alloc::vec::Vec;
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{EventTarget, Request};

#[wasm_bindgen]
extern "C" {
    /// `globalThis.fetch`, in a window and in a worker alike.
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(request: &Request) -> Promise;

    /// `String(value)`: what fetch makes of an input that is not a `Request`
    /// (a `URL`, a string, any object with a `toString`). It throws only when
    /// the value's own conversion throws, which fetch would throw too.
    #[wasm_bindgen(js_name = String, catch)]
    fn js_string(value: &JsValue) -> Result<js_sys::JsString, JsValue>;
}

/// `String(value)` as a Rust string; the conversion's own exception as the error.
pub(crate) fn to_string(value: &JsValue) -> Result<String, JsValue> {
    Ok(js_string(value)?.as_string().unwrap_or_default())
}

/// `fetch(request)` on the global object.
pub(crate) fn fetch(request: &Request) -> Promise {
    global_fetch(request)
}

/// The local clock, ms since the epoch.
pub(crate) fn now() -> f64 {
    js_sys::Date::now()
}

/// A random number in `[0, 1)`.
pub(crate) fn random() -> f64 {
    js_sys::Math::random()
}

fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Sets `key` on a plain object (ignoring the impossible failure on a fresh object).
pub(crate) fn set(target: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

/// The base URL relative URLs resolve against: the document's base URI in a
/// window, the location in a worker.
pub(crate) fn base_url() -> String {
    let global = js_sys::global();
    let document = get(&global, "document");
    let base = if document.is_object() {
        get(&document, "baseURI")
    } else {
        get(&get(&global, "location"), "href")
    };
    base.as_string().unwrap_or_default()
}

/// Resolves URLs with the browser's own `URL`.
pub(crate) struct BrowserUrls {
    base: String,
}

impl BrowserUrls {
    /// Resolves against the current page.
    pub(crate) fn new() -> BrowserUrls {
        BrowserUrls { base: base_url() }
    }
}

impl UrlResolver for BrowserUrls {
    fn resolve(&self, url: &str) -> Option<String> {
        web_sys::Url::new_with_base(url, &self.base)
            .ok()
            .map(|u| u.href())
    }
    fn origin(&self, url: &str) -> Option<String> {
        web_sys::Url::new(url).ok().map(|u| u.origin())
    }
    /// The page's own origin: `location.origin`, never the `<base>`'s (markup
    /// injected into the page can add a `<base>` of another origin).
    fn page_origin(&self) -> String {
        get(&get(&js_sys::global(), "location"), "origin")
            .as_string()
            .unwrap_or_default()
    }
}

const MAX_OPTION_DEPTH: usize = 4;

/// Converts a JS options value into the parser's neutral form.
pub(crate) fn opt_value(v: &JsValue) -> OptValue {
    opt_value_at(v, 0)
}

fn opt_value_at(v: &JsValue, depth: usize) -> OptValue {
    if v.is_undefined() {
        OptValue::Undefined
    } else if v.is_null() {
        OptValue::Null
    } else if let Some(b) = v.as_bool() {
        OptValue::Bool(b)
    } else if let Some(n) = v.as_f64() {
        OptValue::Num(n)
    } else if let Some(s) = v.as_string() {
        OptValue::Str(s)
    } else if depth >= MAX_OPTION_DEPTH {
        OptValue::Other("a value nested too deep")
    } else if js_sys::Array::is_array(v) {
        let arr: &js_sys::Array = v.unchecked_ref();
        OptValue::List(arr.iter().map(|x| opt_value_at(&x, depth + 1)).collect())
    } else if v.is_function() {
        OptValue::Other("a function")
    } else if v.is_symbol() {
        OptValue::Other("a symbol")
    } else if v.is_bigint() {
        OptValue::Other("a bigint")
    } else if let Some(obj) = v.dyn_ref::<Object>() {
        let mut entries = Vec::new();
        for key in Object::keys(obj).iter() {
            if let Some(k) = key.as_string() {
                let value = get(v, &k);
                entries.push((k, opt_value_at(&value, depth + 1)));
            }
        }
        OptValue::Map(entries)
    } else {
        OptValue::Other("an unsupported value")
    }
}

/// A string field of a JS object, if it is a string.
pub(crate) fn string_field(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key).as_string()
}

/// A numeric field of a JS object: a number, or a string holding one.
pub(crate) fn number_field(obj: &JsValue, key: &str) -> Option<f64> {
    let v = get(obj, key);
    v.as_f64()
        .or_else(|| {
            v.as_string()
                .and_then(|s| crate::json::decimal(s.trim().as_bytes()))
        })
        .filter(|n| n.is_finite())
}

/// Whether `v` is a `ReadableStream` (a request body that cannot be replayed).
pub(crate) fn is_stream(v: &JsValue) -> bool {
    v.is_instance_of::<web_sys::ReadableStream>()
}

/// `init.body` of a fetch init object.
pub(crate) fn init_body(init: &JsValue) -> JsValue {
    if init.is_object() {
        get(init, "body")
    } else {
        JsValue::UNDEFINED
    }
}

/// Turns an [`Error`] into a real JS `Error` with `name`, `code`, and
/// `status` / `error` / `retryInMs` where they apply.
pub(crate) fn to_js_error(e: &Error) -> JsValue {
    let err = js_sys::Error::new(&e.message());
    err.set_name("TokenKeeperError");
    let obj: &Object = err.as_ref();
    set(obj, "code", &JsValue::from_str(e.code()));
    if let Some(status) = e.status() {
        set(obj, "status", &JsValue::from(status));
    }
    if let Some(oauth) = e.oauth_error() {
        set(obj, "error", &JsValue::from_str(oauth));
    }
    match e {
        Error::RefreshUnavailable { retry_in_ms, .. } | Error::RefreshThrottled { retry_in_ms } => {
            set(obj, "retryInMs", &JsValue::from_f64(retry_in_ms.round()));
        }
        Error::InvalidOption { option, .. } => set(obj, "option", &JsValue::from_str(option)),
        _ => {}
    }
    err.into()
}

/// What an export throws, or a promise rejects with: a keeper [`Error`]
/// (made a `TokenKeeperError` at the boundary) or a JS value thrown by the
/// browser (fetch's own `TypeError`, say), passed on as it is. With the
/// conversions below, exports use `?` on either (the core's `Error` and
/// `JsValue` are both foreign here, so `From<Error> for JsValue` itself
/// cannot be written in this crate).
pub(crate) enum Thrown {
    /// The keeper's error.
    Keeper(Error),
    /// The browser's.
    Js(JsValue),
}

impl From<Error> for Thrown {
    fn from(e: Error) -> Thrown {
        Thrown::Keeper(e)
    }
}

impl From<JsValue> for Thrown {
    fn from(v: JsValue) -> Thrown {
        Thrown::Js(v)
    }
}

impl From<Thrown> for JsValue {
    fn from(t: Thrown) -> JsValue {
        match t {
            Thrown::Keeper(e) => to_js_error(&e),
            Thrown::Js(v) => v,
        }
    }
}

/// The message of a thrown JS value, for [`Error::Browser`].
pub(crate) fn js_message(v: &JsValue) -> String {
    v.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| v.as_string())
        .unwrap_or_else(|| String::from("unknown error"))
}

/// An event listener that is removed when dropped (RAII, like gloo's
/// `EventListener`, without the extra crate).
pub(crate) struct Listener {
    target: EventTarget,
    kind: &'static str,
    closure: Closure<dyn FnMut(web_sys::Event)>,
}

impl Listener {
    /// Listens for `kind` on `target` until dropped.
    pub(crate) fn new(
        target: &EventTarget,
        kind: &'static str,
        f: impl FnMut(web_sys::Event) + 'static,
    ) -> Option<Listener> {
        let closure = Closure::<dyn FnMut(web_sys::Event)>::new(f);
        target
            .add_event_listener_with_callback(kind, closure.as_ref().unchecked_ref())
            .ok()?;
        Some(Listener {
            target: target.clone(),
            kind,
            closure,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, self.closure.as_ref().unchecked_ref());
    }
}

/// The global object as an event target (window or worker scope).
pub(crate) fn global_target() -> Option<EventTarget> {
    js_sys::global().dyn_into::<EventTarget>().ok()
}

/// `document` as an event target, in a window.
pub(crate) fn document_target() -> Option<EventTarget> {
    get(&js_sys::global(), "document")
        .dyn_into::<EventTarget>()
        .ok()
}

/// `document.visibilityState === "visible"` (true where there is no document).
pub(crate) fn is_visible() -> bool {
    let document = get(&js_sys::global(), "document");
    if !document.is_object() {
        return true;
    }
    get(&document, "visibilityState").as_string().as_deref() != Some("hidden")
}

/// Calls an app callback, swallowing what it throws: a faulty listener must
/// not break the session.
pub(crate) fn call_listener(f: &Function, detail: &JsValue) {
    let _ = f.call1(&JsValue::UNDEFINED, detail);
}

/// `Date.parse(text)` as ms, for `Retry-After` and `Date` headers.
pub(crate) fn parse_http_date(text: &str) -> Option<f64> {
    let ms = js_sys::Date::parse(text);
    ms.is_finite().then_some(ms)
}
