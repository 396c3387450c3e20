//! Server configuration: the fixed start-up part, the part that
//! `/admin/config` can change at run time, and the duration syntax the
//! command line uses.

use std::net::IpAddr;
use std::path::PathBuf;

use axum::http::HeaderName;
use serde::{Deserialize, Deserializer, Serialize};

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1`).
    pub bind: IpAddr,
    /// Port to listen on; `0` picks a free one.
    pub port: u16,
    /// Where to write the bound port number once listening.
    pub port_file: Option<PathBuf>,
    /// Directory served at `/`.
    pub www: Option<PathBuf>,
    /// Directory served at `/pkg/`.
    pub pkg: Option<PathBuf>,
    /// An OpenID provider's issuer the demo page is told of (`/demo-config.json`).
    pub issuer: Option<String>,
    /// Suppress the per-request log on stderr.
    pub quiet: bool,
    /// Token behaviour; can be changed later through `/admin/config`.
    pub runtime: RuntimeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            port_file: None,
            www: None,
            pkg: None,
            issuer: None,
            quiet: false,
            runtime: RuntimeConfig::default(),
        }
    }
}

/// Default renewal threshold (10 s).
pub const DEFAULT_RENEW_WITHIN_MS: u64 = 10_000;

/// Token behaviour, switchable at run time (`GET`/`POST /admin/config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeConfig {
    /// Lifetime of access tokens, in milliseconds.
    pub access_ttl_ms: u64,
    /// Lifetime of each refresh token, in milliseconds (sliding: every
    /// rotation issues a token with a fresh lifetime).
    pub refresh_ttl_ms: u64,
    /// Window after a rotation during which the rotated refresh token may be
    /// presented again without revoking its family. `0` disables it.
    pub reuse_grace_ms: u64,
    /// Carry the refresh token only in the `tk_refresh` HttpOnly cookie.
    pub refresh_cookie: bool,
    /// Response header that carries a renewed access token, if any.
    pub renew_header: Option<String>,
    /// Renew access tokens with less than this left; `None` means the
    /// default rule (see [`RuntimeConfig::effective_renew_within_ms`]).
    pub renew_within_ms: Option<u64>,
    /// Omit `exp` from access tokens and `expires_in` from responses.
    pub no_expiry: bool,
    /// Answer CORS for any origin, `null` included, as a third-party server
    /// would: lets tests check what a foreign origin would receive.
    pub cors_any: bool,
    /// DPoP mode (RFC 9449): token requests with a `DPoP` proof get
    /// key-bound tokens, and bound access tokens need the `DPoP` scheme and
    /// a proof at `/api/*`. Off, proofs are ignored as before.
    pub dpop: bool,
    /// Every DPoP proof must carry the server's current nonce (implies
    /// [`RuntimeConfig::dpop`]).
    pub dpop_nonce: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            access_ttl_ms: 30_000,
            refresh_ttl_ms: 24 * 3_600_000,
            reuse_grace_ms: 0,
            refresh_cookie: false,
            renew_header: None,
            renew_within_ms: None,
            no_expiry: false,
            cors_any: false,
            dpop: false,
            dpop_nonce: false,
        }
    }
}

impl RuntimeConfig {
    /// The renewal threshold actually used: an explicit `renew_within_ms` as
    /// is; by default [`DEFAULT_RENEW_WITHIN_MS`], or half the access TTL
    /// when the TTL is shorter than twice that.
    pub fn effective_renew_within_ms(&self) -> u64 {
        match self.renew_within_ms {
            Some(ms) => ms,
            None if self.access_ttl_ms < 2 * DEFAULT_RENEW_WITHIN_MS => self.access_ttl_ms / 2,
            None => DEFAULT_RENEW_WITHIN_MS,
        }
    }

    /// Applies a partial update, validating it first; on error nothing changes.
    pub fn apply(&mut self, patch: ConfigPatch) -> Result<(), String> {
        if let Some(Some(name)) = &patch.renew_header {
            validate_header_name(name)?;
        }
        if patch.access_ttl_ms == Some(0) {
            return Err("access_ttl_ms must be positive".into());
        }
        if patch.refresh_ttl_ms == Some(0) {
            return Err("refresh_ttl_ms must be positive".into());
        }
        if patch.dpop == Some(false) && patch.dpop_nonce == Some(true) {
            return Err("dpop_nonce needs dpop".into());
        }
        if let Some(v) = patch.access_ttl_ms {
            self.access_ttl_ms = v;
        }
        if let Some(v) = patch.refresh_ttl_ms {
            self.refresh_ttl_ms = v;
        }
        if let Some(v) = patch.reuse_grace_ms {
            self.reuse_grace_ms = v;
        }
        if let Some(v) = patch.refresh_cookie {
            self.refresh_cookie = v;
        }
        if let Some(v) = patch.renew_header {
            self.renew_header = v;
        }
        if let Some(v) = patch.renew_within_ms {
            self.renew_within_ms = v;
        }
        if let Some(v) = patch.no_expiry {
            self.no_expiry = v;
        }
        if let Some(v) = patch.cors_any {
            self.cors_any = v;
        }
        // Nonce mode implies DPoP mode: switching DPoP off ends nonce mode
        // too, switching nonce mode on starts DPoP mode.
        if let Some(v) = patch.dpop {
            self.dpop = v;
            self.dpop_nonce &= v;
        }
        if let Some(v) = patch.dpop_nonce {
            self.dpop_nonce = v;
            self.dpop |= v;
        }
        Ok(())
    }
}

/// A partial [`RuntimeConfig`] as posted to `/admin/config`; absent fields
/// stay unchanged, `"renew_header": null` turns renewal off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPatch {
    /// New access-token lifetime (ms).
    pub access_ttl_ms: Option<u64>,
    /// New refresh-token lifetime (ms).
    pub refresh_ttl_ms: Option<u64>,
    /// New reuse grace window (ms).
    pub reuse_grace_ms: Option<u64>,
    /// Switch cookie mode on or off.
    pub refresh_cookie: Option<bool>,
    /// `Some(None)` (JSON `null`) removes the renew header.
    #[serde(default, deserialize_with = "present")]
    pub renew_header: Option<Option<String>>,
    /// New renewal threshold (ms); `null` restores the default rule.
    #[serde(default, deserialize_with = "present")]
    pub renew_within_ms: Option<Option<u64>>,
    /// Switch the no-expiry shape on or off.
    pub no_expiry: Option<bool>,
    /// Switch CORS for any origin on or off.
    pub cors_any: Option<bool>,
    /// Switch DPoP mode on or off (off also ends nonce mode).
    pub dpop: Option<bool>,
    /// Switch DPoP nonce mode on (which also starts DPoP mode) or off.
    pub dpop_nonce: Option<bool>,
}

/// Distinguishes a field given as `null` (`Some(None)`) from an absent one.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Checks that `name` can be used as an HTTP response header name.
pub fn validate_header_name(name: &str) -> Result<(), String> {
    HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|_| format!("invalid header name: {name:?}"))
}

/// Parses a duration: `500ms`, `3s`, `5m`, `1h`, `2d`, or a bare number of
/// seconds. Returns milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad = || format!("invalid duration {text:?} (use e.g. 500ms, 3s, 5m, 1h, or seconds)");
    if digits.is_empty() {
        return Err(bad());
    }
    let value: u64 = digits.parse().map_err(|_| bad())?;
    let factor = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    value.checked_mul(factor).ok_or_else(bad)
}
