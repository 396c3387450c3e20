//! OpenID Connect, as a single-page app's client of an identity provider:
//! the discovery document (OpenID Connect Discovery 1.0), the login
//! transaction and its PKCE challenge (RFC 7636, `S256`), the authorization
//! request, the callback the provider redirects back with (its `state`, its
//! RFC 9207 `iss`, its `error`), and the checks of an ID token received
//! straight from the token endpoint (OIDC Core §3.1.3.7; §12.2 after a
//! refresh). Pure functions: the [`crate::keeper`] decides when each applies.

use crate::config::{OidcSettings, Settings};
use crate::error::Error;
use crate::sha256::sha256;
use crate::token::{self, MAX_TOKEN_LEN};
use crate::value::OptValue;
use crate::wire::form_value;
use alloc::string::String;
use alloc::vec::Vec;

/// How long a login started with `loginRedirect()` may take before its
/// callback is refused (and its transaction forgotten): 10 minutes.
pub const TRANSACTION_MAX_AGE_MS: f64 = 600_000.0;
/// The random bytes a login needs: 32 for the PKCE verifier, 16 each for
/// `state` and `nonce`.
pub const RANDOM_BYTES: usize = 64;
/// How far the provider's clock (its `Date` header) may be past an ID
/// token's `exp` for the token to still be taken.
pub const ID_TOKEN_LEEWAY_MS: f64 = 60_000.0;
/// The longest URL read as a callback (the page's `location.href`).
pub const MAX_CALLBACK_URL: usize = 32_768;

/// The query parameters of a callback, removed from the URL once read
/// (`session_state` is OpenID Session Management's).
const CALLBACK_PARAMS: [&str; 7] = [
    "code",
    "state",
    "iss",
    "error",
    "error_description",
    "error_uri",
    "session_state",
];

/// What the provider's discovery document says that the keeper uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// `authorization_endpoint`.
    pub authorization_endpoint: String,
    /// `token_endpoint`: the code exchange and every refresh.
    pub token_endpoint: String,
    /// `revocation_endpoint` (RFC 7009), told on logout.
    pub revocation_endpoint: Option<String>,
    /// `end_session_endpoint` (RP-Initiated Logout 1.0).
    pub end_session_endpoint: Option<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207): the
    /// callback must then carry `iss`.
    pub iss_parameter: bool,
    /// `dpop_signing_alg_values_supported` (RFC 9449 §5.1) lists `ES256`,
    /// the algorithm of the keys tokenkeeper makes.
    pub dpop: bool,
}

/// `<issuer>/.well-known/openid-configuration` (a trailing `/` of the
/// issuer is not doubled).
pub fn discovery_url(issuer: &str) -> String {
    let mut url = String::from(issuer.strip_suffix('/').unwrap_or(issuer));
    url.push_str("/.well-known/openid-configuration");
    url
}

/// Whether `url` may be an issuer or an endpoint: an absolute `https` URL,
/// or `http` on the loopback interface (a provider in development), with no
/// fragment, credentials, spaces or control characters.
pub fn is_secure_url(url: &str) -> bool {
    let (rest, loopback_only) = if let Some(rest) = url.strip_prefix("https://") {
        (rest, false)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (rest, true)
    } else {
        return false;
    };
    if url.len() > 2048 || url.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#') {
        return false;
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return false;
    }
    if !loopback_only {
        return true;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

fn failed(reason: &str) -> Error {
    Error::DiscoveryFailed {
        reason: reason.into(),
    }
}

/// Reads the discovery document the issuer answered with (`status` 0: no
/// answer), checked: the `issuer` in it is the configured one exactly, the
/// endpoints are secure URLs ([`is_secure_url`]), and the provider does the
/// Authorization Code flow with `S256` when it says what it does.
pub fn read_discovery(status: u16, body: &OptValue, issuer: &str) -> Result<Discovery, Error> {
    match status {
        0 => {
            return Err(failed(
                "no answer from the issuer (a network error, or CORS)",
            ))
        }
        200 => {}
        s => {
            let mut r = String::from("the issuer answered HTTP ");
            crate::wire::number(&mut r, f64::from(s));
            return Err(Error::DiscoveryFailed { reason: r });
        }
    }
    let OptValue::Map(doc) = body else {
        return Err(failed("the document is not a JSON object"));
    };
    let get = |key: &str| OptValue::field(doc, key);
    match get("issuer") {
        OptValue::Str(s) if s == issuer => {}
        OptValue::Str(s) => {
            let mut r = String::from("the document's issuer ");
            crate::wire::string(&mut r, s);
            r.push_str(" is not the configured one ");
            crate::wire::string(&mut r, issuer);
            return Err(Error::DiscoveryFailed { reason: r });
        }
        _ => return Err(failed("the document has no issuer")),
    }
    let endpoint = |key: &'static str, required: bool| -> Result<Option<String>, Error> {
        match get(key) {
            OptValue::Str(s) if is_secure_url(s) => Ok(Some(s.clone())),
            OptValue::Undefined | OptValue::Null if !required => Ok(None),
            OptValue::Undefined | OptValue::Null => {
                let mut r = String::from("the document has no ");
                r.push_str(key);
                Err(Error::DiscoveryFailed { reason: r })
            }
            _ => {
                let mut r = String::from(key);
                r.push_str(" is not an https URL (or http on loopback)");
                Err(Error::DiscoveryFailed { reason: r })
            }
        }
    };
    let lists = |key: &str, want: &str| match get(key) {
        OptValue::List(items) => items
            .iter()
            .any(|i| matches!(i, OptValue::Str(s) if s == want)),
        _ => true,
    };
    if !lists("response_types_supported", "code") {
        return Err(failed("the provider does not offer the code response type"));
    }
    if !lists("code_challenge_methods_supported", "S256") {
        return Err(failed("the provider does not offer PKCE with S256"));
    }
    let (Some(authorization_endpoint), Some(token_endpoint)) = (
        endpoint("authorization_endpoint", true)?,
        endpoint("token_endpoint", true)?,
    ) else {
        return Err(failed("the document has no endpoints"));
    };
    Ok(Discovery {
        authorization_endpoint,
        token_endpoint,
        revocation_endpoint: endpoint("revocation_endpoint", false)?,
        end_session_endpoint: endpoint("end_session_endpoint", false)?,
        iss_parameter: matches!(
            get("authorization_response_iss_parameter_supported"),
            OptValue::Bool(true)
        ),
        dpop: matches!(get("dpop_signing_alg_values_supported"), OptValue::List(_))
            && lists("dpop_signing_alg_values_supported", "ES256"),
    })
}

