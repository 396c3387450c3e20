//! What the keeper says to the browser executor, as JSON text: its
//! [`Command`]s (with event details, tab messages, errors and token-endpoint
//! requests spelled out in full), and what the executor's answers mean.
//!
//! The executor is a small JavaScript module. It parses one command at a
//! time with `JSON.parse` and carries it out as written: every field of an
//! event detail, every header and body of a request, every error's code and
//! message is decided here, where native tests see it. JSON, because the
//! browser parses it natively and it crosses the wasm boundary as one string.
//!
//! The commands, by their `c` field:
//!
//! | `c` | fields | the executor |
//! |---|---|---|
//! | `send` | `q`: a [request](refresh_request) | sends it, answers with the response |
//! | `lock` / `unlock` | | requests / releases the tabs' refresh lock |
//! | `post` | `m`: the tab message | posts it on the channel |
//! | `emit` | `k`: the event, `d`: its detail | calls the event's listeners |
//! | `settle` | `id`, `r` and the reply's fields | ends the waiting call |
//! | `discover` | `url` | fetches the discovery document (once per page), answers with it |
//! | `exchange` | `id`, `q`: the [code exchange](code_request) | sends it once, answers `id` with the response |
//! | `navigate` | `id`, `url`, `tx`: the [transaction](transaction_json) | keeps `tx` in `sessionStorage`, goes to `url`, ends `id` |
//! | `history` | `url` | `history.replaceState` to it |
//! | `forget` | | removes the transaction from `sessionStorage` |

use crate::config::{http_url, Fields, RefreshStyle, Settings, UrlResolver};
use crate::dpop::Proof;
use crate::error::Error;
use crate::keeper::{Command, Event, Keeper, LogoutNotice, Reply, TokenAnswer};
use crate::oidc::Transaction;
use crate::protocol::{Message, VERSION};
use crate::token::{RawGrant, Timing};
use crate::value::{OptValue, MAX_JSON, TOO_LARGE};
use alloc::string::String;

/// A JSON text being written: an object at a time, keys in order.
struct Writer {
    out: String,
    /// Whether the object being written has no member yet.
    first: bool,
}

impl Writer {
    fn new() -> Writer {
        let mut w = Writer {
            out: String::with_capacity(96),
            first: true,
        };
        w.out.push('{');
        w
    }

    fn key(&mut self, key: &str) -> &mut Writer {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        string(&mut self.out, key);
        self.out.push(':');
        self
    }

