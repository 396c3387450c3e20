//! # tokenkeeper
//!
//! Keeps a single-page app's session alive, silently and safely: tokens held
//! in memory only, an authenticated `fetch` that attaches the access token
//! to allowed origins and refreshes once on a 401, silent refresh ahead of
//! expiry that survives sleep and throttled tabs, and typed errors and events.
//!
//! Every decision lives in the `tokenkeeper-core` crate, re-exported here:
//! the [`keeper`] state machine and what it uses ([`session`], [`token`],
//! [`protocol`], [`config`]), tested natively in simulated time, and
//! [`wire`], the JSON in which it tells the browser what to do ([`value`]:
//! how it reads what comes from JS, as bounded JSON text). This crate
//! is the boundary: `TokenKeeper`, the exported class, hands each call to
//! the browser executor (`js/executor.js`, a small JavaScript class that
//! wasm-bindgen bundles), which feeds the keeper its inputs with the time
//! and carries out the commands it polls — requests, the one timer, the
//! tab channel and lock, events, and the replies of waiting calls. An
//! export's error is a `Thrown`: the keeper's [`Error`] as the
//! `TokenKeeperError` JS sees (`?` converts one).

#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unimplemented,
        clippy::todo
    )
)]
// The package links no std: its panic machinery (the hook, and the
// formatting of every panic message) weighs 2.4 kB gzipped, for a panic that
// can only abort. A panic traps instead (see `panic` below). The tests link
// std, with the `std` feature.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

/// A panic (there should be none: library code has no `unwrap`, `expect`
/// or indexing) traps, as `panic = "abort"` would, without formatting a
/// message nobody can read.
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

pub use tokenkeeper_core::{config, error, json, keeper, protocol, session, token, value, wire};

#[cfg(target_arch = "wasm32")]
mod client;
#[cfg(target_arch = "wasm32")]
mod heap;
#[cfg(target_arch = "wasm32")]
mod interop;
#[cfg(target_arch = "wasm32")]
mod typescript;

#[cfg(target_arch = "wasm32")]
pub use client::{Thrown, TokenKeeper};

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static HEAP: heap::Heap = heap::Heap::new();
pub use error::Error;
#[cfg(target_arch = "wasm32")]
pub use typescript::is_token_keeper_error;
