//! # tokenkeeper-core
//!
//! Every decision tokenkeeper takes, in pure Rust: tokens and their time
//! ([`token`]), one tab's session with its generations, backoff and storm
//! brake ([`session`]), the tab protocol ([`protocol`]) and the validation of
//! the options ([`config`]), and the keeper that takes every decision with
//! them as a deterministic state machine ([`keeper`]). `no_std` + `alloc`,
//! no browser bindings: time
//! and randomness are passed in, so every decision is tested natively.
//!
//! The browser shell (the `tokenkeeper` crate and its JavaScript executor)
//! turns browser events into calls here and carries out what comes back,
//! as [`wire`] spells it: each command a JSON text with its data in full.
//! Every value from JS (options, tab messages, token bodies) comes in the
//! same way, as bounded JSON text read into a [`value::OptValue`].

#![no_std]
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

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod config;
pub mod dpop;
pub mod error;
pub mod json;
pub mod keeper;
pub mod oidc;
#[cfg(feature = "planted-faults")]
pub mod planted;
#[cfg(not(feature = "planted-faults"))]
mod planted;
pub mod protocol;
pub mod session;
pub mod sha256;
pub mod testing;
pub mod token;
pub mod value;
pub mod wire;

pub use error::Error;
