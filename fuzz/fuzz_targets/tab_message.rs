#![no_main]
//! The tab-message decoder: any value decodes or is rejected, never a panic.
use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use tokenkeeper_core::protocol::{apply, decode};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok(value) = tokenkeeper_fuzz::opt_value(&mut u, 3) {
        if let Ok(envelope) = decode(&value, "me") {
            assert_ne!(envelope.from, "me");
            let _ = apply(&envelope.message, 7, true);
        }
    }
});
