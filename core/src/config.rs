//! The constructor's options, validated once into [`Settings`] with documented
//! defaults. An unknown option, a wrong type or an invalid value is an
//! [`Error::InvalidOption`] naming the option.
//!
//! The shell turns the JS options object into an [`OptValue`] and supplies URL
//! resolution (the browser's `URL`), so this stays pure and testable.

use crate::error::Error;
pub use crate::value::OptValue;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// How the refresh token is sent to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshStyle {
    /// `POST` JSON `{"refresh_token": "…"}` (the field name follows `fields.refreshToken`).
    Json,
    /// RFC 6749 §6: `POST` form `grant_type=refresh_token&refresh_token=…` (+ `client_id`, `scope`).
    Form,
    /// The refresh token lives in an HttpOnly cookie the page never sees:
    /// `POST` with credentials and no token in the body.
    Cookie,
}

/// Names of the fields of a token response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// The access token's field. Default `access_token`.
    pub access_token: String,
    /// The refresh token's field. Default `refresh_token`.
    pub refresh_token: String,
    /// The lifetime's field (seconds). Default `expires_in`.
    pub expires_in: String,
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            access_token: "access_token".into(),
            refresh_token: "refresh_token".into(),
            expires_in: "expires_in".into(),
        }
    }
}

/// Validated settings of one `TokenKeeper`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Absolute URL of the refresh endpoint (`refreshUrl`, required).
    pub refresh_url: String,
    /// How the refresh token is sent (`refreshStyle`, default `"json"`).
    pub refresh_style: RefreshStyle,
    /// `client_id` sent with form-style refreshes (`clientId`).
    pub client_id: Option<String>,
    /// `scope` sent with form-style refreshes (`scope`).
    pub scope: Option<String>,
    /// The request header that carries the access token (`header`, default `Authorization`).
    pub header: String,
    /// The scheme before the token (`scheme`, default `Bearer`; `null` → the raw token).
    pub scheme: Option<String>,
    /// Origins that receive the token (`allowedOrigins`, default the page's origin).
    pub allowed_origins: Vec<String>,
    /// Refresh this long before expiry, in ms (`refreshLeadSeconds`, default 60 s).
    pub refresh_lead_ms: f64,
    /// A response header that may carry a renewed access token (`renewHeader`).
    pub renew_header: Option<String>,
    /// Absolute URL of the logout/revoke endpoint (`logoutUrl`).
    pub logout_url: Option<String>,
    /// Names of the token response's fields (`fields`).
    pub fields: Fields,
    /// The name of the cross-tab channel (`channel`, default `"tokenkeeper"`).
    pub channel: String,
    /// An OpenID provider (`issuer` and what goes with it), when the
    /// session comes from one: the endpoints then come from its discovery
    /// document ([`crate::oidc`]), and `refresh_url` is its token endpoint
    /// once that is read (empty before).
    pub oidc: Option<OidcSettings>,
    /// Whether the tokens are bound to a DPoP key (`dpop`, RFC 9449).
    pub dpop: Dpop,
}

/// The `dpop` option: whether the session's tokens are bound to a key pair
/// of the tab (RFC 9449), every request carrying a proof signed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dpop {
    /// Bearer tokens (`false`, the default).
    Off,
    /// DPoP, required (`true`): an identity provider that does not list
    /// it fails `ready()` with `dpop_unsupported`.
    On,
    /// DPoP when the provider's discovery lists it, else Bearer (`"auto"`,
    /// with `issuer` only).
    Auto,
}

/// The options of a keeper of an OpenID provider's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// The issuer (`issuer`), exactly as its discovery document names it.
    pub issuer: String,
    /// Where the provider sends the browser back (`redirectUri`): an
    /// absolute URL of the page's own origin.
    pub redirect_uri: String,
    /// The page's origin (the redirect URI's): the app's `returnTo` paths
    /// are of it.
    pub origin: String,
    /// Where the provider sends the browser after `logoutRedirect()`
    /// (`postLogoutRedirectUri`), unless the call says.
    pub post_logout_redirect_uri: Option<String>,
    /// More parameters of every authorization request
    /// (`authorizationParams`, e.g. Auth0's `audience`).
    pub authorization_params: Vec<(String, String)>,
}

/// Default lead time before expiry.
pub const DEFAULT_LEAD_SECONDS: f64 = 60.0;

/// Resolves URLs the way the browser does; supplied by the shell.
pub trait UrlResolver {
    /// The absolute form of `url` against the page's base, or `None` if invalid.
    fn resolve(&self, url: &str) -> Option<String>;
    /// The origin (`scheme://host[:port]`) of an absolute URL, or `None`.
    fn origin(&self, url: &str) -> Option<String>;
    /// The page's own origin.
    fn page_origin(&self) -> String;
}

