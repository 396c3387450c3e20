//! The session endpoints: `/login`, `/token/refresh`, `/oauth/token` and
//! `/logout`.
//!
//! In DPoP mode a token request with a `DPoP` proof gets tokens bound to
//! the proof key (`token_type` `DPoP`, `cnf.jkt` in the access token, the
//! family bound too); one without gets Bearer tokens as before.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::api::logout_family;
use crate::body::{form_pairs, json_object, json_value, read_body, string_field};
use crate::clock::{ceil_secs, now_ms};
use crate::config::RuntimeConfig;
use crate::cookies::{self, REFRESH_COOKIE};
use crate::dpop::{self, Proof};
use crate::errors::ApiError;
use crate::faults;
use crate::serve::is_dropped;
use crate::sessions::{Issued, ProofKey, RefreshError, RefreshOutcome};
use crate::state::{lock, AppState};

/// The demo accounts: username, password.
pub const USERS: &[(&str, &str)] = &[("user1", "password1"), ("user2", "password2")];

#[derive(Deserialize)]
struct LoginRequest {
    username: Option<String>,
    password: Option<String>,
}

/// Body of every successful token response.
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// `POST /login` with `{"username","password"}`: starts a new family
/// (bound to the proof key if a DPoP proof comes along).
pub async fn login(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let cfg = state.config();
    let proof = token_request_proof(&state, &cfg, &method, &uri, &headers)?;
    let bytes = read_body(&headers, body).await?;
    let request: LoginRequest = json_value(&headers, &bytes)?;
    let (Some(username), Some(password)) = (request.username, request.password) else {
        return Err(ApiError::invalid_request(
            "username and password are required",
        ));
    };
    if !USERS.iter().any(|(u, p)| *u == username && *p == password) {
        state.count(|s| s.login_failures += 1);
        return Err(
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials")
                .describe("Wrong username or password"),
        );
    }
    let now = now_ms();
    let jkt = proof.as_ref().map(|p| p.jkt.as_str());
    let issued = lock(&state.sessions)
        .start_family(&username, now, cfg.refresh_ttl_ms, jkt)
        .map_err(|e| ApiError::server_error(e.to_string()))?;
    let response = token_response(&state, &cfg, &issued, jkt, None, now)?;
    state.count(|s| s.logins += 1);
    Ok(response)
}

/// `POST /token/refresh` with `{"refresh_token"}` (or the cookie in cookie
/// mode): rotates the refresh token.
pub async fn refresh(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    token_endpoint(&state, refresh_json(&state, method, uri, headers, body)).await
}

async fn refresh_json(
    state: &AppState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let cfg = state.config();
    let proof = token_request_proof(state, &cfg, &method, &uri, &headers)?;
    let bytes = read_body(&headers, body).await?;
    let map = json_object(&headers, &bytes)?;
    let token = match string_field(map.as_ref(), "refresh_token")? {
        Some(t) => Some(t),
        None if cfg.refresh_cookie => cookies::read(&headers, REFRESH_COOKIE),
        None => None,
    };
    let Some(token) = token else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Refresh token is missing",
        ));
    };
    let now = now_ms();
    let issued = match exchange(state, &token, now, &cfg, proof.as_ref()) {
        Ok(issued) => issued,
        Err(RefreshError::Random(e)) => return Err(ApiError::server_error(e.to_string())),
        Err(e @ (RefreshError::ProofMissing | RefreshError::KeyMismatch)) => {
            return Err(binding_error(&e))
        }
        Err(e) => return Err(ApiError::new(StatusCode::UNAUTHORIZED, e.description())),
    };
    let jkt = proof.as_ref().map(|p| p.jkt.as_str());
    token_response(state, &cfg, &issued, jkt, None, now)
}

/// `POST /oauth/token`, RFC 6749 §6 refresh grant with §5.2 errors.
pub async fn oauth_token(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    token_endpoint(&state, oauth_form(&state, method, uri, headers, body)).await
}

async fn oauth_form(
    state: &AppState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let cfg = state.config();
    let proof = token_request_proof(state, &cfg, &method, &uri, &headers)?;
    let bytes = read_body(&headers, body).await?;
    let pairs = form_pairs(&headers, &bytes)?;
    let mut seen = HashSet::new();
    for (name, _) in &pairs {
        if !seen.insert(name.as_str()) {
            return Err(ApiError::invalid_request(format!(
                "Parameter {name} is repeated"
            )));
        }
    }
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    match param("grant_type").as_deref() {
        None => return Err(ApiError::invalid_request("grant_type is required")),
        Some("refresh_token") => {}
        Some(other) => {
            return Err(
                ApiError::new(StatusCode::BAD_REQUEST, "unsupported_grant_type")
                    .describe(format!("Grant type {other:?} is not supported")),
            )
        }
    }
    let token = match param("refresh_token") {
        Some(t) => Some(t),
        None if cfg.refresh_cookie => cookies::read(&headers, REFRESH_COOKIE),
        None => None,
    };
    let Some(token) = token else {
        return Err(ApiError::invalid_request("refresh_token is required"));
    };
    let now = now_ms();
    let issued = match exchange(state, &token, now, &cfg, proof.as_ref()) {
        Ok(issued) => issued,
        Err(RefreshError::Random(e)) => return Err(ApiError::server_error(e.to_string())),
        Err(e @ (RefreshError::ProofMissing | RefreshError::KeyMismatch)) => {
            return Err(binding_error(&e))
        }
        Err(e) => {
            return Err(
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_grant").describe(e.description())
            )
        }
    };
    let jkt = proof.as_ref().map(|p| p.jkt.as_str());
    token_response(state, &cfg, &issued, jkt, param("scope"), now)
}

