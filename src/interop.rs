//! The few bindings the keeper's side needs from the executor
//! (`js/executor.js`). No value from JS is walked here: each arrives as
//! bounded JSON text (`tk_json`), read in the core
//! ([`tokenkeeper_core::value`]).

use crate::config::UrlResolver;
use alloc::string::String;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/executor.js")]
extern "C" {
    /// A `TokenKeeperError` from the JSON text of an error ([`tokenkeeper_core::wire::error`]).
    pub(crate) fn tk_error(json: &str) -> JsValue;
    /// A JS value as JSON text of at most `max` + 1 UTF-16 units, with
    /// markers for what JSON has no form for; `None` for `undefined`.
    pub(crate) fn tk_json(value: &JsValue, max: usize) -> Option<String>;
    fn tk_resolve(url: &str) -> Option<String>;
    fn tk_origin(url: &str) -> Option<String>;
    fn tk_page_origin() -> String;
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
