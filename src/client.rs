//! The exported `TokenKeeper` class: the browser executor around the core's
//! [`Keeper`]. It turns calls, timers, lock grants, tab messages and page
//! events into the keeper's inputs, and carries out the commands that come
//! back — requests, the one timer, the lock, messages, events and the
//! replies of waiting calls. It decides nothing about the session: every
//! branch on session state, counter and timing constant is in the core.

use crate::config::UrlResolver;
use crate::error::Error;
use crate::http;
use crate::interop::{self, Listener, Thrown};
use crate::tabs::{self, LockGuard, Tabs};
use alloc::collections::VecDeque;
use alloc::rc::{Rc, Weak};
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use gloo_timers::callback::Timeout;
use js_sys::{Function, Object, Promise};
use tokenkeeper_core::config::Settings;
use tokenkeeper_core::keeper::{
    Answered, CallId, Command, Env, Event, EventKind, Keeper, PageEvent, Reply,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{Request, RequestInit, RequestRedirect, Response, ResponseType};

/// setTimeout's delay is a signed 32-bit number of ms.
const MAX_TIMER_MS: f64 = 2_147_483_647.0;

/// What the executor holds besides the keeper: handles whose drop cancels.
struct Exec {
    timer: Option<Timeout>,
    /// The moment the timer is armed for.
    timer_at: Option<f64>,
    listeners: Vec<(u32, EventKind, Function)>,
    next_listener: u32,
    page_listeners: Vec<Listener>,
    /// The channel to the other tabs, if the browser has one.
    tabs: Option<Rc<Tabs>>,
    /// Locks held, oldest first (`None` when a request could not be granted).
    locks: VecDeque<Option<LockGuard>>,
    /// Calls waiting for the keeper's reply.
    slots: Vec<(CallId, Slot)>,
    next_call: u32,
}

#[derive(Default)]
struct Slot {
    reply: Option<Reply>,
    waker: Option<Waker>,
}

struct Inner {
    id: u32,
    /// A copy of the keeper's settings, for carrying out its requests
    /// (shared with the requests in flight, not copied for each).
    settings: Rc<Settings>,
    keeper: RefCell<Keeper>,
    exec: RefCell<Exec>,
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
            inner.exec.borrow_mut().listeners.retain(|(id, _, _)| *id != listener);
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
fn promise(f: impl Future<Output = Result<JsValue, Thrown>> + 'static) -> Promise {
    let boxed: Pin<alloc::boxed::Box<dyn Future<Output = Result<JsValue, JsValue>>>> =
        alloc::boxed::Box::pin(async move { f.await.map_err(JsValue::from) });
    future_to_promise(boxed)
}

/// A reply other than the one a call expects: its error (or, never in
/// practice, a browser error naming the mismatch).
fn unexpected(reply: Reply) -> Thrown {
    Thrown::Keeper(match reply {
        Reply::Failed(e) => e,
        _ => Error::Browser {
            during: "call",
            message: "unexpected reply".into(),
        },
    })
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
                .map_err(Thrown::from)?;
        let id = NEXT_ID.with(|n| {
            let id = n.get();
            n.set(id.wrapping_add(1));
            id
        });
        let inner = Rc::new_cyclic(|weak: &Weak<Inner>| {
            let weak = weak.clone();
            let tabs = Tabs::open(&settings.channel, move |data| {
                if let Some(inner) = weak.upgrade() {
                    let data = interop::opt_value(&data);
                    inner.input(|k, now| k.handle_tab_message(now, &data));
                }
            });
            let env = Env {
                tabs: tabs.is_some(),
                locks: tabs.is_some() && tabs::has_locks(),
                seed: (interop::random() * 9_007_199_254_740_992.0) as u64,
            };
            Inner {
                id,
                settings: Rc::new(settings.clone()),
                keeper: RefCell::new(Keeper::new(settings, env)),
                exec: RefCell::new(Exec {
                    timer: None,
                    timer_at: None,
                    listeners: Vec::new(),
                    next_listener: 1,
                    page_listeners: Vec::new(),
                    tabs: tabs.map(Rc::new),
                    locks: VecDeque::new(),
                    slots: Vec::new(),
                    next_call: 1,
                }),
            }
        });
        REGISTRY.with(|r| r.borrow_mut().push((id, Rc::downgrade(&inner))));
        listen_to_page(&inner);
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
            match inner.call(|k, now, id| k.ready(now, id)).await {
                Reply::Ready(authenticated) => Ok(JsValue::from_bool(authenticated)),
                other => Err(unexpected(other)),
            }
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
            let url = interop::BrowserUrls::new()
                .resolve(&url)
                .ok_or(Error::InvalidArgument {
                    argument: "url",
                    reason: "is not a valid URL",
                })?;
            let body = js_sys::JSON::stringify(&credentials)
                .ok()
                .and_then(|s| s.as_string())
                .filter(|s| s.starts_with('{'))
                .ok_or(Error::InvalidArgument {
                    argument: "credentials",
                    reason: "must be an object that JSON can encode",
                })?;
            let answer = http::login(&inner.settings, &url, &body).await;
            match inner
                .call(|k, now, id| k.handle_login_answer(now, id, answer))
                .await
            {
                Reply::Done => Ok(JsValue::UNDEFINED),
                other => Err(unexpected(other)),
            }
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
        if !tokens.is_object() {
            return Err(Thrown::from(Error::InvalidArgument {
                argument: "tokens",
                reason: "must be an object",
            })
            .into());
        }
        let grant = http::read_grant(&tokens, &self.inner.settings.fields);
        let result = self
            .inner
            .keeper
            .borrow_mut()
            .set_tokens(interop::now(), grant);
        self.inner.drive();
        Ok(result.map_err(Thrown::from)?)
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
            match inner.call(|k, now, id| k.need_token(now, id)).await {
                Reply::Token { access, .. } => Ok(JsValue::from_str(&access)),
                other => Err(unexpected(other)),
            }
        })
    }

    /// Refreshes now (joining a refresh already in flight). Resolves when the
    /// new tokens are in place.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn refresh(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            match inner.call(|k, now, id| k.refresh(now, id)).await {
                Reply::Done => Ok(JsValue::UNDEFINED),
                other => Err(unexpected(other)),
            }
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
        let kind = EventKind::parse(event)
            .ok_or(Error::InvalidArgument {
                argument: "event",
                reason: "must be one of refresh, refresh-error, expired, logout, change, sync",
            })
            .map_err(Thrown::from)?;
        let mut exec = self.inner.exec.borrow_mut();
        let id = exec.next_listener;
        exec.next_listener = id.wrapping_add(1);
        exec.listeners.push((id, kind, callback));
        drop(exec);
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
        self.inner.keeper.borrow().session().is_authenticated()
    }

    /// When the access token expires, in ms since the epoch (local clock,
    /// corrected for the server's clock skew), or `undefined` when unknown.
    #[wasm_bindgen(getter, js_name = expiresAt)]
    pub fn expires_at(&self) -> Option<f64> {
        self.inner.keeper.borrow().session().expires_at()
    }

    /// When the next silent refresh is planned, in ms since the epoch, or
    /// `undefined` when none is (no session, or no known expiry).
    #[wasm_bindgen(getter, js_name = refreshAt)]
    pub fn refresh_at(&self) -> Option<f64> {
        self.inner.keeper.borrow().refresh_at()
    }

    /// The generation of the current tokens: it grows with every change.
    #[wasm_bindgen(getter)]
    pub fn generation(&self) -> f64 {
        self.inner.keeper.borrow().session().generation() as f64
    }

    /// Ends the session: clears the tokens from memory, raises `logout`
    /// (reason `"local"`), and tells `logoutUrl` if one is set (best effort).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn logout(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let notice = inner.keeper.borrow_mut().logout(interop::now());
            inner.drive();
            if let Some(n) = notice {
                let (access, refresh) = (n.access.as_deref(), n.refresh.as_deref());
                http::logout(&inner.settings, &n.url, access, refresh).await;
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
        (
            interop::document_target(),
            "visibilitychange",
            PageEvent::Visibility,
        ),
        (interop::global_target(), "pageshow", PageEvent::PageShow),
        (interop::global_target(), "online", PageEvent::Online),
        (interop::global_target(), "focus", PageEvent::Focus),
    ];
    for (target, kind, event) in targets {
        let Some(target) = target else { continue };
        let weak = Rc::downgrade(inner);
        let listener = Listener::new(&target, kind, move |_| {
            if let Some(inner) = weak.upgrade() {
                let visible = interop::is_visible();
                inner.input(|k, now| k.handle_page(now, event, visible));
            }
        });
        listeners.extend(listener);
    }
    inner.exec.borrow_mut().page_listeners = listeners;
}

