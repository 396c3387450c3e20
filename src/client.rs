//! The exported `TokenKeeper` class: the web shell around the core session.
//! It turns calls, timers and page events into session inputs, and session
//! decisions into requests, timers and events.

use crate::config::{RefreshStyle, Settings};
use crate::error::Error;
use crate::http;
use crate::interop::{self, Listener};
use crate::protocol::{self, Apply, Message};
use crate::session::{self, After401, FailureClass, Read, Session};
use crate::tabs::Tabs;
use crate::token;
use alloc::rc::{Rc, Weak};
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use gloo_timers::callback::Timeout;
use js_sys::{Function, Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{Request, RequestInit, RequestRedirect, Response, ResponseType};

/// Attempts made by a refresh that a caller is waiting for, before it gives up
/// (the session is kept and retried later by the timer).
const ATTEMPTS_WHEN_NEEDED: u32 = 3;
/// The longest a caller waits between two attempts.
const MAX_WAIT_IN_CALL_MS: f64 = 30_000.0;
/// setTimeout's delay is a signed 32-bit number of ms.
const MAX_TIMER_MS: f64 = 2_147_483_647.0;
/// How long a tab waits for the other tabs' answer (a new tab joining, a
/// refused refresh asking whether another tab rotated).
const ASK_WAIT_MS: u32 = 150;
/// How long a tab that waited for the refresh lock waits for the holder's
/// broadcast before refreshing itself.
const CONTENDED_WAIT_MS: u32 = 200;
/// How long the refresh lock is kept after the new tokens were broadcast.
const HOLD_AFTER_BROADCAST_MS: u32 = 50;

/// The events a `TokenKeeper` raises.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Event {
    Refresh,
    RefreshError,
    Expired,
    Logout,
    Change,
    Sync,
}

impl Event {
    fn parse(name: &str) -> Option<Event> {
        Some(match name {
            "refresh" => Event::Refresh,
            "refresh-error" => Event::RefreshError,
            "expired" => Event::Expired,
            "logout" => Event::Logout,
            "change" => Event::Change,
            "sync" => Event::Sync,
            _ => return None,
        })
    }
}

/// Why a refresh is being made.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Ahead of expiry, by the timer or a page event: the token is still good.
    Ahead,
    /// A call found the token inside the lead window: still good, refresh first.
    Read,
    /// A caller needs a new token (expired, a 401, or an explicit `refresh()`).
    Needed,
    /// A new tab in cookie mode, with no session yet: try the cookie, quietly.
    Join,
}

struct State {
    session: Session,
    /// The refresh in flight, shared by every caller (single flight).
    refreshing: Option<Promise>,
    /// How the last refresh failed, for every caller that shared it.
    last_error: Option<Error>,
    timer: Option<Timeout>,
    listeners: Vec<(u32, Event, Function)>,
    next_listener: u32,
    page_listeners: Vec<Listener>,
    /// The channel to the other tabs, if the browser has one.
    tabs: Option<Rc<Tabs>>,
    /// Resolvers of promises waiting for the session to change.
    waiters: Vec<Function>,
    freed: bool,
}

struct Inner {
    id: u32,
    settings: Settings,
    state: RefCell<State>,
}

std::thread_local! {
    static NEXT_ID: Cell<u32> = const { Cell::new(1) };
    /// Live instances by id, so one shared `off` function can reach them.
    static REGISTRY: RefCell<Vec<(u32, Weak<Inner>)>> = const { RefCell::new(Vec::new()) };
    /// The function behind every unsubscribe handle returned by `on()`, bound
    /// to (instance id, listener id). It lives as long as the page on purpose:
    /// handles may be called at any time, even after `free()` (then they do
    /// nothing), and one closure for all of them costs nothing per call.
    static OFF: Closure<dyn Fn(u32, u32)> = Closure::new(|keeper: u32, listener: u32| {
        if let Some(inner) = lookup(keeper) {
            inner.state.borrow_mut().listeners.retain(|(id, _, _)| *id != listener);
        }
    });
}

fn lookup(id: u32) -> Option<Rc<Inner>> {
    REGISTRY.with(|r| {
        r.borrow()
            .iter()
            .find(|(i, _)| *i == id)
            .and_then(|(_, w)| w.upgrade())
    })
}

/// Runs a future as a JS promise. Boxed, so every exported async method
/// shares one instance of the promise glue (it is large in wasm).
fn promise(f: impl core::future::Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    let boxed: core::pin::Pin<
        alloc::boxed::Box<dyn core::future::Future<Output = Result<JsValue, JsValue>>>,
    > = alloc::boxed::Box::pin(f);
    future_to_promise(boxed)
}