    fn str(&mut self, key: &str, value: &str) -> &mut Writer {
        self.key(key);
        string(&mut self.out, value);
        self
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Writer {
        match value {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    fn num(&mut self, key: &str, value: f64) -> &mut Writer {
        self.key(key);
        number(&mut self.out, value);
        self
    }

    fn opt_num(&mut self, key: &str, value: Option<f64>) -> &mut Writer {
        match value {
            Some(v) => self.num(key, v),
            None => self,
        }
    }

    fn null(&mut self, key: &str) -> &mut Writer {
        self.key(key);
        self.out.push_str("null");
        self
    }

    fn bool(&mut self, key: &str, value: bool) -> &mut Writer {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    /// Opens an object as the value of `key`.
    fn open(&mut self, key: &str) -> &mut Writer {
        self.key(key);
        self.out.push('{');
        self.first = true;
        self
    }

    fn close(&mut self) -> &mut Writer {
        self.out.push('}');
        self.first = false;
        self
    }

    fn done(&mut self) -> String {
        self.out.push('}');
        core::mem::take(&mut self.out)
    }
}

/// Appends `s` as a JSON string, escaped as `JSON.stringify` escapes it
/// (runs of plain characters copied at once: tokens are long).
pub(crate) fn string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // Every escaped byte is ASCII: `i` is a character boundary.
        out.push_str(s.get(plain..i).unwrap_or_default());
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(hex_digit(u32::from(b >> 4)));
            out.push(hex_digit(u32::from(b & 0xf)));
        } else {
            out.push_str(escape);
        }
        plain = i + 1;
    }
    out.push_str(s.get(plain..).unwrap_or_default());
    out.push('"');
}

fn hex_digit(n: u32) -> char {
    char::from_digit(n, 16).unwrap_or('0')
}

/// Appends `x` as a JSON number that `JSON.parse` reads back as exactly `x`:
/// its exact decimal expansion (every finite binary fraction has one), so no
/// shortest-form float formatting is linked in. Not finite → `null`.
/// Fractions finer than 2^-116 (never a time or a count) are dropped.
pub fn number(out: &mut String, x: f64) {
    if !x.is_finite() {
        out.push_str("null");
        return;
    }
    if x < 0.0 {
        out.push('-');
    }
    let x = if x < 0.0 { -x } else { x };
    if x >= 18_446_744_073_709_551_616.0 {
        // Beyond u64 every double is an integer: its digits, exactly.
        let bits = x.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as u32;
        let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
        digits_of_big(out, mantissa, exp.saturating_sub(1075));
        return;
    }
    let int = x as u64;
    crate::error::push_number(out, int);
    let frac = x - int as f64;
    if frac <= 0.0 {
        return;
    }
    let bits = frac.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as u32;
    let shift = 1075u32.saturating_sub(exp);
    if exp == 0 || shift > 116 {
        return;
    }
    let mut m = u128::from((bits & ((1u64 << 52) - 1)) | (1u64 << 52));
    let mask = (1u128 << shift) - 1;
    out.push('.');
    while m != 0 {
        m *= 10;
        out.push(char::from(b'0' + (m >> shift) as u8));
        m &= mask;
    }
}

/// `mantissa * 2^shift` in decimal (shift ≤ 971), by long multiplication in
/// base 10^9 limbs.
fn digits_of_big(out: &mut String, mantissa: u64, shift: u32) {
    const BASE: u64 = 1_000_000_000;
    // 2^1024 < 10^309: 35 limbs of 9 digits are enough.
    let mut limbs = [0u64; 35];
    let mut len = 0;
    let mut m = mantissa;
    while m != 0 {
        if let Some(l) = limbs.get_mut(len) {
            *l = m % BASE;
        }
        m /= BASE;
        len += 1;
    }
    for _ in 0..shift {
        let mut carry = 0;
        for l in limbs.iter_mut().take(len) {
            let v = *l * 2 + carry;
            *l = v % BASE;
            carry = v / BASE;
        }
        if carry != 0 {
            if let Some(l) = limbs.get_mut(len) {
                *l = carry;
                len += 1;
            }
        }
    }
    let mut first = true;
    for l in limbs.iter().take(len).rev() {
        if first {
            crate::error::push_number(out, *l);
            first = false;
        } else {
            let mut n = String::new();
            crate::error::push_number(&mut n, *l);
            for _ in n.len()..9 {
                out.push('0');
            }
            out.push_str(&n);
        }
    }
}

/// The first thing the executor is told: how requests carry the token.
/// `header` is the header's name, `renew` the response header that may
/// carry a renewed token (or `null`), `manual` whether a request with the
/// token must not follow redirects by itself (a custom header, which
/// browsers keep across origins, unlike `Authorization`), `resend` the
/// methods such a request is sent again for without the token when it meets
/// a redirect ([`RESEND_WITHOUT_TOKEN`](crate::keeper::RESEND_WITHOUT_TOKEN)), and `rejected`
/// the status of a refused token: only a response with that status or
/// with a renewed token is handed to [`Keeper::response`](crate::keeper::Keeper::response);
/// `logins` whether login transactions live in the tab's `sessionStorage`
/// (an OpenID provider's keeper), `nonces` whether a response's
/// `DPoP-Nonce` is handed to the keeper too (`dpop`).
pub fn executor_config(settings: &Settings) -> String {
    let mut w = Writer::new();
    w.str("header", &settings.header);
    match &settings.renew_header {
        Some(h) => w.str("renew", h),
        None => w.null("renew"),
    };
    w.bool(
        "manual",
        !settings.header.eq_ignore_ascii_case("authorization"),
    );
    w.key("resend").out.push('[');
    for (i, method) in crate::keeper::RESEND_WITHOUT_TOKEN.iter().enumerate() {
        if i > 0 {
            w.out.push(',');
        }
        string(&mut w.out, method);
    }
    w.out.push(']');
    w.num("rejected", f64::from(crate::keeper::REJECTED));
    // The most the executor hands over of a tab message and of a token
    // response's body: one unit past the limit, so the core sees it is over.
    w.num("message", MAX_JSON as f64);
    w.num("body", MAX_BODY as f64);
    // Only a keeper of an OpenID provider keeps anything in storage (a
    // login's transaction): any other never reads it either.
    w.bool("logins", settings.oidc.is_some());
    // With DPoP, a success answer's `DPoP-Nonce` is the keeper's too.
    w.bool("nonces", settings.dpop != crate::config::Dpop::Off);
    w.done()
}

/// The longest token response body read, in bytes: far more than any
/// token response, with an ID token and all.
pub const MAX_BODY: usize = 1024 * 1024;

/// The token fields of a token response's body (or of `setTokens`'s
/// argument), read from JS as an [`OptValue`], and its OAuth `error`.
/// `None` when it is not an object. A token field of the wrong type is
/// absent; `expires_in` may be a number or a string holding one, and is NaN
/// (refused by [`crate::token::accept_grant`]) when it is anything else.
///
/// ```
/// use tokenkeeper_core::{config::Fields, value::OptValue, wire};
/// let body = OptValue::from_json(Some(r#"{"access_token":"a.b\/c","expires_in":"60"}"#), wire::MAX_BODY);
/// let (grant, error) = wire::grant(&body, &Fields::default()).unwrap();
/// assert_eq!(grant.access_token.as_deref(), Some("a.b/c"));
/// assert_eq!(grant.expires_in, Some(60.0));
/// assert_eq!(error, None);
/// ```
pub fn grant(body: &OptValue, fields: &Fields) -> Option<(RawGrant, Option<String>)> {
    let OptValue::Map(entries) = body else {
        return None;
    };
    let string = |key: &str| match OptValue::field(entries, key) {
        OptValue::Str(s) => Some(s.clone()),
        _ => None,
    };
    // Absent (or null): no expiry. Present, anything but a number (or a
    // string holding one) is NaN, which `accept_grant` refuses as it
    // refuses a negative number: one rule for every wrong value.
    let expires_in = match OptValue::field(entries, &fields.expires_in) {
        OptValue::Undefined | OptValue::Null => None,
        OptValue::Num(n) => Some(*n),
        OptValue::Str(s) => Some(crate::json::decimal(s.trim().as_bytes()).unwrap_or(f64::NAN)),
        _ => Some(f64::NAN),
    };
    Some((
        RawGrant {
            access_token: string(&fields.access_token),
            refresh_token: string(&fields.refresh_token),
            expires_in,
            id_token: string("id_token"),
            token_type: string("token_type"),
        },
        string("error"),
    ))
}

/// `setTokens(tokens)`'s argument, as read from JS: its token fields, or the
/// error naming what is wrong with it.
pub fn tokens_argument(tokens: &OptValue, fields: &Fields) -> Result<RawGrant, Error> {
    match (grant(tokens, fields), tokens) {
        (Some((grant, _)), _) => Ok(grant),
        (None, OptValue::Other(TOO_LARGE)) => Err(Error::InvalidArgument {
            argument: "tokens",
            reason: BODY_TOO_LARGE,
        }),
        (None, _) => Err(Error::InvalidArgument {
            argument: "tokens",
            reason: "must be an object",
        }),
    }
}

/// Why an argument read with the [`MAX_BODY`] bound is refused.
const BODY_TOO_LARGE: &str = "is too large (more than 1 MiB of JSON)";

/// `{"e": error}`: a call's error, as the executor throws it.
fn error_reply(e: &Error) -> String {
    let mut w = Writer::new();
    w.key("e");
    w.out.push_str(&error(e));
    w.done()
}

/// A command as the executor reads it; `tab_id` is this tab's id on the
/// channel (the `from` of its messages).
pub fn command(command: &Command, tab_id: &str, settings: &Settings) -> String {
    let mut w = Writer::new();
    match command {
        Command::Refresh {
            refresh_token,
            proof,
        } => {
            w.str("c", "send");
            w.key("q");
            w.out.push_str(&refresh_request(
                settings,
                refresh_token.as_deref(),
                proof.as_ref(),
            ));
        }
        Command::AcquireLock => {
            w.str("c", "lock");
        }
        Command::ReleaseLock => {
            w.str("c", "unlock");
        }
        Command::Post(message) => {
            w.str("c", "post");
            w.key("m");
            w.out.push_str(&tab_message(message, tab_id));
            // A DPoP session's private key goes with it.
            if let Message::Session { tokens, .. } = message {
                w.opt_str("k", tokens.key.as_ref().map(|k| k.jkt.as_str()));
            }
        }
        Command::Emit(event) => {
            w.str("c", "emit").str("k", event.kind().as_str());
            w.key("d");
            w.out.push_str(&detail(event));
        }
        Command::Settle { call, reply } => {
            w.str("c", "settle").num("id", f64::from(call.0));
            self::reply(&mut w, reply, settings);
        }
        Command::Discover { url } => {
            w.str("c", "discover").str("url", url);
        }
        Command::Exchange {
            call,
            code,
            verifier,
            proof,
        } => {
            w.str("c", "exchange").num("id", f64::from(call.0));
            w.key("q");
            w.out
                .push_str(&code_request(settings, code, verifier, proof.as_ref()));
        }
        Command::Login {
            call,
            url,
            body,
            proof,
        } => {
            // Cookie mode sends credentials, so the answer's `Set-Cookie` is kept.
            let cookie = settings.refresh_style == RefreshStyle::Cookie;
            w.str("c", "exchange").num("id", f64::from(call.0));
            w.key("q");
            w.out.push_str(&post(
                url,
                body,
                "application/json",
                cookie,
                None,
                proof.as_ref(),
            ));
        }
        Command::MakeKey { call } => {
            w.str("c", "keygen").num("id", f64::from(call.0));
        }
        Command::TakeKey { jkt } => {
            w.str("c", "takekey").str("k", jkt);
        }
        Command::DropKey { jkt } => {
            w.str("c", "dropkey").str("k", jkt);
        }
        Command::Navigate {
            call,
            url,
            transaction,
        } => {
            w.str("c", "navigate")
                .num("id", f64::from(call.0))
                .str("url", url)
                .str("tx", &transaction_json(transaction));
        }
        Command::History { url } => {
            w.str("c", "history").str("url", url);
        }
        Command::Forget => {
            w.str("c", "forget");
        }
    }
    w.done()
}

/// A login's transaction as the tab keeps it in `sessionStorage` (read
/// back with [`crate::oidc::read_transaction`]).
pub fn transaction_json(tx: &Transaction) -> String {
    let mut w = Writer::new();
    w.str("state", &tx.state)
        .str("nonce", &tx.nonce)
        .str("verifier", &tx.verifier)
        .str("returnTo", &tx.return_to)
        .num("at", tx.at)
        .str("issuer", &tx.issuer)
        .str("clientId", &tx.client_id);
    w.done()
}

/// The code exchange (RFC 6749 §4.1.3 with the PKCE verifier), a form
/// `POST` to the token endpoint with the client's id and no cookies.
pub fn code_request(
    settings: &Settings,
    code: &str,
    verifier: &str,
    proof: Option<&Proof>,
) -> String {
    let mut body = String::from("grant_type=authorization_code&code=");
    form_value(&mut body, code);
    let redirect = settings.oidc.as_ref().map(|o| o.redirect_uri.as_str());
    for (key, value) in [
        ("&redirect_uri=", redirect),
        ("&client_id=", settings.client_id.as_deref()),
        ("&code_verifier=", Some(verifier)),
    ] {
        if let Some(v) = value {
            body.push_str(key);
            form_value(&mut body, v);
        }
    }
    post(&settings.refresh_url, &body, FORM, false, None, proof)
}

/// The content type of a form body.
const FORM: &str = "application/x-www-form-urlencoded;charset=UTF-8";

/// A reply's fields: `r` names it (`pass`, `token`, `return`, `replay`,
/// `done`, `ready`, `error`); a token `a` comes with what goes before it in
/// the header (`p`: the scheme and a space, or nothing), so the token is
/// written once.
fn reply(w: &mut Writer, reply: &Reply, settings: &Settings) {
    match reply {
        Reply::Passthrough => {
            w.str("r", "pass");
        }
        Reply::Token {
            generation,
            access,
            proof,
        } => {
            w.str("r", "token")
                .num("g", *generation as f64)
                .str("a", access)
                .str("p", &prefix(settings, proof.as_ref()));
            proof_field(w, "d", proof.as_ref());
        }
        Reply::Return => {
            w.str("r", "return");
        }
        Reply::Replay {
            access,
            proof,
            nonce,
        } => {
            w.str("r", "replay")
                .str("a", access)
                .str("p", &prefix(settings, proof.as_ref()));
            proof_field(w, "d", proof.as_ref());
            if *nonce {
                w.bool("n", true);
            }
        }
        Reply::Done => {
            w.str("r", "done");
        }
        Reply::Ready(authenticated) => {
            w.str("r", "ready").bool("ok", *authenticated);
        }
        Reply::Redirected(to) => {
            w.str("r", "redirected").opt_str("to", to.as_deref());
        }
        Reply::Failed(e) => {
            w.str("r", "error");
            w.key("e");
            w.out.push_str(&error(e));
        }
    }
}

/// What goes before a token in its header: `DPoP ` with a proof, else the
/// configured scheme.
fn prefix(settings: &Settings, proof: Option<&Proof>) -> String {
    match proof {
        Some(_) => String::from("DPoP "),
        None => settings.header_value(""),
    }
}

/// `key: {"k": thumbprint, "s": signing input}`: a proof for the executor
/// to sign with the key it keeps under the thumbprint, and send as `DPoP`
/// (`"d"` beside a reply's token, `"p"` in a token request).
fn proof_field(w: &mut Writer, key: &str, proof: Option<&Proof>) {
    if let Some(p) = proof {
        w.open(key).str("k", &p.jkt).str("s", &p.input).close();
    }
}

/// A tab message, as posted on the channel (see [`crate::protocol`]).
pub fn tab_message(message: &Message, from: &str) -> String {
    let mut w = Writer::new();
    w.num("v", VERSION)
        .str("from", from)
        .num("gen", message.gen() as f64);
    match message {
        Message::Hello { .. } => {
            w.str("type", "hello");
        }
        Message::Session {
            tokens,
            until,
            skew,
            ..
        } => {
            w.str("type", "session")
                .str("access", &tokens.access)
                .opt_str("refresh", tokens.refresh.as_deref())
                .opt_num("expiresAt", tokens.expires_at)
                .num("issuedAt", tokens.issued_at)
                .opt_str("id", tokens.id.as_deref())
                .opt_str("kx", tokens.key.as_ref().map(|k| k.x.as_str()))
                .opt_str("ky", tokens.key.as_ref().map(|k| k.y.as_str()))
                .opt_num("until", *until)
                .opt_num("skew", *skew);
        }
        Message::Logout { reason, .. } => {
            w.str("type", "logout").str("reason", reason);
        }
        Message::Backoff { until, .. } => {
            w.str("type", "backoff").num("until", *until);
        }
    }
    w.done()
}

/// An event's detail object, as the `.d.ts` describes it (never a token).
pub fn detail(event: &Event) -> String {
    let mut w = Writer::new();
    match event {
        Event::Refresh {
            source,
            expires_at,
            generation,
        } => {
            w.str("source", source.as_str())
                .opt_num("expiresAt", *expires_at)
                .num("generation", *generation as f64);
        }
        Event::RefreshError {
            error,
            retrying,
            retry_in_ms,
        } => {
            error_fields(&mut w, error)
                .bool("retrying", *retrying)
                .bool("fatal", !*retrying)
                .opt_num("retryInMs", retry_in_ms.map(round));
        }
        Event::Expired { reason, url } => {
            w.str("reason", reason.as_str()).str("url", url);
        }
        Event::Logout { reason } => {
            w.str("reason", reason.as_str());
        }
        Event::Change {
            authenticated,
            expires_at,
            generation,
        } => {
            w.bool("isAuthenticated", *authenticated)
                .opt_num("expiresAt", *expires_at)
                .num("generation", *generation as f64);
        }
        Event::Sync {
            kind,
            from,
            generation,
        } => {
            w.str("type", kind.as_str())
                .str("from", from)
                .num("generation", *generation as f64);
        }
    }
    w.done()
}

/// `Math.round`: the nearest integer, halves rounded up.
fn round(x: f64) -> f64 {
    -crate::json::ceil(-(x + 0.5))
}

/// An error as the executor turns it into a `TokenKeeperError`: `code`,
/// `message`, and `status` / `error` / `retryInMs` / `option` where they apply.
pub fn error(e: &Error) -> String {
    let mut w = Writer::new();
    error_fields(&mut w, e);
    match e {
        Error::RefreshUnavailable { retry_in_ms, .. } | Error::RefreshThrottled { retry_in_ms } => {
            w.num("retryInMs", round(*retry_in_ms));
        }
        Error::InvalidOption { option, .. } => {
            w.str("option", option);
        }
        _ => {}
    }
    w.done()
}

/// What an error and a `refresh-error` detail share: `code`, `message`,
/// and the `status` and OAuth `error` when there are some.
fn error_fields<'w>(w: &'w mut Writer, e: &Error) -> &'w mut Writer {
    w.str("code", e.code())
        .str("message", &e.message())
        .opt_num("status", e.status().map(f64::from))
        .opt_str("error", e.oauth_error())
        .opt_str("errorDescription", e.description())
}

