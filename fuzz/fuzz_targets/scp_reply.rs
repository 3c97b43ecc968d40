//! Any bytes as what a remote scp sends: control messages one after another, each parsed
//! or refused (C lines checked), then the same bytes as the whole channel under a source
//! receiving a file and a sink sending one. Never a panic, and never a wait on a channel
//! that has already ended.
#![no_main]
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use sixstack_scp::legacy::wire::{parse_message, FileHeader, Message};
use sixstack_scp::legacy::{ScpSink, ScpSource};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((msg, used))) = parse_message(rest) {
        assert!(used > 0 && used <= rest.len());
        if let Message::File(h) = msg {
            // What was accepted encodes back to the same line.
            let mut line = Vec::new();
            h.encode(&mut line).unwrap();
            assert_eq!(FileHeader::parse(&line[1..line.len() - 1]), Ok(h));
        }
        rest = &rest[used..];
    }

    let session = pin!(async {
        let mut out = Vec::new();
        if let Ok(mut s) = ScpSource::start(data, &mut out).await {
            while let Ok(Some(_)) = s.read().await {}
        }
        let mut out = Vec::new();
        if let Ok(mut s) = ScpSink::start(data, &mut out).await {
            if s.begin("f", 0o644, 3).await.is_ok() && s.write(b"abc").await.is_ok() {
                let _ = s.finish().await;
            }
        }
    });
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(session.poll(&mut cx), Poll::Ready(())));
});