const KNOWN: &[&str] = &[
    "refreshUrl",
    "refreshStyle",
    "clientId",
    "scope",
    "header",
    "scheme",
    "allowedOrigins",
    "refreshLeadSeconds",
    "renewHeader",
    "logoutUrl",
    "fields",
    "channel",
    "issuer",
    "redirectUri",
    "postLogoutRedirectUri",
    "authorizationParams",
    "dpop",
];

/// The reason given for an unknown option: it lists the known ones (kept in
/// step with [`KNOWN`] by a test; a literal, since joining costs wasm bytes).
const UNKNOWN_OPTION: &str = "unknown option; known options are refreshUrl, refreshStyle, \
clientId, scope, header, scheme, allowedOrigins, refreshLeadSeconds, renewHeader, logoutUrl, \
fields, channel, issuer, redirectUri, postLogoutRedirectUri, authorizationParams, dpop";

impl Settings {
    /// Validates the options object (its own keys and values) into settings.
    pub fn from_options(options: &OptValue, urls: &dyn UrlResolver) -> Result<Settings, Error> {
        let entries: &[(String, OptValue)] = match options {
            OptValue::Map(entries) => entries,
            other => {
                return Err(Error::option(
                    "options",
                    &expected("an object with at least refreshUrl (or issuer)", other),
                ))
            }
        };
        for (key, _) in entries {
            if !KNOWN.contains(&key.as_str()) {
                return Err(Error::InvalidOption {
                    option: key.clone(),
                    reason: UNKNOWN_OPTION.into(),
                });
            }
        }
        let get = |name: &str| OptValue::field(entries, name);

        let oidc = oidc_options(&get, urls)?;
        let refresh_url = match get("refreshUrl") {
            OptValue::Undefined if oidc.is_some() => String::new(),
            OptValue::Undefined => {
                return Err(Error::option(
                    "refreshUrl",
                    "is required (or issuer, for an OpenID provider)",
                ))
            }
            v => url_option("refreshUrl", v, urls)?,
        };
        let refresh_style = match get("refreshStyle") {
            OptValue::Undefined if oidc.is_some() => RefreshStyle::Form,
            OptValue::Undefined => RefreshStyle::Json,
            OptValue::Str(s) if s == "json" => RefreshStyle::Json,
            OptValue::Str(s) if s == "form" => RefreshStyle::Form,
            OptValue::Str(s) if s == "cookie" => RefreshStyle::Cookie,
            v => {
                return Err(Error::option(
                    "refreshStyle",
                    &expected(r#"one of "json", "form", "cookie""#, v),
                ))
            }
        };
        let client_id = opt_string("clientId", get("clientId"))?;
        let scope = opt_string("scope", get("scope"))?;
        if oidc.is_some() {
            if client_id.as_deref().is_none_or(str::is_empty) {
                return Err(Error::option("clientId", "is required with issuer"));
            }
            if scope
                .as_deref()
                .is_some_and(|s| !s.split(' ').any(|w| w == "openid"))
            {
                return Err(Error::option(
                    "scope",
                    "must include openid with issuer (e.g. \"openid profile offline_access\")",
                ));
            }
        }
        let header = match get("header") {
            OptValue::Undefined => "Authorization".to_string(),
            v => {
                let name = header_name("header", v)?;
                if let Some(why) = forbidden_request_header(&name) {
                    return Err(Error::option("header", why));
                }
                name
            }
        };
        let scheme = match get("scheme") {
            OptValue::Undefined => Some("Bearer".to_string()),
            OptValue::Null => None,
            OptValue::Str(s) if s.is_empty() => None,
            OptValue::Str(s) if s.bytes().all(is_token_char) => Some(s.clone()),
            OptValue::Str(_) => {
                return Err(Error::option(
                    "scheme",
                    "must be a single word such as \"Bearer\" (or null for the raw token)",
                ))
            }
            v => return Err(Error::option("scheme", &expected("a string or null", v))),
        };
        let allowed_origins = match get("allowedOrigins") {
            OptValue::Undefined => alloc::vec![urls.page_origin()],
            OptValue::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let OptValue::Str(s) = item else {
                        return Err(Error::option(
                            "allowedOrigins",
                            &expected("an array of origin strings", item),
                        ));
                    };
                    let origin = allowed_origin(s, urls).ok_or_else(|| {
                        let mut r = String::from(
                            "each must be an http(s) origin such as \"https://api.example.com\" \
                             (scheme, host and port, nothing else), got ",
                        );
                        r.push_str(&quoted(s));
                        Error::option("allowedOrigins", &r)
                    })?;
                    if !out.contains(&origin) {
                        out.push(origin);
                    }
                }
                out
            }
            v => {
                return Err(Error::option(
                    "allowedOrigins",
                    &expected("an array of origin strings", v),
                ))
            }
        };
        let refresh_lead_ms = match get("refreshLeadSeconds") {
            OptValue::Undefined => DEFAULT_LEAD_SECONDS * 1000.0,
            OptValue::Num(n) if n.is_finite() && *n >= 0.0 && *n <= 86_400.0 => n * 1000.0,
            OptValue::Num(_) => {
                return Err(Error::option(
                    "refreshLeadSeconds",
                    "must be a number of seconds from 0 to 86400",
                ))
            }
            v => {
                return Err(Error::option(
                    "refreshLeadSeconds",
                    &expected("a number of seconds", v),
                ))
            }
        };
        let renew_header = match get("renewHeader") {
            OptValue::Undefined | OptValue::Null => None,
            v => {
                let name = header_name("renewHeader", v)?;
                if name.eq_ignore_ascii_case("set-cookie")
                    || name.eq_ignore_ascii_case("set-cookie2")
                {
                    return Err(Error::option(
                        "renewHeader",
                        "names a response header that a page can never read",
                    ));
                }
                Some(name)
            }
        };
        let logout_url = match get("logoutUrl") {
            OptValue::Undefined | OptValue::Null => None,
            v => Some(url_option("logoutUrl", v, urls)?),
        };
        let fields = fields_option(get("fields"))?;
        let channel = match get("channel") {
            OptValue::Undefined => "tokenkeeper".to_string(),
            OptValue::Str(s) if !s.is_empty() && s.len() <= 200 => s.clone(),
            v => return Err(Error::option("channel", &expected("a non-empty string", v))),
        };
        let dpop = match get("dpop") {
            OptValue::Undefined | OptValue::Null | OptValue::Bool(false) => Dpop::Off,
            OptValue::Bool(true) => Dpop::On,
            OptValue::Str(s) if s == "auto" && oidc.is_some() => Dpop::Auto,
            OptValue::Str(s) if s == "auto" => {
                return Err(Error::option(
                    "dpop",
                    "\"auto\" needs issuer (its discovery says whether the provider supports \
                     DPoP); a refreshUrl server is told with true",
                ))
            }
            v => {
                return Err(Error::option(
                    "dpop",
                    &expected(r#"true, false or "auto""#, v),
                ))
            }
        };
        if dpop != Dpop::Off {
            for name in ["header", "scheme"] {
                if !matches!(get(name), OptValue::Undefined) {
                    return Err(Error::option(
                        name,
                        "cannot be set with dpop: a DPoP-bound token is sent as \
                         `Authorization: DPoP <token>`",
                    ));
                }
            }
        }
        Ok(Settings {
            dpop,
            refresh_url,
            refresh_style,
            client_id,
            scope,
            header,
            scheme,
            allowed_origins,
            refresh_lead_ms,
            renew_header,
            logout_url,
            fields,
            channel,
            oidc,
        })
    }

