//! Any bytes as an FTP server's replies, in any pieces: replies or an error, and every
//! reply's text through the PASV, EPSV and MLST parsers, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sixstack_ftp::client::{facts, reply};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(1, |b| usize::from(*b).max(1));
    let mut p = reply::ReplyParser::default();
    for chunk in data.chunks(split) {
        p.feed(chunk);
        while let Ok(Some(r)) = p.next_reply() {
            let text = r.to_string();
            let _ = reply::parse_pasv(&text);
            let _ = reply::parse_epsv(&text);
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            let _ = facts::parse_mlst_reply(&lines);
            for l in &lines {
                let _ = facts::wildcard_match(l, &text);
            }
        }
    }
});
