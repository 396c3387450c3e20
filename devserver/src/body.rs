//! Reading and decoding request bodies without ever trusting them.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use crate::errors::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request")
        .describe(format!("Request body exceeds {MAX_BODY_BYTES} bytes"))
}

/// Reads the whole body: 413 past [`MAX_BODY_BYTES`], 400 if it breaks off.
pub async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err(ApiError::invalid_request("Could not read the request body")),
    }
}

/// The media type of the request (lower-cased, parameters stripped).
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or("").trim();
    Some(essence.to_ascii_lowercase())
}

/// Whether the request declares a JSON body (`application/json` or `*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|m| m == "application/json" || m.ends_with("+json"))
}

/// Decodes a JSON object body. An empty body is `Ok(None)`; a non-empty one
/// must be declared as JSON and be a JSON object.
pub fn json_object(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Option<serde_json::Map<String, Value>>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !is_json(headers) {
        return Err(ApiError::invalid_request(
            "Content-Type must be application/json",
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(ApiError::invalid_request(
            "The request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::invalid_request(format!("Malformed JSON: {e}"))),
    }
}

/// Decodes a JSON body into `T` (400 `invalid_request` on any mismatch).
pub fn json_value<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<T, ApiError> {
    let map = json_object(headers, bytes)?.unwrap_or_default();
    serde_json::from_value(Value::Object(map))
        .map_err(|e| ApiError::invalid_request(format!("Invalid request body: {e}")))
}

/// A string field of a JSON object: `Ok(None)` if absent, `null` or empty;
/// 400 if it has another type.
pub fn string_field(
    map: Option<&serde_json::Map<String, Value>>,
    name: &str,
) -> Result<Option<String>, ApiError> {
    match map.and_then(|m| m.get(name)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid_request(format!(
            "{name} must be a string"
        ))),
    }
}

/// Decodes an `application/x-www-form-urlencoded` body into its pairs, in
/// order. 400 `invalid_request` for another content type or a bad encoding.
pub fn form_pairs(headers: &HeaderMap, bytes: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    if media_type(headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(ApiError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .map_err(|e| ApiError::invalid_request(format!("Malformed form body: {e}")))
}
