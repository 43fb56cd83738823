//! Join-token verification with arbitrary tokens: refused cleanly, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static V: OnceLock<bedside_token::Verifier> = OnceLock::new();
    let v = V.get_or_init(|| {
        bedside_token::Verifier::hs256(b"fuzz-secret-fuzz-secret-fuzz-secret", Some("fuzz"), 5)
    });
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = v.verify(text);
    }
});
