//! DPoP (RFC 9449): proof verification, key thumbprints, the server nonce
//! and the `jti` replay cache, for the `--dpop` / `--dpop-nonce` modes.
//!
//! A proof is a compact JWS in the `DPoP` request header, signed with ES256
//! by the private half of the P-256 public key its header carries (`jwk`).
//! [`DpopVerifier::verify`] runs the RFC 9449 §4.3 checks: the shape, `typ`
//! `dpop+jwt`, `alg` ES256, a public (never private) EC P-256 `jwk`, the
//! signature, `htm` and `htu` against the request, `iat` within
//! [`IAT_WINDOW_MS`] of the server clock, a `jti` never seen before, `ath`
//! when an access token goes with the proof, and, in nonce mode, the
//! server's current nonce. Tokens issued against a proof are bound to the
//! key's RFC 7638 thumbprint ([`thumbprint`]), which the handlers compare.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::RuntimeConfig;
use crate::errors::ApiError;
use crate::ids::random_id;
use crate::state::{lock, AppState};

/// The request header that carries a proof.
pub const DPOP_HEADER: &str = "dpop";
/// The response header that carries the server's current nonce.
pub const NONCE_HEADER: &str = "dpop-nonce";
/// How far a proof's `iat` may be from the server clock, either way.
pub const IAT_WINDOW_MS: u64 = 60_000;
/// Bytes of randomness in a nonce (256 bits).
pub const NONCE_BYTES: usize = 32;
/// Longest proof accepted, in bytes.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;
/// Longest `jti` accepted, in bytes.
pub const MAX_JTI_BYTES: usize = 256;
/// Most proofs remembered at once; past that (after pruning) new proofs are
/// refused rather than old ones forgotten.
pub const REPLAY_CAPACITY: usize = 100_000;
/// Prune the replay cache after this many insertions.
const PRUNE_EVERY: usize = 1024;
/// The only signature algorithm accepted.
pub const ALG: &str = "ES256";

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof's key.
    pub jkt: String,
    /// The proof's unique id.
    pub jti: String,
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// `invalid_dpop_proof`: the proof is malformed, mis-signed, stale,
    /// replayed or for another request.
    Invalid(String),
    /// `use_dpop_nonce`: the proof lacks the server's current nonce.
    UseNonce(&'static str),
}

impl ProofError {
    /// The OAuth error code.
    pub fn code(&self) -> &'static str {
        match self {
            ProofError::Invalid(_) => "invalid_dpop_proof",
            ProofError::UseNonce(_) => "use_dpop_nonce",
        }
    }

    /// Human-readable description for `error_description`.
    pub fn description(&self) -> &str {
        match self {
            ProofError::Invalid(d) => d,
            ProofError::UseNonce(d) => d,
        }
    }
}

fn invalid(description: impl Into<String>) -> ProofError {
    ProofError::Invalid(description.into())
}

/// What a proof must match: the request it came with.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request method (`htm`).
    pub method: &'a str,
    /// The request URL without query and fragment (`htu`); `None` when it
    /// cannot be known (no `Host` header).
    pub htu: Option<&'a str>,
    /// The access token presented with the proof, whose hash `ath` must be.
    pub access_token: Option<&'a str>,
    /// Whether the proof must carry the current nonce.
    pub nonce: bool,
    /// The server clock, in milliseconds since the epoch.
    pub now_ms: u64,
}

/// `jti`s of accepted proofs, kept until their `iat` leaves the window.
#[derive(Debug, Default)]
struct ReplayCache {
    /// `"<jkt>.<jti>"` → forget after (ms since the epoch).
    seen: HashMap<String, u64>,
    inserts: usize,
}

impl ReplayCache {
    /// Records `key` until `keep_until_ms`; false if it was seen already.
    fn insert_new(&mut self, key: String, keep_until_ms: u64, now_ms: u64) -> Result<(), String> {
        if self.seen.get(&key).is_some_and(|until| *until > now_ms) {
            return Err("The DPoP proof has been used before (jti replay)".into());
        }
        self.inserts += 1;
        if self.inserts >= PRUNE_EVERY || self.seen.len() >= REPLAY_CAPACITY {
            self.inserts = 0;
            self.seen.retain(|_, until| *until > now_ms);
        }
        if self.seen.len() >= REPLAY_CAPACITY {
            return Err("Too many recent DPoP proofs; try again later".into());
        }
        self.seen.insert(key, keep_until_ms);
        Ok(())
    }
}

