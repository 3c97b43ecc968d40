//! Any bytes as a secure-copy script: steps or an error with a line number, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(steps) = sixstack_scp::client::parse(data) {
        for s in steps {
            let _ = s.command.describe();
        }
    }
});
