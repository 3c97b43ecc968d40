//! SFTP version 3 packets (draft-ietf-secsh-filexfer-02, as OpenSSH's sftp-server speaks
//! it): the requests scpd sends, encoded into a caller's buffer, and the server's replies,
//! decoded as views over the received bytes. Sans-IO: nothing here reads or writes a
//! channel; [`frame_len`] checks the length prefix the channel reads before each packet.
//!
//! Every packet on the wire is `uint32 length`, then `length` bytes: a type byte and the
//! fields. A packet body below means those `length` bytes, type byte first.

use super::attrs::Attrs;

/// The protocol version this client speaks.
pub const VERSION: u32 = 3;

/// The longest packet body accepted or sent: OpenSSH's 256 KiB message limit plus slack
/// for headers. A longer length prefix from a server is refused before anything is read.
pub const MAX_PACKET_LEN: usize = 256 * 1024 + 1024;

/// The longest handle a server may hand out (the draft's limit).
pub const MAX_HANDLE_LEN: usize = 256;

/// Where the payload of a DATA reply starts in its packet body: type, id, length.
pub const DATA_OFFSET: usize = 9;

/// Packet type bytes.
pub mod kind {
    pub const INIT: u8 = 1;
    pub const VERSION: u8 = 2;
    pub const OPEN: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const READ: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const FSTAT: u8 = 8;
    pub const REMOVE: u8 = 13;
    pub const STAT: u8 = 17;
    pub const RENAME: u8 = 18;
    pub const STATUS: u8 = 101;
    pub const HANDLE: u8 = 102;
    pub const DATA: u8 = 103;
    pub const NAME: u8 = 104;
    pub const ATTRS: u8 = 105;
    pub const EXTENDED: u8 = 200;
    pub const EXTENDED_REPLY: u8 = 201;
}

/// STATUS codes.
pub mod status {
    pub const OK: u32 = 0;
    pub const EOF: u32 = 1;
    pub const NO_SUCH_FILE: u32 = 2;
    pub const PERMISSION_DENIED: u32 = 3;
    pub const FAILURE: u32 = 4;
    pub const BAD_MESSAGE: u32 = 5;
    pub const NO_CONNECTION: u32 = 6;
    pub const CONNECTION_LOST: u32 = 7;
    pub const OP_UNSUPPORTED: u32 = 8;

    /// A short text for a code, used when the server sent an empty message.
    pub fn describe(code: u32) -> &'static str {
        match code {
            OK => "success",
            EOF => "end of file",
            NO_SUCH_FILE => "no such file",
            PERMISSION_DENIED => "permission denied",
            FAILURE => "failure",
            BAD_MESSAGE => "bad message",
            NO_CONNECTION => "no connection",
            CONNECTION_LOST => "connection lost",
            OP_UNSUPPORTED => "operation unsupported",
            _ => "unknown error",
        }
    }
}

/// OPEN flags (`pflags`).
pub mod open_flags {
    pub const READ: u32 = 0x01;
    pub const WRITE: u32 = 0x02;
    pub const APPEND: u32 = 0x04;
    pub const CREAT: u32 = 0x08;
    pub const TRUNC: u32 = 0x10;
    pub const EXCL: u32 = 0x20;
}

/// Why bytes are not a packet this client accepts, or a request cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// A length prefix, or a request being encoded, is over [`MAX_PACKET_LEN`].
    #[error("SFTP packet of {0} bytes is over the {MAX_PACKET_LEN}-byte limit")]
    TooLong(usize),
    /// A length prefix of zero: no room for the type byte.
    #[error("empty SFTP packet")]
    Empty,
    /// The packet ends inside the named field.
    #[error("SFTP packet truncated in {0}")]
    Truncated(&'static str),
    /// A type byte that is not a reply a server sends to this client.
    #[error("unexpected SFTP packet type {0}")]
    UnknownType(u8),
    /// A HANDLE reply whose handle is over [`MAX_HANDLE_LEN`] bytes.
    #[error("SFTP handle of {0} bytes (at most {MAX_HANDLE_LEN})")]
    HandleTooLong(usize),
}

