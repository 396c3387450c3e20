//! The exported `TokenKeeper` class, and the keeper's side of the browser
//! executor (`js/executor.js`).
//!
//! The keeper ([`Keeper`]) decides; the executor, a small JavaScript class,
//! carries out. `TokenKeeper`'s methods hand each call to the executor,
//! which feeds it to the keeper through [`Core`] — the keeper's inputs,
//! with time passed in — and carries out the commands it polls, one JSON
//! text at a time ([`tokenkeeper_core::wire`]). Nothing here branches on
//! the session: this file only converts values at the boundary.

use crate::error::Error;
use crate::interop::{self, BrowserUrls};
use alloc::rc::Rc;
use alloc::string::String;
use core::cell::RefCell;
use js_sys::{Function, Promise};
use tokenkeeper_core::config::Settings;
use tokenkeeper_core::keeper::{Answered, CallId, Env, EventKind, Keeper, PageEvent};
use tokenkeeper_core::token::Timing;
use tokenkeeper_core::value::{OptValue, MAX_JSON};
use tokenkeeper_core::wire;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/executor.js")]
extern "C" {
    /// The executor (see `js/executor.js`).
    type Shell;
    #[wasm_bindgen(constructor)]
    fn new(channel: &str) -> Shell;
    #[wasm_bindgen(method, getter)]
    fn tabs(this: &Shell) -> bool;
    #[wasm_bindgen(method, getter)]
    fn locks(this: &Shell) -> bool;
    #[wasm_bindgen(method)]
    fn start(this: &Shell, core: Core, config: &str);
    #[wasm_bindgen(method)]
    fn drive(this: &Shell);
    #[wasm_bindgen(method, js_name = ready)]
    fn ready_call(this: &Shell) -> Promise;
    #[wasm_bindgen(method, js_name = login)]
    fn login_call(this: &Shell, url: JsValue, credentials: JsValue) -> Promise;
    #[wasm_bindgen(method, js_name = fetch)]
    fn fetch_call(this: &Shell, input: JsValue, init: JsValue) -> Promise;
    /// `fetch`, bound to this keeper: it works passed around, as `window.fetch` does.
    #[wasm_bindgen(method, getter, js_name = boundFetch)]
    fn bound_fetch(this: &Shell) -> Function;
    #[wasm_bindgen(method, js_name = token)]
    fn token_call(this: &Shell) -> Promise;
    #[wasm_bindgen(method, js_name = refresh)]
    fn refresh_call(this: &Shell) -> Promise;
    #[wasm_bindgen(method, js_name = logout)]
    fn logout_call(this: &Shell) -> Promise;
    #[wasm_bindgen(method, js_name = handleRedirect)]
    fn redirect_call(this: &Shell) -> Promise;
    #[wasm_bindgen(method, js_name = loginRedirect)]
    fn login_redirect_call(this: &Shell, options: JsValue) -> Promise;
    #[wasm_bindgen(method, js_name = logoutRedirect)]
    fn logout_redirect_call(this: &Shell, options: JsValue) -> Promise;
    #[wasm_bindgen(method, js_name = on)]
    fn on_call(this: &Shell, kind: &str, callback: Function) -> Function;
    #[wasm_bindgen(method, js_name = free)]
    fn free_call(this: &Shell);
}

/// The keeper's inputs and outputs, for the executor only (not part of the
/// API: the generated `.d.ts` leaves it out).
#[wasm_bindgen(skip_typescript)]
pub struct Core {
    keeper: Rc<RefCell<Keeper>>,
}

#[wasm_bindgen]
impl Core {
    /// The next command, as JSON, or `undefined` when there is none.
    pub fn poll(&self) -> Option<String> {
        let mut keeper = self.keeper.borrow_mut();
        let command = keeper.poll_command()?;
        Some(wire::command(&command, keeper.tab_id(), keeper.settings()))
    }