/// `POST /logout`: revokes the family named by the refresh token in the
/// body, the cookie, or the presented access token (a DPoP-bound one only
/// with a proof by its key). Always 204.
pub async fn logout(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body).await?;
    let map = json_object(&headers, &bytes)?;
    let body_token = string_field(map.as_ref(), "refresh_token")?;
    let cookie_token = cookies::read(&headers, REFRESH_COOKIE);
    let access_family = logout_family(&state, &state.config(), &method, &uri, &headers, now_ms());
    {
        let mut sessions = lock(&state.sessions);
        let families: Vec<String> = [&body_token, &cookie_token]
            .into_iter()
            .flatten()
            .filter_map(|t| sessions.family_of(t))
            .chain(access_family)
            .collect();
        for family in families {
            sessions.revoke_family(&family);
        }
    }
    state.count(|s| s.logouts += 1);
    let mut response = StatusCode::NO_CONTENT.into_response();
    if state.config().refresh_cookie || cookie_token.is_some() {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookies::clear());
    }
    Ok(response)
}

/// Adds `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub async fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Common frame of both token endpoints: counting and injected faults.
async fn token_endpoint(
    state: &AppState,
    work: impl Future<Output = Result<Response, ApiError>>,
) -> Response {
    state.count(|s| s.refresh_requests += 1);
    let fault = state.take_fault(faults::FaultTarget::Token);
    let response = match faults::before_handling(fault.as_ref()).await {
        Some(r) => r,
        None => work.await.unwrap_or_else(IntoResponse::into_response),
    };
    let status = response.status();
    if !is_dropped(&response) && (status.is_client_error() || status.is_server_error()) {
        state.count(|s| s.refresh_failures += 1);
    }
    faults::after_handling(fault.as_ref(), response)
}

/// The DPoP proof of a token request: `None` without one (or with DPoP
/// mode off); a refused proof is the endpoint's 400 answer.
fn token_request_proof(
    state: &AppState,
    cfg: &RuntimeConfig,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<Proof>, ApiError> {
    if !cfg.dpop {
        return Ok(None);
    }
    dpop::check_request(state, cfg, method, uri, headers, None, now_ms())
        .map_err(|e| dpop::token_endpoint_error(state, &e))
}

/// 400 `invalid_dpop_proof` for a refresh of a bound family without its key.
fn binding_error(error: &RefreshError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof").describe(error.description())
}

/// Runs the rotation rules (with the family's key binding in DPoP mode)
/// and counts the outcome.
fn exchange(
    state: &AppState,
    token: &str,
    now: u64,
    cfg: &RuntimeConfig,
    proof: Option<&Proof>,
) -> Result<Issued, RefreshError> {
    let key = match (cfg.dpop, proof) {
        (false, _) => ProofKey::Unchecked,
        (true, None) => ProofKey::Absent,
        (true, Some(p)) => ProofKey::Jkt(&p.jkt),
    };
    let outcome =
        lock(&state.sessions).refresh(token, now, cfg.refresh_ttl_ms, cfg.reuse_grace_ms, key);
    match outcome {
        Ok(RefreshOutcome::Rotated(issued)) => {
            state.count(|s| s.refreshes += 1);
            Ok(issued)
        }
        Ok(RefreshOutcome::GraceReuse(issued)) => {
            state.count(|s| s.grace_reuses += 1);
            Ok(issued)
        }
        Err(RefreshError::ReuseDetected) => {
            state.count(|s| s.reuse_detections += 1);
            Err(RefreshError::ReuseDetected)
        }
        Err(e @ (RefreshError::ProofMissing | RefreshError::KeyMismatch)) => {
            state.count(|s| s.dpop_refused += 1);
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Mints an access token for `issued` (bound to `jkt`, the request's proof
/// key, if any) and builds the success response (cookie mode: refresh token
/// in `Set-Cookie` only).
fn token_response(
    state: &AppState,
    cfg: &RuntimeConfig,
    issued: &Issued,
    jkt: Option<&str>,
    scope: Option<String>,
    now: u64,
) -> Result<Response, ApiError> {
    let minted = state
        .issuer
        .mint(
            &issued.user,
            &issued.family,
            now,
            cfg.access_ttl_ms,
            !cfg.no_expiry,
            jkt,
        )
        .map_err(ApiError::server_error)?;
    lock(&state.sessions).note_access_token(&issued.family, minted.expires_at_ms);
    let body = TokenResponse {
        access_token: minted.token,
        refresh_token: (!cfg.refresh_cookie).then(|| issued.refresh_token.clone()),
        token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
        expires_in: (!cfg.no_expiry).then(|| ceil_secs(cfg.access_ttl_ms)),
        scope,
    };
    let mut response = Json(body).into_response();
    if cfg.refresh_cookie {
        let cookie = cookies::set(&issued.refresh_token, ceil_secs(cfg.refresh_ttl_ms))
            .ok_or_else(|| ApiError::server_error("Could not build the cookie"))?;
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}
