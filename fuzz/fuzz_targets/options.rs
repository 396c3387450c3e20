#![no_main]
//! The options parser: any value gives settings or an error naming an option.
use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use tokenkeeper_core::config::Settings;
use tokenkeeper_core::testing::TestUrls as Urls;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok(value) = tokenkeeper_fuzz::opt_value(&mut u, 3) {
        match Settings::from_options(&value, &Urls) {
            Ok(_) => {}
            // The option may be "" (an empty key is a key): the reason is always said.
            Err(tokenkeeper_core::Error::InvalidOption { reason, .. }) => assert!(!reason.is_empty()),
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
});
