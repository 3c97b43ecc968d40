//! Any text as scpd's configuration file: a configuration or an error with its line,
//! never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sixstack_scp::daemon::DaemonConfig::parse(text, "fuzz.toml", std::path::Path::new("/"));
    }
});