    /// When the timer should fire (ms since the epoch), if at all.
    pub fn timeout(&self) -> Option<f64> {
        self.keeper.borrow().poll_timeout()
    }

    /// The timer fired.
    pub fn tick(&self, now: f64) {
        self.keeper.borrow_mut().handle_timeout(now);
    }

    /// `ready()`.
    pub fn ready(&self, now: f64, call: u32) {
        self.keeper.borrow_mut().ready(now, CallId(call));
    }

    /// `fetch()` of a `Request` (its `url`, `mode` and `method`, strings
    /// the browser made) needs to know whether and with what token.
    pub fn fetch(&self, now: f64, call: u32, url: &str, mode: &str, method: &str) {
        self.keeper
            .borrow_mut()
            .fetch(now, CallId(call), url, mode, method);
    }

    /// `getAccessToken()`.
    pub fn need_token(&self, now: f64, call: u32) {
        self.keeper.borrow_mut().need_token(now, CallId(call));
    }

    /// `refresh()`.
    pub fn refresh(&self, now: f64, call: u32) {
        self.keeper.borrow_mut().refresh(now, CallId(call));
    }

    /// `logout()`: the request telling the logout endpoint, if one is due,
    /// or the error (`wire::logout`).
    pub fn logout(&self, now: f64) -> String {
        let mut keeper = self.keeper.borrow_mut();
        let result = keeper.logout(now);
        wire::logout(keeper.settings(), result)
    }

    /// `login(url, credentials)`: `url` is the app's argument, anything;
    /// `credentials` their JSON text.
    pub fn login(&self, call: u32, url: JsValue, credentials: Option<String>) {
        let url = from_js(&url, MAX_JSON);
        let mut keeper = self.keeper.borrow_mut();
        let checked = wire::login_arguments(&keeper, &url, credentials.as_deref(), &BrowserUrls);
        keeper.login(CallId(call), checked);
    }

    /// The DPoP key `call` waits for was made (`x`, `y`: its public JWK's
    /// coordinates; none when the browser could not): the thumbprint to
    /// keep its private half under, or none when it is not taken.
    pub fn key_made(
        &self,
        now: f64,
        call: u32,
        x: Option<String>,
        y: Option<String>,
    ) -> Option<String> {
        let public = x.as_deref().zip(y.as_deref());
        self.keeper.borrow_mut().key_made(now, CallId(call), public)
    }

    /// A token endpoint's answer (`call` 0: the refresh; otherwise that
    /// login call), as the executor read it.
    #[allow(clippy::too_many_arguments)]
    pub fn answer(
        &self,
        now: f64,
        call: u32,
        sent_at: f64,
        received_at: f64,
        status: u16,
        date: f64,
        retry_after: Option<String>,
        retry_after_date: f64,
        body: Option<String>,
        nonce: Option<String>,
    ) {
        let mut keeper = self.keeper.borrow_mut();
        if let Some(nonce) = nonce {
            keeper.handle_token_nonce(CallId(call), &nonce);
        }
        let body = body.and_then(|text| {
            let body = OptValue::from_json(Some(&text), wire::MAX_BODY);
            wire::grant(&body, &keeper.settings().fields)
        });
        let retry_after_ms = retry_after.and_then(|v| {
            tokenkeeper_core::session::retry_after_ms(&v, finite(retry_after_date), received_at)
        });
        let timing = Timing {
            sent_at,
            received_at,
            server_date: finite(date),
            fresh: true,
        };
        let answer = wire::token_answer(status, body, retry_after_ms, timing);
        match call {
            0 => keeper.handle_refresh_answer(now, answer),
            call => keeper.handle_login_answer(now, CallId(call), answer),
        }
    }