    /// Whether a request to the absolute, browser-serialized `url` (a
    /// `Request`'s `url`) may carry the token: its origin is allowed. The
    /// browser's serialization puts the origin first, exactly as
    /// [`Settings::allowed_origins`] holds it, so a prefix check (followed by
    /// a path, query or fragment) decides without parsing the URL again; a
    /// URL with credentials in it never matches, which errs on the safe side.
    pub fn is_allowed_url(&self, url: &str) -> bool {
        self.allowed_origins.iter().any(|o| {
            url.strip_prefix(o.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
        })
    }

    /// Whether a request to `origin` may carry the token.
    pub fn is_allowed_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }

    /// The header value for an access token: `"<scheme> <token>"` or the raw token.
    pub fn header_value(&self, access: &str) -> String {
        match &self.scheme {
            Some(scheme) => {
                let mut v = String::with_capacity(scheme.len() + 1 + access.len());
                v.push_str(scheme);
                v.push(' ');
                v.push_str(access);
                v
            }
            None => access.to_string(),
        }
    }
}

fn expected(what: &str, got: &OptValue) -> String {
    let mut s = String::from("expected ");
    s.push_str(what);
    s.push_str(", got ");
    s.push_str(got.type_name());
    s
}

fn opt_string(name: &str, v: &OptValue) -> Result<Option<String>, Error> {
    match v {
        OptValue::Undefined | OptValue::Null => Ok(None),
        OptValue::Str(s) => Ok(Some(s.clone())),
        v => Err(Error::option(name, &expected("a string", v))),
    }
}

/// `s` as JSON quotes it, for an error message.
fn quoted(s: &str) -> String {
    let mut q = String::new();
    crate::wire::string(&mut q, s);
    q
}

