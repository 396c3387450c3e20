//! The protected resource: `/api/*`.
//!
//! Bearer tokens as RFC 6750 has them; in DPoP mode, bound tokens as
//! RFC 9449 §7 has them (the `DPoP` scheme, a proof with `ath`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::body::read_body;
use crate::clock::now_ms;
use crate::config::RuntimeConfig;
use crate::dpop::{self, ProofError};
use crate::errors::ApiError;
use crate::faults::{self, FaultTarget};
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

/// How a request presented its access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer`, or the `x-auth-token` header.
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1).
    Dpop,
}

/// The access token of a request and how it came: `Authorization: Bearer`
/// or `Authorization: DPoP`, else `x-auth-token` (as Bearer).
pub fn presented_token(headers: &HeaderMap) -> Option<(Scheme, String)> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            if scheme.eq_ignore_ascii_case("bearer") {
                Some((Scheme::Bearer, token.trim()))
            } else if scheme.eq_ignore_ascii_case("dpop") {
                Some((Scheme::Dpop, token.trim()))
            } else {
                None
            }
        });
    let raw = || {
        headers
            .get(X_AUTH_TOKEN)
            .and_then(|v| v.to_str().ok())
            .map(|t| (Scheme::Bearer, t.trim()))
    };
    authorization
        .or_else(raw)
        .filter(|(_, t)| !t.is_empty())
        .map(|(scheme, t)| (scheme, t.to_string()))
}

/// The `DPoP` challenge with no error, for requests without a token.
const DPOP_CHALLENGE: &str = "DPoP algs=\"ES256\"";

/// A quoted-string-safe version of `text`.
fn quotable(text: &str) -> String {
    text.replace(['"', '\\'], "'")
}

/// 401 per RFC 6750 §3: no `error` attribute when no token was presented.
fn unauthorized(description: Option<&str>) -> ApiError {
    let challenge = match description {
        None => "Bearer".to_string(),
        Some(d) => format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            quotable(d)
        ),
    };
    let error = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token")
        .describe(description.unwrap_or("No access token was presented"));
    match HeaderValue::from_str(&challenge) {
        Ok(v) => error.header(header::WWW_AUTHENTICATE, v),
        Err(_) => error.header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
    }
}

/// 401 with the `DPoP` challenge (RFC 9449 §7.1): `error` is
/// `invalid_token`, `invalid_dpop_proof` or `use_dpop_nonce`.
fn dpop_unauthorized(error: &str, description: &str) -> ApiError {
    let challenge = format!(
        "DPoP error=\"{error}\", error_description=\"{}\", algs=\"ES256\"",
        quotable(description)
    );
    let refusal = ApiError::new(StatusCode::UNAUTHORIZED, error).describe(description);
    match HeaderValue::from_str(&challenge) {
        Ok(v) => refusal.header(header::WWW_AUTHENTICATE, v),
        Err(_) => refusal.header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(DPOP_CHALLENGE),
        ),
    }
}

/// A DPoP binding refusal (`invalid_token`), counted as such.
fn binding_refused(state: &AppState, description: &str) -> ApiError {
    state.count(|s| s.dpop_refused += 1);
    dpop_unauthorized("invalid_token", description)
}

/// The resource's answer to a refused proof (already counted).
fn proof_refused(state: &AppState, error: &ProofError) -> ApiError {
    let refusal = dpop_unauthorized(error.code(), error.description());
    match error {
        ProofError::UseNonce(_) => dpop::with_nonce(state, refusal),
        ProofError::Invalid(_) => refusal,
    }
}

/// Checks signature, exact expiry and that the family is still active;
/// `dpop` picks the challenge scheme of the refusal.
fn verify_token(state: &AppState, token: &str, now: u64, dpop: bool) -> Result<Verified, ApiError> {
    let refuse = |description: &str| {
        if dpop {
            dpop_unauthorized("invalid_token", description)
        } else {
            unauthorized(Some(description))
        }
    };
    let verified = state
        .issuer
        .verify(token, now)
        .map_err(|e: AccessError| refuse(e.description()))?;
    if !lock(&state.sessions).family_active(&verified.claims.fam) {
        return Err(refuse("The access token has been revoked"));
    }
    Ok(verified)
}