/// The verifier's state: the current nonce and the replay cache.
#[derive(Debug)]
pub struct DpopVerifier {
    nonce: Mutex<String>,
    replays: Mutex<ReplayCache>,
}

impl DpopVerifier {
    /// A verifier with a fresh random nonce and nothing seen yet.
    pub fn new() -> Result<Self, getrandom::Error> {
        Ok(DpopVerifier {
            nonce: Mutex::new(random_id(NONCE_BYTES)?),
            replays: Mutex::new(ReplayCache::default()),
        })
    }

    /// The current nonce.
    pub fn nonce(&self) -> String {
        lock(&self.nonce).clone()
    }

    /// Replaces the nonce with a fresh one (the old one is refused from now
    /// on) and returns it.
    pub fn rotate_nonce(&self) -> Result<String, getrandom::Error> {
        let fresh = random_id(NONCE_BYTES)?;
        *lock(&self.nonce) = fresh.clone();
        Ok(fresh)
    }

    /// Runs every RFC 9449 §4.3 check on `proof`; records its `jti` when it
    /// passes.
    pub fn verify(&self, proof: &str, expected: &Expected<'_>) -> Result<Proof, ProofError> {
        if proof.len() > MAX_PROOF_BYTES {
            return Err(invalid(format!(
                "The DPoP proof exceeds {MAX_PROOF_BYTES} bytes"
            )));
        }
        let mut parts = proof.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid(
                "The DPoP proof must be a compact JWS of three dot-separated parts",
            ));
        };
        let header = json_part(header_b64, "header")?;
        if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
            return Err(invalid("The DPoP proof's typ must be dpop+jwt"));
        }
        if header.get("alg").and_then(Value::as_str) != Some(ALG) {
            return Err(invalid("The DPoP proof's alg must be ES256"));
        }
        let (key, jkt) = public_key(header.get("jwk"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .ok()
            .filter(|s| s.len() == 64)
            .and_then(|s| Signature::from_slice(&s).ok())
            .ok_or_else(|| {
                invalid("The DPoP proof's signature is not a 64-byte ES256 (r||s) signature")
            })?;
        let signing_input = format!("{header_b64}.{claims_b64}");
        key.verify(signing_input.as_bytes(), &signature)
            .map_err(|_| invalid("The DPoP proof's signature does not verify with its jwk"))?;
        let claims = json_part(claims_b64, "payload")?;

        match claims.get("htm").and_then(Value::as_str) {
            Some(htm) if htm == expected.method => {}
            Some(_) => {
                return Err(invalid(
                    "The DPoP proof's htm does not match the request method",
                ))
            }
            None => return Err(invalid("The DPoP proof has no htm claim")),
        }
        let Some(htu) = claims.get("htu").and_then(Value::as_str) else {
            return Err(invalid("The DPoP proof has no htu claim"));
        };
        if htu.contains(['?', '#']) {
            return Err(invalid(
                "The DPoP proof's htu must not have a query or a fragment",
            ));
        }
        if expected.htu != Some(htu) {
            return Err(invalid(
                "The DPoP proof's htu does not match the request URL",
            ));
        }
        let Some(iat) = claims.get("iat").and_then(Value::as_f64) else {
            return Err(invalid("The DPoP proof has no numeric iat claim"));
        };
        let now = expected.now_ms as f64;
        if !iat.is_finite() || (iat * 1_000.0 - now).abs() > IAT_WINDOW_MS as f64 {
            return Err(invalid(
                "The DPoP proof's iat is too far from the server clock (60 s either way)",
            ));
        }
        let jti = match claims.get("jti").and_then(Value::as_str) {
            Some(j) if !j.is_empty() && j.len() <= MAX_JTI_BYTES => j,
            Some(j) if !j.is_empty() => return Err(invalid("The DPoP proof's jti is too long")),
            _ => return Err(invalid("The DPoP proof has no jti claim")),
        };
        if let Some(token) = expected.access_token {
            match claims.get("ath").and_then(Value::as_str) {
                Some(ath) if ath == access_token_hash(token) => {}
                Some(_) => {
                    return Err(invalid(
                        "The DPoP proof's ath does not match the access token",
                    ))
                }
                None => return Err(invalid("The DPoP proof has no ath claim")),
            }
        }
        if expected.nonce {
            match claims.get("nonce").and_then(Value::as_str) {
                Some(n) if *n == *lock(&self.nonce) => {}
                Some(_) => return Err(ProofError::UseNonce("The DPoP nonce is stale or wrong")),
                None => return Err(ProofError::UseNonce("A DPoP nonce is required")),
            }
        }
        // Remember it until no clock could accept its iat any more.
        let iat_ms = (iat * 1_000.0).max(0.0) as u64;
        let keep_until = iat_ms.max(expected.now_ms).saturating_add(IAT_WINDOW_MS);
        lock(&self.replays)
            .insert_new(format!("{jkt}.{jti}"), keep_until, expected.now_ms)
            .map_err(invalid)?;
        Ok(Proof {
            jkt,
            jti: jti.to_string(),
        })
    }
}