/// The origin an `allowedOrigins` entry names: an absolute http(s) URL with
/// nothing but scheme, host and port (a trailing `/` allowed). A relative
/// entry (`"*"`, `""`, `"api.example.com"`) or one with a path, credentials,
/// query or fragment names no origin.
fn allowed_origin(s: &str, urls: &dyn UrlResolver) -> Option<String> {
    let origin = urls.origin(s)?;
    let abs = urls.resolve(s)?;
    let bare = abs == origin || abs.strip_prefix(origin.as_str()) == Some("/");
    (is_http(&origin) && bare).then_some(origin)
}

fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// Why `s` is refused as a URL when it resolves to no http(s) URL.
const NOT_HTTP_URL: &str = "is not a valid http(s) URL";

/// `s` resolved against the page (`urls`), if that is an http(s) URL; else
/// why not. An empty `s` is refused: it would be the page's own URL.
pub(crate) fn http_url(s: &str, urls: &dyn UrlResolver) -> Result<String, &'static str> {
    if s.trim().is_empty() {
        return Err("is empty (it would be the page's own URL)");
    }
    urls.resolve(s)
        .filter(|abs| is_http(abs))
        .ok_or(NOT_HTTP_URL)
}

/// Why a browser never sends `name` as a script's request header, if it
/// does not (the Fetch standard's forbidden request-header names).
fn forbidden_request_header(name: &str) -> Option<&'static str> {
    const FORBIDDEN: [&str; 21] = [
        "accept-charset",
        "accept-encoding",
        "access-control-request-headers",
        "access-control-request-method",
        "connection",
        "content-length",
        "cookie",
        "cookie2",
        "date",
        "dnt",
        "expect",
        "host",
        "keep-alive",
        "origin",
        "referer",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
    ];
    const OVERRIDES: [&str; 3] = [
        "x-http-method",
        "x-http-method-override",
        "x-method-override",
    ];
    let lower = name.to_ascii_lowercase();
    if FORBIDDEN.contains(&lower.as_str())
        || lower.starts_with("proxy-")
        || lower.starts_with("sec-")
    {
        Some("is a header browsers do not let a page set (a forbidden request header)")
    } else if OVERRIDES.contains(&lower.as_str()) {
        Some("overrides the request's method: it cannot carry a token")
    } else {
        None
    }
}

fn url_option(name: &str, v: &OptValue, urls: &dyn UrlResolver) -> Result<String, Error> {
    let OptValue::Str(s) = v else {
        return Err(Error::option(name, &expected("a URL string", v)));
    };
    http_url(s, urls).map_err(|why| match why {
        NOT_HTTP_URL => {
            let mut r = String::from("not a valid http(s) URL: ");
            r.push_str(s);
            Error::option(name, &r)
        }
        why => Error::option(name, why),
    })
}

/// The options that only an OpenID provider's keeper takes (`issuer`,
/// `redirectUri`, `postLogoutRedirectUri`, `authorizationParams`), and the
/// ones it does not (its endpoints come from discovery).
fn oidc_options<'a>(
    get: &dyn Fn(&str) -> &'a OptValue,
    urls: &dyn UrlResolver,
) -> Result<Option<OidcSettings>, Error> {
    let issuer = match get("issuer") {
        OptValue::Undefined => {
            for name in [
                "redirectUri",
                "postLogoutRedirectUri",
                "authorizationParams",
            ] {
                if !matches!(get(name), OptValue::Undefined) {
                    return Err(Error::option(name, "is only used with issuer"));
                }
            }
            return Ok(None);
        }
        OptValue::Str(s) if crate::oidc::is_secure_url(s) && !s.contains('?') => s.clone(),
        OptValue::Str(s) => {
            let mut r =
                String::from("must be an https URL with no query (http only on loopback), got ");
            r.push_str(&quoted(s));
            return Err(Error::option("issuer", &r));
        }
        v => return Err(Error::option("issuer", &expected("a URL string", v))),
    };
    for name in ["refreshUrl", "logoutUrl", "fields"] {
        if !matches!(get(name), OptValue::Undefined) {
            return Err(Error::option(
                name,
                "is not used with issuer (the endpoints come from its discovery document)",
            ));
        }
    }
    if !matches!(get("refreshStyle"), OptValue::Undefined)
        && !matches!(get("refreshStyle"), OptValue::Str(s) if s == "form")
    {
        return Err(Error::option(
            "refreshStyle",
            "is \"form\" with issuer (the RFC 6749 refresh grant)",
        ));
    }
    let redirect_uri = match get("redirectUri") {
        OptValue::Undefined => return Err(Error::option("redirectUri", "is required with issuer")),
        v => url_option("redirectUri", v, urls)?,
    };
    let origin = urls.page_origin();
    if urls.origin(&redirect_uri).as_deref() != Some(origin.as_str()) {
        return Err(Error::option(
            "redirectUri",
            "must be a URL of the page's own origin (a route of the app)",
        ));
    }
    let post_logout_redirect_uri = match get("postLogoutRedirectUri") {
        OptValue::Undefined | OptValue::Null => None,
        v => Some(url_option("postLogoutRedirectUri", v, urls)?),
    };
    let authorization_params = params_option("authorizationParams", get("authorizationParams"))?;
    Ok(Some(OidcSettings {
        issuer,
        redirect_uri,
        origin,
        post_logout_redirect_uri,
        authorization_params,
    }))
}