fn js_err(e: Error) -> JsValue {
    interop::to_js_error(&e)
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
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl TokenKeeper {
    /// Creates a keeper. Options are validated here: an unknown option, a
    /// wrong type or an invalid URL throws a `TokenKeeperError` with code
    /// `invalid_option` whose `option` names it.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "TokenKeeperOptions")] options: JsValue,
    ) -> Result<TokenKeeper, JsValue> {
        let settings =
            Settings::from_options(&interop::opt_value(&options), &interop::BrowserUrls::new())
                .map_err(js_err)?;
        let id = NEXT_ID.with(|n| {
            let id = n.get();
            n.set(id.wrapping_add(1));
            id
        });
        let inner = Rc::new(Inner {
            id,
            settings,
            state: RefCell::new(State {
                session: Session::new(),
                refreshing: None,
                last_error: None,
                timer: None,
                listeners: Vec::new(),
                next_listener: 1,
                page_listeners: Vec::new(),
                tabs: None,
                waiters: Vec::new(),
                freed: false,
            }),
        });
        REGISTRY.with(|r| r.borrow_mut().push((id, Rc::downgrade(&inner))));
        listen_to_page(&inner);
        let weak = Rc::downgrade(&inner);
        let tabs = Tabs::open(&inner.settings.channel, move |data| {
            if let Some(inner) = weak.upgrade() {
                inner.on_tab_message(&data);
            }
        });
        inner.state.borrow_mut().tabs = tabs.map(Rc::new);
        Ok(TokenKeeper { inner })
    }

    /// Joins the session the other tabs hold: asks them over the channel and
    /// adopts their tokens, with no request to the token server. If nobody
    /// answers within a short bound, a `refreshStyle: "cookie"` keeper tries a
    /// silent refresh with its HttpOnly cookie; otherwise it stays logged out.
    /// Resolves with whether there is a session.
    #[wasm_bindgen(unchecked_return_type = "Promise<boolean>")]
    pub fn ready(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.alive().map_err(js_err)?;
            let authenticated = |inner: &Inner| inner.state.borrow().session.is_authenticated();
            if !authenticated(&inner) && inner.state.borrow().tabs.is_some() {
                let started = inner.state.borrow().session.generation();
                inner.post(&Message::Hello { gen: started });
                let deadline = interop::now() + f64::from(ASK_WAIT_MS);
                while !authenticated(&inner) && interop::now() < deadline {
                    inner.wait_for_change(deadline - interop::now()).await;
                }
            }
            if !authenticated(&inner) && inner.settings.refresh_style == RefreshStyle::Cookie {
                let _ = inner.refresh_joined(Why::Join).await;
            }
            Ok(JsValue::from_bool(authenticated(&inner)))
        })
    }

    /// Logs in: `POST`s `credentials` as JSON to `url` and adopts the token
    /// response. Rejects with code `login_failed` (and the `status`) when
    /// refused, `network_error` when there is no answer, and
    /// `invalid_token_response` when the answer holds no usable token.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn login(
        &self,
        url: String,
        #[wasm_bindgen(unchecked_param_type = "Record<string, unknown>")] credentials: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let url = crate::config::UrlResolver::resolve(&interop::BrowserUrls::new(), &url)
                .ok_or(Error::InvalidArgument {
                    argument: "url",
                    reason: "is not a valid URL",
                })
                .map_err(js_err)?;
            let body = js_sys::JSON::stringify(&credentials)
                .ok()
                .and_then(|s| s.as_string())
                .filter(|s| s.starts_with('{'))
                .ok_or(Error::InvalidArgument {
                    argument: "credentials",
                    reason: "must be an object that JSON can encode",
                })
                .map_err(js_err)?;
            let answer = http::login(&inner.settings, &url, &body)
                .await
                .map_err(js_err)?;
            inner.alive().map_err(js_err)?;
            let tokens = token::accept_grant(answer.grant, answer.timing, None).map_err(js_err)?;
            inner.adopt(tokens, None, "login");
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Adopts tokens an app obtained itself: an object with the token
    /// response's fields (`access_token`, `refresh_token`, `expires_in` by
    /// default; see the `fields` option). Throws `invalid_token_response`
    /// when there is no usable access token; the current session is then kept.
    #[wasm_bindgen(js_name = setTokens)]
    pub fn set_tokens(
        &self,
        #[wasm_bindgen(unchecked_param_type = "TokenResponse")] tokens: JsValue,
    ) -> Result<(), JsValue> {
        self.inner.alive().map_err(js_err)?;
        if !tokens.is_object() {
            return Err(js_err(Error::InvalidArgument {
                argument: "tokens",
                reason: "must be an object",
            }));
        }
        let now = interop::now();
        let timing = token::Timing {
            sent_at: now,
            received_at: now,
            server_date: None,
        };
        let grant = http::read_grant(&tokens, &self.inner.settings.fields);
        let tokens = token::accept_grant(grant, timing, None).map_err(js_err)?;
        self.inner.adopt(tokens, None, "set-tokens");
        Ok(())
    }

    /// Same contract as `window.fetch`. For an allowed origin, attaches the
    /// access token (refreshing first when it is expired or about to be), and
    /// on a 401 refreshes once (only if no newer token exists already) and
    /// replays the request once. Any other URL is fetched untouched.
    // Declared in typescript.rs, with `init` optional as in `window.fetch`.
    #[wasm_bindgen(skip_typescript)]
    pub fn fetch(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RequestInfo | URL")] input: JsValue,
        #[wasm_bindgen(unchecked_param_type = "RequestInit")] init: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move { inner.authed_fetch(input, init).await })
    }

    /// A valid access token, refreshing first when it is expired or inside
    /// the lead window. Rejects with `not_authenticated` without a session.
    #[wasm_bindgen(js_name = getAccessToken, unchecked_return_type = "Promise<string>")]
    pub fn get_access_token(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let (_, access) = inner.valid_token().await.map_err(js_err)?;
            Ok(JsValue::from_str(&access))
        })
    }

    /// Refreshes now (joining a refresh already in flight). Resolves when the
    /// new tokens are in place.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn refresh(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.alive().map_err(js_err)?;
            inner.refresh_joined(Why::Needed).await.map_err(js_err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Subscribes `callback` to an event — `"refresh"`, `"refresh-error"`,
    /// `"expired"`, `"logout"` or `"change"` — and returns a function that
    /// unsubscribes it. Event details never contain tokens.
    // Typed per event in typescript.rs (`on<K>`): wasm-bindgen's own
    // `(detail: any)` signature would shadow it.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "TokenKeeperEvent")] event: &str,
        #[wasm_bindgen(unchecked_param_type = "(detail: any) => void")] callback: Function,
    ) -> Result<Function, JsValue> {
        let kind = Event::parse(event).ok_or_else(|| {
            js_err(Error::InvalidArgument {
                argument: "event",
                reason: "must be one of refresh, refresh-error, expired, logout, change, sync",
            })
        })?;
        let mut st = self.inner.state.borrow_mut();
        let id = st.next_listener;
        st.next_listener = id.wrapping_add(1);
        st.listeners.push((id, kind, callback));
        drop(st);
        let keeper = self.inner.id;
        let off: JsValue = OFF.with(|off| {
            let f: &Function = off.as_ref().unchecked_ref();
            f.bind2(&JsValue::NULL, &keeper.into(), &id.into()).into()
        });
        Ok(off.unchecked_into())
    }

    /// Whether there is a session.
    #[wasm_bindgen(getter, js_name = isAuthenticated)]
    pub fn is_authenticated(&self) -> bool {
        self.inner.state.borrow().session.is_authenticated()
    }

    /// When the access token expires, in ms since the epoch (local clock,
    /// corrected for the server's clock skew), or `undefined` when unknown.
    #[wasm_bindgen(getter, js_name = expiresAt)]
    pub fn expires_at(&self) -> Option<f64> {
        self.inner.state.borrow().session.expires_at()
    }

    /// When the next silent refresh is planned, in ms since the epoch, or
    /// `undefined` when none is (no session, or no known expiry).
    #[wasm_bindgen(getter, js_name = refreshAt)]
    pub fn refresh_at(&self) -> Option<f64> {
        let st = self.inner.state.borrow();
        st.session.refresh_at(self.inner.settings.refresh_lead_ms)
    }

    /// The generation of the current tokens: it grows with every change.
    #[wasm_bindgen(getter)]
    pub fn generation(&self) -> f64 {
        self.inner.state.borrow().session.generation() as f64
    }

    /// Ends the session: clears the tokens from memory, raises `logout`
    /// (reason `"local"`), and tells `logoutUrl` if one is set (best effort).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn logout(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let tokens = inner.state.borrow().session.tokens().cloned();
            inner.end_session("local");
            if let (Some(url), Some(tokens)) = (&inner.settings.logout_url, tokens) {
                let access = interop::origin_of(url)
                    .filter(|o| inner.settings.is_allowed_origin(o))
                    .map(|_| tokens.access.as_str());
                http::logout(&inner.settings, url, access, tokens.refresh.as_deref()).await;
            }
            Ok(JsValue::UNDEFINED)
        })
    }
}

