//! Loopback-only endpoints: `/stats` and `/admin/*`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::body::{json_value, read_body};
use crate::config::{ConfigPatch, RuntimeConfig};
use crate::errors::ApiError;
use crate::faults::{Fault, FaultRequest};
use crate::state::AppState;
use crate::stats::{LoggedRequest, Stats};

/// The loopback-only routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/stats", get(stats))
        .route("/admin/requests", get(requests))
        .route("/admin/reset", axum::routing::post(reset))
        .route(
            "/admin/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/admin/config", get(get_config).post(set_config))
        .route("/admin/dpop-nonce", get(dpop_nonce).post(rotate_dpop_nonce))
        .route_layer(middleware::from_fn(require_loopback))
}

/// Refuses (403) requests whose peer is not a loopback address.
async fn require_loopback(request: Request, next: Next) -> Response {
    let loopback = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(addr)| addr.ip().to_canonical().is_loopback());
    if loopback {
        next.run(request).await
    } else {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden")
            .describe("Only loopback clients may use this endpoint")
            .into_response()
    }
}

/// `GET /stats`.
async fn stats(State(state): State<Arc<AppState>>) -> Json<Stats> {
    Json(state.stats())
}

/// `GET /admin/requests`: oldest first.
async fn requests(State(state): State<Arc<AppState>>) -> Json<Vec<LoggedRequest>> {
    Json(state.requests().snapshot())
}

/// `POST /admin/reset` (also rotates the DPoP nonce).
async fn reset(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .reset()
        .map_err(|e| ApiError::server_error(e.to_string()))?;
    Ok(Json(json!({ "reset": true })))
}

/// `GET /admin/dpop-nonce`: `{"nonce": current}`.
async fn dpop_nonce(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({ "nonce": state.dpop.nonce() }))
}

/// `POST /admin/dpop-nonce`: replaces the nonce (the old one is refused at
/// once) and answers `{"nonce": new}`.
async fn rotate_dpop_nonce(
    State(state): State<Arc<AppState>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let nonce = state
        .dpop
        .rotate_nonce()
        .map_err(|e| ApiError::server_error(e.to_string()))?;
    Ok(Json(json!({ "nonce": nonce })))
}

/// `GET /admin/faults`: the pending faults.
async fn list_faults(State(state): State<Arc<AppState>>) -> Json<Vec<Fault>> {
    Json(state.faults().list())
}

/// `POST /admin/faults`: queues a fault; answers with the pending list.
async fn add_fault(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Vec<Fault>>, ApiError> {
    let bytes = read_body(&headers, body).await?;
    let request: FaultRequest = json_value(&headers, &bytes)?;
    let fault = Fault::try_from(request).map_err(ApiError::invalid_request)?;
    Ok(Json(state.add_fault(fault)))
}

/// `DELETE /admin/faults`.
async fn clear_faults(State(state): State<Arc<AppState>>) -> Json<Vec<Fault>> {
    state.faults().clear();
    Json(Vec::new())
}

/// `GET /admin/config`.
async fn get_config(State(state): State<Arc<AppState>>) -> Json<RuntimeConfig> {
    Json(state.config())
}

/// `POST /admin/config`: partial update; answers with the new config.
async fn set_config(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RuntimeConfig>, ApiError> {
    let bytes = read_body(&headers, body).await?;
    let patch: ConfigPatch = json_value(&headers, &bytes)?;
    state
        .update_config(|cfg| {
            cfg.apply(patch)?;
            Ok::<_, String>(cfg.clone())
        })
        .map(Json)
        .map_err(ApiError::invalid_request)
}