/// Checks a length prefix read from the channel and returns the body length to read.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, PacketError> {
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len == 0 {
        Err(PacketError::Empty)
    } else if len > MAX_PACKET_LEN {
        Err(PacketError::TooLong(len))
    } else {
        Ok(len)
    }
}

/// The request id of a reply body, read without decoding the rest, for routing replies to
/// the requests that wait for them. `None` for VERSION, which carries no id.
pub fn reply_id(body: &[u8]) -> Result<Option<u32>, PacketError> {
    let mut cur = Cursor::new(body);
    match cur.u8("type")? {
        kind::VERSION => Ok(None),
        kind::STATUS
        | kind::HANDLE
        | kind::DATA
        | kind::NAME
        | kind::ATTRS
        | kind::EXTENDED_REPLY => Ok(Some(cur.u32("request id")?)),
        other => Err(PacketError::UnknownType(other)),
    }
}

/// A request, encoded by [`Request::encode`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request<'a> {
    /// INIT with [`VERSION`]; no id.
    Init,
    /// OPEN a file with `pflags` ([`open_flags`]) and attributes for a created file.
    Open {
        id: u32,
        path: &'a str,
        pflags: u32,
        attrs: &'a Attrs,
    },
    /// CLOSE a handle.
    Close { id: u32, handle: &'a [u8] },
    /// READ up to `len` bytes at `offset`.
    Read {
        id: u32,
        handle: &'a [u8],
        offset: u64,
        len: u32,
    },
    /// WRITE `data` at `offset`.
    Write {
        id: u32,
        handle: &'a [u8],
        offset: u64,
        data: &'a [u8],
    },
    /// FSTAT an open handle.
    Fstat { id: u32, handle: &'a [u8] },
    /// STAT a path, following symbolic links.
    Stat { id: u32, path: &'a str },
    /// REMOVE a file.
    Remove { id: u32, path: &'a str },
    /// RENAME; OpenSSH refuses it when `to` exists.
    Rename { id: u32, from: &'a str, to: &'a str },
    /// EXTENDED `posix-rename@openssh.com`: rename(2), replacing `to`.
    PosixRename { id: u32, from: &'a str, to: &'a str },
}

/// The extension name of [`Request::PosixRename`].
pub const POSIX_RENAME: &str = "posix-rename@openssh.com";

impl Request<'_> {
    /// The request id, `None` for INIT.
    pub fn id(&self) -> Option<u32> {
        match *self {
            Request::Init => None,
            Request::Open { id, .. }
            | Request::Close { id, .. }
            | Request::Read { id, .. }
            | Request::Write { id, .. }
            | Request::Fstat { id, .. }
            | Request::Stat { id, .. }
            | Request::Remove { id, .. }
            | Request::Rename { id, .. }
            | Request::PosixRename { id, .. } => Some(id),
        }
    }

    /// Appends the packet, length prefix included, to `out`. On error `out` is unchanged.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PacketError> {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        match *self {
            Request::Init => {
                out.push(kind::INIT);
                put_u32(out, VERSION);
            }
            Request::Open {
                id,
                path,
                pflags,
                attrs,
            } => {
                head(out, kind::OPEN, id);
                put_string(out, path.as_bytes());
                put_u32(out, pflags);
                attrs.encode(out);
            }
            Request::Close { id, handle } => {
                head(out, kind::CLOSE, id);
                put_string(out, handle);
            }
            Request::Read {
                id,
                handle,
                offset,
                len,
            } => {
                head(out, kind::READ, id);
                put_string(out, handle);
                put_u64(out, offset);
                put_u32(out, len);
            }
            Request::Write {
                id,
                handle,
                offset,
                data,
            } => {
                head(out, kind::WRITE, id);
                put_string(out, handle);
                put_u64(out, offset);
                put_string(out, data);
            }
            Request::Fstat { id, handle } => {
                head(out, kind::FSTAT, id);
                put_string(out, handle);
            }
            Request::Stat { id, path } => {
                head(out, kind::STAT, id);
                put_string(out, path.as_bytes());
            }
            Request::Remove { id, path } => {
                head(out, kind::REMOVE, id);
                put_string(out, path.as_bytes());
            }
            Request::Rename { id, from, to } => {
                head(out, kind::RENAME, id);
                put_string(out, from.as_bytes());
                put_string(out, to.as_bytes());
            }
            Request::PosixRename { id, from, to } => {
                head(out, kind::EXTENDED, id);
                put_string(out, POSIX_RENAME.as_bytes());
                put_string(out, from.as_bytes());
                put_string(out, to.as_bytes());
            }
        }
        let len = out.len() - start - 4;
        let prefix = match u32::try_from(len) {
            Ok(l) if len <= MAX_PACKET_LEN => l,
            _ => {
                out.truncate(start);
                return Err(PacketError::TooLong(len));
            }
        };
        if let Some(p) = out.get_mut(start..start + 4) {
            p.copy_from_slice(&prefix.to_be_bytes());
        }
        Ok(())
    }
}

