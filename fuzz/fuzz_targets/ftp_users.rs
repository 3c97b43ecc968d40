//! The FTP security file parser: any text is a security file or a located error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sixstack_ftp::users::Users::parse(text, std::path::Path::new("fuzz.toml"));
    }
});