/// One login's one-time data, kept by the tab that started it (in its
/// `sessionStorage`, for the round trip to the provider only).
#[derive(Clone, PartialEq)]
pub struct Transaction {
    /// `state`: ties the callback to this login.
    pub state: String,
    /// `nonce`: ties the ID token to this login.
    pub nonce: String,
    /// The PKCE code verifier (43 characters).
    pub verifier: String,
    /// Where the app goes after the callback: a path of its own origin.
    pub return_to: String,
    /// When the login started (local clock, ms since the epoch).
    pub at: f64,
    /// The issuer and client it was started for.
    pub issuer: String,
    /// The client id it was started for.
    pub client_id: String,
}

impl core::fmt::Debug for Transaction {
    // The verifier is a secret until the code is exchanged.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transaction")
            .field("return_to", &self.return_to)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// Unpadded base64url (RFC 4648 §5) of `bytes`.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    let mut push = |v: u32| {
        let c = ALPHABET.get((v & 63) as usize).copied().unwrap_or(b'A');
        out.push(char::from(c));
    };
    for chunk in bytes.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        push(n >> 18);
        push(n >> 12);
        if chunk.len() > 1 {
            push(n >> 6);
        }
        if chunk.len() > 2 {
            push(n);
        }
    }
    out
}

/// The PKCE `S256` code challenge of a verifier: base64url(SHA-256(verifier)).
///
/// ```
/// // RFC 7636, Appendix B.
/// let c = tokenkeeper_core::oidc::challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
/// assert_eq!(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// ```
pub fn challenge(verifier: &str) -> String {
    base64url(&sha256(verifier.as_bytes()))
}

/// A new login's transaction from [`RANDOM_BYTES`] random bytes (the
/// browser's `crypto.getRandomValues`), or `None` with fewer.
pub fn new_transaction(
    random: &[u8],
    now: f64,
    return_to: String,
    settings: &Settings,
    oidc: &OidcSettings,
) -> Option<Transaction> {
    let verifier = random.get(..32)?;
    let state = random.get(32..48)?;
    let nonce = random.get(48..RANDOM_BYTES)?;
    Some(Transaction {
        state: base64url(state),
        nonce: base64url(nonce),
        verifier: base64url(verifier),
        return_to,
        at: now,
        issuer: oidc.issuer.clone(),
        client_id: settings.client_id.clone().unwrap_or_default(),
    })
}

/// A stored transaction, read back: anything malformed (the storage is the
/// page's, any script of the origin may write it) is no transaction.
pub fn read_transaction(value: &OptValue) -> Option<Transaction> {
    let OptValue::Map(entries) = value else {
        return None;
    };
    let string = |key: &str| match OptValue::field(entries, key) {
        OptValue::Str(s) if !s.is_empty() && s.len() <= 2048 => Some(s.clone()),
        _ => None,
    };
    let at = match OptValue::field(entries, "at") {
        OptValue::Num(n) if n.is_finite() => *n,
        _ => return None,
    };
    let return_to = string("returnTo")?;
    if !is_return_path(&return_to) {
        return None;
    }
    Some(Transaction {
        state: string("state")?,
        nonce: string("nonce")?,
        verifier: string("verifier")?,
        return_to,
        at,
        issuer: string("issuer")?,
        client_id: string("clientId")?,
    })
}

/// Whether `path` is a path of the app's own origin: it starts with one `/`
/// (not `//` or `/\`, which browsers read as another host).
pub fn is_return_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 2048
        && !path.bytes().any(|b| b < b' ' || b == 0x7f)
}

