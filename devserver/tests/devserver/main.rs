//! End-to-end tests of the dev auth server, over real HTTP on 127.0.0.1.
//!
//! One test binary (with modules) keeps link time down on slow machines.

mod api;
mod auth;
mod cli;
mod common;
mod dpop;
mod faults;
mod http;
