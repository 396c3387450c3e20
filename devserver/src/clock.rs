//! Wall-clock time in the units the server works with.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Whole seconds for a millisecond timestamp or duration, rounded up.
pub fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1_000)
}
