//! Known faults, planted into the keeper on purpose behind a test-only
//! switch (the `planted-faults` feature), so a test can show that the
//! native simulator finds each one. Without the feature nothing here is
//! public, and every check is a constant `false` the compiler removes.

/// A fault to plant into a keeper ([`crate::keeper::Keeper::plant`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "planted-faults"), allow(dead_code))]
pub enum Fault {
    /// Refresh without the tabs' lock, as if alone.
    NoLock,
    /// After waiting for the lock (or the lockless pause), refresh without
    /// checking whether another tab rotated the tokens meanwhile.
    NoRecheckAfterLock,
    /// Adopt another tab's session whatever its generation.
    AdoptOlder,
    /// Refresh on every 401, even one for a token already replaced.
    RefreshOnStale401,
    /// Back off by the exponential step alone, ignoring `Retry-After`.
    IgnoreRetryAfter,
    /// Back off without a cap: the exponential step and `Retry-After` grow
    /// without bound.
    UnboundedBackoff,
}

/// The fault planted, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Planted(#[cfg(feature = "planted-faults")] pub(crate) Option<Fault>);

impl Planted {
    /// Whether `fault` is planted.
    #[cfg(feature = "planted-faults")]
    pub(crate) fn is(self, fault: Fault) -> bool {
        self.0 == Some(fault)
    }

    /// Whether `fault` is planted: never, in a build without the switch.
    #[cfg(not(feature = "planted-faults"))]
    #[inline(always)]
    pub(crate) fn is(self, _fault: Fault) -> bool {
        false
    }
}
