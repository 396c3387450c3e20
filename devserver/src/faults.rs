//! Injected failures for the token endpoints and the API (`/admin/faults`).

use std::collections::VecDeque;
use std::time::Duration;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::errors::ApiError;
use crate::serve::drop_connection;
use crate::state::AppState;

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `500 {"error":"server_error"}`; the refresh token is untouched.
    Status500,
    /// `429` with `Retry-After`; the refresh token is untouched.
    Status429,
    /// Sleep, then answer normally.
    Delay,
    /// Close the connection without answering; the token is untouched.
    Drop,
    /// Rotate the token, then close the connection without answering.
    LostResponse,
}

impl FaultKind {
    /// Whether the fault closes the connection without a response.
    pub fn kills_connection(self) -> bool {
        matches!(self, FaultKind::Drop | FaultKind::LostResponse)
    }
}

/// Which calls a fault hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// The token endpoints (`/login`, `/token/refresh`, `/oauth/token`).
    #[default]
    Token,
    /// The protected API (`/api/*`), after the token was checked.
    Api,
}

/// A fault as posted to `/admin/faults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// What goes wrong.
    pub kind: FaultKind,
    /// Which calls it hits (default: the token endpoints').
    pub on: Option<FaultTarget>,
    /// For how many calls (default 1).
    pub count: Option<u32>,
    /// `Retry-After` seconds for `status429` (default 1).
    pub retry_after: Option<u64>,
    /// Sleep for `delay` (default 1000 ms).
    pub delay_ms: Option<u64>,
}

/// A queued fault.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// Which calls it hits.
    pub on: FaultTarget,
    /// Calls it still applies to.
    pub count: u32,
    /// `Retry-After` seconds (429).
    pub retry_after: u64,
    /// Sleep length (delay).
    pub delay_ms: u64,
}

impl TryFrom<FaultRequest> for Fault {
    type Error = String;

    fn try_from(r: FaultRequest) -> Result<Self, String> {
        let count = r.count.unwrap_or(1);
        if count == 0 {
            return Err("count must be at least 1".into());
        }
        Ok(Fault {
            kind: r.kind,
            on: r.on.unwrap_or_default(),
            count,
            retry_after: r.retry_after.unwrap_or(1),
            delay_ms: r.delay_ms.unwrap_or(1_000),
        })
    }
}

/// Faults waiting for token-endpoint calls, applied in order.
#[derive(Debug, Default)]
pub struct FaultQueue {
    pending: VecDeque<Fault>,
}

impl FaultQueue {
    /// Queues a fault behind the ones already pending.
    pub fn push(&mut self, fault: Fault) {
        self.pending.push_back(fault);
    }

    /// Consumes one application of the first pending fault for calls of `on`.
    pub fn take_next(&mut self, on: FaultTarget) -> Option<Fault> {
        let at = self.pending.iter().position(|f| f.on == on)?;
        let fault = self.pending.get_mut(at)?;
        fault.count -= 1;
        let mut taken = fault.clone();
        taken.count = 1;
        if fault.count == 0 {
            self.pending.remove(at);
        }
        Some(taken)
    }

    /// Whether a pending fault will close a connection unanswered.
    pub fn kills_connections(&self) -> bool {
        self.pending.iter().any(|f| f.kind.kills_connection())
    }

    /// The pending faults.
    pub fn list(&self) -> Vec<Fault> {
        self.pending.iter().cloned().collect()
    }

    /// Removes every pending fault.
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

/// Applies the part of a fault that happens before the request is handled:
/// returns the response to send instead, or `None` to go on (after sleeping
/// for `delay`).
pub async fn before_handling(fault: Option<&Fault>) -> Option<Response> {
    let fault = fault?;
    match fault.kind {
        FaultKind::Status500 => Some(
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
                .describe("Injected fault: internal server error")
                .into_response(),
        ),
        FaultKind::Status429 => {
            let mut resp = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable")
                .describe("Injected fault: too many requests")
                .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(fault.retry_after));
            Some(resp)
        }
        FaultKind::Delay => {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
            None
        }
        FaultKind::Drop => Some(drop_connection()),
        FaultKind::LostResponse => None,
    }
}

/// Applies the part of a fault that happens after the request was handled.
pub fn after_handling(fault: Option<&Fault>, response: Response) -> Response {
    match fault {
        Some(f) if f.kind == FaultKind::LostResponse => drop_connection(),
        _ => response,
    }
}

/// Middleware: while a `drop` or `lost_response` fault is pending, every
/// response carries `Connection: close`, so no connection is reused.
///
/// Browsers silently resend a request that fails on a *reused* keep-alive
/// connection before any response byte arrived, which would hide the fault
/// from the code under test. On a fresh connection they report the failure.
/// (Queueing such a fault also closes the idle connections; see
/// [`AppState::recycle_connections`].)
pub async fn fresh_connections(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if state.faults().kills_connections() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