/// The parameters of a login the app chose (`loginRedirect(options)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginOptions {
    /// `prompt` (`"none"`, `"login"`, `"consent"`, …).
    pub prompt: Option<String>,
    /// `login_hint`.
    pub login_hint: Option<String>,
    /// More parameters of the authorization request (`audience`, …).
    pub params: Vec<(String, String)>,
}

/// The parameters of an authorization request that tokenkeeper writes
/// itself: an app's `authorizationParams` may not set them.
pub const RESERVED_PARAMS: [&str; 11] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "login_hint",
    "response_mode",
];

/// Appends `key=value` to `url`'s query, form-urlencoded; `first`: whether
/// the query has no parameter yet (then it starts with `?`).
pub(crate) fn param(url: &mut String, first: &mut bool, key: &str, value: &str) {
    url.push(if core::mem::take(first) { '?' } else { '&' });
    form_value(url, key);
    url.push('=');
    form_value(url, value);
}

/// The authorization request's URL (RFC 6749 §4.1.1 with PKCE and OIDC's
/// `nonce`), to which the page navigates.
pub fn authorize_url(
    discovery: &Discovery,
    settings: &Settings,
    oidc: &OidcSettings,
    tx: &Transaction,
    options: &LoginOptions,
) -> String {
    let mut url = discovery.authorization_endpoint.clone();
    let mut first = !url.contains('?');
    let scope = settings.scope.as_deref().unwrap_or("openid");
    for (key, value) in [
        ("response_type", "code"),
        ("client_id", tx.client_id.as_str()),
        ("redirect_uri", oidc.redirect_uri.as_str()),
        ("scope", scope),
        ("state", tx.state.as_str()),
        ("nonce", tx.nonce.as_str()),
        ("code_challenge", challenge(&tx.verifier).as_str()),
        ("code_challenge_method", "S256"),
    ] {
        param(&mut url, &mut first, key, value);
    }
    for (key, value) in [
        ("prompt", &options.prompt),
        ("login_hint", &options.login_hint),
    ] {
        if let Some(v) = value {
            param(&mut url, &mut first, key, v);
        }
    }
    // The call's parameters win over the options' of the same name.
    for (key, value) in &oidc.authorization_params {
        if !options.params.iter().any(|(k, _)| k == key) {
            param(&mut url, &mut first, key, value);
        }
    }
    for (key, value) in &options.params {
        param(&mut url, &mut first, key, value);
    }
    url
}

/// What a callback URL said (its values decoded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackParams {
    /// `state`.
    pub state: String,
    /// `code`, on success.
    pub code: Option<String>,
    /// `error`, on failure.
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
    /// `iss` (RFC 9207).
    pub iss: Option<String>,
}

/// Form-urldecodes `s` (`+` is a space); `None` when it is no UTF-8.
fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// `url` up to its query or fragment.
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or_default()
}

/// Reads the page's URL as a callback to `redirect_uri`: `None` when it is
/// none (another path, or no `state` with a `code` or an `error`), else what
/// it says and the URL without the callback's parameters (the rest of its
/// query and its fragment kept).
pub fn read_callback(href: &str, redirect_uri: &str) -> Option<(CallbackParams, String)> {
    if href.len() > MAX_CALLBACK_URL || without_query(href) != without_query(redirect_uri) {
        return None;
    }
    let (before_hash, hash) = match href.split_once('#') {
        Some((b, h)) => (b, Some(h)),
        None => (href, None),
    };
    let (base, query) = before_hash.split_once('?').unwrap_or((before_hash, ""));
    let mut params = CallbackParams::default();
    let mut state = None;
    let mut kept = String::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !CALLBACK_PARAMS.contains(&key) {
            kept.push(if kept.is_empty() { '?' } else { '&' });
            kept.push_str(pair);
            continue;
        }
        let value = form_decode(value);
        match key {
            "state" => state = value,
            "code" => params.code = value,
            "iss" => params.iss = value,
            "error" => params.error = value,
            "error_description" => params.error_description = value,
            _ => {}
        }
    }
    params.state = state.filter(|s| !s.is_empty())?;
    if params.code.is_none() && params.error.is_none() {
        return None;
    }
    let mut clean = String::from(base);
    clean.push_str(&kept);
    if let Some(hash) = hash {
        clean.push('#');
        clean.push_str(hash);
    }
    Some((params, clean))
}

/// Why a callback is refused, checked against the tab's transaction: the
/// login this tab started (or `None`), at `now`.
pub fn check_callback(
    params: &CallbackParams,
    tx: Option<&Transaction>,
    oidc: &OidcSettings,
    client_id: &str,
    now: f64,
) -> Result<(), Error> {
    let refuse = |reason| Err(Error::InvalidCallback { reason });
    let Some(tx) = tx else {
        return refuse("no login was started in this tab (the state is unknown here)");
    };
    if tx.state != params.state || tx.issuer != oidc.issuer || tx.client_id != client_id {
        return refuse("the state is not the one of the login this tab started");
    }
    if is_stale(tx, now) {
        return refuse("the login was started more than 10 minutes ago");
    }
    if params.iss.as_deref().is_some_and(|iss| iss != oidc.issuer) {
        return refuse("the iss parameter names another issuer (RFC 9207)");
    }
    Ok(())
}

