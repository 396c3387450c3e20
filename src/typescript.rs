//! The TypeScript side of the API: data shapes that wasm-bindgen cannot
//! derive (options, token responses, events and their details, the error),
//! emitted into the generated `.d.ts`, and the error type guard.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of `new TokenKeeper(options)`. Validated once: a bad one throws a TokenKeeperError naming it. */
export interface TokenKeeperOptions {
  /** The refresh endpoint (absolute, or relative to the page). Required. */
  refreshUrl: string;
  /** How the refresh token is sent: JSON body (default), RFC 6749 form, or an HttpOnly cookie. */
  refreshStyle?: "json" | "form" | "cookie";
  /** `client_id` sent with form-style refreshes. */
  clientId?: string;
  /** `scope` sent with form-style refreshes. */
  scope?: string;
  /** The request header that carries the token. Default `"Authorization"`. */
  header?: string;
  /** The scheme before the token; `null` sends the raw token. Default `"Bearer"`. */
  scheme?: string | null;
  /** Origins that receive the token; every other URL is fetched untouched. Default: the page's origin. */
  allowedOrigins?: string[];
  /** Refresh this long before expiry (bounded to a third of the token's lifetime). Default 60. */
  refreshLeadSeconds?: number;
  /** A response header that may carry a renewed access token. */
  renewHeader?: string | null;
  /** A logout/revoke endpoint told on logout (best effort). */
  logoutUrl?: string | null;
  /** Field names of the token response. */
  fields?: { accessToken?: string; refreshToken?: string; expiresIn?: string };
  /** The cross-tab channel name. Default `"tokenkeeper"`. */
  channel?: string;
}

/** A token response, as `setTokens` takes it (field names per the `fields` option). */
export interface TokenResponse {
  access_token?: string;
  refresh_token?: string;
  expires_in?: number;
  [field: string]: unknown;
}

/** The events of a TokenKeeper. */
export type TokenKeeperEvent = "refresh" | "refresh-error" | "expired" | "logout" | "change";

/** `refresh`: new tokens are in place. */
export interface RefreshDetail { source: "timer" | "read" | "on-demand" | "renew-header"; expiresAt?: number; generation: number }
/** `refresh-error`: a refresh failed; `retrying` says whether the session is kept. */
export interface RefreshErrorDetail { code: TokenKeeperErrorCode; message: string; retrying: boolean; fatal: boolean; status?: number; error?: string; retryInMs?: number }
/** `expired`: a request was answered 401 and no new token could fix it. */
export interface ExpiredDetail { reason: "no-session" | "refresh-failed" | "rejected-after-refresh"; url: string }
/** `logout`: the session ended. */
export interface LogoutDetail { reason: "local" | "refresh-failed" | "remote" }
/** `change`: the session state changed. */
export interface ChangeDetail { isAuthenticated: boolean; expiresAt?: number; generation: number }

/** The stable codes of TokenKeeperError. */
export type TokenKeeperErrorCode =
  | "invalid_option" | "invalid_argument" | "not_authenticated" | "invalid_token_response"
  | "login_failed" | "session_ended" | "refresh_unavailable" | "refresh_throttled"
  | "network_error" | "freed" | "browser_error";

/** Every error tokenkeeper throws or rejects with. */
export interface TokenKeeperError extends Error {
  name: "TokenKeeperError";
  code: TokenKeeperErrorCode;
  /** The HTTP status involved, if any. */
  status?: number;
  /** The OAuth `error` the server answered with, if any. */
  error?: string;
  /** When a retry is planned, in ms. */
  retryInMs?: number;
  /** The option at fault (`invalid_option`). */
  option?: string;
}
"#;

/// Whether `value` is an error thrown by tokenkeeper (a type guard in TypeScript).
#[wasm_bindgen(js_name = isTokenKeeperError, unchecked_return_type = "value is TokenKeeperError")]
pub fn is_token_keeper_error(value: &JsValue) -> bool {
    value.is_instance_of::<js_sys::Error>()
        && js_sys::Reflect::get(value, &JsValue::from_str("name"))
            .ok()
            .and_then(|n| n.as_string())
            .as_deref()
            == Some("TokenKeeperError")
}