/// Decodes one base64url part of the proof into a JSON object.
fn json_part(b64: &str, what: &str) -> Result<Map<String, Value>, ProofError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| invalid(format!("The DPoP proof's {what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(invalid(format!(
            "The DPoP proof's {what} is not a JSON object"
        ))),
    }
}

/// The proof's `jwk`: an EC P-256 public key. Returns the key and its
/// RFC 7638 thumbprint.
fn public_key(jwk: Option<&Value>) -> Result<(VerifyingKey, String), ProofError> {
    let Some(Value::Object(jwk)) = jwk else {
        return Err(invalid("The DPoP proof's header has no jwk object"));
    };
    if jwk.contains_key("d") {
        return Err(invalid(
            "The DPoP proof's jwk must not contain a private key (d)",
        ));
    }
    if jwk.get("kty").and_then(Value::as_str) != Some("EC")
        || jwk.get("crv").and_then(Value::as_str) != Some("P-256")
    {
        return Err(invalid("The DPoP proof's jwk must be an EC P-256 key"));
    }
    let coordinate = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                invalid(format!(
                    "The DPoP proof's jwk {name} must be 32 bytes of base64url"
                ))
            })
    };
    let (x, y) = (coordinate("x")?, coordinate("y")?);
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(0x04);
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    let key = VerifyingKey::from_sec1_bytes(&sec1)
        .map_err(|_| invalid("The DPoP proof's jwk is not a point on P-256"))?;
    Ok((key, thumbprint(&x, &y)))
}

/// RFC 7638 thumbprint of the P-256 key with coordinates `x`, `y`:
/// base64url(SHA-256(`{"crv":"P-256","kty":"EC","x":"…","y":"…"}`)).
pub fn thumbprint(x: &[u8], y: &[u8]) -> String {
    let members = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(x),
        URL_SAFE_NO_PAD.encode(y)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(members.as_bytes()))
}

/// `ath`: base64url(SHA-256(the access token's ASCII)).
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// The `htu` a proof for this request must carry: `http://{Host}{path}`.
pub fn request_htu(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    Some(format!("http://{host}{}", uri.path()))
}

/// The request's proof, if it carries one. More than one `DPoP` header, or
/// one that is not text, is an invalid proof.
fn request_proof(headers: &HeaderMap) -> Result<Option<&str>, ProofError> {
    let mut values = headers.get_all(DPOP_HEADER).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid("Only one DPoP header is allowed"));
    }
    first
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| invalid("The DPoP header is not ASCII text"))
}

/// Whether the request carries a `DPoP` header.
pub fn has_proof(headers: &HeaderMap) -> bool {
    headers.contains_key(DPOP_HEADER)
}