/// Whether a login's transaction is older than a login may take (or its
/// moment is no number).
pub fn is_stale(tx: &Transaction, now: f64) -> bool {
    (now - tx.at).partial_cmp(&TRANSACTION_MAX_AGE_MS) != Some(core::cmp::Ordering::Less)
}

/// What an ID token must be, beyond its shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expect<'a> {
    /// The issuer (`iss`).
    pub issuer: &'a str,
    /// The client (`aud`, `azp`).
    pub client_id: &'a str,
    /// The login's `nonce`; after a refresh, the first ID token's, if it had one.
    pub nonce: Option<&'a str>,
    /// Whether the token must carry the nonce (a login: yes).
    pub nonce_required: bool,
    /// The subject it must keep (after a refresh).
    pub sub: Option<&'a str>,
    /// The provider's clock (its `Date` header, ms since the epoch), when known.
    pub server_now: Option<f64>,
}

/// The claims (the payload) of a JWT, decoded but not verified.
pub fn claims(raw: &str) -> Option<Vec<(String, OptValue)>> {
    let text = claims_text(raw)?;
    match OptValue::from_json(Some(&text), MAX_TOKEN_LEN) {
        OptValue::Map(entries) => Some(entries),
        _ => None,
    }
}

/// The JSON text of a JWT's payload (what `idTokenClaims` reads).
pub fn claims_text(raw: &str) -> Option<String> {
    String::from_utf8(token::jwt_payload(raw)?).ok()
}