    /// The response to a request sent with a token.
    #[allow(clippy::too_many_arguments)]
    pub fn response(
        &self,
        now: f64,
        call: u32,
        generation: f64,
        status: u16,
        renewed: Option<String>,
        date: f64,
        sent_at: f64,
        replayable: bool,
        replayed: bool,
        url: &str,
        method: &str,
        nonce: Option<String>,
        challenge: Option<String>,
        nonce_replayed: bool,
    ) {
        let answered = Answered {
            generation: generation as u64,
            status,
            renewed,
            server_date: finite(date),
            sent_at,
            replayable,
            replayed,
            url,
            method,
            nonce: nonce.as_deref(),
            challenge: challenge.as_deref(),
            nonce_replayed,
        };
        self.keeper
            .borrow_mut()
            .response(now, CallId(call), answered);
    }

    /// The refresh lock was granted.
    pub fn lock(&self, now: f64, contended: bool) {
        self.keeper.borrow_mut().handle_lock_granted(now, contended);
    }

    /// A message from another tab, as the executor wrote it in JSON
    /// (anything: it is checked in the keeper).
    /// `has_key`: a DPoP key came with it (a private, non-extractable
    /// ECDSA P-256 `CryptoKey`, as the executor checked).
    pub fn tab(&self, now: f64, data: Option<String>, has_key: bool) {
        let data = OptValue::from_json(data.as_deref(), MAX_JSON);
        self.keeper
            .borrow_mut()
            .handle_tab_message(now, &data, has_key);
    }

    /// A page event: 0 `visibilitychange`, 1 `pageshow`, 2 `online`, 3 `focus`.
    pub fn page(&self, now: f64, event: u8, visible: bool) {
        let event = match event {
            0 => PageEvent::Visibility,
            1 => PageEvent::PageShow,
            2 => PageEvent::Online,
            _ => PageEvent::Focus,
        };
        self.keeper.borrow_mut().handle_page(now, event, visible);
    }

    /// `free()`.
    pub fn close(&self) {
        self.keeper.borrow_mut().free();
    }

    /// The discovery document's answer: its status (0: none) and body text.
    pub fn discovered(&self, now: f64, status: u16, body: Option<String>) {
        let body = OptValue::from_json(body.as_deref(), wire::MAX_BODY);
        self.keeper
            .borrow_mut()
            .handle_discovery(now, status, &body);
    }

    /// `loginRedirect(options)`: `here` is the page's path, `random` the
    /// bytes of `crypto.getRandomValues`.
    pub fn login_redirect(&self, now: f64, call: u32, here: &str, random: &[u8], options: JsValue) {
        let options = from_js(&options, MAX_JSON);
        self.keeper
            .borrow_mut()
            .login_redirect(now, CallId(call), here, random, &options);
    }

    /// `handleRedirect()` on the page at `href`, with the transaction text
    /// the tab's `sessionStorage` holds (anything: it is checked).
    pub fn handle_redirect(&self, now: f64, call: u32, href: &str, stored: Option<String>) {
        let stored = OptValue::from_json(stored.as_deref(), MAX_JSON);
        self.keeper
            .borrow_mut()
            .handle_redirect(now, CallId(call), href, &stored);
    }

    /// `logoutRedirect(options)`: what to revoke and where to go, or the
    /// error (`wire::logout_redirect`).
    pub fn logout_redirect(&self, now: f64, options: JsValue) -> String {
        let options = from_js(&options, MAX_JSON);
        wire::logout_redirect(&mut self.keeper.borrow_mut(), now, &options, &BrowserUrls)
    }

    /// At start: whether the stored transaction is stale (then forgotten).
    pub fn sweep(&self, now: f64, stored: Option<String>) -> bool {
        let stored = OptValue::from_json(stored.as_deref(), MAX_JSON);
        self.keeper.borrow_mut().stale_transaction(now, &stored)
    }
}