impl Drop for TokenKeeper {
    /// `free()` (or garbage collection of the JS object): cancels the timer
    /// and every listener; in-flight calls finish but change nothing.
    fn drop(&mut self) {
        self.inner.shutdown();
    }
}

/// Re-checks the session when the page comes back: timers sleep with the
/// laptop and are throttled in hidden tabs.
fn listen_to_page(inner: &Rc<Inner>) {
    let mut listeners = Vec::new();
    let targets = [
        (interop::document_target(), "visibilitychange"),
        (interop::global_target(), "pageshow"),
        (interop::global_target(), "online"),
        (interop::global_target(), "focus"),
    ];
    for (target, kind) in targets {
        let Some(target) = target else { continue };
        let weak = Rc::downgrade(inner);
        let listener = Listener::new(&target, kind, move |_| {
            if let Some(inner) = weak.upgrade() {
                if kind == "online" {
                    inner
                        .state
                        .borrow_mut()
                        .session
                        .network_back(interop::now());
                }
                if interop::is_visible() {
                    if kind == "pageshow" || kind == "visibilitychange" {
                        // Back from the bfcache or a frozen background: messages
                        // may have been missed. Anything newer is answered.
                        let gen = inner.state.borrow().session.generation();
                        inner.post(&Message::Hello { gen });
                    }
                    inner.tick();
                }
            }
        });
        listeners.extend(listener);
    }
    inner.state.borrow_mut().page_listeners = listeners;
}

