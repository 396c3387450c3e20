#![no_main]
//! The JWT claim decoder: any string gives claims or nothing, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = tokenkeeper_core::token::decode_claims(s);
        // Also as the payload of an otherwise well-formed token.
        let mut t = String::from("eyJhbGciOiJIUzI1NiJ9.");
        t.push_str(s);
        t.push_str(".sig");
        let _ = tokenkeeper_core::token::decode_claims(&t);
    }
});
