//! Talking to the token endpoints: login, refresh (json / form / cookie
//! styles) and logout. Reads answers into the core's [`TokenAnswer`], which
//! decides what they mean; never logs or puts a token into an error.

use crate::config::{Fields, RefreshStyle, Settings};
use crate::error::Error;
use crate::interop;
use crate::token::{RawGrant, Timing};
use alloc::string::String;
use js_sys::Object;
use tokenkeeper_core::keeper::TokenAnswer;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestCache, RequestCredentials, RequestInit, Response};

fn browser(during: &'static str) -> impl Fn(JsValue) -> Error {
    move |e| Error::Browser {
        during,
        message: interop::js_message(&e),
    }
}

/// Builds a POST request with a body and the given content type.
fn post(
    url: &str,
    body: &str,
    content_type: &str,
    credentials: RequestCredentials,
    during: &'static str,
) -> Result<Request, Error> {
    let headers = Headers::new().map_err(browser(during))?;
    headers
        .set("Content-Type", content_type)
        .map_err(browser(during))?;
    headers
        .set("Accept", "application/json")
        .map_err(browser(during))?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(body));
    init.set_credentials(credentials);
    init.set_cache(RequestCache::NoStore);
    Request::new_with_str_and_init(url, &init).map_err(browser(during))
}

fn credentials(settings: &Settings) -> RequestCredentials {
    match settings.refresh_style {
        RefreshStyle::Cookie => RequestCredentials::Include,
        _ => RequestCredentials::SameOrigin,
    }
}

fn json_body(pairs: &[(&str, &str)]) -> String {
    let obj = Object::new();
    for (k, v) in pairs {
        interop::set(&obj, k, &JsValue::from_str(v));
    }
    js_sys::JSON::stringify(&obj)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_default()
}

/// Sends `request` and reads a token response from the answer.
async fn exchange(request: Request, fields: &Fields) -> TokenAnswer {
    let sent_at = interop::now();
    let response: Response = match JsFuture::from(interop::fetch(&request)).await {
        Ok(r) => r.unchecked_into(),
        Err(_) => return TokenAnswer::no_answer(),
    };
    let received_at = interop::now();
    let headers = response.headers();
    let server_date = headers
        .get("Date")
        .ok()
        .flatten()
        .and_then(|d| interop::parse_http_date(&d));
    let status = response.status();
    let body = match response.json() {
        Ok(p) => JsFuture::from(p).await.ok(),
        Err(_) => None,
    };
    if !response.ok() {
        let retry_after_ms = headers.get("Retry-After").ok().flatten().and_then(|v| {
            crate::session::retry_after_ms(&v, interop::parse_http_date(&v), received_at)
        });
        return TokenAnswer::Failure {
            status,
            oauth_error: body
                .as_ref()
                .and_then(|b| interop::string_field(b, "error")),
            retry_after_ms,
            malformed: None,
        };
    }
    let Some(body) = body.filter(|b| b.is_object()) else {
        return TokenAnswer::Failure {
            status,
            oauth_error: None,
            retry_after_ms: None,
            malformed: Some("the body is not a JSON object"),
        };
    };
    TokenAnswer::Grant {
        grant: read_grant(&body, fields),
        timing: Timing {
            sent_at,
            received_at,
            server_date,
        },
    }
}

/// Reads the token fields of a token response object.
pub(crate) fn read_grant(body: &JsValue, fields: &Fields) -> RawGrant {
    RawGrant {
        access_token: interop::string_field(body, &fields.access_token),
        refresh_token: interop::string_field(body, &fields.refresh_token),
        expires_in: interop::number_field(body, &fields.expires_in),
    }
}

/// `POST` the credentials as JSON to a login endpoint.
pub(crate) async fn login(settings: &Settings, url: &str, credentials_json: &str) -> TokenAnswer {
    let request = post(
        url,
        credentials_json,
        "application/json",
        // Cookie mode needs the Set-Cookie of the answer to be kept, even cross-origin.
        credentials(settings),
        "login",
    );
    match request {
        Ok(request) => exchange(request, &settings.fields).await,
        Err(_) => TokenAnswer::no_answer(),
    }
}

/// One refresh call in the configured style (the core sends a refresh token
/// whenever the style needs one).
pub(crate) async fn refresh(settings: &Settings, refresh_token: Option<&str>) -> TokenAnswer {
    let during = "refresh";
    let rt = refresh_token.unwrap_or_default();
    let request = match settings.refresh_style {
        RefreshStyle::Json => post(
            &settings.refresh_url,
            &json_body(&[(&settings.fields.refresh_token, rt)]),
            "application/json",
            RequestCredentials::SameOrigin,
            during,
        ),
        RefreshStyle::Form => {
            let Ok(params) = web_sys::UrlSearchParams::new() else {
                return TokenAnswer::no_answer();
            };
            params.append("grant_type", "refresh_token");
            params.append("refresh_token", rt);
            if let Some(id) = &settings.client_id {
                params.append("client_id", id);
            }
            if let Some(scope) = &settings.scope {
                params.append("scope", scope);
            }
            post(
                &settings.refresh_url,
                &String::from(params.to_string()),
                "application/x-www-form-urlencoded;charset=UTF-8",
                RequestCredentials::SameOrigin,
                during,
            )
        }
        RefreshStyle::Cookie => post(
            &settings.refresh_url,
            "{}",
            "application/json",
            RequestCredentials::Include,
            during,
        ),
    };
    match request {
        Ok(request) => exchange(request, &settings.fields).await,
        Err(_) => TokenAnswer::no_answer(),
    }
}

/// Tells the logout endpoint, best effort: the session is already gone locally.
pub(crate) async fn logout(
    settings: &Settings,
    url: &str,
    access: Option<&str>,
    refresh_token: Option<&str>,
) {
    let body = match refresh_token {
        Some(rt) => json_body(&[(&settings.fields.refresh_token, rt)]),
        None => String::from("{}"),
    };
    let Ok(request) = post(
        url,
        &body,
        "application/json",
        credentials(settings),
        "logout",
    ) else {
        return;
    };
    if let Some(access) = access {
        let _ = request
            .headers()
            .set(&settings.header, &settings.header_value(access));
    }
    let _ = JsFuture::from(interop::fetch(&request)).await;
}