impl Inner {
    fn alive(&self) -> Result<(), Error> {
        if self.state.borrow().freed {
            Err(Error::Freed)
        } else {
            Ok(())
        }
    }

    fn shutdown(&self) {
        let mut st = self.state.borrow_mut();
        st.freed = true;
        st.timer = None;
        st.page_listeners.clear();
        st.tabs = None;
        st.listeners.clear();
        st.session.clear();
        st.refreshing = None;
        drop(st);
        self.notify_change();
        let id = self.id;
        REGISTRY.with(|r| r.borrow_mut().retain(|(i, _)| *i != id));
    }

    /// Calls the listeners of `event` with `detail`, outside any borrow (a
    /// listener may call back into the keeper).
    fn emit(&self, event: Event, detail: &Object) {
        let targets: Vec<Function> = self
            .state
            .borrow()
            .listeners
            .iter()
            .filter(|(_, e, _)| *e == event)
            .map(|(_, _, f)| f.clone())
            .collect();
        for f in targets {
            interop::call_listener(&f, detail);
        }
    }

    fn emit_change(&self) {
        let st = self.state.borrow();
        let detail = Object::new();
        interop::set(
            &detail,
            "isAuthenticated",
            &st.session.is_authenticated().into(),
        );
        interop::set(&detail, "expiresAt", &opt_num(st.session.expires_at()));
        interop::set(
            &detail,
            "generation",
            &(st.session.generation() as f64).into(),
        );
        drop(st);
        self.emit(Event::Change, &detail);
    }

    /// Puts new tokens in place, plans the next refresh, raises events.
    fn adopt(
        self: &Rc<Self>,
        tokens: token::TokenSet,
        generation: Option<u64>,
        source: &str,
    ) -> u64 {
        let expires_at = tokens.expires_at;
        let message = (source != "tab").then(|| tokens.clone());
        let generation =
            self.state
                .borrow_mut()
                .session
                .adopt(tokens, generation, interop::random());
        if let Some(tokens) = message {
            self.post(&Message::Session {
                gen: generation,
                tokens,
            });
        }
        self.schedule();
        if source != "login" && source != "set-tokens" {
            let detail = Object::new();
            interop::set(&detail, "source", &JsValue::from_str(source));
            interop::set(&detail, "expiresAt", &opt_num(expires_at));
            interop::set(&detail, "generation", &(generation as f64).into());
            self.emit(Event::Refresh, &detail);
        }
        self.emit_change();
        generation
    }

    /// Ends the session (if there is one) and says why; tells the other
    /// tabs unless it ended in another tab.
    fn end_session(&self, reason: &str) {
        let (had, generation) = {
            let mut st = self.state.borrow_mut();
            st.timer = None;
            let had = st.session.clear();
            (had, st.session.generation())
        };
        if reason != "remote" {
            self.post(&Message::Logout {
                gen: generation,
                reason: reason.into(),
            });
        }
        if had {
            let detail = Object::new();
            interop::set(&detail, "reason", &JsValue::from_str(reason));
            self.emit(Event::Logout, &detail);
            self.emit_change();
        }
    }

    /// (Re)arms the one refresh timer for the planned moment. The timer is a
    /// hint: when it fires, the wall clock is checked again.
    fn schedule(self: &Rc<Self>) {
        let mut st = self.state.borrow_mut();
        if st.freed {
            return;
        }
        let Some(at) = st.session.refresh_at(self.settings.refresh_lead_ms) else {
            st.timer = None;
            return;
        };
        let delay = (at - interop::now()).clamp(0.0, MAX_TIMER_MS);
        let weak = Rc::downgrade(self);
        st.timer = Some(Timeout::new(delay as u32, move || {
            if let Some(inner) = weak.upgrade() {
                inner.tick();
            }
        }));
    }

    /// A re-check: refresh ahead if the planned moment has passed, else re-arm.
    fn tick(self: &Rc<Self>) {
        let due = {
            let st = self.state.borrow();
            if st.freed || st.refreshing.is_some() {
                return;
            }
            st.session
                .refresh_at(self.settings.refresh_lead_ms)
                .is_some_and(|at| interop::now() >= at)
        };
        if due {
            // Nobody awaits a refresh ahead of time: await it here, so a
            // failure (reported through events) is not an unhandled rejection.
            let refresh = JsFuture::from(self.refresh_shared(Why::Ahead));
            wasm_bindgen_futures::spawn_local(async move {
                let _ = refresh.await;
            });
        } else {
            self.schedule();
        }
    }

