//! Any bytes as what an SFTP server sends: split into length-prefixed packets, each a reply
//! or an error (with every NAME entry and VERSION extension walked); then the same bytes as
//! the whole channel under a client doing a stat, a download and an upload. Never a panic,
//! and never a wait on a channel that has already ended.
#![no_main]
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use sixstack_scp::sftp::packet::{frame_len, reply_id, Reply};
use sixstack_scp::sftp::SftpClient;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Some((prefix, body)) = rest.split_first_chunk::<4>() {
        let Ok(len) = frame_len(*prefix) else { break };
        let (packet, next) = body.split_at(len.min(body.len()));
        if let Ok(reply) = Reply::parse(packet) {
            assert_eq!(reply_id(packet), Ok(reply.id()));
            match reply {
                Reply::Version { extensions, .. } => extensions.for_each(drop),
                Reply::Name { names, .. } => names.for_each(|n| {
                    let _ = n.attrs.is_dir();
                }),
                _ => {}
            }
        }
        rest = next;
    }

    // The channel's input is `data` and ends there, so the client never has to wait.
    let session = pin!(async {
        let mut out = Vec::new();
        let Ok(mut c) = SftpClient::start(data, &mut out).await else {
            return;
        };
        let _ = c.stat("/f").await;
        if let Ok(mut f) = c.open_read("/f", 3).await {
            while let Ok(Some(_)) = c.read(&mut f).await {}
            let _ = c.close_read(f).await;
        }
        if let Ok(mut f) = c.create("/g", None, 0o644).await {
            let _ = c.write(&mut f, &[0; 100_000]).await;
            let _ = c.finish_write(f).await;
        }
        let _ = c.rename("/g", "/f").await;
    });
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(session.poll(&mut cx), Poll::Ready(())));
});
