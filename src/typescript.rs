//! The TypeScript side of the API: data shapes that wasm-bindgen cannot
//! derive (options, token responses, events and their details, the error),
//! emitted into the generated `.d.ts`, and the error type guard.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of `new TokenKeeper(options)`: a token endpoint of the app's own (`refreshUrl`) or an OpenID provider (`issuer`). Validated once: an unknown option, a wrong type or an invalid URL throws a TokenKeeperError with code `invalid_option` naming it. */
export type TokenKeeperOptions = EndpointOptions | ProviderOptions;

/** What every keeper takes. */
export interface CommonOptions {
  /** The request header that carries the token (one a page may set: not `Cookie`, `Host`, `Sec-…`, …). Default `"Authorization"`. */
  header?: string;
  /** The scheme before the token; `null` sends the raw token. Default `"Bearer"`. */
  scheme?: string | null;
  /** Origins that receive the token, each in full (`"https://api.example.com"`: no wildcard, no path); every other URL is fetched untouched. Default: the page's origin. */
  allowedOrigins?: string[];
  /** Refresh this long before expiry, in seconds (bounded to a third of the token's lifetime). Default 60. */
  refreshLeadSeconds?: number;
  /** A response header that may carry a renewed access token. Default: none. */
  renewHeader?: string | null;
  /** The cross-tab channel name. Default `"tokenkeeper"`. */
  channel?: string;
}

/** A keeper of the app's own token endpoints. */
export interface EndpointOptions extends CommonOptions {
  /** The refresh endpoint (absolute, or relative to the page's location — never to a `<base>`). Required. */
  refreshUrl: string;
  /** How the refresh token is sent: `"json"` body (default), RFC 6749 `"form"`, or an HttpOnly `"cookie"` the page never sees. */
  refreshStyle?: "json" | "form" | "cookie";
  /** `client_id` sent with form-style refreshes. */
  clientId?: string;
  /** `scope` sent with form-style refreshes. */
  scope?: string;
  /** A logout/revoke endpoint told on logout (best effort). Default: none. */
  logoutUrl?: string | null;
  /** Field names of the token response. Default `access_token`, `refresh_token`, `expires_in`. */
  fields?: { accessToken?: string; refreshToken?: string; expiresIn?: string };
  /** DPoP (RFC 9449): bind the tokens to a key pair made in this tab's memory (non-extractable, shared with the other tabs over the channel, never stored); every call and refresh carries a proof, sent as `Authorization: DPoP <token>` (so no `header` or `scheme` with it). The server must answer `token_type: "DPoP"`. Default `false`. */
  dpop?: boolean;
}

/** A keeper of an OpenID provider's sessions: its endpoints come from `<issuer>/.well-known/openid-configuration`, the login is `loginRedirect()` (Authorization Code + PKCE), refreshes are the RFC 6749 form grant. */
export interface ProviderOptions extends CommonOptions {
  /** The issuer, exactly as its discovery document names it (`https://idp.example.com`; http only on loopback). */
  issuer: string;
  /** The OAuth client: a public client (no secret) registered with the provider. */
  clientId: string;
  /** The route of this app the provider sends the browser back to (same origin), where the app calls `handleRedirect()`. Registered with the provider. */
  redirectUri: string;
  /** The login's scope. Default `"openid"`; add `offline_access` for refresh tokens. */
  scope?: string;
  /** Where the provider sends the browser after `logoutRedirect()`, unless the call says. */
  postLogoutRedirectUri?: string;
  /** More parameters of every authorization request, e.g. `{ audience: "https://api.example.com" }` for Auth0. */
  authorizationParams?: Record<string, string>;
  /** Always the RFC 6749 form grant with a provider. */
  refreshStyle?: "form";
  /** DPoP (RFC 9449), as with `EndpointOptions.dpop`; `"auto"`: on when the discovery document lists ES256 in `dpop_signing_alg_values_supported`, else Bearer. `true` with a provider that lists no ES256 fails `ready()` with `dpop_unsupported`. Default `false`. */
  dpop?: boolean | "auto";
}

/** `loginRedirect(options)`. */
export interface LoginRedirectOptions {
  /** Where `handleRedirect()` puts the app afterwards: a path of this origin (or an absolute URL of it). Default: the current page. */
  returnTo?: string;
  /** OpenID `prompt`: `"none"` signs in silently when the provider still has a session (else the callback fails with `login_required`), `"login"` asks again. */
  prompt?: string;
  /** OpenID `login_hint`. */
  loginHint?: string;
  /** More parameters of this authorization request (over the `authorizationParams` option). */
  authorizationParams?: Record<string, string>;
}

/** `logoutRedirect(options)`. */
export interface LogoutRedirectOptions {
  /** Where the provider sends the browser afterwards (registered with it). Default: the `postLogoutRedirectUri` option. */
  postLogoutRedirectUri?: string;
}

/** The claims of the session's ID token (`keeper.idTokenClaims`). */
export interface IdTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  nonce?: string;
  [claim: string]: unknown;
}

/** A token response, as `setTokens` takes it (field names per the `fields` option). */
export interface TokenResponse {
  access_token?: string;
  refresh_token?: string;
  expires_in?: number;
  [field: string]: unknown;
}

