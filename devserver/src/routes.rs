//! The router: which path goes where, and the middleware around it all.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;

use crate::clock::now_ms;
use crate::config::Config;
use crate::errors::{method_not_allowed, not_found};
use crate::serve::is_dropped;
use crate::state::AppState;
use crate::stats::LoggedRequest;
use crate::{admin, api, auth, cors, dpop, faults, statics};

/// Builds the whole application.
pub fn router(state: Arc<AppState>, config: &Config) -> Router {
    let token_routes = Router::new()
        .route("/login", post(auth::login))
        .route("/token/refresh", post(auth::refresh))
        .route("/oauth/token", post(auth::oauth_token))
        .route_layer(middleware::map_response(auth::no_store));
    let mut app = Router::new()
        .merge(token_routes)
        .route("/logout", post(auth::logout))
        .route("/api/{*rest}", any(api::protected))
        .route("/redirect", any(redirect))
        .merge(admin::router());
    if let Some(pkg) = &config.pkg {
        app = app.nest_service("/pkg", statics::serve_dir(pkg));
    }
    // The demo page learns where `make demo` started its identity provider
    // (`null`: none).
    let demo_config = serde_json::json!({ "issuer": config.issuer });
    app = app.route(
        "/demo-config.json",
        axum::routing::get(move || async move { axum::Json(demo_config) }),
    );
    app = match &config.www {
        Some(www) => app.fallback_service(statics::serve_dir(www)),
        None => app.fallback(not_found),
    };
    app.method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            dpop::nonce_header,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), cors::cors))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            faults::fresh_connections,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// `GET /redirect?to=URL` → 302 to URL (any method): lets the browser tests
/// check that a token never follows a redirect to another origin.
async fn redirect(request: Request) -> Response {
    let to = request
        .uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "to").map(|(_, v)| v));
    match to.and_then(|t| header::HeaderValue::from_str(&t).ok()) {
        Some(location) => Response::builder()
            .status(axum::http::StatusCode::FOUND)
            .header(header::LOCATION, location)
            .body(axum::body::Body::empty())
            .unwrap_or_default(),
        None => crate::errors::ApiError::invalid_request("`to` must be a URL").into_response(),
    }
}

/// Outermost middleware: request log, per-endpoint counts, stderr log.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let headers = request.headers();
    let entry = LoggedRequest {
        method: method.clone(),
        path: path.clone(),
        origin: headers
            .get(header::ORIGIN)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        authorization: headers.contains_key(header::AUTHORIZATION),
        x_auth_token: headers.contains_key(api::X_AUTH_TOKEN),
        cookie: headers.contains_key(header::COOKIE),
        time_ms: now_ms(),
    };
    state.requests().push(entry);
    state.count(|s| s.hit(&method, &path));
    let started = Instant::now();
    let response = next.run(request).await;
    if !state.quiet {
        let outcome = if is_dropped(&response) {
            "dropped".to_string()
        } else {
            response.status().as_u16().to_string()
        };
        eprintln!(
            "{method} {path} -> {outcome} ({} ms)",
            started.elapsed().as_millis()
        );
    }
    response
}
