//! The protected resource: `/api/*`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::body::read_body;
use crate::clock::now_ms;
use crate::errors::ApiError;
use crate::state::{lock, AppState};
use crate::tokens::{AccessError, Verified};

/// Header that may carry a raw access token instead of `Authorization`.
pub const X_AUTH_TOKEN: &str = "x-auth-token";

/// The access token of a request: `Authorization: Bearer <jwt>`, else
/// `x-auth-token: <jwt>`.
pub fn presented_access_token(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let raw = || {
        headers
            .get(X_AUTH_TOKEN)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    bearer
        .or_else(raw)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// 401 per RFC 6750 §3: no `error` attribute when no token was presented.
fn unauthorized(description: Option<&str>) -> ApiError {
    let challenge = match description {
        None => "Bearer".to_string(),
        Some(d) => format!("Bearer error=\"invalid_token\", error_description=\"{d}\""),
    };
    let error = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token")
        .describe(description.unwrap_or("No access token was presented"));
    match HeaderValue::from_str(&challenge) {
        Ok(v) => error.header(header::WWW_AUTHENTICATE, v),
        Err(_) => error.header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
    }
}

/// Authenticates the request: signature, exact expiry, family still active.
fn authenticate(state: &AppState, headers: &HeaderMap, now: u64) -> Result<Verified, ApiError> {
    let token = presented_access_token(headers).ok_or_else(|| unauthorized(None))?;
    let verified = state
        .issuer
        .verify(&token, now)
        .map_err(|e: AccessError| unauthorized(Some(e.description())))?;
    if !lock(&state.sessions).family_active(&verified.claims.fam) {
        return Err(unauthorized(Some("The access token has been revoked")));
    }
    Ok(verified)
}

/// Any method on `/api/*`. `GET /api/me` describes the token's user; every
/// other call echoes method, path, user, body and content type.
pub async fn protected(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if ![
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ]
    .contains(&method)
    {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ));
    }
    let now = now_ms();
    let verified = match authenticate(&state, &headers, now) {
        Ok(v) => v,
        Err(e) => {
            state.count(|s| s.api_401 += 1);
            return Err(e);
        }
    };
    let bytes = read_body(&headers, body).await?;
    let claims = &verified.claims;
    let payload = if method == Method::GET && uri.path() == "/api/me" {
        let mut me = json!({
            "sub": claims.sub,
            "username": claims.sub,
            "jti": claims.jti,
        });
        if let (Some(exp), Some(map)) = (claims.exp, me.as_object_mut()) {
            map.insert("token_exp".into(), json!(exp));
        }
        me
    } else {
        let text = (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned());
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        json!({
            "method": method.as_str(),
            "path": uri.path(),
            "sub": claims.sub,
            "body": text,
            "content_type": content_type,
        })
    };
    let mut response = Json(payload).into_response();
    state.count(|s| s.api_ok += 1);
    renew_if_due(&state, &verified, now, &mut response);
    Ok(response)
}

/// With a renew header configured, adds a fresh access token (same family)
/// when the presented one is about to expire.
fn renew_if_due(state: &AppState, verified: &Verified, now: u64, response: &mut Response) {
    let cfg = state.config();
    let Some(name) = cfg.renew_header.as_deref() else {
        return;
    };
    let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
        return;
    };
    if verified.expires_at_ms.saturating_sub(now) >= cfg.effective_renew_within_ms() {
        return;
    }
    let claims = &verified.claims;
    let Ok(minted) = state.issuer.mint(
        &claims.sub,
        &claims.fam,
        now,
        cfg.access_ttl_ms,
        !cfg.no_expiry,
    ) else {
        return;
    };
    let Ok(value) = HeaderValue::from_str(&minted.token) else {
        return;
    };
    lock(&state.sessions).note_access_token(&claims.fam, minted.expires_at_ms);
    response.headers_mut().insert(name, value);
    state.count(|s| s.renewals += 1);
}