fn head(out: &mut Vec<u8>, kind: u8, id: u32) {
    out.push(kind);
    put_u32(out, id);
}

pub(super) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(super) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A length-prefixed string. A string too long for the prefix makes the packet too long,
/// which [`Request::encode`] refuses afterwards.
pub(super) fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(s);
}

/// A server reply, borrowing from the packet body it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply<'a> {
    /// VERSION: the server's version and its extensions.
    Version {
        version: u32,
        extensions: Extensions<'a>,
    },
    /// STATUS: a code ([`status`]) and the server's message (UTF-8 by the draft, not
    /// checked; empty when the server sent none).
    Status {
        id: u32,
        code: u32,
        message: &'a [u8],
    },
    /// HANDLE: an opaque handle of at most [`MAX_HANDLE_LEN`] bytes.
    Handle { id: u32, handle: &'a [u8] },
    /// DATA read from a file.
    Data { id: u32, data: &'a [u8] },
    /// NAME: file names with their attributes.
    Name { id: u32, names: Names<'a> },
    /// ATTRS of a file.
    Attrs { id: u32, attrs: Attrs },
    /// EXTENDED_REPLY: extension-specific bytes.
    ExtendedReply { id: u32, data: &'a [u8] },
}

impl<'a> Reply<'a> {
    /// Decodes a packet body (type byte first, length prefix already removed). Bytes after
    /// the last field are ignored, as later drafts add fields there.
    pub fn parse(body: &'a [u8]) -> Result<Reply<'a>, PacketError> {
        let mut cur = Cursor::new(body);
        let kind = cur.u8("type")?;
        if kind == kind::VERSION {
            let version = cur.u32("version")?;
            let extensions = Extensions::parse(cur.rest())?;
            return Ok(Reply::Version {
                version,
                extensions,
            });
        }
        let id = match kind {
            kind::STATUS
            | kind::HANDLE
            | kind::DATA
            | kind::NAME
            | kind::ATTRS
            | kind::EXTENDED_REPLY => cur.u32("request id")?,
            other => return Err(PacketError::UnknownType(other)),
        };
        Ok(match kind {
            kind::STATUS => {
                let code = cur.u32("status code")?;
                // Version 3 servers older than draft-02 may end the packet after the code.
                let message = if cur.is_empty() {
                    &[][..]
                } else {
                    cur.string("status message")?
                };
                Reply::Status { id, code, message }
            }
            kind::HANDLE => {
                let handle = cur.string("handle")?;
                if handle.len() > MAX_HANDLE_LEN {
                    return Err(PacketError::HandleTooLong(handle.len()));
                }
                Reply::Handle { id, handle }
            }
            kind::DATA => Reply::Data {
                id,
                data: cur.string("data")?,
            },
            kind::NAME => {
                let count = cur.u32("name count")?;
                Reply::Name {
                    id,
                    names: Names::parse(count, cur.rest())?,
                }
            }
            kind::ATTRS => Reply::Attrs {
                id,
                attrs: Attrs::decode(&mut cur)?,
            },
            _ => Reply::ExtendedReply {
                id,
                data: cur.rest(),
            },
        })
    }

    /// The request id, `None` for VERSION.
    pub fn id(&self) -> Option<u32> {
        match *self {
            Reply::Version { .. } => None,
            Reply::Status { id, .. }
            | Reply::Handle { id, .. }
            | Reply::Data { id, .. }
            | Reply::Name { id, .. }
            | Reply::Attrs { id, .. }
            | Reply::ExtendedReply { id, .. } => Some(id),
        }
    }

    /// The packet type's name, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Reply::Version { .. } => "VERSION",
            Reply::Status { .. } => "STATUS",
            Reply::Handle { .. } => "HANDLE",
            Reply::Data { .. } => "DATA",
            Reply::Name { .. } => "NAME",
            Reply::Attrs { .. } => "ATTRS",
            Reply::ExtendedReply { .. } => "EXTENDED_REPLY",
        }
    }
}

/// The extension pairs of a VERSION reply, checked when decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extensions<'a> {
    raw: &'a [u8],
}

impl<'a> Extensions<'a> {
    fn parse(raw: &'a [u8]) -> Result<Self, PacketError> {
        let mut cur = Cursor::new(raw);
        while !cur.is_empty() {
            cur.string("extension name")?;
            cur.string("extension data")?;
        }
        Ok(Extensions { raw })
    }
}

impl<'a> Iterator for Extensions<'a> {
    /// Name and data.
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let mut cur = Cursor::new(self.raw);
        let pair = (cur.string("").ok()?, cur.string("").ok()?);
        self.raw = cur.rest();
        Some(pair)
    }
}

