//! Options are validated once and errors name the option; tokens stay in memory.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use tokenkeeper::TokenKeeper;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn option_error(options: JsValue) -> (String, String, String) {
    let err = match TokenKeeper::new(options) {
        Ok(_) => panic!("options were accepted"),
        Err(e) => e,
    };
    (
        field(&err, "name").as_string().unwrap_or_default(),
        code(&err),
        field(&err, "option").as_string().unwrap_or_default(),
    )
}

#[wasm_bindgen_test]
fn a_bad_option_names_itself() {
    let cases: Vec<(JsValue, &str)> = vec![
        (obj(&[]), "refreshUrl"),
        (obj(&[("refreshUrl", 5.into())]), "refreshUrl"),
        (
            obj(&[("refreshUrl", "/r".into()), ("refreshStyle", "xml".into())]),
            "refreshStyle",
        ),
        (
            obj(&[
                ("refreshUrl", "/r".into()),
                ("refreshLeadSeconds", "60".into()),
            ]),
            "refreshLeadSeconds",
        ),
        (
            obj(&[("refreshUrl", "/r".into()), ("allowedOrigins", "x".into())]),
            "allowedOrigins",
        ),
        (
            obj(&[("refreshUrl", "/r".into()), ("header", "bad header".into())]),
            "header",
        ),
        (
            obj(&[
                ("refreshUrl", "/r".into()),
                ("logoutUrl", "http://[::1".into()),
            ]),
            "logoutUrl",
        ),
        (
            obj(&[("refreshUrl", "/r".into()), ("refreshUrll", "/r".into())]),
            "refreshUrll",
        ),
    ];
    for (options, option) in cases {
        let (name, code, named) = option_error(options);
        assert_eq!(name, "TokenKeeperError");
        assert_eq!(code, "invalid_option");
        assert_eq!(named, option);
    }
}

/// After a whole session, no storage the page can read holds a token.
#[wasm_bindgen_test]
async fn tokens_never_reach_page_storage() {
    setup(r#"{"access_ttl_ms":2000}"#).await;
    let window = web_sys::window().unwrap();
    let local = window.local_storage().unwrap().unwrap();
    let session = window.session_storage().unwrap().unwrap();
    local.clear().unwrap();
    session.clear().unwrap();
    let keeper = keeper(&[]);
    login(&keeper).await;
    let first = wasm_bindgen_futures::JsFuture::from(keeper.get_access_token())
        .await
        .unwrap()
        .as_string()
        .unwrap();
    sleep(2100).await;
    let resp = kfetch(&keeper, &url(server(), "/api/me"), JsValue::UNDEFINED).await;
    assert_eq!(resp.status(), 200);
    let second = wasm_bindgen_futures::JsFuture::from(keeper.get_access_token())
        .await
        .unwrap()
        .as_string()
        .unwrap();
    assert_ne!(first, second, "refreshed");
    settle(keeper.logout()).await.unwrap();

    assert_eq!(local.length().unwrap(), 0, "localStorage untouched");
    assert_eq!(session.length().unwrap(), 0, "sessionStorage untouched");
    let html: web_sys::HtmlDocument =
        wasm_bindgen::JsCast::unchecked_into(window.document().unwrap());
    let cookies = html.cookie().unwrap();
    assert!(!cookies.contains(&first) && !cookies.contains(&second));
    assert!(!keeper.is_authenticated());
    let err = settle(keeper.get_access_token()).await.unwrap_err();
    assert_eq!(code(&err), "not_authenticated");
}

/// Errors and event details never carry a token.
#[wasm_bindgen_test]
async fn events_and_errors_carry_no_token() {
    setup("").await;
    let keeper = keeper(&[]);
    let changes = record(&keeper, "change");
    let refreshes = record(&keeper, "refresh");
    login(&keeper).await;
    let token = wasm_bindgen_futures::JsFuture::from(keeper.get_access_token())
        .await
        .unwrap()
        .as_string()
        .unwrap();
    settle(keeper.refresh()).await.unwrap();
    reset(server()).await;
    let err = settle(keeper.refresh()).await.unwrap_err();
    let mut seen = vec![stringify(&err), message(&err)];
    seen.extend(
        changes
            .all()
            .iter()
            .chain(refreshes.all().iter())
            .map(stringify),
    );
    assert!(changes.len() >= 3);
    for text in seen {
        assert!(!text.contains(&token), "{text}");
        assert!(!text.contains("refresh_token"), "{text}");
    }
}

/// The unsubscribe function returned by on() stops the callbacks.
#[wasm_bindgen_test]
async fn on_returns_an_unsubscribe_function() {
    setup("").await;
    let keeper = keeper(&[]);
    let events = std::rc::Rc::new(std::cell::Cell::new(0));
    let sink = events.clone();
    let cb = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |_| {
        sink.set(sink.get() + 1)
    });
    let off = keeper.on("change".into(), cb.as_ref().clone()).unwrap();
    login(&keeper).await;
    assert_eq!(events.get(), 1);
    off.call0(&JsValue::NULL).unwrap();
    settle(keeper.refresh()).await.unwrap();
    assert_eq!(events.get(), 1, "unsubscribed");
    assert!(keeper
        .on("nope".into(), js_sys::Function::default().into())
        .is_err());
    drop(keeper);
    // A handle called after free() does nothing.
    off.call0(&JsValue::NULL).unwrap();
}
