//! Any bytes as a batch FTP script: steps or an error with a line number, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let insecure = data.first().is_some_and(|b| b & 1 == 1);
    let _ = sixstack_ftp::client::parse(data, insecure);
});