/// A call waiting for the keeper's [`Reply`].
struct Call {
    inner: Rc<Inner>,
    id: CallId,
}

impl Future for Call {
    type Output = Reply;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        let mut exec = self.inner.exec.borrow_mut();
        let Some(i) = exec.slots.iter().position(|(id, _)| *id == self.id) else {
            return Poll::Ready(Reply::Failed(Error::Freed));
        };
        let ready = exec
            .slots
            .get_mut(i)
            .and_then(|(_, slot)| match slot.reply.take() {
                Some(reply) => Some(reply),
                None => {
                    slot.waker = Some(cx.waker().clone());
                    None
                }
            });
        match ready {
            Some(reply) => {
                exec.slots.swap_remove(i);
                Poll::Ready(reply)
            }
            None => Poll::Pending,
        }
    }
}

impl Inner {
    /// Feeds an input to the keeper and carries out what comes of it.
    fn input(self: &Rc<Self>, f: impl FnOnce(&mut Keeper, f64)) {
        f(&mut self.keeper.borrow_mut(), interop::now());
        self.drive();
    }

    /// Starts an app call and waits for its reply.
    fn call(self: &Rc<Self>, f: impl FnOnce(&mut Keeper, f64, CallId)) -> Call {
        let id = {
            let mut exec = self.exec.borrow_mut();
            let id = CallId(exec.next_call);
            exec.next_call = exec.next_call.wrapping_add(1);
            exec.slots.push((id, Slot::default()));
            id
        };
        self.input(|k, now| f(k, now, id));
        Call {
            inner: self.clone(),
            id,
        }
    }

