//! The client against a scripted in-memory server, for what OpenSSH's sftp-server never
//! does: short DATA replies, replies out of order, wrong ids, refused writes, a channel
//! that closes in the middle.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

use super::packet::{kind, status};
use super::tests::pattern;
use super::*;

/// How the fake server misbehaves.
#[derive(Clone, Default)]
struct Script {
    /// The file every READ reads.
    file: Vec<u8>,
    /// At most this many bytes per DATA reply (0: as asked).
    max_data: usize,
    /// Answer READs in reverse order, in batches.
    reverse: bool,
    /// Reply with the request id plus 1000.
    wrong_id: bool,
    /// Close the channel on this request (1 = the first after INIT).
    close_at: Option<usize>,
    /// Refuse WRITEs at or past this offset with FAILURE.
    fail_writes_from: Option<u64>,
    /// Leave the size out of FSTAT.
    no_size: bool,
}

type Client = SftpClient<ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>;

async fn connect(script: Script) -> Result<Client, SftpError> {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    tokio::spawn(serve(script, theirs));
    let (r, w) = tokio::io::split(ours);
    SftpClient::start(r, w).await
}

fn run<F: std::future::Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(30), test)
                .await
                .expect("test timed out");
        });
}

async fn read_packet(r: &mut ReadHalf<DuplexStream>) -> Option<Vec<u8>> {
    let mut len = [0; 4];
    r.read_exact(&mut len).await.ok()?;
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut body).await.ok()?;
    Some(body)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn packet(kind: u8, id: u32, fields: &[&[u8]]) -> Vec<u8> {
    let body: Vec<u8> = [&[kind][..], &id.to_be_bytes()[..]]
        .into_iter()
        .chain(fields.iter().copied())
        .flatten()
        .copied()
        .collect();
    let mut p = (body.len() as u32).to_be_bytes().to_vec();
    p.extend(body);
    p
}

fn string(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

fn status_packet(id: u32, code: u32) -> Vec<u8> {
    packet(
        kind::STATUS,
        id,
        &[&code.to_be_bytes(), &string(b""), &string(b"")],
    )
}

async fn serve(script: Script, io: DuplexStream) {
    let (mut r, mut w) = tokio::io::split(io);
    let init = read_packet(&mut r).await.unwrap();
    assert_eq!(init, [kind::INIT, 0, 0, 0, 3]);
    w.write_all(&[0, 0, 0, 5, kind::VERSION, 0, 0, 0, 3])
        .await
        .unwrap();
    // Requests arrive through a task, so waiting for one can time out safely.
    let (tx, mut rx) = mpsc::channel(1024);
    let reader = tokio::spawn(async move {
        while let Some(p) = read_packet(&mut r).await {
            if tx.send(p).await.is_err() {
                break;
            }
        }
    });
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut count = 0;
    loop {
        let p = match tokio::time::timeout(Duration::from_millis(2), rx.recv()).await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(_) => {
                for reply in held.drain(..).rev() {
                    w.write_all(&reply).await.unwrap();
                }
                continue;
            }
        };
        count += 1;
        if script.close_at == Some(count) {
            break;
        }
        let id = u32_at(&p, 1);
        let out_id = if script.wrong_id { id + 1000 } else { id };
        let reply = match p[0] {
            kind::OPEN => packet(kind::HANDLE, out_id, &[&string(b"fh")]),
            kind::FSTAT | kind::STAT => {
                if script.no_size {
                    packet(kind::ATTRS, out_id, &[&0u32.to_be_bytes()])
                } else {
                    let size = script.file.len() as u64;
                    packet(
                        kind::ATTRS,
                        out_id,
                        &[&1u32.to_be_bytes(), &size.to_be_bytes()],
                    )
                }
            }
            kind::READ => {
                let handle_len = u32_at(&p, 5) as usize;
                let offset = u64_at(&p, 9 + handle_len) as usize;
                let mut len = u32_at(&p, 17 + handle_len) as usize;
                if script.max_data > 0 {
                    // Vary the short lengths so they rarely line up with chunks.
                    len = len.min(script.max_data - offset % 7);
                }
                if offset >= script.file.len() {
                    status_packet(out_id, status::EOF)
                } else {
                    let end = (offset + len).min(script.file.len());
                    packet(kind::DATA, out_id, &[&string(&script.file[offset..end])])
                }
            }
            kind::WRITE => {
                let handle_len = u32_at(&p, 5) as usize;
                let offset = u64_at(&p, 9 + handle_len);
                match script.fail_writes_from {
                    Some(limit) if offset >= limit => status_packet(out_id, status::FAILURE),
                    _ => status_packet(out_id, status::OK),
                }
            }
            kind::CLOSE => status_packet(out_id, status::OK),
            _ => status_packet(out_id, status::OP_UNSUPPORTED),
        };
        if script.reverse && p[0] == kind::READ {
            held.push(reply);
            if held.len() == 5 {
                for reply in held.drain(..).rev() {
                    w.write_all(&reply).await.unwrap();
                }
            }
        } else {
            for reply in held.drain(..).rev() {
                w.write_all(&reply).await.unwrap();
            }
            w.write_all(&reply).await.unwrap();
        }
    }
    reader.abort();
}

async fn read_all(c: &mut Client, from: u64) -> Result<Vec<u8>, SftpError> {
    let mut f = c.open_read("/f", from).await?;
    let mut got = Vec::new();
    while let Some(chunk) = c.read(&mut f).await? {
        got.extend_from_slice(&chunk);
        assert_eq!(f.offset(), from + got.len() as u64);
    }
    c.close_read(f).await?;
    Ok(got)
}

