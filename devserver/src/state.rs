//! The state shared by every handler.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use tokio::sync::watch;

use crate::config::RuntimeConfig;
use crate::dpop::DpopVerifier;
use crate::faults::{Fault, FaultQueue, FaultTarget};
use crate::sessions::SessionStore;
use crate::stats::{RequestLog, Stats};
use crate::tokens::TokenIssuer;

/// Locks a mutex, carrying on if a panicking thread poisoned it (every
/// critical section leaves the data consistent).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Shared server state. Locks are never held across an `.await`.
#[derive(Debug)]
pub struct AppState {
    config: RwLock<RuntimeConfig>,
    /// Access-token minting and verification.
    pub issuer: TokenIssuer,
    /// Refresh tokens and their families.
    pub sessions: Mutex<SessionStore>,
    /// DPoP nonce and proof replay cache.
    pub dpop: DpopVerifier,
    stats: Mutex<Stats>,
    requests: Mutex<RequestLog>,
    faults: Mutex<FaultQueue>,
    /// Bumped to ask every open connection to close once idle.
    recycle: watch::Sender<u64>,
    /// Whether the per-request stderr log is off.
    pub quiet: bool,
}

impl AppState {
    /// Fresh state with a new signing secret.
    pub fn new(runtime: RuntimeConfig, quiet: bool) -> Result<Self, getrandom::Error> {
        Ok(AppState {
            config: RwLock::new(runtime),
            issuer: TokenIssuer::new()?,
            sessions: Mutex::new(SessionStore::default()),
            dpop: DpopVerifier::new()?,
            stats: Mutex::new(Stats::default()),
            requests: Mutex::new(RequestLog::default()),
            faults: Mutex::new(FaultQueue::default()),
            recycle: watch::Sender::new(0),
            quiet,
        })
    }

    /// A snapshot of the current runtime configuration.
    pub fn config(&self) -> RuntimeConfig {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes the runtime configuration under the write lock.
    pub fn update_config<R>(&self, f: impl FnOnce(&mut RuntimeConfig) -> R) -> R {
        f(&mut self.config.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// Updates the counters.
    pub fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut lock(&self.stats));
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        lock(&self.stats).clone()
    }

    /// The request log.
    pub fn requests(&self) -> MutexGuard<'_, RequestLog> {
        lock(&self.requests)
    }

    /// The fault queue.
    pub fn faults(&self) -> MutexGuard<'_, FaultQueue> {
        lock(&self.faults)
    }

    /// Queues a fault. One that kills connections also closes every idle
    /// connection (and the others after their current response), so the
    /// request it hits comes on a fresh one.
    pub fn add_fault(&self, fault: Fault) -> Vec<Fault> {
        let kills = fault.kind.kills_connection();
        let pending = {
            let mut faults = self.faults();
            faults.push(fault);
            faults.list()
        };
        if kills {
            self.recycle_connections();
        }
        pending
    }

    /// Asks every open connection to close as soon as it is idle.
    pub fn recycle_connections(&self) {
        self.recycle.send_modify(|generation| *generation += 1);
    }

    /// Watches [`AppState::recycle_connections`] requests.
    pub fn recycle_requests(&self) -> watch::Receiver<u64> {
        self.recycle.subscribe()
    }

    /// Takes the fault for the current call (to a token endpoint or the
    /// API, `on`), if one is queued.
    pub fn take_fault(&self, on: FaultTarget) -> Option<Fault> {
        let fault = self.faults().take_next(on);
        if fault.is_some() {
            self.count(|s| s.faults_applied += 1);
        }
        fault
    }

    /// `/admin/reset`: clears counters, request log, faults and every
    /// session (refresh tokens, families, known access tokens), and rotates
    /// the DPoP nonce. The configuration, the signing secret and the DPoP
    /// replay cache stay.
    pub fn reset(&self) -> Result<(), getrandom::Error> {
        self.dpop.rotate_nonce()?;
        *lock(&self.stats) = Stats::default();
        self.requests().clear();
        self.faults().clear();
        lock(&self.sessions).clear();
        self.issuer.clear();
        Ok(())
    }
}
