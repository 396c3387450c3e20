//! DPoP (RFC 9449): the proofs that bind a session's tokens to a key pair
//! whose private half never leaves the browser's WebCrypto, as pure
//! functions. Everything a proof says is decided here — its header (the
//! public key), its claims (`jti`, `htm`, `htu`, `iat`, `ath`, `nonce`) —
//! and handed to the executor as the JWS signing input; the executor only
//! signs it with the key it holds under the key's thumbprint.
//!
//! ```
//! use tokenkeeper_core::dpop;
//! // The public half of a P-256 key, as WebCrypto exports it.
//! let key = dpop::key("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
//!                     "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0").unwrap();
//! let proof = dpop::proof(&key, &dpop::Claims {
//!     method: "GET",
//!     url: "https://api.example/orders?page=2",
//!     iat: 1_700_000_000.0,
//!     jti: "n-0S6_WzA2Mj",
//!     ath: None,
//!     nonce: None,
//! });
//! assert_eq!(proof.jkt, key.jkt);
//! // `htu` is the URL without its query.
//! let claims = proof.input.split('.').nth(1).unwrap();
//! assert!(dpop::decoded(claims).unwrap().contains(r#""htu":"https://api.example/orders""#));
//! ```

use crate::oidc::base64url;
use crate::sha256::sha256;
use crate::token::base64url_decode;
use crate::wire::string;
use alloc::string::String;

/// The public half of a session's key pair (ECDSA P-256), as a JWK's
/// coordinates, and its RFC 7638 thumbprint, the name the executor keeps
/// the private half under.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    /// The JWK's `x` (base64url, 32 bytes).
    pub x: String,
    /// The JWK's `y` (base64url, 32 bytes).
    pub y: String,
    /// The RFC 7638 SHA-256 thumbprint (base64url): the `cnf.jkt` a server
    /// binds the tokens to.
    pub jkt: String,
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Key({})", self.jkt)
    }
}

/// Whether `s` is the base64url (no padding) text of exactly 32 bytes.
fn is_coordinate(s: &str) -> bool {
    base64url_decode(s.as_bytes()).is_some_and(|b| b.len() == 32)
}

/// The key whose public JWK has these coordinates, or `None` when they are
/// not two base64url texts of 32 bytes. (Whether the point is on the curve
/// is the server's to check: a wrong key only makes proofs that fail.)
pub fn key(x: &str, y: &str) -> Option<Key> {
    if !is_coordinate(x) || !is_coordinate(y) {
        return None;
    }
    // RFC 7638 §3: the required members, in lexicographic order, no spaces.
    let mut jwk = String::with_capacity(120);
    jwk.push_str(r#"{"crv":"P-256","kty":"EC","x":""#);
    jwk.push_str(x);
    jwk.push_str(r#"","y":""#);
    jwk.push_str(y);
    jwk.push_str(r#""}"#);
    Some(Key {
        x: x.into(),
        y: y.into(),
        jkt: base64url(&sha256(jwk.as_bytes())),
    })
}

/// What one proof says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claims<'a> {
    /// `htm`: the request's method.
    pub method: &'a str,
    /// The request's absolute URL (`htu` is it without query and fragment).
    pub url: &'a str,
    /// `iat`, seconds since the epoch on the server's clock.
    pub iat: f64,
    /// `jti`: unique per proof.
    pub jti: &'a str,
    /// `ath`: the access token's hash ([`ath`]), on a resource request.
    pub ath: Option<&'a str>,
    /// `nonce`: the latest the server gave for this origin.
    pub nonce: Option<&'a str>,
}

/// A proof to sign: the JWS signing input (`header.claims`, base64url),
/// and the thumbprint of the key that signs it. The executor appends `.`
/// and the ES256 signature (WebCrypto's raw `r || s`, base64url) and sends
/// it as the `DPoP` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Proof {
    /// The signing key's thumbprint.
    pub jkt: String,
    /// `base64url(header) "." base64url(claims)`.
    pub input: String,
}

impl core::fmt::Debug for Proof {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Proof({})", self.jkt)
    }
}