    /// Carries out the keeper's commands, then arms the timer for its next
    /// moment. Re-entrant: a listener may call back into the keeper.
    fn drive(self: &Rc<Self>) {
        loop {
            let command = self.keeper.borrow_mut().poll_command();
            let Some(command) = command else { break };
            self.execute(command);
        }
        self.arm_timer();
    }

    fn execute(self: &Rc<Self>, command: Command) {
        match command {
            Command::Refresh { refresh_token } => {
                let weak = Rc::downgrade(self);
                let settings = self.settings.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let answer = http::refresh(&settings, refresh_token.as_deref()).await;
                    if let Some(inner) = weak.upgrade() {
                        inner.input(|k, now| k.handle_refresh_answer(now, answer));
                    }
                });
            }
            Command::AcquireLock => {
                let Some(tabs) = self.exec.borrow().tabs.clone() else {
                    return self.input(|k, now| k.handle_lock_granted(now, true));
                };
                let weak = Rc::downgrade(self);
                wasm_bindgen_futures::spawn_local(async move {
                    let (guard, contended) = tabs.lock().await;
                    if let Some(inner) = weak.upgrade() {
                        inner.exec.borrow_mut().locks.push_back(guard);
                        inner.input(|k, now| k.handle_lock_granted(now, contended));
                    }
                });
            }
            Command::ReleaseLock => {
                let guard = self.exec.borrow_mut().locks.pop_front();
                drop(guard);
            }
            Command::Post(message) => {
                let tabs = self.exec.borrow().tabs.clone();
                if let Some(tabs) = tabs {
                    tabs.post(&message, self.keeper.borrow().tab_id());
                }
            }
            Command::Emit(event) => self.emit(&event),
            Command::Settle { call, reply } => {
                let waker = {
                    let mut exec = self.exec.borrow_mut();
                    exec.slots
                        .iter_mut()
                        .find(|(id, _)| *id == call)
                        .and_then(|(_, slot)| {
                            slot.reply = Some(reply);
                            slot.waker.take()
                        })
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
        }
    }

    /// (Re)arms the one timer for the keeper's next moment. The timer is a
    /// hint: when it fires, the keeper checks the wall clock again.
    fn arm_timer(self: &Rc<Self>) {
        let at = self.keeper.borrow().poll_timeout();
        let mut exec = self.exec.borrow_mut();
        if at == exec.timer_at && (at.is_none() || exec.timer.is_some()) {
            return;
        }
        exec.timer_at = at;
        let Some(at) = at else {
            exec.timer = None;
            return;
        };
        let delay = (at - interop::now()).ceil().clamp(0.0, MAX_TIMER_MS);
        let weak = Rc::downgrade(self);
        exec.timer = Some(Timeout::new(delay as u32, move || {
            if let Some(inner) = weak.upgrade() {
                {
                    let mut exec = inner.exec.borrow_mut();
                    exec.timer = None;
                    exec.timer_at = None;
                }
                inner.input(|k, now| k.handle_timeout(now));
            }
        }));
    }

    fn shutdown(self: &Rc<Self>) {
        self.keeper.borrow_mut().free();
        self.drive();
        let mut exec = self.exec.borrow_mut();
        exec.timer = None;
        exec.timer_at = None;
        exec.page_listeners.clear();
        exec.tabs = None;
        exec.listeners.clear();
        exec.locks.clear();
        drop(exec);
        let id = self.id;
        REGISTRY.with(|r| r.borrow_mut().retain(|(i, _)| *i != id));
    }

