//! The one error type of tokenkeeper, with a stable `code()` per variant.
//!
//! Messages never contain a token: they name what was wrong (an option, an
//! HTTP status, an OAuth `error` code), never a credential.

use alloc::string::String;
use core::fmt;

/// Everything that can go wrong, as one enum with stable codes.
///
/// In JavaScript every variant becomes a real `Error` whose `name` is
/// `"TokenKeeperError"` and whose `code` is [`Error::code`], plus `status`
/// and the OAuth `error` where there is one.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// An option given to the constructor is unknown, of the wrong type, or invalid.
    InvalidOption {
        /// The option's name as written in JavaScript, e.g. `refreshUrl`.
        option: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument to a method is not what it accepts.
    InvalidArgument {
        /// The argument's name.
        argument: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The call needs a session and there is none (never logged in, or logged out).
    NotAuthenticated,
    /// The token endpoint answered, but not with a usable token response.
    /// The current session is left untouched.
    InvalidTokenResponse {
        /// What was wrong with the response.
        reason: &'static str,
    },
    /// Logging in was refused: by the login endpoint or the token endpoint
    /// (with its HTTP status), or by the identity provider, which sent the
    /// browser back with an `error` (status 0).
    LoginFailed {
        /// The HTTP status of the answer; 0 for an error the provider sent
        /// back to the redirect URI.
        status: u16,
        /// The OAuth-style `error` field of the answer, if any.
        oauth_error: Option<String>,
        /// The OAuth `error_description`, if any.
        description: Option<String>,
    },
    /// The OpenID provider's discovery document could not be read, or is
    /// not one this client can use.
    DiscoveryFailed {
        /// What was wrong.
        reason: String,
    },
    /// `handleRedirect()` found a callback that is not the answer to a
    /// login this tab started (no pending login, another `state`, another
    /// `iss`, too old).
    InvalidCallback {
        /// What was wrong.
        reason: &'static str,
    },
    /// The ID token of a login or a refresh failed a check.
    InvalidIdToken {
        /// The check that failed.
        check: &'static str,
    },
    /// The refresh endpoint refused the refresh token: the session has ended.
    SessionEnded {
        /// The HTTP status of the answer.
        status: u16,
        /// The OAuth-style `error` field of the answer, if any.
        oauth_error: Option<String>,
    },
    /// A refresh failed in a way that may pass (network, 5xx, 429); the
    /// session is kept and the refresh will be retried.
    RefreshUnavailable {
        /// The HTTP status, or 0 when no answer arrived (network error).
        status: u16,
        /// The OAuth-style `error` field of the answer, if any.
        oauth_error: Option<String>,
        /// When the next attempt is planned, in ms from now.
        retry_in_ms: f64,
    },
    /// Refreshing is paused for longer than a call waits: a backoff after
    /// failures, a server's `Retry-After` (told to this tab or another), or
    /// too many refreshes in a short time (a server answering with
    /// already-expired tokens would otherwise loop).
    RefreshThrottled {
        /// When refreshing is allowed again, in ms from now.
        retry_in_ms: f64,
    },
    /// The network request itself failed (no HTTP answer).
    Network {
        /// What was being done: `"login"`, `"refresh"`, `"logout"`.
        during: &'static str,
    },
    /// The instance was freed; it can do nothing more.
    Freed,
    /// `dpop: true` and the OpenID provider's discovery lists no DPoP
    /// algorithm this client signs with (ES256), or the browser cannot make
    /// a DPoP key (no WebCrypto: not a secure context).
    DpopUnsupported {
        /// Which of the two.
        reason: &'static str,
    },
    /// The browser refused an operation (a missing API, a refused header name…).
    Browser {
        /// What was being done.
        during: &'static str,
        /// The browser's message.
        message: String,
    },
}

impl Error {
    /// A stable, machine-readable code for this error, the same in Rust and JS.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidOption { .. } => "invalid_option",
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::NotAuthenticated => "not_authenticated",
            Error::InvalidTokenResponse { .. } => "invalid_token_response",
            Error::LoginFailed { .. } => "login_failed",
            Error::SessionEnded { .. } => "session_ended",
            Error::RefreshUnavailable { .. } => "refresh_unavailable",
            Error::RefreshThrottled { .. } => "refresh_throttled",
            Error::Network { .. } => "network_error",
            Error::Freed => "freed",
            Error::Browser { .. } => "browser_error",
            Error::DiscoveryFailed { .. } => "discovery_failed",
            Error::InvalidCallback { .. } => "invalid_callback",
            Error::InvalidIdToken { .. } => "invalid_id_token",
            Error::DpopUnsupported { .. } => "dpop_unsupported",
        }
    }

    /// The HTTP status involved, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::LoginFailed { status: 0, .. } => None,
            Error::LoginFailed { status, .. }
            | Error::SessionEnded { status, .. }
            | Error::RefreshUnavailable { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The OAuth `error` code the server answered with, if any.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Error::LoginFailed { oauth_error, .. }
            | Error::SessionEnded { oauth_error, .. }
            | Error::RefreshUnavailable { oauth_error, .. } => oauth_error.as_deref(),
            _ => None,
        }
    }

    /// The OAuth `error_description` the provider gave, if any.
    pub fn description(&self) -> Option<&str> {
        match self {
            Error::LoginFailed { description, .. } => description.as_deref(),
            _ => None,
        }
    }

    /// Shorthand for an [`Error::InvalidOption`].
    pub fn option(option: &str, reason: &str) -> Error {
        Error::InvalidOption {
            option: option.into(),
            reason: reason.into(),
        }
    }
}