    /// The refresh in flight, or a new one: every caller shares one.
    fn refresh_shared(self: &Rc<Self>, why: Why) -> Promise {
        if let Some(p) = self.state.borrow().refreshing.clone() {
            return p;
        }
        let inner = self.clone();
        let started = self.state.borrow().session.generation();
        let promise = promise(async move {
            let result = inner.clone().refresh_across_tabs(why, started).await;
            let mut st = inner.state.borrow_mut();
            st.refreshing = None;
            match result {
                Ok(g) => Ok(JsValue::from_f64(g as f64)),
                Err(e) => {
                    let js = interop::to_js_error(&e);
                    st.last_error = Some(e);
                    Err(js)
                }
            }
        });
        self.state.borrow_mut().refreshing = Some(promise.clone());
        promise
    }

    /// Joins the shared refresh and waits for it.
    async fn refresh_joined(self: &Rc<Self>, why: Why) -> Result<u64, Error> {
        let promise = self.refresh_shared(why);
        match JsFuture::from(promise).await {
            Ok(g) => Ok(g.as_f64().unwrap_or(0.0) as u64),
            Err(e) => Err(self
                .state
                .borrow()
                .last_error
                .clone()
                .unwrap_or(Error::Browser {
                    during: "refresh",
                    message: interop::js_message(&e),
                })),
        }
    }

    /// One refresh across every tab: under the tabs' shared lock, and only if
    /// no other tab has already rotated the tokens since `started` (the
    /// generation when the refresh was asked for). The new tokens are
    /// broadcast before the lock is released.
    async fn refresh_across_tabs(self: Rc<Self>, why: Why, started: u64) -> Result<u64, Error> {
        let tabs = self.state.borrow().tabs.clone();
        let Some(tabs) = tabs else {
            return self.run_refresh(why).await;
        };
        let (guard, contended) = tabs.lock().await;
        self.alive()?;
        if contended {
            // Another tab held the lock: it broadcasts before it releases, but
            // its message may land a moment after our grant. Give it that moment.
            self.wait_for_newer(started, CONTENDED_WAIT_MS).await;
        }
        if self.state.borrow().session.generation() != started {
            return self
                .current()
                .map(|(g, _)| g)
                .ok_or(Error::NotAuthenticated);
        }
        let result = self.clone().run_refresh(why).await;
        // The new tokens were broadcast; keep the lock a moment longer so the
        // message reaches every tab before another one can take the lock
        // (message delivery and lock grants are not ordered between tabs).
        // Callers get the result now; only the lock waits.
        wasm_bindgen_futures::spawn_local(async move {
            gloo_timers::future::TimeoutFuture::new(HOLD_AFTER_BROADCAST_MS).await;
            drop(guard);
        });
        result
    }

    /// Waits up to `ms` for the generation to move past `started`.
    async fn wait_for_newer(&self, started: u64, ms: u32) {
        let deadline = interop::now() + f64::from(ms);
        while self.state.borrow().session.generation() == started && interop::now() < deadline {
            self.wait_for_change(deadline - interop::now()).await;
        }
    }

    /// Waits until the session changes (a message from another tab was
    /// applied) or `ms` pass, whichever comes first. Event-driven: a joining
    /// tab is ready as soon as the answer arrives.
    async fn wait_for_change(&self, ms: f64) {
        let mut resolve: Option<Function> = None;
        let changed = Promise::new(&mut |r, _| resolve = Some(r));
        let Some(resolve) = resolve else { return };
        self.state.borrow_mut().waiters.push(resolve.clone());
        let ms = ms.clamp(0.0, MAX_TIMER_MS) as u32;
        let _timeout = Timeout::new(ms, move || {
            let _ = resolve.call0(&JsValue::NULL);
        });
        let _ = JsFuture::from(changed).await;
    }

    /// Wakes everything waiting in [`Inner::wait_for_change`].
    fn notify_change(&self) {
        let waiters = core::mem::take(&mut self.state.borrow_mut().waiters);
        for resolve in waiters {
            let _ = resolve.call0(&JsValue::NULL);
        }
    }

    /// Posts a message to the other tabs, if there are any.
    fn post(&self, message: &Message) {
        if let Some(tabs) = &self.state.borrow().tabs {
            tabs.post(message);
        }
    }

