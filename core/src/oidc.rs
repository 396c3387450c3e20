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

fn param(url: &mut String, first: &mut bool, key: &str, value: &str) {
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
    if raw.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = raw.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = token::base64url_decode(payload.trim_end_matches('=').as_bytes())?;
    String::from_utf8(bytes).ok()
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
    let number = |key: &str| match get(key) {
        OptValue::Num(n) if n.is_finite() => Some(*n),
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
