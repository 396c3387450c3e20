//! Several TokenKeeper instances on one channel in one page behave like tabs:
//! one refresh per rotation between them, refreshed tokens adopted
//! everywhere, logout everywhere, a new instance joins without the network,
//! and junk on the channel is ignored.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use tokenkeeper::TokenKeeper;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn channel_name() -> String {
    format!("test-{}", (js_sys::Math::random() * 1e12) as u64)
}

fn tab(channel: &str, extra: &[(&str, JsValue)]) -> TokenKeeper {
    let mut opts = vec![("channel", JsValue::from_str(channel))];
    opts.extend(extra.iter().cloned());
    keeper(&opts)
}

async fn ready(k: &TokenKeeper) -> bool {
    JsFuture::from(k.ready()).await.unwrap().as_bool().unwrap()
}

/// Five tabs, one logged in: the others join it through the channel.
async fn five_tabs(channel: &str, extra: &[(&str, JsValue)]) -> Vec<TokenKeeper> {
    let first = tab(channel, extra);
    login(&first).await;
    let mut tabs = vec![first];
    for _ in 0..4 {
        let k = tab(channel, extra);
        assert!(ready(&k).await, "a new tab joins the session");
        tabs.push(k);
    }
    tabs
}

#[wasm_bindgen_test]
async fn five_tabs_twenty_calls_each_across_an_expiry_refresh_once() {
    setup(r#"{"access_ttl_ms":2000}"#).await;
    let channel = channel_name();
    // Lead 0: every tab's timer fires right at expiry, racing the calls.
    let tabs = five_tabs(&channel, &[("refreshLeadSeconds", 0.into())]).await;
    let generation = tabs[0].generation();
    for k in &tabs {
        assert_eq!(k.generation(), generation, "all tabs hold the same tokens");
    }
    let wait = tabs[0].expires_at().unwrap() - js_sys::Date::now();
    sleep(wait.max(0.0) as u32).await;
    let promises = js_sys::Array::new();
    for k in &tabs {
        for _ in 0..20 {
            promises.push(&k.fetch(url(server(), "/api/data").into(), JsValue::UNDEFINED));
        }
    }
    let all = JsFuture::from(js_sys::Promise::all(&promises))
        .await
        .unwrap_or_else(|e| panic!("a call failed: {}", message(&e)));
    for r in js_sys::Array::from(&all).iter() {
        let r: web_sys::Response = wasm_bindgen::JsCast::unchecked_into(r);
        assert_eq!(r.status(), 200);
    }
    let s = stats(server()).await;
    assert_eq!(num(&s, "refresh_requests"), 1.0, "{}", stringify(&s));
    assert_eq!(num(&s, "refreshes"), 1.0);
    assert_eq!(num(&s, "reuse_detections"), 0.0);
    assert_eq!(num(&s, "api_401"), 0.0);
    let generation = tabs[0].generation();
    assert!(tabs.iter().all(|k| k.generation() == generation));
}

#[wasm_bindgen_test]
async fn logout_in_one_tab_logs_out_all_within_100ms() {
    setup("").await;
    let channel = channel_name();
    let tabs = five_tabs(&channel, &[]).await;
    let recorders: Vec<Recorder> = tabs[1..].iter().map(|k| record(k, "logout")).collect();
    let started = js_sys::Date::now();
    settle(tabs[0].logout()).await.unwrap();
    while tabs.iter().any(|k| k.is_authenticated()) && js_sys::Date::now() - started < 1000.0 {
        sleep(2).await;
    }
    let elapsed = js_sys::Date::now() - started;
    assert!(tabs.iter().all(|k| !k.is_authenticated()));
    assert!(elapsed <= 100.0, "took {elapsed} ms");
    for r in recorders {
        assert_eq!(r.len(), 1);
        assert_eq!(
            field(&r.all()[0], "reason").as_string().as_deref(),
            Some("remote")
        );
    }
}

#[wasm_bindgen_test]
async fn a_new_tab_joins_without_the_network() {
    setup("").await;
    let channel = channel_name();
    let first = tab(&channel, &[]);
    login(&first).await;
    settle(first.refresh()).await.unwrap();
    let before = stats(server()).await;
    let joined = tab(&channel, &[]);
    let syncs = record(&joined, "sync");
    assert!(ready(&joined).await);
    assert_eq!(joined.generation(), first.generation());
    let after = stats(server()).await;
    for counter in ["logins", "refresh_requests"] {
        assert_eq!(num(&after, counter), num(&before, counter), "{counter}");
    }
    assert_eq!(
        field(&syncs.all()[0], "type").as_string().as_deref(),
        Some("adopted")
    );
    let resp = kfetch(&joined, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
    // Alone on its channel, a tab stays logged out.
    let alone = tab(&channel_name(), &[]);
    assert!(!ready(&alone).await);
}

#[wasm_bindgen_test]
async fn a_refresh_in_one_tab_is_adopted_by_the_others() {
    setup("").await;
    let channel = channel_name();
    let tabs = five_tabs(&channel, &[]).await;
    let adopted: Vec<Recorder> = tabs[1..].iter().map(|k| record(k, "refresh")).collect();
    settle(tabs[0].refresh()).await.unwrap();
    sleep(50).await;
    let generation = tabs[0].generation();
    for (k, r) in tabs[1..].iter().zip(&adopted) {
        assert_eq!(k.generation(), generation);
        assert_eq!(r.len(), 1);
        assert_eq!(
            field(&r.all()[0], "source").as_string().as_deref(),
            Some("tab")
        );
    }
    // Each tab uses the rotated token: no reuse, no 401.
    for k in &tabs {
        let resp = kfetch(k, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(num(&stats(server()).await, "refreshes"), 1.0);
}

#[wasm_bindgen_test]
async fn a_refused_refresh_ends_the_session_in_every_tab() {
    setup("").await;
    let channel = channel_name();
    let tabs = five_tabs(&channel, &[]).await;
    let logouts: Vec<Recorder> = tabs.iter().map(|k| record(k, "logout")).collect();
    reset(server()).await; // the server forgets the session
    let err = settle(tabs[2].refresh()).await.unwrap_err();
    assert_eq!(code(&err), "session_ended");
    sleep(50).await;
    for (i, (k, r)) in tabs.iter().zip(&logouts).enumerate() {
        assert!(!k.is_authenticated(), "tab {i}");
        assert_eq!(r.len(), 1, "tab {i}");
        let reason = field(&r.all()[0], "reason").as_string().unwrap();
        assert_eq!(reason, if i == 2 { "refresh-failed" } else { "remote" });
    }
}

#[wasm_bindgen_test]
async fn malformed_and_foreign_messages_are_ignored() {
    setup("").await;
    let channel = channel_name();
    let k = tab(&channel, &[]);
    login(&k).await;
    let generation = k.generation();
    // Newer than the tab's, were the messages well formed.
    let newer = generation + 1e9;
    let raw = web_sys::BroadcastChannel::new(&format!("tokenkeeper:{channel}")).unwrap();
    let junk: Vec<JsValue> = vec![
        JsValue::NULL,
        JsValue::from_str("logout"),
        JsValue::from_f64(42.0),
        js_sys::Array::new().into(),
        obj(&[]),
        // Another protocol version, however new.
        obj(&[
            ("v", 2.into()),
            ("type", "logout".into()),
            ("from", "x".into()),
            ("gen", JsValue::from_f64(newer)),
            ("reason", "local".into()),
        ]),
        // Broken fields.
        obj(&[
            ("v", 1.into()),
            ("type", "logout".into()),
            ("from", "x".into()),
            ("gen", (-1).into()),
            ("reason", "local".into()),
        ]),
        obj(&[
            ("v", 1.into()),
            ("type", "logout".into()),
            ("from", "x".into()),
            ("gen", "9".into()),
            ("reason", "local".into()),
        ]),
        obj(&[
            ("v", 1.into()),
            ("type", "session".into()),
            ("from", "x".into()),
            ("gen", JsValue::from_f64(newer)),
            ("access", "".into()),
            ("issuedAt", 0.into()),
        ]),
        obj(&[
            ("v", 1.into()),
            ("type", "session".into()),
            ("from", "x".into()),
            ("gen", JsValue::from_f64(newer)),
            ("access", "a b".into()),
            ("issuedAt", 0.into()),
        ]),
        obj(&[
            ("v", 1.into()),
            ("type", "bogus".into()),
            ("from", "x".into()),
            ("gen", JsValue::from_f64(newer)),
        ]),
        // An older session.
        obj(&[
            ("v", 1.into()),
            ("type", "session".into()),
            ("from", "x".into()),
            ("gen", 0.into()),
            ("access", "old".into()),
            ("issuedAt", 0.into()),
        ]),
    ];
    for j in &junk {
        raw.post_message(j).unwrap();
    }
    sleep(100).await;
    assert!(k.is_authenticated());
    assert_eq!(k.generation(), generation);
    let resp = kfetch(&k, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
    // The channel is live: a well-formed newer logout does end the session.
    raw.post_message(&obj(&[
        ("v", 1.into()),
        ("type", "logout".into()),
        ("from", "x".into()),
        ("gen", JsValue::from_f64(generation + 1.0)),
        ("reason", "local".into()),
    ]))
    .unwrap();
    sleep(100).await;
    assert!(!k.is_authenticated());
    raw.close();
}

#[wasm_bindgen_test]
async fn cookie_mode_new_tab_falls_back_to_a_silent_refresh() {
    setup(r#"{"refresh_cookie":true}"#).await;
    let cookie = [("refreshStyle", JsValue::from_str("cookie"))];
    let first = tab(&channel_name(), &cookie);
    login(&first).await;
    // Another channel: nobody answers, so the HttpOnly cookie is used.
    let joined = tab(&channel_name(), &cookie);
    assert!(ready(&joined).await);
    assert_eq!(num(&stats(server()).await, "refreshes"), 1.0);
    let resp = kfetch(&joined, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
    settle(joined.logout()).await.unwrap();
}

/// A tab coming back (pageshow, visibilitychange) asks the others and catches
/// up with what it missed, here a logout.
#[wasm_bindgen_test]
async fn a_tab_coming_back_catches_up() {
    setup("").await;
    let channel = channel_name();
    let stale = tab(&channel, &[]);
    login(&stale).await;
    // Another tab at a newer generation without a session: the stale tab
    // missed its logout (as a tab frozen in the back-forward cache would).
    let raw = web_sys::BroadcastChannel::new(&format!("tokenkeeper:{channel}")).unwrap();
    let newer = stale.generation() + 5.0;
    let answer = std::rc::Rc::new(std::cell::Cell::new(false));
    let seen = answer.clone();
    let raw2 = raw.clone();
    let responder = wasm_bindgen::closure::Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
        move |e: web_sys::MessageEvent| {
            if field(&e.data(), "type").as_string().as_deref() == Some("hello") {
                seen.set(true);
                raw2.post_message(&obj(&[
                    ("v", 1.into()),
                    ("type", "logout".into()),
                    ("from", "frozen-peer".into()),
                    ("gen", JsValue::from_f64(newer)),
                    ("reason", "local".into()),
                ]))
                .unwrap();
            }
        },
    );
    raw.set_onmessage(Some(wasm_bindgen::JsCast::unchecked_ref(
        responder.as_ref(),
    )));
    let event = web_sys::Event::new("pageshow").unwrap();
    web_sys::window().unwrap().dispatch_event(&event).unwrap();
    sleep(100).await;
    assert!(answer.get(), "the tab asked on pageshow");
    assert!(!stale.is_authenticated(), "and caught up with the logout");
    assert_eq!(stale.generation(), newer);
    raw.close();
}

/// A refresh ahead of expiry that ends without a session (the session ended
/// in another tab while it waited for the lock) is no unhandled rejection.
#[wasm_bindgen_test]
async fn an_abandoned_refresh_is_not_an_unhandled_rejection() {
    setup(r#"{"access_ttl_ms":1500}"#).await;
    let window = web_sys::window().unwrap();
    let rejections = std::rc::Rc::new(std::cell::Cell::new(0));
    let count = rejections.clone();
    let on_rejection = wasm_bindgen::closure::Closure::<dyn FnMut(web_sys::Event)>::new(
        move |_e: web_sys::Event| count.set(count.get() + 1),
    );
    window
        .add_event_listener_with_callback(
            "unhandledrejection",
            wasm_bindgen::JsCast::unchecked_ref(on_rejection.as_ref()),
        )
        .unwrap();
    let channel = channel_name();
    let a = tab(&channel, &[]);
    login(&a).await;
    let b = tab(&channel, &[]);
    assert!(ready(&b).await);
    // Hold the tabs' refresh lock, so the timers' refreshes have to wait.
    let mut release: Option<js_sys::Function> = None;
    let held = js_sys::Promise::new(&mut |resolve, _| release = Some(resolve));
    let granted = wasm_bindgen::closure::Closure::once_into_js(move |_lock: JsValue| held);
    let navigator = js_sys::Reflect::get(&window, &"navigator".into()).unwrap();
    let locks = js_sys::Reflect::get(&navigator, &"locks".into()).unwrap();
    let request: js_sys::Function = js_sys::Reflect::get(&locks, &"request".into())
        .unwrap()
        .into();
    let lock_name = JsValue::from_str(&format!("tokenkeeper:{channel}:refresh"));
    let _ = request.call2(&locks, &lock_name, &granted).unwrap();
    let wait = a.refresh_at().unwrap() - js_sys::Date::now() + 100.0;
    sleep(wait.max(0.0) as u32).await;
    settle(b.logout()).await.unwrap();
    release.unwrap().call0(&JsValue::NULL).unwrap();
    sleep(200).await;
    assert!(!a.is_authenticated());
    assert_eq!(rejections.get(), 0, "unhandled rejections");
    window
        .remove_event_listener_with_callback(
            "unhandledrejection",
            wasm_bindgen::JsCast::unchecked_ref(on_rejection.as_ref()),
        )
        .unwrap();
}