    /// A message from another tab: adopt newer tokens, end the session when it
    /// ended elsewhere, answer a new tab. Anything malformed, own, older or of
    /// another version is ignored.
    fn on_tab_message(self: &Rc<Self>, data: &JsValue) {
        let own_id = match &self.state.borrow().tabs {
            Some(t) => t.id.clone(),
            None => return,
        };
        let Ok(envelope) = protocol::decode(&interop::opt_value(data), &own_id) else {
            return;
        };
        let (generation, authenticated) = {
            let st = self.state.borrow();
            if st.freed {
                return;
            }
            (st.session.generation(), st.session.is_authenticated())
        };
        let kind = match (
            protocol::apply(&envelope.message, generation, authenticated),
            envelope.message,
        ) {
            (Apply::Ignore, _) => return,
            (Apply::Adopt, Message::Session { gen, tokens }) => {
                self.adopt(tokens, Some(gen), "tab");
                "adopted"
            }
            (Apply::EndSession, Message::Logout { gen, .. }) => {
                self.end_session("remote");
                self.state.borrow_mut().session.advance_to(gen);
                "logout"
            }
            (Apply::Defer, Message::Backoff { until, .. }) => {
                self.state.borrow_mut().session.defer_until(until);
                self.schedule();
                "backoff"
            }
            (Apply::Advance, m) => {
                self.state.borrow_mut().session.advance_to(m.gen());
                "advanced"
            }
            (Apply::Answer, _) => {
                let answer = {
                    let st = self.state.borrow();
                    match st.session.tokens() {
                        Some(tokens) => Message::Session {
                            gen: st.session.generation(),
                            tokens: tokens.clone(),
                        },
                        None => Message::Logout {
                            gen: st.session.generation(),
                            reason: "local".into(),
                        },
                    }
                };
                self.post(&answer);
                "answered"
            }
            _ => return,
        };
        self.notify_change();
        let detail = Object::new();
        interop::set(&detail, "type", &JsValue::from_str(kind));
        interop::set(&detail, "from", &JsValue::from_str(&envelope.from));
        interop::set(
            &detail,
            "generation",
            &(self.state.borrow().session.generation() as f64).into(),
        );
        self.emit(Event::Sync, &detail);
    }

    /// Asks the other tabs for anything newer than our generation and waits
    /// up to `ms` for it. Returns whether something newer arrived.
    async fn ask_tabs(&self, ms: u32) -> bool {
        if self.state.borrow().tabs.is_none() {
            return false;
        }
        let started = self.state.borrow().session.generation();
        self.post(&Message::Hello { gen: started });
        self.wait_for_newer(started, ms).await;
        self.state.borrow().session.generation() != started
    }

    /// One refresh, with retries while a caller is waiting for it.
    async fn run_refresh(self: Rc<Self>, why: Why) -> Result<u64, Error> {
        let mut attempts = 0u32;
        let mut deferrals = 0u32;
        loop {
            let now = interop::now();
            let mut defer_ms = None;
            let refresh_token = {
                let mut st = self.state.borrow_mut();
                if st.freed {
                    return Err(Error::Freed);
                }
                if !st.session.is_authenticated() && why != Why::Join {
                    return Err(Error::NotAuthenticated);
                }
                match st.session.begin_refresh(now) {
                    Ok(()) => {}
                    // A caller that needs a token waits out a short backoff
                    // (a Retry-After, maybe from another tab) and then tries.
                    Err(Error::RefreshThrottled { retry_in_ms })
                        if why == Why::Needed
                            && deferrals < ATTEMPTS_WHEN_NEEDED
                            && retry_in_ms <= MAX_WAIT_IN_CALL_MS =>
                    {
                        defer_ms = Some(retry_in_ms);
                    }
                    // Backing off or braking: a still-valid token is used as it is.
                    Err(e) => {
                        return if why != Why::Needed || !st.session.is_expired(now) && attempts > 0
                        {
                            Ok(st.session.generation())
                        } else {
                            Err(e)
                        };
                    }
                }
                (st.session.refresh_token(), st.session.generation())
            };
            if let Some(ms) = defer_ms {
                deferrals += 1;
                let ms = (ms.ceil() + 1.0).clamp(0.0, MAX_TIMER_MS);
                gloo_timers::future::TimeoutFuture::new(ms as u32).await;
                self.alive()?;
                if self.state.borrow().session.generation() != refresh_token.1 {
                    // Another tab refreshed meanwhile.
                    return self
                        .current()
                        .map(|(g, _)| g)
                        .ok_or(Error::NotAuthenticated);
                }
                continue;
            }
            let (refresh_token, started) = refresh_token;
            attempts += 1;
            let result = http::refresh(&self.settings, refresh_token.as_deref()).await;
            self.alive()?;
            // A logout (or newer tokens) while the request was out wins over its answer.
            if self.state.borrow().session.generation() != started {
                return self
                    .current()
                    .map(|(g, _)| g)
                    .ok_or(Error::NotAuthenticated);
            }
            let (status, oauth_error, retry_after, malformed) = match result {
                Ok(answer) => match token::accept_grant(answer.grant, answer.timing, refresh_token)
                {
                    Ok(tokens) => return Ok(self.adopt(tokens, None, source_name(why))),
                    Err(Error::InvalidTokenResponse { reason }) => (200, None, None, Some(reason)),
                    Err(e) => return Err(e),
                },
                Err(f) => (f.status, f.oauth_error, f.retry_after_ms, f.malformed),
            };
            let class = match malformed {
                // A malformed answer never wipes the session: treated as passing.
                Some(_) => FailureClass::Transient,
                None => session::classify(status, oauth_error.as_deref()),
            };
            if class == FailureClass::Fatal && why == Why::Join {
                // No session to end: the cookie simply holds none.
                return Err(Error::SessionEnded {
                    status,
                    oauth_error,
                });
            }
            if class == FailureClass::Fatal {
                // Refused: perhaps another tab rotated the token (or a response
                // was lost). Ask the other tabs for newer tokens before giving up.
                if self.ask_tabs(ASK_WAIT_MS).await
                    && self.state.borrow().session.is_authenticated()
                {
                    return self
                        .current()
                        .map(|(g, _)| g)
                        .ok_or(Error::NotAuthenticated);
                }
                let err = Error::SessionEnded {
                    status,
                    oauth_error,
                };
                self.emit_refresh_error(&err, false, None);
                self.end_session("refresh-failed");
                return Err(err);
            }
            let now = interop::now();
            let (wait, expired, generation) = {
                let mut st = self.state.borrow_mut();
                let wait = st
                    .session
                    .transient_failure(now, retry_after, interop::random());
                (wait, st.session.is_expired(now), st.session.generation())
            };
            // The other tabs hold the same refresh token: they wait too.
            if why != Why::Join {
                self.post(&Message::Backoff {
                    gen: generation,
                    until: now + wait,
                });
            }
            self.schedule();
            let err = match malformed {
                Some(reason) => Error::InvalidTokenResponse { reason },
                None => Error::RefreshUnavailable {
                    status,
                    oauth_error,
                    retry_in_ms: wait,
                },
            };
            if why == Why::Join {
                return Err(err);
            }
            // A malformed 2xx answer is not retried at once: the server may
            // have rotated the refresh token already, and a retry with the old
            // one would look like reuse.
            let retry_here = malformed.is_none()
                && why == Why::Needed
                && attempts < ATTEMPTS_WHEN_NEEDED
                && wait <= MAX_WAIT_IN_CALL_MS;
            self.emit_refresh_error(&err, true, Some(wait));
            if !retry_here {
                return if why != Why::Needed && !expired {
                    Ok(self.state.borrow().session.generation())
                } else {
                    Err(err)
                };
            }
            // Round up: the backoff moment must have passed when the loop re-checks it.
            let ms = (wait.ceil() + 1.0).clamp(0.0, MAX_TIMER_MS);
            gloo_timers::future::TimeoutFuture::new(ms as u32).await;
            self.alive()?;
        }
    }

