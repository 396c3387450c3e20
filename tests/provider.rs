//! An OpenID provider's keeper in both browsers, as far as it goes without
//! a provider (the whole flow runs in tests/e2e/oidc.test.mjs against npm
//! oidc-provider, in Chromium): its options, its discovery failing with a
//! typed error, a page that is no callback, and the calls a keeper without
//! issuer refuses.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use tokenkeeper::TokenKeeper;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// `location[key]` (web-sys's `Location` is not among the features used).
fn location(key: &str) -> String {
    field(&field(&js_sys::global(), "location"), key)
        .as_string()
        .unwrap()
}

fn origin() -> String {
    location("origin")
}

/// A keeper of the dev server as an "issuer": it publishes no discovery document.
fn provider_keeper(channel: &str) -> TokenKeeper {
    let options = obj(&[
        ("issuer", server().into()),
        ("clientId", "spa".into()),
        ("redirectUri", format!("{}/callback/", origin()).into()),
        ("channel", channel.into()),
    ]);
    TokenKeeper::new(options).unwrap_or_else(|e| panic!("{}", message(&e)))
}

#[wasm_bindgen_test]
async fn a_provider_without_a_discovery_document_fails_ready_with_its_reason() {
    let keeper = provider_keeper("provider-discovery");
    let err = settle(keeper.ready()).await.unwrap_err();
    assert_eq!(code(&err), "discovery_failed", "{}", message(&err));
    let text = message(&err);
    assert!(
        text.contains("HTTP 404") || text.contains("no answer"),
        "the reason is said: {text}"
    );
    // Asked again by the next call that needs it, and failing again.
    let err = settle(keeper.ready()).await.unwrap_err();
    assert_eq!(code(&err), "discovery_failed");
    // This page is no callback: nothing to do, and the URL is left alone.
    let before = location("href");
    let done = settle(keeper.handle_redirect()).await.unwrap();
    assert!(
        done.is_null(),
        "handleRedirect() on a page that is no callback is null"
    );
    assert_eq!(location("href"), before);
    assert!(keeper.id_token_claims().is_undefined());
    assert!(!keeper.is_authenticated());
    keeper.close();
}

#[wasm_bindgen_test]
async fn a_login_needs_the_discovery_and_a_keeper_without_issuer_has_none() {
    let keeper = provider_keeper("provider-login");
    let err = settle(keeper.login_redirect(None)).await.unwrap_err();
    assert_eq!(code(&err), "discovery_failed", "{}", message(&err));
    keeper.close();

    let plain = keeper_without_issuer();
    for p in [
        plain.handle_redirect(),
        plain.login_redirect(None),
        plain.logout_redirect(None),
    ] {
        let err = settle(p).await.unwrap_err();
        assert_eq!(code(&err), "invalid_option");
        assert_eq!(field(&err, "option").as_string().as_deref(), Some("issuer"));
    }
    plain.close();
}

fn keeper_without_issuer() -> TokenKeeper {
    keeper(&[("channel", "provider-plain".into())])
}

#[wasm_bindgen_test]
fn a_providers_options_are_checked() {
    let base = |extra: &[(&str, JsValue)]| {
        let mut pairs: Vec<(&str, JsValue)> = vec![
            ("issuer", "https://idp.example".into()),
            ("clientId", "spa".into()),
            ("redirectUri", "/callback/".into()),
        ];
        for (k, v) in extra {
            pairs.retain(|(p, _)| p != k);
            pairs.push((k, v.clone()));
        }
        TokenKeeper::new(obj(&pairs))
    };
    assert!(base(&[]).is_ok());
    for (extra, option) in [
        (vec![("refreshUrl", JsValue::from("/token"))], "refreshUrl"),
        (
            vec![("issuer", JsValue::from("http://idp.example"))],
            "issuer",
        ),
        (
            vec![("redirectUri", JsValue::from("https://elsewhere.example/cb"))],
            "redirectUri",
        ),
        (vec![("clientId", JsValue::UNDEFINED)], "clientId"),
        (vec![("scope", JsValue::from("profile"))], "scope"),
    ] {
        let err = match base(&extra) {
            Ok(_) => panic!("{option}: accepted"),
            Err(e) => e,
        };
        assert_eq!(code(&err), "invalid_option");
        assert_eq!(field(&err, "option").as_string().as_deref(), Some(option));
    }
}