/// Checks an ID token received straight from the token endpoint, over TLS
/// (OIDC Core §3.1.3.7: its signature need not be checked then): `iss`,
/// `aud`, `azp`, `exp`, `iat`, `nonce`, and `sub` (present; unchanged
/// after a refresh, §12.2). The error names the check that failed.
pub fn check_id_token(raw: &str, expect: &Expect<'_>) -> Result<(), Error> {
    let refuse = |check| Err(Error::InvalidIdToken { check });
    let Some(claims) = claims(raw) else {
        return refuse("the ID token is not a JWT with a JSON payload");
    };
    let get = |key: &str| OptValue::field(&claims, key);
    if !matches!(get("iss"), OptValue::Str(s) if s == expect.issuer) {
        return refuse("iss is not the issuer");
    }
    let audiences: Vec<&str> = match get("aud") {
        OptValue::Str(s) => alloc::vec![s.as_str()],
        OptValue::List(items) => items
            .iter()
            .filter_map(|i| match i {
                OptValue::Str(s) => Some(s.as_str()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expect.client_id) {
        return refuse("aud does not name this client");
    }
    match get("azp") {
        OptValue::Str(s) if s == expect.client_id => {}
        OptValue::Undefined if audiences.len() == 1 => {}
        OptValue::Undefined => return refuse("azp is missing, with several audiences"),
        _ => return refuse("azp is not this client"),
    }
    // (JSON text holds finite numbers only: no infinity comes from a payload.)
    let number = |key: &str| match get(key) {
        OptValue::Num(n) => Some(*n),
        _ => None,
    };
    let Some(exp) = number("exp") else {
        return refuse("exp is missing");
    };
    let Some(iat) = number("iat") else {
        return refuse("iat is missing");
    };
    if exp <= iat {
        return refuse("exp is not after iat");
    }
    if expect
        .server_now
        .is_some_and(|now| exp * 1000.0 + ID_TOKEN_LEEWAY_MS <= now)
    {
        return refuse("exp has passed");
    }
    let nonce = match get("nonce") {
        OptValue::Str(s) => Some(s.as_str()),
        OptValue::Undefined => None,
        _ => return refuse("nonce is not a string"),
    };
    match (nonce, expect.nonce) {
        (None, _) if expect.nonce_required => return refuse("nonce is missing"),
        (Some(got), Some(want)) if got != want => return refuse("nonce is not the login's"),
        _ => {}
    }
    let sub = match get("sub") {
        OptValue::Str(s) if !s.is_empty() => s.as_str(),
        _ => return refuse("sub is missing"),
    };
    if expect.sub.is_some_and(|want| want != sub) {
        return refuse("sub changed (another user's tokens)");
    }
    Ok(())
}

/// A claim of an ID token that is a string (`sub`, `nonce`), for the checks
/// of the next one.
pub fn string_claim(raw: &str, key: &str) -> Option<String> {
    let claims = claims(raw)?;
    match OptValue::field(&claims, key) {
        OptValue::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// Whether an ID token another tab sent is one of this client's from this
/// issuer (its `iss` and `aud`): a hostile message's token is not taken.
pub fn is_ours(raw: &str, issuer: &str, client_id: &str) -> bool {
    let expect = Expect {
        issuer,
        client_id,
        nonce: None,
        nonce_required: false,
        sub: None,
        server_now: None,
    };
    check_id_token(raw, &expect).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use base64::Engine;

    const ISS: &str = "https://idp.example";

    fn doc(extra: &str) -> OptValue {
        let text = format!(
            r#"{{"issuer":"{ISS}","authorization_endpoint":"{ISS}/auth","token_endpoint":"{ISS}/token"{extra}}}"#
        );
        OptValue::from_json(Some(&text), 1 << 16)
    }

    fn reason(r: Result<Discovery, Error>) -> String {
        match r {
            Err(Error::DiscoveryFailed { reason }) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secure_urls() {
        for ok in [
            "https://idp.example",
            "https://idp.example/realms/x",
            "https://idp.example:8443/?a",
            "http://127.0.0.1:8080",
            "http://localhost/x",
            "http://[::1]:9/",
        ] {
            assert!(is_secure_url(ok), "{ok}");
        }
        for bad in [
            "http://idp.example",
            "http://127.0.0.2",
            "http://localhost.evil.example",
            "https://",
            "https://user@idp.example",
            "https://idp.example/#f",
            "https://idp .example",
            "ftp://idp.example",
            "/relative",
            "",
        ] {
            assert!(!is_secure_url(bad), "{bad}");
        }
        assert!(!is_secure_url(&format!("https://a/{}", "x".repeat(2048))));
    }

    #[test]
    fn discovery_url_does_not_double_a_slash() {
        assert_eq!(
            discovery_url("https://t.auth0.example/"),
            "https://t.auth0.example/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://kc.example/realms/a"),
            "https://kc.example/realms/a/.well-known/openid-configuration"
        );
    }

    #[test]
    fn a_discovery_document_is_checked() {
        let d = read_discovery(200, &doc(""), ISS).unwrap();
        assert_eq!(d.token_endpoint, "https://idp.example/token");
        assert_eq!(d.revocation_endpoint, None);
        assert!(!d.iss_parameter);
        let d = read_discovery(
            200,
            &doc(r#","revocation_endpoint":"https://idp.example/r","end_session_endpoint":null,"authorization_response_iss_parameter_supported":true,"code_challenge_methods_supported":["plain","S256"]"#),
            ISS,
        )
        .unwrap();
        assert_eq!(
            d.revocation_endpoint.as_deref(),
            Some("https://idp.example/r")
        );
        assert_eq!(d.end_session_endpoint, None);
        assert!(d.iss_parameter);
        assert_eq!(
            reason(read_discovery(0, &OptValue::Undefined, ISS)),
            "no answer from the issuer (a network error, or CORS)"
        );
        assert_eq!(
            reason(read_discovery(404, &doc(""), ISS)),
            "the issuer answered HTTP 404"
        );
        assert_eq!(
            reason(read_discovery(200, &OptValue::List(Vec::new()), ISS)),
            "the document is not a JSON object"
        );
        assert_eq!(
            reason(read_discovery(200, &doc(""), "https://idp.example/")),
            r#"the document's issuer "https://idp.example" is not the configured one "https://idp.example/""#
        );
        let no_issuer = OptValue::from_json(Some(r#"{"token_endpoint":"https://a/t"}"#), 99);
        assert_eq!(
            reason(read_discovery(200, &no_issuer, ISS)),
            "the document has no issuer"
        );
        let text = format!(r#"{{"issuer":"{ISS}","authorization_endpoint":"{ISS}/a"}}"#);
        let no_token = OptValue::from_json(Some(&text), 999);
        assert_eq!(
            reason(read_discovery(200, &no_token, ISS)),
            "the document has no token_endpoint"
        );
        let text = format!(
            r#"{{"issuer":"{ISS}","authorization_endpoint":"{ISS}/a","token_endpoint":"http://idp.example/t"}}"#
        );
        let plain = OptValue::from_json(Some(&text), 999);
        assert_eq!(
            reason(read_discovery(200, &plain, ISS)),
            "token_endpoint is not an https URL (or http on loopback)"
        );
        assert_eq!(
            reason(read_discovery(
                200,
                &doc(r#","revocation_endpoint":7"#),
                ISS
            )),
            "revocation_endpoint is not an https URL (or http on loopback)"
        );
        assert_eq!(
            reason(read_discovery(
                200,
                &doc(r#","code_challenge_methods_supported":["plain"]"#),
                ISS
            )),
            "the provider does not offer PKCE with S256"
        );
        assert_eq!(
            reason(read_discovery(
                200,
                &doc(r#","response_types_supported":["id_token"]"#),
                ISS
            )),
            "the provider does not offer the code response type"
        );
    }

    #[test]
    fn base64url_of_every_tail_length() {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        for n in 0..70u8 {
            let bytes: Vec<u8> = (0..n)
                .map(|i| i.wrapping_mul(97).wrapping_add(200))
                .collect();
            assert_eq!(base64url(&bytes), e.encode(&bytes), "{n} bytes");
        }
    }

    fn tx() -> Transaction {
        Transaction {
            state: "st".into(),
            nonce: "no".into(),
            verifier: "ve".into(),
            return_to: "/r".into(),
            at: 1000.0,
            issuer: ISS.into(),
            client_id: "spa".into(),
        }
    }

    #[test]
    fn a_stored_transaction_is_read_back_only_whole() {
        let text = crate::wire::transaction_json(&tx());
        let read = read_transaction(&OptValue::from_json(Some(&text), 9999));
        assert_eq!(read, Some(tx()));
        for (key, bad) in [
            ("state", "\"\""),
            ("returnTo", "\"//evil.example\""),
            ("returnTo", "\"https://evil.example\""),
            ("at", "\"1\""),
            ("nonce", "1"),
            ("clientId", "null"),
        ] {
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v[key] = serde_json::from_str(bad).unwrap();
            let value = OptValue::from_json(Some(&v.to_string()), 9999);
            assert_eq!(read_transaction(&value), None, "{key}: {bad}");
        }
        assert_eq!(read_transaction(&OptValue::Str("x".into())), None);
        assert!(!is_stale(&tx(), 1000.0 + TRANSACTION_MAX_AGE_MS - 1.0));
        assert!(is_stale(&tx(), 1000.0 + TRANSACTION_MAX_AGE_MS));
        assert!(is_stale(
            &Transaction {
                at: f64::NAN,
                ..tx()
            },
            5.0
        ));
    }

    #[test]
    fn return_paths() {
        for ok in ["/", "/app?x=1#y", "/a/b"] {
            assert!(is_return_path(ok), "{ok}");
        }
        for bad in [
            "",
            "app",
            "//evil",
            "/\\evil",
            "https://a/",
            "/a\nb",
            "/\u{7f}",
        ] {
            assert!(!is_return_path(bad), "{bad:?}");
        }
        assert!(!is_return_path(&format!("/{}", "a".repeat(2048))));
    }

    #[test]
    fn callbacks_are_read_and_cleaned() {
        let r = "https://app.example/cb";
        let (p, clean) = read_callback(
            "https://app.example/cb?a=1&code=c%2B1&state=s+t&iss=https%3A%2F%2Fidp.example&b=2#h",
            r,
        )
        .unwrap();
        assert_eq!(p.code.as_deref(), Some("c+1"));
        assert_eq!(p.state, "s t");
        assert_eq!(p.iss.as_deref(), Some(ISS));
        assert_eq!(clean, "https://app.example/cb?a=1&b=2#h");
        let (p, clean) = read_callback(
            "https://app.example/cb?error=access_denied&error_description=no%20way&error_uri=x&session_state=y&state=s",
            r,
        )
        .unwrap();
        assert_eq!(p.error.as_deref(), Some("access_denied"));
        assert_eq!(p.error_description.as_deref(), Some("no way"));
        assert_eq!(p.code, None);
        assert_eq!(clean, r);
        for none in [
            "https://app.example/cb",
            "https://app.example/cb?code=c",
            "https://app.example/cb?state=s",
            "https://app.example/cb?code=c&state=",
            "https://app.example/cb?code=c&state=%ZZ",
            "https://app.example/cb?code=c&state=%FF",
            "https://app.example/cb2?code=c&state=s",
            "https://app.example/?code=c&state=s",
        ] {
            assert_eq!(read_callback(none, r), None, "{none}");
        }
        let long = format!("{r}?code=c&state=s&x={}", "a".repeat(MAX_CALLBACK_URL));
        assert_eq!(read_callback(&long, r), None);
        // A code that is no UTF-8 is no code (an error still is an answer).
        let (p, _) = read_callback("https://app.example/cb?code=%FF&error=e&state=s", r).unwrap();
        assert_eq!((p.code, p.error.as_deref()), (None, Some("e")));
    }

    fn settings() -> OidcSettings {
        OidcSettings {
            issuer: ISS.into(),
            redirect_uri: "https://app.example/cb".into(),
            origin: "https://app.example".into(),
            post_logout_redirect_uri: None,
            authorization_params: Vec::new(),
        }
    }

    #[test]
    fn a_callback_answers_this_tabs_login_or_is_refused() {
        let p = CallbackParams {
            state: "st".into(),
            code: Some("c".into()),
            iss: Some(ISS.into()),
            ..CallbackParams::default()
        };
        let s = settings();
        assert_eq!(check_callback(&p, Some(&tx()), &s, "spa", 2000.0), Ok(()));
        let refused = |r: Result<(), Error>| match r {
            Err(Error::InvalidCallback { reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(refused(check_callback(&p, None, &s, "spa", 2000.0)).contains("no login"));
        let other = CallbackParams {
            state: "x".into(),
            ..p.clone()
        };
        assert!(refused(check_callback(&other, Some(&tx()), &s, "spa", 2000.0)).contains("state"));
        assert!(refused(check_callback(&p, Some(&tx()), &s, "other", 2000.0)).contains("state"));
        let moved = OidcSettings {
            issuer: "https://b.example".into(),
            ..settings()
        };
        assert!(refused(check_callback(&p, Some(&tx()), &moved, "spa", 2000.0)).contains("state"));
        let iss = CallbackParams {
            iss: Some("https://evil.example".into()),
            ..p.clone()
        };
        assert!(refused(check_callback(&iss, Some(&tx()), &s, "spa", 2000.0)).contains("iss"));
        let no_iss = CallbackParams {
            iss: None,
            ..p.clone()
        };
        assert_eq!(
            check_callback(&no_iss, Some(&tx()), &s, "spa", 2000.0),
            Ok(())
        );
        let late = 1000.0 + TRANSACTION_MAX_AGE_MS;
        assert!(refused(check_callback(&p, Some(&tx()), &s, "spa", late)).contains("10 minutes"));
    }

    fn id(claims: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(r#"{"alg":"RS256"}"#),
            e.encode(claims)
        )
    }

    const GOOD: &str = r#""iss":"https://idp.example","sub":"u1","iat":1000,"exp":2000"#;

    fn expect() -> Expect<'static> {
        Expect {
            issuer: ISS,
            client_id: "spa",
            nonce: Some("n1"),
            nonce_required: true,
            sub: None,
            server_now: None,
        }
    }

    fn check(claims: &str, e: &Expect<'_>) -> Result<(), &'static str> {
        check_id_token(&id(&format!("{{{claims}}}")), e).map_err(|e| match e {
            Error::InvalidIdToken { check } => check,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn every_check_of_an_id_token() {
        let e = expect();
        assert_eq!(
            check(&format!(r#"{GOOD},"aud":"spa","nonce":"n1""#), &e),
            Ok(())
        );
        assert_eq!(
            check(
                &format!(r#"{GOOD},"aud":["api","spa"],"azp":"spa","nonce":"n1""#),
                &e
            ),
            Ok(())
        );
        let cases = [
            (
                r#""iss":"https://other","sub":"u1","iat":1,"exp":2,"aud":"spa","nonce":"n1""#,
                "iss is not the issuer",
            ),
            (
                &format!(r#"{GOOD},"aud":"api","nonce":"n1""#),
                "aud does not name this client",
            ),
            (
                &format!(r#"{GOOD},"aud":7,"nonce":"n1""#),
                "aud does not name this client",
            ),
            (
                &format!(r#"{GOOD},"aud":["api","spa"],"nonce":"n1""#),
                "azp is missing, with several audiences",
            ),
            (
                &format!(r#"{GOOD},"aud":"spa","azp":"api","nonce":"n1""#),
                "azp is not this client",
            ),
            (
                r#""iss":"https://idp.example","sub":"u1","iat":1,"aud":"spa","nonce":"n1""#,
                "exp is missing",
            ),
            (
                r#""iss":"https://idp.example","sub":"u1","exp":1,"aud":"spa","nonce":"n1""#,
                "iat is missing",
            ),
            (
                r#""iss":"https://idp.example","sub":"u1","iat":5,"exp":5,"aud":"spa","nonce":"n1""#,
                "exp is not after iat",
            ),
            (&format!(r#"{GOOD},"aud":"spa""#), "nonce is missing"),
            (
                &format!(r#"{GOOD},"aud":"spa","nonce":"n2""#),
                "nonce is not the login's",
            ),
            (
                &format!(r#"{GOOD},"aud":"spa","nonce":1"#),
                "nonce is not a string",
            ),
            (
                r#""iss":"https://idp.example","iat":1,"exp":2,"aud":"spa","nonce":"n1""#,
                "sub is missing",
            ),
            (
                r#""iss":"https://idp.example","sub":"","iat":1,"exp":2,"aud":"spa","nonce":"n1""#,
                "sub is missing",
            ),
        ];
        for (claims, want) in cases {
            assert_eq!(check(claims, &e), Err(want), "{claims}");
        }
        assert_eq!(
            check_id_token("not-a-jwt", &e),
            Err(Error::InvalidIdToken {
                check: "the ID token is not a JWT with a JSON payload"
            })
        );
        assert!(check_id_token(&format!("{}.x", id("{}")), &e).is_err());
        // Against the provider's clock, with a minute's leeway.
        let dated = |now: f64| Expect {
            server_now: Some(now),
            ..expect()
        };
        let good = format!(r#"{GOOD},"aud":"spa","nonce":"n1""#);
        assert_eq!(
            check(&good, &dated(2_000_000.0 + ID_TOKEN_LEEWAY_MS - 1.0)),
            Ok(())
        );
        assert_eq!(
            check(&good, &dated(2_000_000.0 + ID_TOKEN_LEEWAY_MS)),
            Err("exp has passed")
        );
        // After a refresh: the same subject; a nonce only if the first had one.
        let refresh = Expect {
            nonce: None,
            nonce_required: false,
            sub: Some("u1"),
            ..expect()
        };
        assert_eq!(check(&format!(r#"{GOOD},"aud":"spa""#), &refresh), Ok(()));
        assert_eq!(
            check(&format!(r#"{GOOD},"aud":"spa","nonce":"x""#), &refresh),
            Ok(())
        );
        let other = Expect {
            sub: Some("u2"),
            ..refresh
        };
        assert_eq!(
            check(&format!(r#"{GOOD},"aud":"spa""#), &other),
            Err("sub changed (another user's tokens)")
        );
        let kept = Expect {
            nonce: Some("n1"),
            ..refresh
        };
        assert_eq!(
            check(&format!(r#"{GOOD},"aud":"spa","nonce":"x""#), &kept),
            Err("nonce is not the login's")
        );
        assert_eq!(check(&format!(r#"{GOOD},"aud":"spa""#), &kept), Ok(()));
    }

    #[test]
    fn claims_are_read_from_the_payload() {
        let raw = id(r#"{"sub":"u1","name":"Ü","n":1}"#);
        assert_eq!(
            claims_text(&raw).as_deref(),
            Some(r#"{"sub":"u1","name":"Ü","n":1}"#)
        );
        assert_eq!(string_claim(&raw, "sub").as_deref(), Some("u1"));
        assert_eq!(string_claim(&raw, "n"), None);
        assert_eq!(claims_text("a.b"), None);
        assert_eq!(claims_text("a.b.c.d"), None);
        assert_eq!(claims_text(&"a".repeat(MAX_TOKEN_LEN + 1)), None);
        assert!(is_ours(
            &id(&format!(r#"{{{GOOD},"aud":"spa"}}"#)),
            ISS,
            "spa"
        ));
        assert!(!is_ours(
            &id(&format!(r#"{{{GOOD},"aud":"other"}}"#)),
            ISS,
            "spa"
        ));
        let _ = "x".to_string();
    }

    #[test]
    fn the_pkce_challenge_of_rfc_7636() {
        // RFC 7636, Appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn bounds_are_exact() {
        let url = format!("https://a/{}", "x".repeat(2048 - 10));
        assert_eq!(url.len(), 2048);
        assert!(is_secure_url(&url));
        let r = "https://app.example/cb";
        let head = format!("{r}?code=c&state=s&x=");
        let href = format!("{head}{}", "a".repeat(MAX_CALLBACK_URL - head.len()));
        assert_eq!(href.len(), MAX_CALLBACK_URL);
        assert!(read_callback(&href, r).is_some());
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let prefix = format!("{}.", e.encode("{}"));
        let payload = e.encode(format!(r#"{{"p":"{}"}}"#, "a".repeat(12_000)));
        let raw = format!(
            "{prefix}{payload}.{}",
            "s".repeat(MAX_TOKEN_LEN - prefix.len() - payload.len() - 1)
        );
        assert_eq!(raw.len(), MAX_TOKEN_LEN);
        assert!(claims_text(&raw).is_some());
        assert!(claims_text(&format!("{raw}s")).is_none());
        assert!(is_return_path("/a b"), "a space is a path's character");
    }

    #[test]
    fn numbers_that_are_no_numbers_are_refused() {
        let text = crate::wire::transaction_json(&tx());
        let OptValue::Map(mut entries) = OptValue::from_json(Some(&text), 9999) else {
            panic!("a map")
        };
        for (k, v) in entries.iter_mut() {
            if k == "at" {
                *v = OptValue::Num(f64::INFINITY);
            }
        }
        assert_eq!(read_transaction(&OptValue::Map(entries)), None);
        // A number too large for a double is no JSON the reader takes.
        let huge =
            format!(r#""iss":"{ISS}","sub":"u1","iat":1,"exp":1e999,"aud":"spa","nonce":"n1""#);
        assert_eq!(
            check(&huge, &expect()),
            Err("the ID token is not a JWT with a JSON payload")
        );
    }

    #[test]
    fn the_authorization_request_keeps_the_endpoints_query_and_lets_a_call_win() {
        let d = Discovery {
            authorization_endpoint: "https://idp.example/auth?tenant=a".into(),
            token_endpoint: "https://idp.example/token".into(),
            revocation_endpoint: None,
            end_session_endpoint: None,
            iss_parameter: false,
            dpop: false,
        };
        let settings = crate::config::Settings::from_options(
            &OptValue::from_json(
                Some(r#"{"issuer":"https://idp.example","clientId":"spa","redirectUri":"/cb","authorizationParams":{"audience":"api","ui_locales":"de"}}"#),
                9999,
            ),
            &crate::testing::TestUrls,
        )
        .unwrap();
        let oidc = settings.oidc.clone().unwrap();
        let options = LoginOptions {
            params: alloc::vec![("audience".into(), "other api".into())],
            ..LoginOptions::default()
        };
        let url = authorize_url(&d, &settings, &oidc, &tx(), &options);
        assert!(
            url.starts_with("https://idp.example/auth?tenant=a&response_type=code&client_id=spa&"),
            "{url}"
        );
        assert!(url.contains("&scope=openid&"), "{url}");
        assert!(url.ends_with("&ui_locales=de&audience=other+api"), "{url}");
        assert_eq!(url.matches("audience=").count(), 1, "{url}");
    }
}