    fn emit_refresh_error(&self, err: &Error, retrying: bool, retry_in_ms: Option<f64>) {
        let detail = Object::new();
        interop::set(&detail, "code", &JsValue::from_str(err.code()));
        interop::set(&detail, "message", &JsValue::from_str(&err.message()));
        interop::set(&detail, "retrying", &retrying.into());
        interop::set(&detail, "fatal", &(!retrying).into());
        if let Some(status) = err.status() {
            interop::set(&detail, "status", &status.into());
        }
        if let Some(e) = err.oauth_error() {
            interop::set(&detail, "error", &JsValue::from_str(e));
        }
        interop::set(&detail, "retryInMs", &opt_num(retry_in_ms.map(f64::round)));
        self.emit(Event::RefreshError, &detail);
    }

    /// A token fit to use now: the current one, or a fresh one after a refresh.
    async fn valid_token(self: &Rc<Self>) -> Result<(u64, String), Error> {
        self.alive()?;
        let read = self
            .state
            .borrow()
            .session
            .read(interop::now(), self.settings.refresh_lead_ms);
        match read {
            Read::NoSession => return Err(Error::NotAuthenticated),
            Read::Fresh { .. } => {}
            Read::RefreshFirst => {
                // Inside the lead window the token still works: a refresh that
                // fails for now must not hold the call back.
                let why = if self.state.borrow().session.is_expired(interop::now()) {
                    Why::Needed
                } else {
                    Why::Read
                };
                self.refresh_joined(why).await?;
            }
        }
        self.current().ok_or(Error::NotAuthenticated)
    }

    fn current(&self) -> Option<(u64, String)> {
        let st = self.state.borrow();
        let tokens = st.session.tokens()?;
        Some((st.session.generation(), tokens.access.clone()))
    }

    /// Adopts a renewed access token a server handed back in `renewHeader`.
    fn adopt_renewal(self: &Rc<Self>, response: &Response, sent_at: f64) {
        let Some(name) = &self.settings.renew_header else {
            return;
        };
        let Some(access) = response.headers().get(name).ok().flatten() else {
            return;
        };
        let previous = self.state.borrow().session.refresh_token();
        let now = interop::now();
        let server_date = response
            .headers()
            .get("Date")
            .ok()
            .flatten()
            .and_then(|d| interop::parse_http_date(&d));
        let grant = token::RawGrant {
            access_token: Some(access),
            refresh_token: None,
            expires_in: None,
        };
        let timing = token::Timing {
            sent_at,
            received_at: now,
            server_date,
        };
        let same = self
            .state
            .borrow()
            .session
            .tokens()
            .is_some_and(|t| grant.access_token.as_deref() == Some(t.access.as_str()));
        if same || !self.state.borrow().session.is_authenticated() {
            return;
        }
        if let Ok(tokens) = token::accept_grant(grant, timing, previous) {
            self.adopt(tokens, None, "renew-header");
        }
    }

