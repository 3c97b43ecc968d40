//! Byte vectors for the packet codec: well-formed replies, every truncation of them, and
//! the malformed cases a server could send.
#![allow(clippy::unwrap_used)]

use super::*;

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// A reply body from its parts.
fn body(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn string(s: &[u8]) -> Vec<u8> {
    let mut v = be32(s.len() as u32).to_vec();
    v.extend_from_slice(s);
    v
}

fn samples() -> Vec<Vec<u8>> {
    vec![
        body(&[
            &[kind::VERSION],
            &be32(3),
            &string(b"posix-rename@openssh.com"),
            &string(b"1"),
        ]),
        body(&[
            &[kind::STATUS],
            &be32(7),
            &be32(status::NO_SUCH_FILE),
            &string(b"No such file"),
            &string(b""),
        ]),
        body(&[&[kind::HANDLE], &be32(8), &string(b"\x00\x00\x00\x01")]),
        body(&[&[kind::DATA], &be32(9), &string(b"hello")]),
        body(&[
            &[kind::ATTRS],
            &be32(10),
            &be32(0x8000_000f),
            &5u64.to_be_bytes(),
            &be32(1000),
            &be32(1001),
            &be32(0o100_644),
            &be32(11),
            &be32(12),
            &be32(1),
            &string(b"k"),
            &string(b"v"),
        ]),
        body(&[
            &[kind::NAME],
            &be32(11),
            &be32(2),
            &string(b"a"),
            &string(b"-rw-r--r-- a"),
            &be32(0),
            &string(b"b"),
            &string(b"drwxr-xr-x b"),
            &be32(4),
            &be32(0o040_755),
        ]),
    ]
}

#[test]
fn decodes_each_reply() {
    let s = samples();
    match Reply::parse(&s[0]).unwrap() {
        Reply::Version {
            version,
            extensions,
        } => {
            assert_eq!(version, 3);
            let ext: Vec<_> = extensions.collect();
            assert_eq!(ext, vec![(&b"posix-rename@openssh.com"[..], &b"1"[..])]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        Reply::parse(&s[1]).unwrap(),
        Reply::Status {
            id: 7,
            code: status::NO_SUCH_FILE,
            message: b"No such file"
        }
    );
    assert_eq!(
        Reply::parse(&s[2]).unwrap(),
        Reply::Handle {
            id: 8,
            handle: b"\x00\x00\x00\x01"
        }
    );
    assert_eq!(
        Reply::parse(&s[3]).unwrap(),
        Reply::Data {
            id: 9,
            data: b"hello"
        }
    );
    let Reply::Attrs { id: 10, attrs } = Reply::parse(&s[4]).unwrap() else {
        panic!("not ATTRS")
    };
    assert_eq!(
        attrs,
        Attrs {
            size: Some(5),
            uid: Some(1000),
            gid: Some(1001),
            permissions: Some(0o100_644),
            mtime: Some(12),
        }
    );
    assert!(attrs.is_regular() && !attrs.is_dir());
    let Reply::Name { id: 11, names } = Reply::parse(&s[5]).unwrap() else {
        panic!("not NAME")
    };
    let names: Vec<_> = names.collect();
    assert_eq!(names.len(), 2);
    assert_eq!(names[0].filename, b"a");
    assert!(names[1].attrs.is_dir());
    for (i, s) in s.iter().enumerate() {
        let id = reply_id(s).unwrap();
        assert_eq!(id, Reply::parse(s).unwrap().id(), "sample {i}");
    }
}

#[test]
fn data_payload_starts_at_data_offset() {
    let s = body(&[&[kind::DATA], &be32(9), &string(b"hello")]);
    assert_eq!(&s[DATA_OFFSET..], b"hello");
}

#[test]
fn status_without_message_is_accepted() {
    let s = body(&[&[kind::STATUS], &be32(1), &be32(status::EOF)]);
    assert_eq!(
        Reply::parse(&s).unwrap(),
        Reply::Status {
            id: 1,
            code: status::EOF,
            message: b""
        }
    );
}

#[test]
fn every_truncation_is_an_error() {
    for s in samples() {
        for cut in 0..s.len() {
            let short = &s[..cut];
            // VERSION with no extensions, and STATUS without a message or without a
            // language tag (not read: bytes after the last field are ignored), are complete.
            let complete = (s[0] == kind::VERSION && cut == 5)
                || (s[0] == kind::STATUS && (cut == 9 || cut >= 9 + 4 + 12));
            if !complete {
                assert!(
                    Reply::parse(short).is_err(),
                    "{short:?} accepted (from {s:?})"
                );
            }
        }
    }
}

#[test]
fn malformed_replies() {
    assert_eq!(Reply::parse(&[]), Err(PacketError::Truncated("type")));
    assert_eq!(reply_id(&[]), Err(PacketError::Truncated("type")));
    assert_eq!(
        Reply::parse(&[kind::OPEN, 0, 0, 0, 1]),
        Err(PacketError::UnknownType(kind::OPEN))
    );
    assert_eq!(
        reply_id(&[77, 0, 0, 0, 1]),
        Err(PacketError::UnknownType(77))
    );
    // A string length past the end.
    let s = body(&[&[kind::DATA], &be32(1), &be32(u32::MAX), b"abc"]);
    assert_eq!(Reply::parse(&s), Err(PacketError::Truncated("data")));
    // A handle over 256 bytes.
    let s = body(&[&[kind::HANDLE], &be32(1), &string(&[7; 257])]);
    assert_eq!(Reply::parse(&s), Err(PacketError::HandleTooLong(257)));
    let s = body(&[&[kind::HANDLE], &be32(1), &string(&[7; 256])]);
    assert!(Reply::parse(&s).is_ok());
    // A NAME count far beyond the entries present.
    let s = body(&[&[kind::NAME], &be32(1), &be32(u32::MAX), &string(b"a")]);
    assert!(Reply::parse(&s).is_err());
    // An ATTRS extended count far beyond the pairs present.
    let s = body(&[
        &[kind::ATTRS],
        &be32(1),
        &be32(0x8000_0000),
        &be32(u32::MAX),
    ]);
    assert!(Reply::parse(&s).is_err());
}

#[test]
fn frame_lengths() {
    assert_eq!(frame_len(be32(0)), Err(PacketError::Empty));
    assert_eq!(frame_len(be32(1)), Ok(1));
    assert_eq!(frame_len(be32(MAX_PACKET_LEN as u32)), Ok(MAX_PACKET_LEN));
    assert_eq!(
        frame_len(be32(MAX_PACKET_LEN as u32 + 1)),
        Err(PacketError::TooLong(MAX_PACKET_LEN + 1))
    );
    assert_eq!(
        frame_len(be32(u32::MAX)),
        Err(PacketError::TooLong(u32::MAX as usize))
    );
}

#[test]
fn encodes_requests() {
    let mut out = Vec::new();
    Request::Init.encode(&mut out).unwrap();
    assert_eq!(out, [0, 0, 0, 5, kind::INIT, 0, 0, 0, 3]);

    out.clear();
    let attrs = Attrs {
        permissions: Some(0o644),
        ..Attrs::default()
    };
    Request::Open {
        id: 0x0102_0304,
        path: "/a",
        pflags: open_flags::WRITE | open_flags::CREAT | open_flags::TRUNC,
        attrs: &attrs,
    }
    .encode(&mut out)
    .unwrap();
    let want = body(&[
        &be32(23),
        &[kind::OPEN],
        &be32(0x0102_0304),
        &string(b"/a"),
        &be32(0x1a),
        &be32(4),
        &be32(0o644),
    ]);
    assert_eq!(out, want);

    out.clear();
    Request::PosixRename {
        id: 1,
        from: "a",
        to: "b",
    }
    .encode(&mut out)
    .unwrap();
    let want = body(&[
        &be32(1 + 4 + 28 + 5 + 5),
        &[kind::EXTENDED],
        &be32(1),
        &string(b"posix-rename@openssh.com"),
        &string(b"a"),
        &string(b"b"),
    ]);
    assert_eq!(out, want);
}

#[test]
fn oversize_request_is_refused_and_leaves_the_buffer() {
    let mut out = vec![1, 2, 3];
    let big = vec![0; MAX_PACKET_LEN];
    let r = Request::Write {
        id: 1,
        handle: b"h",
        offset: 0,
        data: &big,
    }
    .encode(&mut out);
    assert!(matches!(r, Err(PacketError::TooLong(_))));
    assert_eq!(out, [1, 2, 3]);
}

#[test]
fn attrs_round_trip() {
    let a = Attrs {
        size: Some(1 << 40),
        uid: Some(1),
        gid: Some(2),
        permissions: Some(0o100_600),
        mtime: Some(1_700_000_000),
    };
    let mut out = Vec::new();
    a.encode(&mut out);
    let mut cur = Cursor::new(&out);
    assert_eq!(Attrs::decode(&mut cur).unwrap(), a);
    assert!(cur.is_empty());
}