/** `refresh`: new tokens are in place. `expiresAt` is in ms since the epoch. */
export interface RefreshDetail {
  /** What caused it: the timer ahead of expiry, a read inside the lead window, a caller that needed a token, a renewed token in a response header, a new tab joining (cookie mode), or another tab's refresh. */
  source: "timer" | "read" | "on-demand" | "renew-header" | "join" | "tab";
  expiresAt?: number;
  generation: number;
}
/** `refresh-error`: a refresh failed; `retrying` says whether the session is kept and retried. */
export interface RefreshErrorDetail {
  code: TokenKeeperErrorCode;
  message: string;
  retrying: boolean;
  fatal: boolean;
  /** The HTTP status of the refresh response, if there was one. */
  status?: number;
  /** The OAuth `error` the server answered with, if any. */
  error?: string;
  /** When the next attempt is planned, in ms. */
  retryInMs?: number;
}
/** `expired`: a request was answered 401 and no new token could fix it. */
export interface ExpiredDetail {
  reason: "no-session" | "refresh-failed" | "rejected-after-refresh";
  /** The URL of the request that was refused. */
  url: string;
}
/** `logout`: the session ended, here (`"local"`), because the refresh token was refused (`"refresh-failed"`), in another tab (`"remote"`), or because its access token expired with no refresh token to renew it (`"expired"`, every tab). */
export interface LogoutDetail {
  reason: "local" | "refresh-failed" | "remote" | "expired";
}
/** `change`: the session state changed (logged in, new tokens, logged out). */
export interface ChangeDetail {
  isAuthenticated: boolean;
  expiresAt?: number;
  generation: number;
}
/** `sync`: a message from another tab was acted on. */
export interface SyncDetail {
  /** `"adopted"` its tokens, ended the session on its `"logout"`, waits out its `"backoff"`, `"advanced"` the generation, or `"answered"` a new tab. */
  type: "adopted" | "logout" | "backoff" | "advanced" | "answered";
  /** The id of the tab that sent it. */
  from: string;
  /** This keeper's generation afterwards. */
  generation: number;
}

/** Every event of a TokenKeeper and the detail its listeners receive. */
export interface TokenKeeperEventMap {
  "refresh": RefreshDetail;
  "refresh-error": RefreshErrorDetail;
  "expired": ExpiredDetail;
  "logout": LogoutDetail;
  "change": ChangeDetail;
  "sync": SyncDetail;
}

/** The event names of a TokenKeeper. */
export type TokenKeeperEvent = keyof TokenKeeperEventMap;

/** The stable codes of TokenKeeperError. */
export type TokenKeeperErrorCode =
  | "invalid_option" | "invalid_argument" | "not_authenticated" | "invalid_token_response"
  | "login_failed" | "session_ended" | "refresh_unavailable" | "refresh_throttled"
  | "network_error" | "freed" | "browser_error"
  | "discovery_failed" | "invalid_callback" | "invalid_id_token" | "dpop_unsupported";

/** Every error tokenkeeper throws or rejects with: a real `Error`, told apart by `isTokenKeeperError`. */
export interface TokenKeeperError extends Error {
  name: "TokenKeeperError";
  code: TokenKeeperErrorCode;
  /** The HTTP status involved, if any. */
  status?: number;
  /** The OAuth `error` the server answered with, if any. */
  error?: string;
  /** The OAuth `error_description` the identity provider sent back, if any (`login_failed`). */
  errorDescription?: string;
  /** When a retry is planned, in ms (`refresh_unavailable`, `refresh_throttled`). */
  retryInMs?: number;
  /** The option at fault (`invalid_option`). */
  option?: string;
}

export interface TokenKeeper {
  /**
   * Subscribes `callback` to `event` and returns the function that
   * unsubscribes it. The detail's type follows the event name; details never
   * contain tokens.
   */
  on<K extends TokenKeeperEvent>(event: K, callback: (detail: TokenKeeperEventMap[K]) => void): () => void;
  /**
   * Same contract as `window.fetch`: the access token is attached for allowed
   * origins, and a 401 is answered by one refresh and one replay. A bound
   * function, so it can be handed to an HTTP client as its `fetch`
   * (`const f = keeper.fetch` works). An auth failure is a response (the
   * server's 401), never a rejection: it rejects as `fetch` does, on a
   * network failure — or when no token could be had for now
   * (`refresh_unavailable`, `refresh_throttled`), the session kept.
   */
  readonly fetch: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
  /**
   * Logs in at the identity provider (`issuer`): navigates the page to its
   * authorization endpoint (Authorization Code with PKCE). `returnTo` is
   * where `handleRedirect()` puts the app afterwards (default: the current
   * page); `prompt: "none"` signs in silently when the provider still has a
   * session (else the callback fails with `login_required`).
   */
  loginRedirect(options?: LoginRedirectOptions): Promise<void>;
  /**
   * Logs out in every tab, revokes the refresh token at the provider, then
   * navigates to its `end_session_endpoint` with `id_token_hint`,
   * `client_id` and `post_logout_redirect_uri`.
   */
  logoutRedirect(options?: LogoutRedirectOptions): Promise<void>;
  /**
   * Frees the keeper: its timer, listeners and channel go, its tokens are
   * cleared, and waiting calls end. Later calls reject (or throw) a
   * TokenKeeperError with code `freed`; the getters read as logged out;
   * `free()` again does nothing.
   */
  free(): void;
}
"#;

/// Whether `value` is an error thrown by tokenkeeper (a type guard in TypeScript).
#[wasm_bindgen(js_name = isTokenKeeperError, unchecked_return_type = "value is TokenKeeperError")]
pub fn is_token_keeper_error(
    #[wasm_bindgen(unchecked_param_type = "unknown")] value: &JsValue,
) -> bool {
    value.is_instance_of::<js_sys::Error>()
        && js_sys::Reflect::get(value, &JsValue::from_str("name"))
            .ok()
            .and_then(|n| n.as_string())
            .as_deref()
            == Some("TokenKeeperError")
}
