//! Fakes for tests and fuzzing, in one place: what the browser supplies to
//! the core, done without a browser. Unused code costs the wasm nothing (it
//! is not linked in).

use crate::config::UrlResolver;
use alloc::string::String;

/// The page origin [`TestUrls`] resolves paths against.
pub const TEST_ORIGIN: &str = "https://app.example";

/// A URL resolver good enough for tests: absolute http(s) URLs as they are,
/// paths against [`TEST_ORIGIN`], another scheme (`javascript:`) as it is,
/// anything else invalid.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestUrls;

impl UrlResolver for TestUrls {
    fn resolve(&self, url: &str) -> Option<String> {
        if url.starts_with("http://") || url.starts_with("https://") || url.contains(':') {
            Some(url.into())
        } else if url.starts_with('/') {
            let mut s = String::from(TEST_ORIGIN);
            s.push_str(url);
            Some(s)
        } else {
            None
        }
    }
    fn origin(&self, url: &str) -> Option<String> {
        let (scheme, rest) = url.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        // As a browser's origin: without the credentials.
        let host = authority.rsplit('@').next()?;
        let mut s = String::from(scheme);
        s.push_str("://");
        s.push_str(host);
        Some(s)
    }
    fn page_origin(&self) -> String {
        TEST_ORIGIN.into()
    }
}
