//! Unguessable identifiers: refresh tokens, family ids, JWT ids, secrets.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Bytes of randomness in an opaque refresh token (256 bits).
pub const REFRESH_TOKEN_BYTES: usize = 32;
/// Bytes of randomness in family ids and JWT ids (128 bits).
pub const ID_BYTES: usize = 16;

/// Fills `n` bytes from the operating system's random source.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, getrandom::Error> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf)?;
    Ok(buf)
}

/// `n` random bytes, base64url-encoded without padding.
pub fn random_id(n: usize) -> Result<String, getrandom::Error> {
    random_bytes(n).map(|b| URL_SAFE_NO_PAD.encode(b))
}
