//! Every conversion between `JsValue` and the core's types, and the few
//! bindings the keeper's side needs from the executor (`js/executor.js`).

use crate::config::{Fields, UrlResolver};
use crate::token::RawGrant;
use crate::value::OptValue;
use alloc::string::String;
use alloc::vec::Vec;
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(module = "/js/executor.js")]
extern "C" {
    /// A `TokenKeeperError` from the JSON text of an error ([`tokenkeeper_core::wire::error`]).
    pub(crate) fn tk_error(json: &str) -> JsValue;
    fn tk_resolve(url: &str) -> Option<String>;
    fn tk_origin(url: &str) -> Option<String>;
    fn tk_page_origin() -> String;
}

fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Resolves URLs with the browser's own `URL`, against the page's base URI.
pub(crate) struct BrowserUrls;

impl UrlResolver for BrowserUrls {
    fn resolve(&self, url: &str) -> Option<String> {
        tk_resolve(url)
    }
    fn origin(&self, url: &str) -> Option<String> {
        tk_origin(url)
    }
    /// The page's own origin: `location.origin`, never the `<base>`'s (markup
    /// injected into the page can add a `<base>` of another origin).
    fn page_origin(&self) -> String {
        tk_page_origin()
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
fn string_field(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key).as_string()
}

/// A numeric field of a JS object: a number, or a string holding one.
fn number_field(obj: &JsValue, key: &str) -> Option<f64> {
    let v = get(obj, key);
    v.as_f64()
        .or_else(|| {
            v.as_string()
                .and_then(|s| crate::json::decimal(s.trim().as_bytes()))
        })
        .filter(|n| n.is_finite())
}

/// The token fields of a token response object, and its OAuth `error`.
pub(crate) fn read_body(body: &JsValue, fields: &Fields) -> (RawGrant, Option<String>) {
    let grant = RawGrant {
        access_token: string_field(body, &fields.access_token),
        refresh_token: string_field(body, &fields.refresh_token),
        expires_in: number_field(body, &fields.expires_in),
    };
    (grant, string_field(body, "error"))
}
