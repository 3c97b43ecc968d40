//! Any bytes as what an appliance or scpd sends inside their TLS connection: frames or an
//! error, and every control frame decoded as each message type. Never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sixstack_scp::wire::{self, Done, End, Failure, Ready, Request, Welcome};

fuzz_target!(|data: &[u8]| {
    if let Ok((frames, used)) = wire::parse_frames(data) {
        assert!(used <= data.len());
        for f in frames {
            let _ = f.control::<Request>();
            let _ = f.control::<Ready>();
            let _ = f.control::<End>();
            let _ = f.control::<Done>();
            let _ = f.control::<Failure>();
            let _ = f.control::<Welcome>();
        }
    }
});