/// More parameters of an authorization request: an object of strings,
/// none of them one tokenkeeper writes ([`crate::oidc::RESERVED_PARAMS`]).
pub(crate) fn params_option(name: &str, v: &OptValue) -> Result<Vec<(String, String)>, Error> {
    let entries = match v {
        OptValue::Undefined | OptValue::Null => return Ok(Vec::new()),
        OptValue::Map(entries) => entries,
        v => return Err(Error::option(name, &expected("an object of strings", v))),
    };
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        if crate::oidc::RESERVED_PARAMS.contains(&key.as_str()) {
            let mut r = String::from("may not set ");
            r.push_str(&quoted(key));
            r.push_str(" (tokenkeeper writes it)");
            return Err(Error::option(name, &r));
        }
        if key.is_empty() {
            return Err(Error::option(name, "has a parameter with an empty name"));
        }
        match value {
            OptValue::Str(s) => out.push((key.clone(), s.clone())),
            OptValue::Undefined => {}
            _ => {
                let mut r = String::from("each value must be a string, got ");
                r.push_str(value.type_name());
                r.push_str(" for ");
                r.push_str(&quoted(key));
                return Err(Error::option(name, &r));
            }
        }
    }
    Ok(out)
}

/// RFC 9110 token characters, the ones a header name may use.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn header_name(name: &str, v: &OptValue) -> Result<String, Error> {
    match v {
        OptValue::Str(s) if !s.is_empty() && s.bytes().all(is_token_char) => Ok(s.clone()),
        OptValue::Str(_) => Err(Error::option(name, "is not a valid HTTP header name")),
        v => Err(Error::option(name, &expected("a header name string", v))),
    }
}