/// The URL as `htu` names it (RFC 9449 §4.2): without query and fragment.
pub fn htu(url: &str) -> &str {
    let end = url
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(url.len());
    url.get(..end).unwrap_or(url)
}

/// The origin (`scheme://host[:port]`) of an absolute URL as the browser
/// serializes it: everything before the path. `None` for anything else.
pub fn origin(url: &str) -> Option<&str> {
    let b = url.as_bytes();
    let scheme_end = b.windows(3).position(|w| w == b"://")?;
    let host = scheme_end + 3;
    let end = b
        .iter()
        .skip(host)
        .position(|c| matches!(c, b'/' | b'?' | b'#'))
        .map_or(b.len(), |n| host + n);
    (end > host).then(|| url.get(..end)).flatten()
}

/// `ath`: the base64url SHA-256 of the access token.
pub fn ath(access: &str) -> String {
    base64url(&sha256(access.as_bytes()))
}

/// The proof of one request by `key`.
pub fn proof(key: &Key, claims: &Claims<'_>) -> Proof {
    let mut header = String::with_capacity(160);
    header.push_str(r#"{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":""#);
    header.push_str(&key.x);
    header.push_str(r#"","y":""#);
    header.push_str(&key.y);
    header.push_str(r#""}}"#);
    let mut body = String::with_capacity(160 + claims.url.len());
    body.push_str(r#"{"jti":"#);
    string(&mut body, claims.jti);
    body.push_str(r#","htm":"#);
    string(&mut body, claims.method);
    body.push_str(r#","htu":"#);
    string(&mut body, htu(claims.url));
    body.push_str(r#","iat":"#);
    crate::wire::number(&mut body, -crate::json::ceil(-claims.iat));
    for (name, value) in [("ath", claims.ath), ("nonce", claims.nonce)] {
        if let Some(v) = value {
            body.push_str(",\"");
            body.push_str(name);
            body.push_str("\":");
            string(&mut body, v);
        }
    }
    body.push('}');
    let mut input = base64url(header.as_bytes());
    input.push('.');
    input.push_str(&base64url(body.as_bytes()));
    Proof {
        jkt: key.jkt.clone(),
        input,
    }
}

/// The longest nonce kept.
pub const MAX_NONCE: usize = 512;

/// A `DPoP-Nonce` header's value, when it is one (RFC 9449 §8.1: `NQCHAR`s,
/// printable ASCII without `"` and `\`), at most [`MAX_NONCE`] long.
pub fn nonce(value: &str) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NONCE
        && value
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
    ok.then_some(value)
}

/// Whether a `WWW-Authenticate` header's value is the DPoP challenge
/// `error="use_dpop_nonce"` (RFC 9449 §9): the request is to be sent again
/// with the server's nonce — its token is fine.
pub fn asks_for_nonce(www_authenticate: &str) -> bool {
    let lower = www_authenticate.as_bytes();
    let scheme = b"dpop";
    let has = |needle: &[u8]| {
        lower
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    lower.len() >= scheme.len()
        && has(scheme)
        && (has(b"error=\"use_dpop_nonce\"") || has(b"error=use_dpop_nonce"))
}

/// The OAuth error a token endpoint answers when it wants a nonce.
pub const USE_DPOP_NONCE: &str = "use_dpop_nonce";

/// The base64url text decoded as UTF-8 (for tests and the docs' example).
pub fn decoded(text: &str) -> Option<String> {
    String::from_utf8(base64url_decode(text.as_bytes())?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The P-256 key of RFC 7517 Appendix A.1; its RFC 7638 thumbprint was
    // computed independently (Python's hashlib).
    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    #[test]
    fn a_key_is_two_coordinates_of_32_bytes() {
        assert!(key(X, Y).is_some());
        assert!(key(&X[1..], Y).is_none(), "42 characters");
        assert!(key(X, &alloc::format!("{Y}A")).is_none(), "44");
        // Every last character whose spare bits are zero, and no other.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (value, last) in alphabet.chars().enumerate() {
            let x = alloc::format!("{}{last}", &X[..42]);
            assert_eq!(key(&x, Y).is_some(), value % 4 == 0, "{last}");
        }
        for bad in ["+", "/", "=", " ", "."] {
            let x = alloc::format!("{}{bad}{}", &X[..20], &X[21..]);
            assert!(key(&x, Y).is_none(), "{bad}");
        }
        assert!(
            key("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEV", Y).is_none(),
            "spare bits set"
        );
        assert!(
            key("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRV+U", Y).is_none(),
            "not base64url"
        );
        assert!(key("", "").is_none());
        assert_eq!(
            key(X, Y).unwrap().jkt,
            "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"
        );
    }

    #[test]
    fn htu_drops_query_and_fragment() {
        assert_eq!(htu("https://a.example/p?q=1#f"), "https://a.example/p");
        assert_eq!(htu("https://a.example/p#f?x"), "https://a.example/p");
        assert_eq!(htu("https://a.example/p"), "https://a.example/p");
    }

    #[test]
    fn origins_of_urls() {
        assert_eq!(
            origin("https://a.example:8443/p?q"),
            Some("https://a.example:8443")
        );
        assert_eq!(origin("http://127.0.0.1:9"), Some("http://127.0.0.1:9"));
        assert_eq!(origin("https://a.example?x"), Some("https://a.example"));
        assert_eq!(origin("https://a/b"), Some("https://a"), "a short host");
        assert_eq!(origin("h://a#b"), Some("h://a"));
        assert_eq!(origin("/relative"), None);
        assert_eq!(origin("https:///p"), None);
    }

    #[test]
    fn nonces_and_challenges() {
        assert_eq!(nonce("eyJ7S_zG.9"), Some("eyJ7S_zG.9"));
        assert_eq!(nonce(""), None);
        assert_eq!(nonce("a b"), None);
        assert_eq!(nonce("a\"b"), None);
        assert_eq!(nonce(&"n".repeat(MAX_NONCE + 1)), None);
        assert!(nonce(&"n".repeat(MAX_NONCE)).is_some());
        assert!(asks_for_nonce(
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#
        ));
        assert!(asks_for_nonce(
            r#"dpop algs="ES256", error="use_dpop_nonce""#
        ));
        assert!(!asks_for_nonce(r#"DPoP error="invalid_token""#));
        assert!(!asks_for_nonce(r#"Bearer error="invalid_token""#));
        assert!(!asks_for_nonce(""));
    }

    #[test]
    fn a_proof_says_what_it_claims() {
        let k = key(X, Y).unwrap();
        let p = proof(
            &k,
            &Claims {
                method: "POST",
                url: "https://as.example/token?x#y",
                iat: 1_700_000_000.9,
                jti: "j\"1",
                ath: Some("fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"),
                nonce: Some("n-1"),
            },
        );
        let mut parts = p.input.split('.');
        let header = decoded(parts.next().unwrap()).unwrap();
        let claims = decoded(parts.next().unwrap()).unwrap();
        assert!(parts.next().is_none());
        assert_eq!(
            header,
            alloc::format!(
                r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"kty":"EC","crv":"P-256","x":"{X}","y":"{Y}"}}}}"#
            )
        );
        assert_eq!(
            claims,
            r#"{"jti":"j\"1","htm":"POST","htu":"https://as.example/token","iat":1700000000,"ath":"fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo","nonce":"n-1"}"#
        );
        assert_eq!(p.jkt, k.jkt);
    }

    #[test]
    fn decoded_reads_back_what_base64url_wrote() {
        // `?`, `>` and `~` make the `-` and `_` of base64url.
        for text in [
            "",
            "a",
            "ab",
            "abc",
            "???",
            ">>>",
            "??>>~~",
            "{\"htu\":\"https://a/~x?\"}",
        ] {
            assert_eq!(decoded(&base64url(text.as_bytes())).as_deref(), Some(text));
        }
        assert!(base64url(b"???").contains('_') && base64url(b">>>").contains('-'));
        assert_eq!(decoded("a+b"), None);
        assert_eq!(decoded("/w"), None);
    }

    #[test]
    fn ath_is_the_tokens_sha256() {
        // RFC 9449 §7.1's example access token and its ath.
        assert_eq!(
            ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }
}