/// A `POST` to a token endpoint, as the executor sends it: `url`, headers
/// `h`, body `b` and credentials mode `cr` (always `cache: "no-store"`).
fn post(
    url: &str,
    body: &str,
    content_type: &str,
    include: bool,
    token: Option<(&str, &str)>,
    proof: Option<&Proof>,
) -> String {
    let mut w = Writer::new();
    w.str("url", url);
    w.open("h")
        .str("Content-Type", content_type)
        .str("Accept", "application/json");
    if let Some((name, value)) = token {
        w.str(name, value);
    }
    w.close();
    w.str("b", body)
        .str("cr", if include { "include" } else { "same-origin" });
    proof_field(&mut w, "p", proof);
    w.done()
}

fn json_body(key: &str, value: &str) -> String {
    let mut w = Writer::new();
    w.str(key, value);
    w.done()
}

/// Appends `s` form-urlencoded, as `URLSearchParams` serializes it.
pub(crate) fn form_value(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            b => {
                out.push('%');
                out.push(hex_digit(u32::from(b >> 4)).to_ascii_uppercase());
                out.push(hex_digit(u32::from(b & 0xf)).to_ascii_uppercase());
            }
        }
    }
}

/// The refresh request in the configured style: the refresh token in a JSON
/// body, an RFC 6749 form (`grant_type=refresh_token`, with `client_id` and
/// `scope` when set), or an empty JSON body with the HttpOnly cookie.
pub fn refresh_request(
    settings: &Settings,
    refresh_token: Option<&str>,
    proof: Option<&Proof>,
) -> String {
    let rt = refresh_token.unwrap_or_default();
    match settings.refresh_style {
        RefreshStyle::Json => post(
            &settings.refresh_url,
            &json_body(&settings.fields.refresh_token, rt),
            "application/json",
            false,
            None,
            proof,
        ),
        RefreshStyle::Form => {
            let mut body = String::from("grant_type=refresh_token&refresh_token=");
            form_value(&mut body, rt);
            // With a provider, `scope` is the login's: a refresh keeps
            // what was granted (RFC 6749 §6).
            let scope = settings.scope.as_ref().filter(|_| settings.oidc.is_none());
            for (key, value) in [
                ("&client_id=", settings.client_id.as_ref()),
                ("&scope=", scope),
            ] {
                if let Some(v) = value {
                    body.push_str(key);
                    form_value(&mut body, v);
                }
            }
            post(&settings.refresh_url, &body, FORM, false, None, proof)
        }
        RefreshStyle::Cookie => post(
            &settings.refresh_url,
            "{}",
            "application/json",
            true,
            None,
            proof,
        ),
    }
}

