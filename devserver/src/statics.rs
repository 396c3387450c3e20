//! Static files: `--www DIR` at `/`, `--pkg DIR` at `/pkg/`.
//!
//! Every file is sent with `Cache-Control: no-store` (the demo and tests
//! always want the freshly built SDK), `.wasm` as `application/wasm` and
//! `.js`/`.mjs` as `text/javascript`.

use std::convert::Infallible;
use std::path::Path;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use tower::util::BoxCloneSyncService;
use tower::{service_fn, ServiceExt};
use tower_http::services::ServeDir;

use crate::errors::ApiError;

/// A service serving `dir`; missing files get the JSON 404.
pub fn serve_dir(dir: &Path) -> BoxCloneSyncService<Request, Response, Infallible> {
    let files = ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .call_fallback_on_method_not_allowed(true)
        .fallback(service_fn(|_: Request| async {
            Ok::<_, Infallible>(ApiError::not_found().into_response())
        }));
    BoxCloneSyncService::new(service_fn(move |request: Request| {
        let path = request.uri().path().to_string();
        let files = files.clone();
        async move {
            let response = match files.oneshot(request).await {
                Ok(r) => r.map(Body::new),
                Err(e) => match e {},
            };
            Ok(decorate(&path, response))
        }
    }))
}

fn decorate(path: &str, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if response.status().is_success() {
        let content_type = match Path::new(path).extension().and_then(|e| e.to_str()) {
            Some("wasm") => Some("application/wasm"),
            Some("js" | "mjs") => Some("text/javascript"),
            _ => None,
        };
        if let Some(ct) = content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
    }
    response
}