/// Checks the proof of a request in DPoP mode and counts the outcome:
/// `Ok(None)` without a `DPoP` header, the accepted proof, or why it was
/// refused. `access_token` is the token the proof must hash (`ath`).
pub fn check_request(
    state: &AppState,
    cfg: &RuntimeConfig,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    access_token: Option<&str>,
    now_ms: u64,
) -> Result<Option<Proof>, ProofError> {
    let outcome = request_proof(headers).and_then(|proof| {
        let Some(proof) = proof else {
            return Ok(None);
        };
        let htu = request_htu(headers, uri);
        let expected = Expected {
            method: method.as_str(),
            htu: htu.as_deref(),
            access_token,
            nonce: cfg.dpop_nonce,
            now_ms,
        };
        state.dpop.verify(proof, &expected).map(Some)
    });
    match &outcome {
        Ok(Some(_)) => state.count(|s| s.dpop_proofs += 1),
        Ok(None) => {}
        Err(ProofError::Invalid(_)) => state.count(|s| s.dpop_refused += 1),
        Err(ProofError::UseNonce(_)) => state.count(|s| {
            s.dpop_refused += 1;
            s.dpop_nonce_challenges += 1;
        }),
    }
    outcome
}

/// The token-endpoint answer to a refused proof: 400 with the error code,
/// plus `DPoP-Nonce` for `use_dpop_nonce`.
pub fn token_endpoint_error(state: &AppState, error: &ProofError) -> ApiError {
    let refusal =
        ApiError::new(StatusCode::BAD_REQUEST, error.code()).describe(error.description());
    match error {
        ProofError::UseNonce(_) => with_nonce(state, refusal),
        ProofError::Invalid(_) => refusal,
    }
}

/// Adds the current nonce as `DPoP-Nonce`.
pub fn with_nonce(state: &AppState, error: ApiError) -> ApiError {
    match HeaderValue::from_str(&state.dpop.nonce()) {
        Ok(v) => error.header(HeaderName::from_static(NONCE_HEADER), v),
        Err(_) => error,
    }
}

/// Middleware: in nonce mode, every response to a request that carried a
/// proof tells the current nonce (`DPoP-Nonce`), success included.
pub async fn nonce_header(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let carried = has_proof(request.headers());
    let mut response = next.run(request).await;
    if carried {
        let cfg = state.config();
        if cfg.dpop && cfg.dpop_nonce {
            if let Ok(v) = HeaderValue::from_str(&state.dpop.nonce()) {
                response.headers_mut().insert(NONCE_HEADER, v);
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_members_in_lexicographic_order() {
        let (x, y) = ([1u8; 32], [2u8; 32]);
        let members = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(x),
            URL_SAFE_NO_PAD.encode(y)
        );
        assert_eq!(
            thumbprint(&x, &y),
            URL_SAFE_NO_PAD.encode(Sha256::digest(members.as_bytes()))
        );
        assert_eq!(thumbprint(&x, &y).len(), 43);
    }

    #[test]
    fn replay_cache_refuses_seen_and_forgets_expired() {
        let mut cache = ReplayCache::default();
        assert!(cache.insert_new("k.a".into(), 1_000, 0).is_ok());
        assert!(cache.insert_new("k.a".into(), 1_000, 500).is_err());
        assert!(cache.insert_new("k.b".into(), 1_000, 500).is_ok());
        // Once its window is over the entry no longer counts.
        assert!(cache.insert_new("k.a".into(), 3_000, 1_000).is_ok());
    }

    #[test]
    fn rotation_changes_the_nonce() {
        let v = DpopVerifier::new().expect("random");
        let before = v.nonce();
        assert!(before.len() >= 22);
        let after = v.rotate_nonce().expect("random");
        assert_ne!(before, after);
        assert_eq!(v.nonce(), after);
    }

    #[test]
    fn shape_errors() {
        let v = DpopVerifier::new().expect("random");
        let expected = Expected {
            method: "GET",
            htu: Some("http://h/api"),
            access_token: None,
            nonce: false,
            now_ms: 0,
        };
        for bad in ["", "a.b", "a.b.c.d", "!!.b.c"] {
            assert!(
                matches!(v.verify(bad, &expected), Err(ProofError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