impl Error {
    /// A human-readable message naming what was wrong (never a token).
    ///
    /// Built by hand rather than with `format!`: the formatting machinery is
    /// a large part of a small wasm module.
    pub fn message(&self) -> String {
        let mut m = String::new();
        match self {
            Error::InvalidOption { option, reason } => {
                push_all(&mut m, &["invalid option `", option, "`: ", reason]);
            }
            Error::InvalidArgument { argument, reason } => {
                push_all(&mut m, &["invalid argument `", argument, "`: ", reason]);
            }
            Error::NotAuthenticated => m.push_str("not authenticated: log in first"),
            Error::InvalidTokenResponse { reason } => {
                push_all(
                    &mut m,
                    &["the token endpoint's response is not usable: ", reason],
                );
            }
            Error::LoginFailed {
                status: 0,
                oauth_error,
                description,
            } => {
                m.push_str("the identity provider refused the login");
                push_oauth(&mut m, oauth_error);
                if let Some(d) = description {
                    push_all(&mut m, &[": ", d]);
                }
            }
            Error::LoginFailed {
                status,
                oauth_error,
                ..
            } => {
                m.push_str("login failed with HTTP ");
                push_number(&mut m, u64::from(*status));
                push_oauth(&mut m, oauth_error);
            }
            Error::DiscoveryFailed { reason } => {
                push_all(&mut m, &["OpenID discovery failed: ", reason]);
            }
            Error::InvalidCallback { reason } => {
                push_all(&mut m, &["not a callback of this tab's login: ", reason]);
            }
            Error::InvalidIdToken { check } => {
                push_all(&mut m, &["the ID token failed a check: ", check]);
            }
            Error::DpopUnsupported { reason } => {
                push_all(&mut m, &["DPoP is not available: ", reason]);
            }
            Error::SessionEnded {
                status,
                oauth_error,
            } => {
                m.push_str("the session has ended: refresh refused with HTTP ");
                push_number(&mut m, u64::from(*status));
                push_oauth(&mut m, oauth_error);
            }
            Error::RefreshUnavailable {
                status,
                oauth_error,
                retry_in_ms,
            } => {
                if *status == 0 {
                    m.push_str("refresh failed: no answer from the token endpoint");
                } else {
                    m.push_str("refresh failed with HTTP ");
                    push_number(&mut m, u64::from(*status));
                }
                push_oauth(&mut m, oauth_error);
                m.push_str("; retrying in ");
                push_number(&mut m, *retry_in_ms as u64);
                m.push_str(" ms");
            }
            Error::RefreshThrottled { retry_in_ms } => {
                m.push_str("refreshing is paused for ");
                push_number(&mut m, *retry_in_ms as u64);
                m.push_str(" ms (a backoff, a Retry-After, or too many refreshes in a short time)");
            }
            Error::Network { during } => push_all(&mut m, &["network error during ", during]),
            Error::Freed => m.push_str("this TokenKeeper was freed"),
            Error::Browser { during, message } => push_all(&mut m, &[during, ": ", message]),
        }
        m
    }
}

fn push_all(m: &mut String, parts: &[&str]) {
    for p in parts {
        m.push_str(p);
    }
}

fn push_oauth(m: &mut String, oauth_error: &Option<String>) {
    if let Some(e) = oauth_error {
        push_all(m, &[" (", e, ")"]);
    }
}

/// Appends `n` in decimal.
pub(crate) fn push_number(m: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    for d in digits.iter().skip(i) {
        m.push(char::from(*d));
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn codes_are_stable_and_messages_name_the_problem() {
        let e = Error::option("refreshUrl", "is required");
        assert_eq!(e.code(), "invalid_option");
        assert_eq!(e.to_string(), "invalid option `refreshUrl`: is required");
        let e = Error::SessionEnded {
            status: 400,
            oauth_error: Some("invalid_grant".into()),
        };
        assert_eq!(e.code(), "session_ended");
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.oauth_error(), Some("invalid_grant"));
        assert!(e.to_string().contains("invalid_grant"));
        let e = Error::RefreshUnavailable {
            status: 0,
            oauth_error: None,
            retry_in_ms: 1500.0,
        };
        assert!(e.to_string().contains("no answer"));
        assert!(e.to_string().contains("1500 ms"));
    }

    #[test]
    fn numbers() {
        for n in [0u64, 7, 10, 429, 65_535, u64::MAX] {
            let mut s = String::new();
            push_number(&mut s, n);
            assert_eq!(s, alloc::format!("{n}"));
        }
    }
}