    async fn authed_fetch(
        self: Rc<Self>,
        input: JsValue,
        init: JsValue,
    ) -> Result<JsValue, JsValue> {
        // Build the request exactly as fetch would; its errors are fetch's errors.
        let request = if let Some(req) = input.dyn_ref::<Request>() {
            if init.is_undefined() {
                Request::new_with_request(req)?
            } else {
                Request::new_with_request_and_init(req, init.unchecked_ref())?
            }
        } else {
            let url = match input.as_string() {
                Some(url) => url,
                None => interop::to_string(&input)?,
            };
            if init.is_undefined() {
                Request::new_with_str(&url)?
            } else {
                Request::new_with_str_and_init(&url, init.unchecked_ref())?
            }
        };
        let allowed = self.settings.is_allowed_url(&request.url());
        if !allowed || !self.state.borrow().session.is_authenticated() || self.alive().is_err() {
            return JsFuture::from(interop::fetch(&request)).await;
        }
        // Keep a copy to replay after a 401; a stream body cannot be replayed.
        // A GET or HEAD has no body to lose: it is copied only if a 401 comes.
        let method = request.method();
        let bodiless = method == "GET" || method == "HEAD";
        let replay = if bodiless || interop::is_stream(&interop::init_body(&init)) {
            None
        } else {
            Some(request.clone()?)
        };
        let (generation, access) = self.valid_token().await.map_err(js_err)?;
        let sent_at = interop::now();
        let response = self.send_with_token(&request, &access).await?;
        self.adopt_renewal(&response, sent_at);
        if response.status() != 401 {
            return Ok(response.into());
        }
        let replay = match replay {
            Some(r) => r,
            None if bodiless => Request::new_with_request(&request)?,
            None => return Ok(response.into()),
        };
        let decision = self.state.borrow().session.after_401(generation);
        match decision {
            After401::GiveUp => {
                self.emit_expired(&request.url(), "no-session");
                return Ok(response.into());
            }
            After401::ReplayWithCurrent => {}
            After401::RefreshThenReplay => {
                if self.refresh_joined(Why::Needed).await.is_err() {
                    self.emit_expired(&request.url(), "refresh-failed");
                    return Ok(response.into());
                }
            }
        }
        let Some((_, access)) = self.current() else {
            self.emit_expired(&request.url(), "no-session");
            return Ok(response.into());
        };
        let sent_at = interop::now();
        let second = self.send_with_token(&replay, &access).await?;
        self.adopt_renewal(&second, sent_at);
        if second.status() == 401 {
            self.emit_expired(&replay.url(), "rejected-after-refresh");
        }
        Ok(second.into())
    }

    /// Sends `request` with the token attached.
    ///
    /// Browsers drop `Authorization` when a redirect leaves the origin, but
    /// keep any other header. So with a custom header the request does not
    /// follow redirects itself: a GET or HEAD that is redirected is sent again
    /// without the token, following redirects as fetch would; any other
    /// method gets the redirect back (a `"opaqueredirect"` response).
    async fn send_with_token(&self, request: &Request, access: &str) -> Result<Response, JsValue> {
        request
            .headers()
            .set(&self.settings.header, &self.settings.header_value(access))?;
        let custom = !self.settings.header.eq_ignore_ascii_case("authorization");
        if !custom || request.redirect() != RequestRedirect::Follow {
            return Ok(JsFuture::from(interop::fetch(request))
                .await?
                .unchecked_into());
        }
        let method = request.method();
        let fallback = if method == "GET" || method == "HEAD" {
            Some(request.clone()?)
        } else {
            None
        };
        let init = RequestInit::new();
        init.set_redirect(RequestRedirect::Manual);
        let manual = Request::new_with_request_and_init(request, &init)?;
        let response: Response = JsFuture::from(interop::fetch(&manual))
            .await?
            .unchecked_into();
        match fallback {
            Some(fallback) if response.type_() == ResponseType::Opaqueredirect => {
                fallback.headers().delete(&self.settings.header)?;
                Ok(JsFuture::from(interop::fetch(&fallback))
                    .await?
                    .unchecked_into())
            }
            _ => Ok(response),
        }
    }

    fn emit_expired(&self, url: &str, reason: &str) {
        let detail = Object::new();
        interop::set(&detail, "reason", &JsValue::from_str(reason));
        interop::set(&detail, "url", &JsValue::from_str(url));
        self.emit(Event::Expired, &detail);
    }
}

fn source_name(why: Why) -> &'static str {
    match why {
        Why::Ahead => "timer",
        Why::Read => "read",
        Why::Needed => "on-demand",
        Why::Join => "join",
    }
}

fn opt_num(v: Option<f64>) -> JsValue {
    v.map(JsValue::from_f64).unwrap_or(JsValue::UNDEFINED)
}
