//! The FTP control line path: TELNET stripping, command parsing, and resolving every
//! path argument in the virtual tree. Nothing may panic, and no resolved path may leave
//! the home.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sixstack_ftp::command::{strip_telnet, Command};
use sixstack_ftp::VirtualPath;

fuzz_target!(|data: &[u8]| {
    let line = strip_telnet(data);
    if let Ok(cmd) = Command::parse(&line) {
        let _ = cmd.verb();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let cwd = VirtualPath::root().resolve("/a/b").unwrap_or_default();
        if let Ok(p) = cwd.resolve(text) {
            assert!(p.components().all(|c| c != ".." && c != "." && !c.is_empty()));
            assert!(p.relative().components().all(|c| matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )));
        }
    }
});
