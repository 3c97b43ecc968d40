//! Any bytes as a remote command's standard output, in any pieces: the status line found
//! or an error, never a panic, and nothing but the status line taken out.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sixstack_rexec::ExitMarker;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(1, |b| usize::from(*b).max(1));
    let mut s = ExitMarker::from_token(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef).scanner();
    let mut out = Vec::new();
    for chunk in data.chunks(split) {
        s.feed(chunk, &mut out);
    }
    let _ = s.finish(&mut out);
    assert!(out.len() <= data.len());
});
