//! Access tokens: HS256 JWTs signed with a per-process random secret.
//!
//! JWT times are whole seconds, which is too coarse for the sub-second TTLs
//! tests use, so the server also records each token's exact expiry (in
//! milliseconds) by `jti` and enforces that. The same record enforces the
//! TTL of `--no-expiry` tokens, which carry no `exp` claim at all. Tokens
//! not in the record (minted before `/admin/reset`) are refused.
//!
//! In DPoP mode a token may be bound to a key: its `cnf.jkt` claim is the
//! key's RFC 7638 thumbprint (RFC 9449 §6.1).

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::ceil_secs;
use crate::ids::{random_bytes, random_id, ID_BYTES};
use crate::state::lock;

/// Prune the expiry record after this many mints.
const PRUNE_EVERY: usize = 1024;

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The username.
    pub sub: String,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Expiry (seconds since the epoch, rounded up); absent with `--no-expiry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Unique token id.
    pub jti: String,
    /// Refresh-token family the token belongs to.
    pub fam: String,
    /// The key the token is bound to (DPoP); absent for Bearer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim of a DPoP-bound access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 7638 SHA-256 thumbprint of the proof key.
    pub jkt: String,
}

impl AccessClaims {
    /// The thumbprint of the key the token is bound to, if any.
    pub fn jkt(&self) -> Option<&str> {
        self.cnf.as_ref().map(|c| c.jkt.as_str())
    }
}

/// A freshly minted access token.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The compact JWT.
    pub token: String,
    /// Its claims.
    pub claims: AccessClaims,
    /// Exact expiry, in milliseconds since the epoch.
    pub expires_at_ms: u64,
}

/// An accepted access token.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its claims.
    pub claims: AccessClaims,
    /// Exact expiry, in milliseconds since the epoch.
    pub expires_at_ms: u64,
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessError {
    /// Not a well-formed JWT signed by this server.
    Invalid,
    /// Signed by this server but no longer known (e.g. after a reset).
    Unknown,
    /// Past its lifetime.
    Expired,
}

impl AccessError {
    /// Human-readable description for `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            AccessError::Invalid => "The access token is malformed or its signature is invalid",
            AccessError::Unknown => "The access token is not known to this server",
            AccessError::Expired => "The access token has expired",
        }
    }
}

/// Mints and verifies access tokens.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    expiries: Mutex<Ledger>,
}

#[derive(Default)]
struct Ledger {
    by_jti: HashMap<String, u64>,
    mints: usize,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer").finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Creates an issuer with a fresh random 256-bit secret.
    pub fn new() -> Result<Self, getrandom::Error> {
        let secret = random_bytes(32)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.required_spec_claims.clear();
        Ok(TokenIssuer {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            expiries: Mutex::new(Ledger::default()),
        })
    }

    /// Mints an access token for `sub` in `family`, living `ttl_ms`.
    /// With `with_exp == false` the JWT carries no `exp` claim; with a `jkt`
    /// it is bound to that key (`cnf.jkt`).
    pub fn mint(
        &self,
        sub: &str,
        family: &str,
        now_ms: u64,
        ttl_ms: u64,
        with_exp: bool,
        jkt: Option<&str>,
    ) -> Result<Minted, String> {
        let jti = random_id(ID_BYTES).map_err(|e| e.to_string())?;
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        let claims = AccessClaims {
            sub: sub.to_string(),
            iat: now_ms / 1_000,
            exp: with_exp.then(|| ceil_secs(expires_at_ms)),
            jti: jti.clone(),
            fam: family.to_string(),
            cnf: jkt.map(|jkt| Confirmation {
                jkt: jkt.to_string(),
            }),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| e.to_string())?;
        let mut ledger = lock(&self.expiries);
        ledger.by_jti.insert(jti, expires_at_ms);
        ledger.mints += 1;
        if ledger.mints >= PRUNE_EVERY {
            ledger.mints = 0;
            ledger.by_jti.retain(|_, exp| *exp > now_ms);
        }
        Ok(Minted {
            token,
            claims,
            expires_at_ms,
        })
    }

    /// Checks signature, that the token is known, and its exact expiry.
    /// (Whether its family is still active is the caller's business.)
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Verified, AccessError> {
        let claims = self.decode_signed(token).ok_or(AccessError::Invalid)?;
        let expires_at_ms = lock(&self.expiries)
            .by_jti
            .get(&claims.jti)
            .copied()
            .ok_or(AccessError::Unknown)?;
        if expires_at_ms <= now_ms {
            return Err(AccessError::Expired);
        }
        Ok(Verified {
            claims,
            expires_at_ms,
        })
    }

    /// Claims of a token signed by this server, ignoring expiry (used by
    /// logout, which may come with an expired access token).
    pub fn decode_signed(&self, token: &str) -> Option<AccessClaims> {
        decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }

    /// Forgets every minted token (they will be refused from now on).
    pub fn clear(&self) {
        *lock(&self.expiries) = Ledger::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_verify_expire() {
        let issuer = TokenIssuer::new().expect("random");
        let m = issuer
            .mint("user1", "fam", 10_500, 1_000, true, None)
            .expect("mint");
        assert_eq!(m.claims.exp, Some(12));
        assert_eq!(m.claims.iat, 10);
        let v = issuer.verify(&m.token, 11_000).expect("valid");
        assert_eq!(v.claims.sub, "user1");
        assert_eq!(v.claims.jkt(), None);
        assert_eq!(
            issuer.verify(&m.token, 11_500).err(),
            Some(AccessError::Expired)
        );
        assert_eq!(
            issuer.verify("abc.def.ghi", 0).err(),
            Some(AccessError::Invalid)
        );
        let other = TokenIssuer::new().expect("random");
        assert_eq!(
            other.verify(&m.token, 11_000).err(),
            Some(AccessError::Invalid)
        );
        issuer.clear();
        assert_eq!(
            issuer.verify(&m.token, 11_000).err(),
            Some(AccessError::Unknown)
        );
    }

    #[test]
    fn bound_tokens_carry_cnf() {
        let issuer = TokenIssuer::new().expect("random");
        let m = issuer
            .mint("user1", "fam", 0, 1_000, true, Some("thumb"))
            .expect("mint");
        let v = issuer.verify(&m.token, 10).expect("valid");
        assert_eq!(v.claims.jkt(), Some("thumb"));
    }

    #[test]
    fn no_expiry_shape() {
        let issuer = TokenIssuer::new().expect("random");
        let m = issuer
            .mint("user1", "fam", 0, 1_000, false, None)
            .expect("mint");
        assert_eq!(m.claims.exp, None);
        assert!(issuer.verify(&m.token, 999).is_ok());
        assert_eq!(
            issuer.verify(&m.token, 1_000).err(),
            Some(AccessError::Expired)
        );
    }
}