/// `login(url, credentials)`'s arguments as the app gave them: `url` as
/// read from JS (a string, or a `URL`, which JSON writes as its `href`),
/// `credentials` as `JSON.stringify` wrote them (at most [`MAX_BODY`] + 1
/// units of it). The login endpoint and the body to send
/// ([`Keeper::login`](crate::keeper::Keeper::login) sends them), or the
/// error: [`Error::Freed`] after `free()`, or the argument that is wrong.
pub fn login_arguments(
    keeper: &Keeper,
    url: &OptValue,
    credentials: Option<&str>,
    urls: &dyn UrlResolver,
) -> Result<(String, String), Error> {
    keeper.open()?;
    if credentials.is_some_and(|c| c.len() > MAX_BODY) {
        return Err(Error::InvalidArgument {
            argument: "credentials",
            reason: BODY_TOO_LARGE,
        });
    }
    // Relative URLs resolve against the page's location (never a
    // `<base>`: see [`UrlResolver`]).
    let OptValue::Str(s) = url else {
        return Err(Error::InvalidArgument {
            argument: "url",
            reason: "must be a URL string or a URL",
        });
    };
    let url = http_url(s, urls).map_err(|reason| Error::InvalidArgument {
        argument: "url",
        reason,
    })?;
    match credentials.filter(|c| c.starts_with('{')) {
        Some(body) => Ok((url, body.into())),
        None => Err(Error::InvalidArgument {
            argument: "credentials",
            reason: "must be an object that JSON can encode",
        }),
    }
}

