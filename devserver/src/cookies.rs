//! The refresh-token cookie of `--refresh-cookie` mode.

use axum::http::{header, HeaderMap, HeaderValue};

/// Name of the cookie that carries the refresh token.
pub const REFRESH_COOKIE: &str = "tk_refresh";

/// Value of cookie `name` from the request's `Cookie` headers.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` value storing `token` for `max_age_secs`.
pub fn set(token: &str, max_age_secs: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{REFRESH_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}"
    ))
    .ok()
}

/// `Set-Cookie` value deleting the cookie.
pub fn clear() -> HeaderValue {
    HeaderValue::from_static("tk_refresh=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}
