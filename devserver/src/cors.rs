//! CORS for loopback origins (`http://127.0.0.1:*`, `http://localhost:*`,
//! `http://[::1]:*`): the origin is reflected with credentials allowed;
//! every other origin gets no CORS headers at all — unless `cors_any` is on
//! (`--cors-any`), when any origin, `null` included, is answered like a
//! third-party server would.
//!
//! Hand-written rather than tower-http's layer because the exposed headers
//! include the renew header, which `/admin/config` can change at run time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Methods a cross-origin caller may use.
const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
/// Request headers allowed when the preflight names none.
const DEFAULT_ALLOW_HEADERS: &str = "authorization, x-auth-token, content-type, dpop";
/// Response headers scripts may read (the renew header is added to these).
const EXPOSE_HEADERS: &str = "WWW-Authenticate, DPoP-Nonce, Retry-After, Date";
/// How long browsers may cache a preflight, in seconds.
const MAX_AGE_SECS: &str = "600";

/// Whether `origin` is `http://` + a loopback host + an optional port.
pub fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let (host, port) = match rest.strip_prefix("[::1]") {
        Some(port) => ("[::1]", port),
        None => match rest.find(':') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        },
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.parse::<u16>().is_ok());
    matches!(host, "127.0.0.1" | "localhost" | "[::1]") && port_ok
}

fn allowed_origin(headers: &HeaderMap, any: bool) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    (any || is_loopback_origin(origin.to_str().ok()?)).then(|| origin.clone())
}

/// The CORS middleware: answers preflights itself, decorates the rest.
pub async fn cors(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let origin = allowed_origin(headers, state.config().cors_any);
    let preflight = request.method() == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let out = response.headers_mut();
        out.append(
            header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        if let Some(origin) = origin {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            out.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            let allow_headers = headers
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .cloned()
                .unwrap_or(HeaderValue::from_static(DEFAULT_ALLOW_HEADERS));
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
            out.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(MAX_AGE_SECS),
            );
            if headers
                .get("access-control-request-private-network")
                .is_some_and(|v| v == "true")
            {
                out.insert(
                    "access-control-allow-private-network",
                    HeaderValue::from_static("true"),
                );
            }
        }
        return response;
    }
    let mut response = next.run(request).await;
    let out = response.headers_mut();
    out.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        let expose = match state.config().renew_header {
            Some(name) => format!("{EXPOSE_HEADERS}, {name}"),
            None => EXPOSE_HEADERS.to_string(),
        };
        if let Ok(expose) = HeaderValue::from_str(&expose) {
            out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::is_loopback_origin;

    #[test]
    fn loopback_origins() {
        for ok in [
            "http://127.0.0.1:5555",
            "http://localhost:8080",
            "http://[::1]:3000",
            "http://localhost",
        ] {
            assert!(is_loopback_origin(ok), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "https://127.0.0.1:5555",
            "http://127.0.0.1.evil.example",
            "http://localhost:80x",
            "http://localhost:",
            "http://127.0.0.2:80",
            "null",
        ] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
    }
}