    /// Calls the listeners of `event` with its detail, outside any borrow (a
    /// listener may call back into the keeper).
    fn emit(&self, event: &Event) {
        let kind = event.kind();
        let targets: Vec<Function> = self
            .exec
            .borrow()
            .listeners
            .iter()
            .filter(|(_, k, _)| *k == kind)
            .map(|(_, _, f)| f.clone())
            .collect();
        if targets.is_empty() {
            return;
        }
        let detail = detail(event);
        for f in targets {
            interop::call_listener(&f, &detail);
        }
    }

    async fn authed_fetch(
        self: Rc<Self>,
        input: JsValue,
        init: JsValue,
    ) -> Result<JsValue, Thrown> {
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
        let url = request.url();
        let (generation, access) = match self.call(|k, now, id| k.fetch(now, id, &url)).await {
            Reply::Token { generation, access } => (generation, access),
            Reply::Passthrough => return Ok(JsFuture::from(interop::fetch(&request)).await?),
            other => return Err(unexpected(other)),
        };
        // Keep a copy to replay after a 401; a stream body cannot be replayed.
        // A GET or HEAD has no body to lose: it is copied only if a 401 comes.
        let method = request.method();
        let bodiless = method == "GET" || method == "HEAD";
        let copy = if bodiless || interop::is_stream(&interop::init_body(&init)) {
            None
        } else {
            Some(request.clone()?)
        };
        let replayable = bodiless || copy.is_some();
        let sent_at = interop::now();
        let response = self.send_with_token(&request, &access).await?;
        let reply = self
            .answered(&response, generation, sent_at, replayable, false, &url)
            .await;
        let Reply::Replay { access } = reply else {
            return Ok(response.into());
        };
        let replay = match copy {
            Some(r) => r,
            None => Request::new_with_request(&request)?,
        };
        let sent_at = interop::now();
        let second = self.send_with_token(&replay, &access).await?;
        self.answered(&second, generation, sent_at, true, true, &url)
            .await;
        Ok(second.into())
    }

    /// Hands a response to the keeper: a renewed token, and what a 401 calls for.
    async fn answered(
        self: &Rc<Self>,
        response: &Response,
        generation: u64,
        sent_at: f64,
        replayable: bool,
        replayed: bool,
        url: &str,
    ) -> Reply {
        let headers = response.headers();
        let renewed = self
            .settings
            .renew_header
            .as_ref()
            .and_then(|name| headers.get(name).ok().flatten());
        let server_date = renewed
            .as_ref()
            .and_then(|_| headers.get("Date").ok().flatten())
            .and_then(|d| interop::parse_http_date(&d));
        let answered = Answered {
            generation,
            status: response.status(),
            renewed,
            server_date,
            sent_at,
            replayable,
            replayed,
            url,
        };
        self.call(|k, now, id| k.response(now, id, answered)).await
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
}

/// An event's detail object, as the `.d.ts` describes it (never a token).
fn detail(event: &Event) -> Object {
    let detail = Object::new();
    let set = |k: &str, v: &JsValue| interop::set(&detail, k, v);
    let gen = |g: u64| JsValue::from_f64(g as f64);
    match event {
        Event::Refresh {
            source,
            expires_at,
            generation,
        } => {
            set("source", &JsValue::from_str(source.as_str()));
            set("expiresAt", &opt_num(*expires_at));
            set("generation", &gen(*generation));
        }
        Event::RefreshError {
            error,
            retrying,
            retry_in_ms,
        } => {
            set("code", &JsValue::from_str(error.code()));
            set("message", &JsValue::from_str(&error.message()));
            set("retrying", &(*retrying).into());
            set("fatal", &(!*retrying).into());
            if let Some(status) = error.status() {
                set("status", &status.into());
            }
            if let Some(e) = error.oauth_error() {
                set("error", &JsValue::from_str(e));
            }
            set("retryInMs", &opt_num(retry_in_ms.map(f64::round)));
        }
        Event::Expired { reason, url } => {
            set("reason", &JsValue::from_str(reason.as_str()));
            set("url", &JsValue::from_str(url));
        }
        Event::Logout { reason } => set("reason", &JsValue::from_str(reason.as_str())),
        Event::Change {
            authenticated,
            expires_at,
            generation,
        } => {
            set("isAuthenticated", &(*authenticated).into());
            set("expiresAt", &opt_num(*expires_at));
            set("generation", &gen(*generation));
        }
        Event::Sync {
            kind,
            from,
            generation,
        } => {
            set("type", &JsValue::from_str(kind.as_str()));
            set("from", &JsValue::from_str(from));
            set("generation", &gen(*generation));
        }
    }
    detail
}

fn opt_num(v: Option<f64>) -> JsValue {
    v.map(JsValue::from_f64).unwrap_or(JsValue::UNDEFINED)
}