/// Authenticates the request: signature, exact expiry, family still active,
/// and in DPoP mode the key binding (scheme, proof, `ath`, key).
fn authenticate(
    state: &AppState,
    cfg: &RuntimeConfig,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    now: u64,
) -> Result<Verified, ApiError> {
    if !cfg.dpop {
        let token = presented_access_token(headers).ok_or_else(|| unauthorized(None))?;
        return verify_token(state, &token, now, false);
    }
    let Some((scheme, token)) = presented_token(headers) else {
        return Err(unauthorized(None).header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(DPOP_CHALLENGE),
        ));
    };
    // A bound token is refused with the DPoP challenge, even when expired.
    let bound = state
        .issuer
        .decode_signed(&token)
        .is_some_and(|c| c.cnf.is_some());
    let verified = verify_token(state, &token, now, bound || scheme == Scheme::Dpop)?;
    let jkt = verified.claims.jkt().map(str::to_string);
    match (jkt, scheme) {
        (None, Scheme::Bearer) => Ok(verified),
        (None, Scheme::Dpop) => Err(binding_refused(
            state,
            "The access token is not DPoP-bound: present it with the Bearer scheme",
        )),
        (Some(_), Scheme::Bearer) => Err(binding_refused(
            state,
            "The access token is DPoP-bound: present it with the DPoP scheme and a DPoP proof",
        )),
        (Some(jkt), Scheme::Dpop) => {
            match dpop::check_request(state, cfg, method, uri, headers, Some(&token), now) {
                Ok(Some(proof)) if proof.jkt == jkt => Ok(verified),
                Ok(Some(_)) => Err(binding_refused(
                    state,
                    "The DPoP proof's key is not the key the access token is bound to",
                )),
                Ok(None) => Err(binding_refused(
                    state,
                    "A DPoP-bound access token needs a DPoP proof",
                )),
                Err(e) => Err(proof_refused(state, &e)),
            }
        }
    }
}

/// The family an access token presented to `/logout` names, if any. In
/// DPoP mode a bound token names its family only with a valid proof by its
/// key, so a stolen bound token cannot end the session.
pub fn logout_family(
    state: &AppState,
    cfg: &RuntimeConfig,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    now: u64,
) -> Option<String> {
    if !cfg.dpop {
        let token = presented_access_token(headers)?;
        return state.issuer.decode_signed(&token).map(|c| c.fam);
    }
    let (scheme, token) = presented_token(headers)?;
    let claims = state.issuer.decode_signed(&token)?;
    match (claims.jkt(), scheme) {
        (None, Scheme::Bearer) => Some(claims.fam),
        (None, Scheme::Dpop) | (Some(_), Scheme::Bearer) => {
            state.count(|s| s.dpop_refused += 1);
            None
        }
        (Some(jkt), Scheme::Dpop) => {
            match dpop::check_request(state, cfg, method, uri, headers, Some(&token), now) {
                Ok(Some(proof)) if proof.jkt == jkt => Some(claims.fam),
                Ok(_) => {
                    state.count(|s| s.dpop_refused += 1);
                    None
                }
                Err(_) => None,
            }
        }
    }
}

/// Any method on `/api/*`. `GET /api/me` describes the token's user; every
/// other call echoes method, path, user, body, content type and the `x-` headers.
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
    let cfg = state.config();
    let verified = match authenticate(&state, &cfg, &method, &uri, &headers, now) {
        Ok(v) => v,
        Err(e) => {
            state.count(|s| s.api_401 += 1);
            return Err(e);
        }
    };
    let bytes = read_body(&headers, body).await?;
    // An injected fault (`"on": "api"`) hits the call once its token passed.
    let fault = state.take_fault(FaultTarget::Api);
    if let Some(response) = faults::before_handling(fault.as_ref()).await {
        return Ok(response);
    }
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
        // The app's own `x-` headers (not the token's), so that a test can
        // see a replay kept what an HTTP client's hooks added.
        let app_headers: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-") && *name != "x-auth-token")
            .filter_map(|(name, value)| Some((name.to_string(), json!(value.to_str().ok()?))))
            .collect();
        json!({
            "method": method.as_str(),
            "path": uri.path(),
            "sub": claims.sub,
            "body": text,
            "content_type": content_type,
            "headers": app_headers,
        })
    };
    let mut response = Json(payload).into_response();
    state.count(|s| s.api_ok += 1);
    renew_if_due(&state, &cfg, &verified, now, &mut response);
    Ok(faults::after_handling(fault.as_ref(), response))
}

/// With a renew header configured, adds a fresh access token (same family,
/// same key binding) when the presented one is about to expire.
fn renew_if_due(
    state: &AppState,
    cfg: &RuntimeConfig,
    verified: &Verified,
    now: u64,
    response: &mut Response,
) {
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
        claims.jkt(),
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