/// `logout()`'s answer to the executor: `{"q": request}` telling the logout
/// endpoint, `{}` when there is none to tell, or `{"e": error}`.
pub fn logout(settings: &Settings, result: Result<Option<LogoutNotice>, Error>) -> String {
    let mut w = Writer::new();
    match result {
        Ok(Some(notice)) => {
            w.key("q");
            w.out.push_str(&logout_request(settings, &notice));
        }
        Ok(None) => {}
        Err(e) => return error_reply(&e),
    }
    w.done()
}

/// Telling the logout endpoint (best effort): the refresh token to revoke in
/// a JSON body, the access token attached when the endpoint's origin is allowed.
pub fn logout_request(settings: &Settings, notice: &LogoutNotice) -> String {
    if settings.oidc.is_some() {
        return revocation_request(settings, notice);
    }
    let body = match &notice.refresh {
        Some(rt) => json_body(&settings.fields.refresh_token, rt),
        None => String::from("{}"),
    };
    let value = notice.access.as_deref().map(|a| settings.header_value(a));
    post(
        &notice.url,
        &body,
        "application/json",
        settings.refresh_style == RefreshStyle::Cookie,
        value.as_deref().map(|v| (settings.header.as_str(), v)),
        None,
    )
}

/// RFC 7009 revocation of the refresh token (or, without one, the access
/// token) at the provider's `revocation_endpoint`, as a public client.
fn revocation_request(settings: &Settings, notice: &LogoutNotice) -> String {
    let (token, hint) = match (&notice.refresh, &notice.access) {
        (Some(rt), _) => (rt.as_str(), "refresh_token"),
        (None, Some(at)) => (at.as_str(), "access_token"),
        (None, None) => ("", "refresh_token"),
    };
    let mut body = String::from("token=");
    form_value(&mut body, token);
    body.push_str("&token_type_hint=");
    body.push_str(hint);
    if let Some(id) = &settings.client_id {
        body.push_str("&client_id=");
        form_value(&mut body, id);
    }
    post(&notice.url, &body, FORM, false, None, None)
}

