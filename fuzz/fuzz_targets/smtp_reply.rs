//! Any bytes as an SMTP server's replies, in any pieces: replies or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sixstack_smtp::reply::ReplyParser;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(1, |b| usize::from(*b).max(1));
    let mut p = ReplyParser::new();
    for chunk in data.chunks(split) {
        let mut rest = chunk;
        while !rest.is_empty() {
            match p.feed(rest) {
                Ok((used, _)) if used > 0 && used <= rest.len() => rest = &rest[used..],
                _ => return,
            }
        }
    }
});