/// A value from JS as the core reads it: JSON text of at most `max` bytes.
fn from_js(value: &JsValue, max: usize) -> OptValue {
    OptValue::from_json(interop::tk_json(value, max).as_deref(), max)
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// What a `TokenKeeper` method throws: a `TokenKeeperError`, made from the
/// keeper's [`Error`] (`?` converts one). It reads as the `JsValue` it is.
#[derive(Debug, Clone)]
pub struct Thrown(JsValue);

impl From<Error> for Thrown {
    // One copy, not one per `?`.
    #[inline(never)]
    fn from(e: Error) -> Self {
        Thrown(interop::tk_error(&wire::error(&e)))
    }
}

impl From<Thrown> for JsValue {
    fn from(t: Thrown) -> JsValue {
        t.0
    }
}

impl core::ops::Deref for Thrown {
    type Target = JsValue;
    fn deref(&self) -> &JsValue {
        &self.0
    }
}

/// Keeps one session's tokens in memory, attaches the access token to
/// requests for allowed origins, and refreshes it ahead of expiry, on read,
/// on wake-up and after a 401.
///
/// ```js
/// const keeper = new TokenKeeper({ refreshUrl: "/token/refresh" });
/// await keeper.login("/login", { username, password });
/// const res = await keeper.fetch("/api/me");
/// ```
#[wasm_bindgen]
pub struct TokenKeeper {
    keeper: Rc<RefCell<Keeper>>,
    shell: Shell,
}

#[wasm_bindgen]
impl TokenKeeper {
    /// Creates a keeper. Options are validated here: an unknown option, a
    /// wrong type or an invalid URL throws a `TokenKeeperError` with code
    /// `invalid_option` whose `option` names it.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "TokenKeeperOptions")] options: JsValue,
    ) -> Result<TokenKeeper, Thrown> {
        let settings = Settings::from_options(&from_js(&options, MAX_JSON), &BrowserUrls)?;
        let shell = Shell::new(&settings.channel);
        let env = Env {
            tabs: shell.tabs(),
            locks: shell.locks(),
            seed: (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64,
        };
        let config = wire::executor_config(&settings);
        let keeper = Rc::new(RefCell::new(Keeper::new(settings, env)));
        shell.start(
            Core {
                keeper: keeper.clone(),
            },
            &config,
        );
        Ok(TokenKeeper { keeper, shell })
    }

    /// Joins the session the other tabs hold: asks them over the channel and
    /// adopts their tokens, with no request to the token server. If nobody
    /// answers within a short bound, a `refreshStyle: "cookie"` keeper tries a
    /// silent refresh with its HttpOnly cookie; otherwise it stays logged out.
    /// Resolves with whether there is a session.
    #[wasm_bindgen(unchecked_return_type = "Promise<boolean>")]
    pub fn ready(&self) -> Promise {
        self.shell.ready_call()
    }

    /// Logs in: `POST`s `credentials` as JSON to `url` and adopts the token
    /// response. Rejects with code `login_failed` (and the `status`) when
    /// refused, `network_error` when there is no answer, and
    /// `invalid_token_response` when the answer holds no usable token.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn login(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | URL")] url: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Record<string, unknown>")] credentials: JsValue,
    ) -> Promise {
        self.shell.login_call(url, credentials)
    }

    /// Adopts tokens an app obtained itself: an object with the token
    /// response's fields (`access_token`, `refresh_token`, `expires_in` by
    /// default; see the `fields` option). Throws `invalid_token_response`
    /// when there is no usable access token; the current session is then kept.
    #[wasm_bindgen(js_name = setTokens)]
    pub fn set_tokens(
        &self,
        #[wasm_bindgen(unchecked_param_type = "TokenResponse")] tokens: JsValue,
    ) -> Result<(), Thrown> {
        let tokens = from_js(&tokens, wire::MAX_BODY);
        let result = {
            let mut keeper = self.keeper.borrow_mut();
            keeper.open()?;
            let grant = wire::tokens_argument(&tokens, &keeper.settings().fields)?;
            keeper.set_tokens(js_sys::Date::now(), grant)
        };
        self.shell.drive();
        Ok(result?)
    }

    /// Same contract as `window.fetch`. For an allowed origin, attaches the
    /// access token (refreshing first when it is expired or about to be), and
    /// on a 401 refreshes once (only if no newer token exists already) and
    /// replays the request once. Any other URL is fetched untouched, and so
    /// is a `mode: "no-cors"` request (the browser would drop the token's
    /// header). Bound to this keeper: `const f = keeper.fetch; f(url)` works,
    /// as `window.fetch` does passed around.
    // A getter of a bound function. Declared in typescript.rs as the method
    // it reads as, with `init` optional as in `window.fetch`.
    #[wasm_bindgen(getter = fetch, skip_typescript)]
    pub fn fetch_bound(&self) -> Function {
        self.shell.bound_fetch()
    }

    /// A valid access token, refreshing first when it is expired or inside
    /// the lead window. Rejects with `not_authenticated` without a session.
    #[wasm_bindgen(js_name = getAccessToken, unchecked_return_type = "Promise<string>")]
    pub fn get_access_token(&self) -> Promise {
        self.shell.token_call()
    }

    /// Refreshes now (joining a refresh already in flight). Resolves when the
    /// new tokens are in place.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn refresh(&self) -> Promise {
        self.shell.refresh_call()
    }

    /// Subscribes `callback` to an event — `"refresh"`, `"refresh-error"`,
    /// `"expired"`, `"logout"` or `"change"` — and returns a function that
    /// unsubscribes it. Event details never contain tokens.
    // Typed per event in typescript.rs (`on<K>`): wasm-bindgen's own
    // `(detail: any)` signature would shadow it.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "TokenKeeperEvent")] event: JsValue,
        #[wasm_bindgen(unchecked_param_type = "(detail: any) => void")] callback: JsValue,
    ) -> Result<Function, Thrown> {
        self.keeper.borrow().open()?;
        let kind = match from_js(&event, 32) {
            OptValue::Str(name) => EventKind::parse(&name),
            _ => None,
        }
        .ok_or(Error::InvalidArgument {
            argument: "event",
            reason: "must be one of refresh, refresh-error, expired, logout, change, sync",
        })?;
        let callback = callback
            .dyn_into::<Function>()
            .map_err(|_| Error::InvalidArgument {
                argument: "callback",
                reason: "must be a function",
            })?;
        Ok(self.shell.on_call(kind.as_str(), callback))
    }

    /// On the redirect URI, after the identity provider sent the browser
    /// back: checks the callback against the login this tab started,
    /// exchanges the code (once), checks the ID token, shares the session
    /// with the other tabs and puts the app at the login's `returnTo` with
    /// `history.replaceState` (no page load). Resolves `{ returnTo }`, or
    /// `null` when the page is no callback. The callback's parameters leave
    /// the URL in every case. Rejects with `invalid_callback` (no login of
    /// this tab's, another `state` or `iss`), `login_failed` (the
    /// provider's `error` and `errorDescription`, or the `status` of a
    /// refused exchange), `invalid_id_token` (naming the check), or
    /// `discovery_failed`.
    ///
    /// ```js
    /// const done = await keeper.handleRedirect();
    /// if (done) router.replace(done.returnTo);
    /// ```
    #[wasm_bindgen(js_name = handleRedirect, unchecked_return_type = "Promise<{ returnTo: string } | null>")]
    pub fn handle_redirect(&self) -> Promise {
        self.shell.redirect_call()
    }

    /// Logs in at the identity provider (`issuer`): navigates the page to
    /// its authorization endpoint (Authorization Code with PKCE). `returnTo`
    /// is where `handleRedirect()` puts the app afterwards (a path of this
    /// origin; default: the current page); `prompt: "none"` signs in
    /// silently when the provider still has a session (else the callback
    /// fails with `login_required`).
    // Declared in typescript.rs, with `options` optional.
    #[wasm_bindgen(js_name = loginRedirect, skip_typescript)]
    pub fn login_redirect(&self, options: Option<JsValue>) -> Promise {
        self.shell
            .login_redirect_call(options.unwrap_or(JsValue::UNDEFINED))
    }

    /// Logs out in every tab, revokes the refresh token at the provider,
    /// then navigates to its `end_session_endpoint` (RP-initiated logout)
    /// with `id_token_hint`, `client_id` and `post_logout_redirect_uri`.
    // Declared in typescript.rs, with `options` optional.
    #[wasm_bindgen(js_name = logoutRedirect, skip_typescript)]
    pub fn logout_redirect(&self, options: Option<JsValue>) -> Promise {
        self.shell
            .logout_redirect_call(options.unwrap_or(JsValue::UNDEFINED))
    }

    /// The claims of the session's ID token (checked when it came from the
    /// provider), or `undefined` without one.
    #[wasm_bindgen(getter, js_name = idTokenClaims, unchecked_return_type = "IdTokenClaims | undefined")]
    pub fn id_token_claims(&self) -> JsValue {
        let keeper = self.keeper.borrow();
        keeper
            .id_token()
            .and_then(tokenkeeper_core::oidc::claims_text)
            .and_then(|text| js_sys::JSON::parse(&text).ok())
            .unwrap_or(JsValue::UNDEFINED)
    }

    /// Whether there is a session.
    #[wasm_bindgen(getter, js_name = isAuthenticated)]
    pub fn is_authenticated(&self) -> bool {
        self.keeper.borrow().session().is_authenticated()
    }

    /// When the access token expires, in ms since the epoch (local clock,
    /// corrected for the server's clock skew), or `undefined` when unknown.
    #[wasm_bindgen(getter, js_name = expiresAt)]
    pub fn expires_at(&self) -> Option<f64> {
        self.keeper.borrow().session().expires_at()
    }

    /// When the next silent refresh is planned, in ms since the epoch, or
    /// `undefined` when none is (no session, or no known expiry).
    #[wasm_bindgen(getter, js_name = refreshAt)]
    pub fn refresh_at(&self) -> Option<f64> {
        self.keeper.borrow().refresh_at()
    }

    /// The generation of the current tokens: it moves forward with every
    /// change (one larger; after 2^53 − 1 comes 1). A session starts at its
    /// login's moment in ms, so a later login is newer than anything an
    /// earlier session reached.
    #[wasm_bindgen(getter)]
    pub fn generation(&self) -> f64 {
        self.keeper.borrow().session().generation() as f64
    }

    /// Ends the session: clears the tokens from memory, raises `logout`
    /// (reason `"local"`), and tells `logoutUrl` if one is set (best effort).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn logout(&self) -> Promise {
        self.shell.logout_call()
    }

    /// Frees the keeper: cancels its timer and listeners, leaves the tabs'
    /// channel, clears the tokens, and ends waiting calls. After it, every
    /// method rejects (`setTokens` and `on` throw) a `TokenKeeperError` with
    /// code `freed`, the getters read as logged out, and `free()` again (or
    /// `[Symbol.dispose]()`) does nothing. The little memory left goes when
    /// the object is garbage-collected.
    // This replaces the `free()` wasm-bindgen writes, which releases the
    // Rust object at once: every later call then failed on a null pointer
    // with a plain `Error`, a second `free()` too. A method of the same name
    // written later in the class wins, `[Symbol.dispose]` included.
    // Declared in typescript.rs.
    #[wasm_bindgen(js_name = free, skip_typescript)]
    pub fn close(&self) {
        self.shell.free_call();
    }
}

impl TokenKeeper {
    /// `keeper.fetch(input, init)`, as JS calls it (for Rust callers: JS
    /// reads the `fetch` property, a bound function).
    pub fn fetch(&self, input: JsValue, init: JsValue) -> Promise {
        self.shell.fetch_call(input, init)
    }
}

impl Drop for TokenKeeper {
    /// `free()` (or garbage collection of the JS object): cancels the timer
    /// and every listener; in-flight calls finish but change nothing.
    fn drop(&mut self) {
        self.shell.free_call();
    }
}