/// One entry of a NAME reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name<'a> {
    pub filename: &'a [u8],
    /// An `ls -l` style line; informational only.
    pub longname: &'a [u8],
    pub attrs: Attrs,
}

/// The entries of a NAME reply, checked when decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names<'a> {
    left: u32,
    raw: &'a [u8],
}

impl<'a> Names<'a> {
    fn parse(count: u32, raw: &'a [u8]) -> Result<Self, PacketError> {
        let mut cur = Cursor::new(raw);
        // Each entry takes at least 12 bytes, so a false count ends at a truncation.
        for _ in 0..count {
            cur.string("file name")?;
            cur.string("long name")?;
            Attrs::decode(&mut cur)?;
        }
        Ok(Names { left: count, raw })
    }
}

impl<'a> Iterator for Names<'a> {
    type Item = Name<'a>;

    fn next(&mut self) -> Option<Name<'a>> {
        if self.left == 0 {
            return None;
        }
        let mut cur = Cursor::new(self.raw);
        let name = Name {
            filename: cur.string("").ok()?,
            longname: cur.string("").ok()?,
            attrs: Attrs::decode(&mut cur).ok()?,
        };
        self.raw = cur.rest();
        self.left -= 1;
        Some(name)
    }
}

/// Reads big-endian fields off the front of a slice; never panics.
pub(super) struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(super) fn rest(self) -> &'a [u8] {
        self.buf
    }

    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], PacketError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(PacketError::Truncated(what))?;
        self.buf = rest;
        Ok(*head)
    }

    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, PacketError> {
        Ok(self.take::<1>(what)?[0])
    }

    pub(super) fn u32(&mut self, what: &'static str) -> Result<u32, PacketError> {
        Ok(u32::from_be_bytes(self.take(what)?))
    }

    pub(super) fn u64(&mut self, what: &'static str) -> Result<u64, PacketError> {
        Ok(u64::from_be_bytes(self.take(what)?))
    }

    pub(super) fn string(&mut self, what: &'static str) -> Result<&'a [u8], PacketError> {
        let len = usize::try_from(self.u32(what)?).unwrap_or(usize::MAX);
        if len > self.buf.len() {
            return Err(PacketError::Truncated(what));
        }
        let (s, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(s)
    }
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