fn fields_option(v: &OptValue) -> Result<Fields, Error> {
    let mut fields = Fields::default();
    let entries = match v {
        OptValue::Undefined => return Ok(fields),
        OptValue::Map(entries) => entries,
        v => return Err(Error::option("fields", &expected("an object", v))),
    };
    for (key, value) in entries {
        let slot = match key.as_str() {
            "accessToken" => &mut fields.access_token,
            "refreshToken" => &mut fields.refresh_token,
            "expiresIn" => &mut fields.expires_in,
            _ => {
                let mut option = String::from("fields.");
                option.push_str(key);
                return Err(Error::InvalidOption {
                    option,
                    reason: "unknown field; known fields are accessToken, refreshToken, expiresIn"
                        .into(),
                });
            }
        };
        match value {
            OptValue::Undefined => {}
            OptValue::Str(s) if !s.is_empty() => *slot = s.clone(),
            v => {
                let mut option = String::from("fields.");
                option.push_str(key);
                return Err(Error::InvalidOption {
                    option,
                    reason: expected("a non-empty string", v),
                });
            }
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    use crate::testing::TestUrls as Urls;

    fn opts(entries: Vec<(&str, OptValue)>) -> OptValue {
        OptValue::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
    fn s(v: &str) -> OptValue {
        OptValue::Str(v.into())
    }

    fn err_option(o: OptValue) -> String {
        match Settings::from_options(&o, &Urls) {
            Err(Error::InvalidOption { option, .. }) => option,
            other => panic!("expected InvalidOption, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let st = Settings::from_options(&opts(vec![("refreshUrl", s("/token/refresh"))]), &Urls)
            .unwrap();
        assert_eq!(st.refresh_url, "https://app.example/token/refresh");
        assert_eq!(st.refresh_style, RefreshStyle::Json);
        assert_eq!(st.header, "Authorization");
        assert_eq!(st.scheme.as_deref(), Some("Bearer"));
        assert_eq!(st.allowed_origins, vec!["https://app.example".to_string()]);
        assert_eq!(st.refresh_lead_ms, 60_000.0);
        assert_eq!(st.fields, Fields::default());
        assert_eq!(st.channel, "tokenkeeper");
        assert_eq!(st.header_value("t"), "Bearer t");
    }

    #[test]
    fn every_option_is_read() {
        let st = Settings::from_options(
            &opts(vec![
                ("refreshUrl", s("https://auth.example/oauth/token")),
                ("refreshStyle", s("form")),
                ("clientId", s("spa")),
                ("scope", s("api")),
                ("header", s("x-auth-token")),
                ("scheme", OptValue::Null),
                (
                    "allowedOrigins",
                    OptValue::List(vec![s("https://api.example/"), s("https://app.example")]),
                ),
                ("refreshLeadSeconds", OptValue::Num(5.0)),
                ("renewHeader", s("x-renewed-token")),
                ("logoutUrl", s("/logout")),
                (
                    "fields",
                    opts(vec![("accessToken", s("token")), ("expiresIn", s("ttl"))]),
                ),
                ("channel", s("app")),
            ]),
            &Urls,
        )
        .unwrap();
        assert_eq!(st.refresh_style, RefreshStyle::Form);
        assert_eq!(st.client_id.as_deref(), Some("spa"));
        assert_eq!(st.header_value("t"), "t");
        assert_eq!(
            st.allowed_origins,
            vec![
                "https://api.example".to_string(),
                "https://app.example".into()
            ]
        );
        assert!(st.is_allowed_origin("https://api.example"));
        assert!(!st.is_allowed_origin("https://evil.example"));
        assert_eq!(st.refresh_lead_ms, 5000.0);
        assert_eq!(st.renew_header.as_deref(), Some("x-renewed-token"));
        assert_eq!(st.logout_url.as_deref(), Some("https://app.example/logout"));
        assert_eq!(st.fields.access_token, "token");
        assert_eq!(st.fields.refresh_token, "refresh_token");
        assert_eq!(st.fields.expires_in, "ttl");
        assert_eq!(st.channel, "app");
    }

    #[test]
    fn allowed_urls() {
        let st = Settings::from_options(
            &opts(vec![
                ("refreshUrl", s("/r")),
                (
                    "allowedOrigins",
                    OptValue::List(vec![s("https://api.example"), s("http://127.0.0.1:8080")]),
                ),
            ]),
            &Urls,
        )
        .unwrap();
        for ok in [
            "https://api.example/",
            "https://api.example/v1/me?x=1",
            "https://api.example?x",
            "https://api.example#f",
            "http://127.0.0.1:8080/api",
        ] {
            assert!(st.is_allowed_url(ok), "{ok}");
        }
        for no in [
            "https://api.example.evil.example/",
            "https://api.example:8443/",
            "http://api.example/",
            "https://user@api.example/",
            "http://127.0.0.1:80801/",
            "http://127.0.0.1/",
            "https://evil.example/https://api.example/",
            "",
        ] {
            assert!(!st.is_allowed_url(no), "{no}");
        }
    }

    #[test]
    fn errors_name_the_option() {
        let base = || vec![("refreshUrl", s("/r"))];
        assert_eq!(err_option(opts(vec![])), "refreshUrl");
        assert_eq!(err_option(OptValue::Null), "options");
        for (key, value) in [
            ("refreshUrl", OptValue::Num(1.0)),
            ("refreshUrl", s("not a url")),
            ("refreshUrl", s("javascript:alert(1)")),
            ("refreshStyle", s("xml")),
            ("clientId", OptValue::Bool(true)),
            ("header", s("bad header")),
            ("header", OptValue::Null),
            ("scheme", s("Two words")),
            ("scheme", OptValue::Num(1.0)),
            ("allowedOrigins", s("https://a.example")),
            ("allowedOrigins", OptValue::List(vec![OptValue::Num(1.0)])),
            ("allowedOrigins", OptValue::List(vec![s("javascript:x")])),
            ("refreshLeadSeconds", s("60")),
            ("refreshLeadSeconds", OptValue::Num(-1.0)),
            ("refreshLeadSeconds", OptValue::Num(f64::NAN)),
            ("renewHeader", s("")),
            ("logoutUrl", OptValue::Bool(false)),
            ("fields", s("x")),
            ("channel", s("")),
        ] {
            let mut o = base();
            o.push((key, value.clone()));
            assert_eq!(err_option(opts(o)), key, "{key} = {value:?}");
        }
        let mut o = base();
        o.push(("refreshURL", s("/x")));
        assert_eq!(err_option(opts(o)), "refreshURL");
        let mut o = base();
        o.push(("fields", opts(vec![("access", s("x"))])));
        assert_eq!(err_option(opts(o)), "fields.access");
        let mut o = base();
        o.push(("fields", opts(vec![("accessToken", OptValue::Num(1.0))])));
        assert_eq!(err_option(opts(o)), "fields.accessToken");
    }

    /// Resolves as a browser's `URL` does against the page
    /// `https://app.example/page`: anything without a scheme is relative.
    struct PageUrls;
    impl UrlResolver for PageUrls {
        fn resolve(&self, url: &str) -> Option<String> {
            let url = url.trim();
            if url.contains("://") {
                let mut abs = String::from(url);
                if abs.matches('/').count() == 2 {
                    abs.push('/');
                }
                Some(abs)
            } else if url.starts_with('/') {
                Some(alloc::format!("https://app.example{url}"))
            } else {
                Some(alloc::format!("https://app.example/{url}"))
            }
        }
        fn origin(&self, url: &str) -> Option<String> {
            Urls.origin(url)
        }
        fn page_origin(&self) -> String {
            Urls.page_origin()
        }
    }

    #[test]
    fn what_a_browser_would_resolve_silently_is_refused() {
        let refuse = |key: &str, value: OptValue| {
            let o = opts(vec![("refreshUrl", s("/r")), (key, value.clone())]);
            match Settings::from_options(&o, &PageUrls) {
                Err(Error::InvalidOption { option, reason }) => {
                    assert_eq!(option, key, "{value:?}: {reason}")
                }
                other => panic!("{key} = {value:?}: {other:?}"),
            }
        };
        // Relative, they are the page itself, or a path on its origin.
        refuse("refreshUrl", s(""));
        refuse("refreshUrl", s("   "));
        refuse("logoutUrl", s(""));
        for origin in [
            "*",
            "",
            "api.example.com",
            "/api",
            "https://api.example/v1",
            "https://user:pw@api.example",
        ] {
            refuse("allowedOrigins", OptValue::List(vec![s(origin)]));
        }
        // Headers a browser drops from a request (or never shows of a response).
        for header in [
            "Cookie",
            "content-length",
            "Host",
            "Origin",
            "Referer",
            "Sec-Token",
            "Proxy-Authorization",
            "X-HTTP-Method-Override",
        ] {
            refuse("header", s(header));
        }
        refuse("renewHeader", s("Set-Cookie"));
        // What is right stays right.
        let o = opts(vec![
            ("refreshUrl", s("/r")),
            (
                "allowedOrigins",
                OptValue::List(vec![s("https://api.example"), s("https://b.example/")]),
            ),
            ("header", s("x-auth-token")),
        ]);
        let st = Settings::from_options(&o, &PageUrls).unwrap();
        assert_eq!(
            st.allowed_origins,
            ["https://api.example", "https://b.example"]
        );
    }

    #[test]
    fn the_unknown_option_message_lists_every_option() {
        let mut want = String::from("unknown option; known options are ");
        want.push_str(&KNOWN.join(", "));
        assert_eq!(UNKNOWN_OPTION, want);
    }

    #[test]
    fn the_spelled_out_defaults_and_other_schemes() {
        let with = |pairs: Vec<(&str, OptValue)>| {
            let mut all = vec![("refreshUrl", s("/r"))];
            all.extend(pairs);
            Settings::from_options(&opts(all), &Urls)
        };
        let st = with(vec![("refreshStyle", s("json"))]).unwrap();
        assert_eq!(st.refresh_style, RefreshStyle::Json);
        let st = with(vec![("refreshStyle", s("cookie"))]).unwrap();
        assert_eq!(st.refresh_style, RefreshStyle::Cookie);
        let st = with(vec![("scheme", s(""))]).unwrap();
        assert_eq!(st.scheme, None, "an empty scheme: the raw token");
        assert_eq!(st.header_value("t"), "t");
        let st = with(vec![("scheme", s("Token"))]).unwrap();
        assert_eq!(st.header_value("t"), "Token t");
        let e = with(vec![("scheme", s("Two words"))]).unwrap_err();
        assert!(matches!(e, Error::InvalidOption { ref option, .. } if option == "scheme"));
        // A field renamed to nothing is refused, naming the field.
        let e = with(vec![("fields", opts(vec![("accessToken", s(""))]))]).unwrap_err();
        assert_eq!(
            alloc::string::ToString::to_string(&e),
            "invalid option `fields.accessToken`: expected a non-empty string, got an empty string"
        );
    }

    #[test]
    fn a_refused_origin_is_quoted_in_the_message() {
        let e = Settings::from_options(
            &opts(vec![
                ("refreshUrl", s("/r")),
                ("allowedOrigins", OptValue::List(vec![s("api.example/\"x")])),
            ]),
            &Urls,
        )
        .unwrap_err();
        let text = alloc::string::ToString::to_string(&e);
        assert!(text.ends_with(r#"got "api.example/\"x""#), "{text}");
    }

    #[test]
    fn messages_say_what_was_expected() {
        let e = Settings::from_options(
            &opts(vec![
                ("refreshUrl", s("/r")),
                ("refreshLeadSeconds", s("60")),
            ]),
            &Urls,
        )
        .unwrap_err();
        assert_eq!(
            alloc::string::ToString::to_string(&e),
            "invalid option `refreshLeadSeconds`: expected a number of seconds, got a string"
        );
    }

    fn oidc(extra: Vec<(&str, OptValue)>) -> Result<Settings, Error> {
        let mut entries = vec![
            ("issuer", OptValue::Str("https://idp.example".into())),
            ("clientId", OptValue::Str("spa".into())),
            ("redirectUri", OptValue::Str("/callback".into())),
        ];
        for (k, v) in extra {
            entries.retain(|(e, _)| *e != k);
            entries.push((k, v));
        }
        Settings::from_options(&opts(entries), &Urls)
    }

    fn refused(r: Result<Settings, Error>) -> (String, String) {
        match r {
            Err(Error::InvalidOption { option, reason }) => (option, reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_issuer_brings_its_own_endpoints() {
        let s = oidc(vec![]).unwrap();
        let o = s.oidc.clone().unwrap();
        assert_eq!(o.issuer, "https://idp.example");
        assert_eq!(o.redirect_uri, "https://app.example/callback");
        assert_eq!(o.origin, "https://app.example");
        assert_eq!(o.post_logout_redirect_uri, None);
        assert_eq!(
            (s.refresh_url.as_str(), s.refresh_style),
            ("", RefreshStyle::Form)
        );
        assert_eq!(s.scope, None);
        let s = oidc(vec![
            ("postLogoutRedirectUri", OptValue::Str("/bye".into())),
            ("refreshStyle", OptValue::Str("form".into())),
            (
                "authorizationParams",
                OptValue::Map(vec![
                    ("audience".into(), OptValue::Str("https://api".into())),
                    ("skipped".into(), OptValue::Undefined),
                ]),
            ),
        ])
        .unwrap();
        let o = s.oidc.unwrap();
        assert_eq!(
            o.post_logout_redirect_uri.as_deref(),
            Some("https://app.example/bye")
        );
        assert_eq!(
            o.authorization_params,
            vec![("audience".into(), "https://api".into())]
        );
        // Without issuer, none of its options.
        for name in [
            "redirectUri",
            "postLogoutRedirectUri",
            "authorizationParams",
        ] {
            let r = Settings::from_options(
                &opts(vec![
                    ("refreshUrl", OptValue::Str("/t".into())),
                    (name, OptValue::Str("/x".into())),
                ]),
                &Urls,
            );
            assert_eq!(refused(r), (name.into(), "is only used with issuer".into()));
        }
    }

    #[test]
    fn an_issuers_options_are_checked() {
        let str = |s: &str| OptValue::Str(s.into());
        let cases = [
            (vec![("issuer", str("http://idp.example"))], "issuer"),
            (vec![("issuer", str("https://idp.example?x=1"))], "issuer"),
            (vec![("issuer", OptValue::Num(1.0))], "issuer"),
            (vec![("clientId", OptValue::Undefined)], "clientId"),
            (vec![("clientId", str(""))], "clientId"),
            (vec![("redirectUri", OptValue::Undefined)], "redirectUri"),
            (
                vec![("redirectUri", str("https://other.example/cb"))],
                "redirectUri",
            ),
            (vec![("refreshUrl", str("/t"))], "refreshUrl"),
            (vec![("logoutUrl", str("/l"))], "logoutUrl"),
            (vec![("fields", OptValue::Map(vec![]))], "fields"),
            (vec![("refreshStyle", str("json"))], "refreshStyle"),
            (vec![("scope", str("profile email"))], "scope"),
            (
                vec![("authorizationParams", str("audience=x"))],
                "authorizationParams",
            ),
            (
                vec![(
                    "authorizationParams",
                    OptValue::Map(vec![("state".into(), str("x"))]),
                )],
                "authorizationParams",
            ),
            (
                vec![(
                    "authorizationParams",
                    OptValue::Map(vec![("n".into(), OptValue::Num(1.0))]),
                )],
                "authorizationParams",
            ),
        ];
        for (extra, option) in cases {
            let what = alloc::format!("{extra:?}");
            assert_eq!(refused(oidc(extra)).0, option, "{what}");
        }
        assert!(oidc(vec![("scope", str("openid profile offline_access"))]).is_ok());
        assert!(oidc(vec![("issuer", str("http://127.0.0.1:9000"))]).is_ok());
        let (_, reason) = refused(oidc(vec![(
            "authorizationParams",
            OptValue::Map(vec![("".into(), str("x"))]),
        )]));
        assert_eq!(reason, "has a parameter with an empty name");
        let (_, reason) = refused(oidc(vec![(
            "authorizationParams",
            OptValue::Map(vec![("nonce".into(), str("x"))]),
        )]));
        assert_eq!(reason, "may not set \"nonce\" (tokenkeeper writes it)");
    }
}