/// `logoutRedirect(options)`'s answer to the executor: `{"q": revocation,
/// "go": url}` (either may be absent), or `{"e": error}`. `options` as read
/// from JS: nothing, or `{ postLogoutRedirectUri }`.
pub fn logout_redirect(
    keeper: &mut Keeper,
    now: f64,
    options: &OptValue,
    urls: &dyn UrlResolver,
) -> String {
    let target = match options {
        OptValue::Undefined | OptValue::Null => Ok(None),
        OptValue::Map(entries) => match OptValue::field(entries, "postLogoutRedirectUri") {
            OptValue::Undefined | OptValue::Null => Ok(None),
            OptValue::Str(s) => {
                http_url(s, urls)
                    .map(Some)
                    .map_err(|reason| Error::InvalidArgument {
                        argument: "postLogoutRedirectUri",
                        reason,
                    })
            }
            _ => Err(Error::InvalidArgument {
                argument: "postLogoutRedirectUri",
                reason: "must be a URL string",
            }),
        },
        _ => Err(Error::InvalidArgument {
            argument: "options",
            reason: "must be an object",
        }),
    };
    let result = target.and_then(|t| keeper.logout_redirect(now, t));
    match result {
        Ok((notice, go)) => {
            let mut w = Writer::new();
            if let Some(notice) = notice {
                w.key("q");
                w.out.push_str(&logout_request(keeper.settings(), &notice));
            }
            w.opt_str("go", go.as_deref());
            w.done()
        }
        Err(e) => error_reply(&e),
    }
}

/// What a token endpoint's answer says, from what the executor read of it:
/// the status (0 when no answer came), the body's token fields when it was a
/// JSON object (`None` otherwise), its OAuth `error`, and `Retry-After` in ms.
pub fn token_answer(
    status: u16,
    body: Option<(RawGrant, Option<String>)>,
    retry_after_ms: Option<f64>,
    timing: Timing,
) -> TokenAnswer {
    if status == 0 {
        return TokenAnswer::no_answer();
    }
    if !(200..300).contains(&status) {
        return TokenAnswer::Failure {
            status,
            oauth_error: body.and_then(|(_, e)| e),
            retry_after_ms,
            malformed: None,
        };
    }
    match body {
        Some((grant, _)) => TokenAnswer::Grant { grant, timing },
        None => TokenAnswer::Failure {
            status,
            oauth_error: None,
            retry_after_ms: None,
            malformed: Some("the body is not a JSON object"),
        },
    }
}
