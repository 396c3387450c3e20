//! Counters (`GET /stats`) and the recent-request log (`GET /admin/requests`).

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

/// Most distinct `by_endpoint` keys kept; later ones count under `"OTHER"`.
const MAX_ENDPOINT_KEYS: usize = 1000;
/// Requests kept in the log.
pub const REQUEST_LOG_CAPACITY: usize = 1000;

/// Everything `/stats` reports.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    /// Successful logins.
    pub logins: u64,
    /// Logins refused (bad credentials).
    pub login_failures: u64,
    /// Successful rotations on either token endpoint.
    pub refreshes: u64,
    /// Every call to either token endpoint.
    pub refresh_requests: u64,
    /// Token-endpoint calls answered with an error status (including
    /// injected 500/429 faults; dropped connections are not counted).
    pub refresh_failures: u64,
    /// Rotated refresh tokens presented again, revoking their family.
    pub reuse_detections: u64,
    /// Rotated refresh tokens presented again within the grace window.
    pub grace_reuses: u64,
    /// Protected requests that were let through.
    pub api_ok: u64,
    /// Protected requests refused with 401.
    pub api_401: u64,
    /// Access tokens renewed through the renew header.
    pub renewals: u64,
    /// Calls to `/logout`.
    pub logouts: u64,
    /// Injected faults that took effect.
    pub faults_applied: u64,
    /// DPoP proofs that passed every proof check (DPoP mode).
    pub dpop_proofs: u64,
    /// Requests refused for a DPoP reason: a bad proof, a nonce challenge,
    /// a missing proof or another key for a bound token, a bound token
    /// presented as Bearer, an unbound one with the DPoP scheme.
    pub dpop_refused: u64,
    /// `use_dpop_nonce` answers (also counted in `dpop_refused`).
    pub dpop_nonce_challenges: u64,
    /// Requests per `"METHOD /path"`.
    pub by_endpoint: BTreeMap<String, u64>,
}

impl Stats {
    /// Counts one request to `method path`.
    pub fn hit(&mut self, method: &str, path: &str) {
        let key = format!("{method} {path}");
        if let Some(n) = self.by_endpoint.get_mut(&key) {
            *n += 1;
        } else if self.by_endpoint.len() < MAX_ENDPOINT_KEYS {
            self.by_endpoint.insert(key, 1);
        } else {
            *self.by_endpoint.entry("OTHER".to_string()).or_insert(0) += 1;
        }
    }
}

/// One entry of the request log: what arrived, never the secrets themselves.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: String,
    /// Path, without the query string.
    pub path: String,
    /// The `Origin` header, if any.
    pub origin: Option<String>,
    /// Whether an `Authorization` header was present.
    pub authorization: bool,
    /// Whether an `x-auth-token` header was present.
    pub x_auth_token: bool,
    /// Whether a `Cookie` header was present.
    pub cookie: bool,
    /// When it arrived (ms since the epoch).
    pub time_ms: u64,
}

/// Ring buffer of the most recent requests.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: VecDeque<LoggedRequest>,
}

impl RequestLog {
    /// Appends, evicting the oldest entry when full.
    pub fn push(&mut self, entry: LoggedRequest) {
        if self.entries.len() >= REQUEST_LOG_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Oldest first.
    pub fn snapshot(&self) -> Vec<LoggedRequest> {
        self.entries.iter().cloned().collect()
    }

    /// Empties the log.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