#[test]
fn short_data_replies_are_completed_in_order() {
    run(async {
        let file = pattern(300_017, 7);
        for (max_data, reverse) in [(1000, false), (CHUNK - 1, false), (1000, true), (0, true)] {
            let script = Script {
                file: file.clone(),
                max_data,
                reverse,
                ..Script::default()
            };
            let mut c = connect(script).await.unwrap();
            assert!(
                read_all(&mut c, 0).await.unwrap() == file,
                "{max_data} {reverse}"
            );
            assert!(read_all(&mut c, 12_345).await.unwrap() == file[12_345..]);
        }
    });
}

#[test]
fn a_file_without_a_size_is_read_to_its_end() {
    run(async {
        let file = pattern(5 * CHUNK + 3, 8);
        let script = Script {
            file: file.clone(),
            no_size: true,
            max_data: 5000,
            ..Script::default()
        };
        let mut c = connect(script).await.unwrap();
        assert!(read_all(&mut c, 0).await.unwrap() == file);
    });
}

#[test]
fn a_reply_with_a_wrong_id_is_a_protocol_error() {
    run(async {
        let script = Script {
            wrong_id: true,
            ..Script::default()
        };
        let mut c = connect(script).await.unwrap();
        let e = c.stat("/f").await.unwrap_err();
        assert!(
            matches!(&e, SftpError::Protocol(m) if m.contains("not outstanding")),
            "{e:?}"
        );
        assert!(matches!(c.stat("/f").await, Err(SftpError::Protocol(_))));
    });
}

#[test]
fn a_refused_write_fails_a_later_call_and_the_client_stays_usable() {
    run(async {
        let script = Script {
            fail_writes_from: Some(10 * CHUNK as u64),
            ..Script::default()
        };
        let mut c = connect(script).await.unwrap();
        let mut f = c.create("/up", None, 0o644).await.unwrap();
        let data = pattern(CHUNK, 9);
        let mut first = None;
        for _ in 0..200 {
            if let Err(e) = c.write(&mut f, &data).await {
                first = Some(e);
                break;
            }
        }
        let e = first.expect("a refused write must fail a write call");
        assert!(
            matches!(&e, SftpError::Status { op: "write", path, code, .. } if path == "/up" && *code == status::FAILURE),
            "{e:?}"
        );
        // Later calls on the writer repeat it; finishing closes the handle and says so.
        assert!(matches!(
            c.write(&mut f, b"x").await,
            Err(SftpError::Status { .. })
        ));
        assert!(matches!(
            c.finish_write(f).await,
            Err(SftpError::Status { .. })
        ));
        // No stray acknowledgements are left to confuse the next request.
        assert!(c.stat("/f").await.unwrap().is_some());

        // A refusal among the last writes shows in finish_write.
        let mut f = c.create("/up", None, 0o644).await.unwrap();
        c.write(&mut f, &pattern(11 * CHUNK, 10)).await.unwrap();
        assert!(matches!(
            c.finish_write(f).await,
            Err(SftpError::Status { op: "write", .. })
        ));
    });
}

#[test]
fn a_channel_closed_mid_transfer_is_an_error_not_a_hang() {
    run(async {
        for close_at in 1..6 {
            let script = Script {
                close_at: Some(close_at),
                file: pattern(4 * CHUNK, 11),
                ..Script::default()
            };
            let mut c = connect(script).await.unwrap();
            let r = async {
                let mut f = c.create("/up", None, 0o644).await?;
                for _ in 0..300 {
                    c.write(&mut f, &[7; CHUNK]).await?;
                }
                c.finish_write(f).await
            }
            .await;
            assert!(
                matches!(r, Err(SftpError::Io(_) | SftpError::Protocol(_))),
                "{close_at}: {r:?}"
            );
        }
        for close_at in [1, 2, 3, 10] {
            let script = Script {
                close_at: Some(close_at),
                file: pattern(200 * CHUNK, 12),
                ..Script::default()
            };
            let mut c = connect(script).await.unwrap();
            let r = read_all(&mut c, 0).await;
            assert!(
                matches!(r, Err(SftpError::Io(_) | SftpError::Protocol(_))),
                "{close_at}"
            );
        }
    });
}

#[test]
fn start_fails_cleanly_on_a_bad_peer() {
    run(async {
        let (ours, theirs) = tokio::io::duplex(1024);
        drop(theirs);
        let (r, w) = tokio::io::split(ours);
        assert!(matches!(
            SftpClient::start(r, w).await,
            Err(SftpError::Io(_))
        ));
        // A server that answers INIT with something else.
        let (ours, mut theirs) = tokio::io::duplex(1024);
        theirs
            .write_all(&status_packet(0, status::FAILURE))
            .await
            .unwrap();
        let (r, w) = tokio::io::split(ours);
        assert!(matches!(
            SftpClient::start(r, w).await,
            Err(SftpError::Protocol(_))
        ));
        // A length prefix over the limit is refused before its body is read.
        let (ours, mut theirs) = tokio::io::duplex(1024);
        theirs.write_all(&[0, 0x10, 0, 0]).await.unwrap();
        let (r, w) = tokio::io::split(ours);
        let e = SftpClient::start(r, w).await.unwrap_err();
        assert!(
            matches!(&e, SftpError::Protocol(m) if m.contains("limit")),
            "{e:?}"
        );
    });
}
