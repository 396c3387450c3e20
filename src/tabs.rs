//! The cross-tab shell: a `BroadcastChannel` that carries the tab protocol
//! ([`crate::protocol`]) and a Web Lock that lets one tab at a time refresh.
//!
//! Web Locks (`navigator.locks`) are bound here by hand: web-sys keeps them
//! behind an unstable flag. Where they are missing, the core spreads the
//! tabs' refreshes and re-checks the generation instead — best effort rather
//! than a guarantee (see the README's cross-tab section).

use crate::interop::{self, Listener};
use crate::protocol::{Message, VERSION};
use alloc::string::String;
use js_sys::{Function, Object, Promise};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::BroadcastChannel;

#[wasm_bindgen]
extern "C" {
    /// `navigator.locks`.
    type LockManager;
    #[wasm_bindgen(method, js_name = request)]
    fn request(this: &LockManager, name: &str, options: &JsValue, callback: &Function) -> Promise;
}

/// A tab's end of the channel. Dropping it closes the channel and removes
/// the listener.
pub(crate) struct Tabs {
    channel: BroadcastChannel,
    lock_name: String,
    _listener: Listener,
}

impl Tabs {
    /// Opens the channel `name`; `on_message` gets every message's data.
    /// `None` where `BroadcastChannel` is missing (then the tab is alone).
    pub(crate) fn open(name: &str, on_message: impl FnMut(JsValue) + 'static) -> Option<Tabs> {
        let mut channel_name = String::from("tokenkeeper:");
        channel_name.push_str(name);
        let channel = BroadcastChannel::new(&channel_name).ok()?;
        let mut on_message = on_message;
        let listener = Listener::new(channel.as_ref(), "message", move |event| {
            if let Some(event) = event.dyn_ref::<web_sys::MessageEvent>() {
                on_message(event.data());
            }
        })?;
        Some(Tabs {
            channel,
            lock_name: {
                channel_name.push_str(":refresh");
                channel_name
            },
            _listener: listener,
        })
    }

    /// Posts a message to the other tabs, as sent by tab `from`.
    pub(crate) fn post(&self, message: &Message, from: &str) {
        let obj = Object::new();
        interop::set(&obj, "v", &JsValue::from_f64(VERSION));
        interop::set(&obj, "from", &JsValue::from_str(from));
        interop::set(&obj, "gen", &JsValue::from_f64(message.gen() as f64));
        match message {
            Message::Hello { .. } => interop::set(&obj, "type", &"hello".into()),
            Message::Session { tokens, .. } => {
                interop::set(&obj, "type", &"session".into());
                interop::set(&obj, "access", &JsValue::from_str(&tokens.access));
                if let Some(r) = &tokens.refresh {
                    interop::set(&obj, "refresh", &JsValue::from_str(r));
                }
                if let Some(at) = tokens.expires_at {
                    interop::set(&obj, "expiresAt", &JsValue::from_f64(at));
                }
                interop::set(&obj, "issuedAt", &JsValue::from_f64(tokens.issued_at));
            }
            Message::Logout { reason, .. } => {
                interop::set(&obj, "type", &"logout".into());
                interop::set(&obj, "reason", &JsValue::from_str(reason));
            }
            Message::Backoff { until, .. } => {
                interop::set(&obj, "type", &"backoff".into());
                interop::set(&obj, "until", &JsValue::from_f64(*until));
            }
        }
        let _ = self.channel.post_message(&obj);
    }

    /// Takes the refresh lock shared by every tab of this channel. Returns the
    /// guard (dropping it releases the lock) and whether another tab held the
    /// lock when asked — a sign that it may be refreshing right now.
    pub(crate) async fn lock(&self) -> (Option<LockGuard>, bool) {
        let Some(locks) = lock_manager() else {
            return (None, true);
        };
        let options = Object::new();
        interop::set(&options, "ifAvailable", &JsValue::TRUE);
        if let Some(guard) = acquire(&locks, &self.lock_name, &options).await {
            if guard.granted {
                return (Some(guard), false);
            }
        }
        let guard = acquire(&locks, &self.lock_name, &JsValue::UNDEFINED).await;
        (guard.filter(|g| g.granted), true)
    }
}

impl Drop for Tabs {
    fn drop(&mut self) {
        self.channel.close();
    }
}

/// A held Web Lock; released when dropped.
pub(crate) struct LockGuard {
    release: Option<Function>,
    granted: bool,
    _callback: Closure<dyn FnMut(JsValue) -> JsValue>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.call0(&JsValue::NULL);
        }
    }
}

/// Whether the browser has Web Locks.
pub(crate) fn has_locks() -> bool {
    lock_manager().is_some()
}

fn lock_manager() -> Option<LockManager> {
    let navigator = js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let locks = js_sys::Reflect::get(&navigator, &"locks".into()).ok()?;
    locks.is_object().then(|| locks.unchecked_into())
}

/// `navigator.locks.request(name, options, cb)`, with `cb` holding the lock
/// until the returned guard is dropped.
async fn acquire(locks: &LockManager, name: &str, options: &JsValue) -> Option<LockGuard> {
    let mut release: Option<Function> = None;
    let held = Promise::new(&mut |resolve, _| release = Some(resolve));
    let mut granted_with: Option<Function> = None;
    let granted = Promise::new(&mut |resolve, _| granted_with = Some(resolve));
    let granted_with = granted_with?;
    let callback = Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |lock: JsValue| {
        let _ = granted_with.call1(&JsValue::NULL, &lock);
        held.clone().into()
    });
    let request = if options.is_undefined() {
        locks.request(name, &Object::new(), callback.as_ref().unchecked_ref())
    } else {
        locks.request(name, options, callback.as_ref().unchecked_ref())
    };
    // The request's own promise settles when the lock is released; nothing to do then.
    let _ = request;
    let lock = JsFuture::from(granted).await.ok()?;
    Some(LockGuard {
        release,
        granted: !lock.is_null(),
        _callback: callback,
    })
}
