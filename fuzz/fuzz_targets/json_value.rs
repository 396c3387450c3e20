#![no_main]
//! The reader of every value from JS: any text, within the bound or past
//! it, reads as a value or as unsupported, and what it reads goes through
//! the tab-message decoder, the option parser and the token-field reader
//! without a panic.
use libfuzzer_sys::fuzz_target;
use tokenkeeper_core::config::{Fields, Settings};
use tokenkeeper_core::protocol::decode;
use tokenkeeper_core::testing::TestUrls;
use tokenkeeper_core::value::{OptValue, MAX_JSON};
use tokenkeeper_core::wire;

fuzz_target!(|text: &str| {
    let value = OptValue::from_json(Some(text), MAX_JSON);
    let _ = decode(&value, "me");
    let _ = Settings::from_options(&value, &TestUrls);
    let _ = wire::grant(&value, &Fields::default());
});
