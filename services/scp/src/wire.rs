//! What the appliance and scpd say to each other inside their mutual-TLS connection:
//! frames of `kind (1 byte) | length (4 bytes, big endian) | payload`. Control frames carry
//! one JSON object; data frames carry file or command output bytes as they are. This module
//! only encodes and decodes (no I/O); [`FrameReader`] and [`write_frame`] move frames over
//! any async stream.
//!
//! ```text
//! daemon   → Welcome {version, appliance}            once, after the handshake (or Error)
//! appliance→ Request {op: stor, ...}                  then
//! daemon   → Ready {offset, protocol}                 appliance → Data* End {bytes}
//! daemon   → Done {bytes} | Error {kind, message}
//! appliance→ Request {op: retr, from, ...}
//! daemon   → Ready {offset, size} Data* Done {bytes} | Error
//! appliance→ Request {op: exec, command, ...}
//! daemon   → Ready Data* Stderr* Done {exit} | Error
//! ```
//!
//! An Error may replace Ready or end a transfer at any point; after it the connection
//! takes the next Request (an upload the daemon gave up on is drained to its End first).

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// The largest payload of one frame.
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// The largest control (JSON) payload.
pub const MAX_CONTROL: usize = 16 * 1024;
/// The size of a frame header.
pub const HEADER: usize = 5;
/// Data frames are cut at this size.
pub const DATA_CHUNK: usize = 64 * 1024;

/// The kind byte of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Daemon → appliance: who the daemon took the appliance for.
    Welcome = 0x01,
    /// Appliance → daemon: a transfer or command.
    Request = 0x02,
    /// Daemon → appliance: the request is under way.
    Ready = 0x03,
    /// File bytes or command output, either way.
    Data = 0x04,
    /// Daemon → appliance: the command's standard error.
    Stderr = 0x05,
    /// Appliance → daemon: the upload is complete.
    End = 0x06,
    /// Appliance → daemon: the upload is given up (a local read failed).
    Abort = 0x07,
    /// Daemon → appliance: the request completed.
    Done = 0x08,
    /// Daemon → appliance: the request (or the connection) failed.
    Error = 0x09,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            0x01 => Kind::Welcome,
            0x02 => Kind::Request,
            0x03 => Kind::Ready,
            0x04 => Kind::Data,
            0x05 => Kind::Stderr,
            0x06 => Kind::End,
            0x07 => Kind::Abort,
            0x08 => Kind::Done,
            0x09 => Kind::Error,
            _ => return None,
        })
    }

    fn is_control(self) -> bool {
        !matches!(self, Kind::Data | Kind::Stderr)
    }
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// An unknown kind byte.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// A payload over the limit for its kind.
    #[error("frame of {len} bytes is over the limit of {max}")]
    TooLong {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A control payload that is not the JSON object expected.
    #[error("bad {kind:?} frame: {reason}")]
    BadControl {
        /// The frame's kind.
        kind: Kind,
        /// What is wrong.
        reason: String,
    },
    /// A frame that does not belong at this point of the conversation.
    #[error("unexpected {got:?} frame while waiting for {want}")]
    Unexpected {
        /// What came.
        got: Kind,
        /// What was expected.
        want: &'static str,
    },
}

/// A frame header parsed from its 5 bytes: the kind and the payload length (checked).
pub fn parse_header(h: &[u8; HEADER]) -> Result<(Kind, usize), WireError> {
    let kind = Kind::from_byte(h[0]).ok_or(WireError::UnknownKind(h[0]))?;
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    let max = if kind.is_control() {
        MAX_CONTROL
    } else {
        MAX_PAYLOAD
    };
    if len > max {
        return Err(WireError::TooLong { len, max });
    }
    Ok((kind, len))
}

/// A whole frame (header and payload) in bytes.
pub fn encode(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(kind as u8);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A control frame holding `msg` as JSON.
pub fn encode_control<T: Serialize>(kind: Kind, msg: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail; an empty object is sent if it did.
    let body = serde_json::to_vec(msg).unwrap_or_else(|_| b"{}".to_vec());
    encode(kind, &body)
}

/// One received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its kind.
    pub kind: Kind,
    /// Its payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The payload of a control frame as `T`.
    pub fn control<T: for<'de> Deserialize<'de>>(&self) -> Result<T, WireError> {
        serde_json::from_slice(&self.payload).map_err(|e| WireError::BadControl {
            kind: self.kind,
            reason: e.to_string(),
        })
    }

    /// An error for a frame that came where `want` was expected (an Error frame's own
    /// message is kept).
    pub fn unexpected(&self, want: &'static str) -> WireError {
        WireError::Unexpected {
            got: self.kind,
            want,
        }
    }
}

/// Parses every whole frame at the front of `bytes`; returns them and how many bytes they
/// used. What the fuzz target drives.
pub fn parse_frames(mut bytes: &[u8]) -> Result<(Vec<Frame>, usize), WireError> {
    let mut frames = Vec::new();
    let mut used = 0;
    while bytes.len() >= HEADER {
        let mut h = [0u8; HEADER];
        h.copy_from_slice(&bytes[..HEADER]);
        let (kind, len) = parse_header(&h)?;
        if bytes.len() < HEADER + len {
            break;
        }
        frames.push(Frame {
            kind,
            payload: bytes[HEADER..HEADER + len].to_vec(),
        });
        bytes = &bytes[HEADER + len..];
        used += HEADER + len;
    }
    Ok((frames, used))
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut h = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        let n = r.read(&mut h[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    let (kind, len) = parse_header(&h).map_err(invalid)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some(Frame { kind, payload }))
}

/// Writes one frame (no flush).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: Kind,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut h = [0u8; HEADER];
    h[0] = kind as u8;
    h[1..].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    w.write_all(&h).await?;
    w.write_all(payload).await
}

/// Writes one control frame and flushes.
pub async fn send<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    kind: Kind,
    msg: &T,
) -> std::io::Result<()> {
    w.write_all(&encode_control(kind, msg)).await?;
    w.flush().await
}

/// A wire error as an I/O error (the stream carries nonsense).
pub fn invalid(e: WireError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

/// What the daemon first says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Its protocol version.
    pub version: u32,
    /// The allow-list entry the appliance's certificate matched.
    pub appliance: String,
}

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Upload to `path`.
    Stor,
    /// Download `path`.
    Retr,
    /// Run `command`.
    Exec,
}

/// Which file protocol the daemon speaks to the remote host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// SFTP, or legacy scp where the host has no SFTP subsystem.
    #[default]
    Auto,
    /// SFTP only.
    Sftp,
    /// The legacy scp protocol (`scp -t` / `scp -f` on the remote host).
    Scp,
}

impl Protocol {
    /// The name scripts and log lines use.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Auto => "auto",
            Protocol::Sftp => "sftp",
            Protocol::Scp => "scp",
        }
    }
}

/// One transfer or command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// What to do.
    pub op: Op,
    /// The remote user.
    pub user: String,
    /// The remote host (name or address).
    pub host: String,
    /// Its SSH port.
    pub port: u16,
    /// The remote file (STOR, RETR).
    #[serde(default)]
    pub path: String,
    /// The remote command (EXEC).
    #[serde(default)]
    pub command: String,
    /// The file protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// STOR: continue a partial upload the daemon finds under the temporary name.
    #[serde(default)]
    pub resume: bool,
    /// RETR: the offset to start at (the appliance holds that many bytes already).
    #[serde(default)]
    pub from: u64,
    /// STOR: the number of bytes that will be sent in all (from offset 0).
    #[serde(default)]
    pub size: u64,
    /// STOR: the new file's permission bits.
    #[serde(default = "default_mode")]
    pub mode: u32,
}

fn default_mode() -> u32 {
    0o644
}

/// The request is under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// STOR: where the upload continues (bytes already on the remote side); RETR: where
    /// the download starts.
    pub offset: u64,
    /// RETR: the remote file's size, when known.
    #[serde(default)]
    pub size: Option<u64>,
    /// The protocol actually used.
    pub protocol: Protocol,
}

/// The end of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// The bytes of the whole file (from offset 0).
    pub bytes: u64,
}

/// The request completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// Bytes moved (STOR: the remote file's size; RETR: bytes sent in this request).
    pub bytes: u64,
    /// EXEC: the command's exit status.
    #[serde(default)]
    pub exit: Option<i32>,
    /// EXEC: the signal that ended the command, if one did.
    #[serde(default)]
    pub signal: Option<String>,
}

/// What went wrong, for the appliance to report (and script authors to act on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The appliance's certificate, or the user@host asked for, is not on the allow-list.
    NotAllowed,
    /// The remote host's key is not in the daemon's known_hosts.
    HostKeyUnknown,
    /// The remote host's key differs from the one in known_hosts.
    HostKeyChanged,
    /// The remote host refused the daemon's public key (or offers only other methods).
    AuthRefused,
    /// The remote host could not be reached.
    Unreachable,
    /// The remote file does not exist.
    NoSuchFile,
    /// The remote host refused access to the file.
    PermissionDenied,
    /// The remote side failed otherwise.
    Remote,
    /// The request was malformed or made no sense.
    BadRequest,
    /// The appliance gave the upload up.
    Aborted,
    /// The daemon itself failed.
    Internal,
}

/// The request (or connection) failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The explanation, for a person.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_split() {
        let req = Request {
            op: Op::Stor,
            user: "u".into(),
            host: "h".into(),
            port: 22,
            path: "a b/c".into(),
            command: String::new(),
            protocol: Protocol::Scp,
            resume: true,
            from: 0,
            size: 9,
            mode: 0o600,
        };
        let mut bytes = encode_control(Kind::Request, &req);
        bytes.extend(encode(Kind::Data, b"123456789"));
        bytes.extend(encode_control(Kind::End, &End { bytes: 9 }));
        let (frames, used) = parse_frames(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].control::<Request>().unwrap(), req);
        assert_eq!(frames[1].payload, b"123456789");
        assert_eq!(frames[2].control::<End>().unwrap().bytes, 9);
        // A partial frame waits for the rest.
        let (frames, used) = parse_frames(&bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(frames.len(), 2);
        assert!(used < bytes.len());
    }

    #[test]
    fn bad_frames_are_refused() {
        assert_eq!(
            parse_frames(&[0x7f, 0, 0, 0, 0]).unwrap_err(),
            WireError::UnknownKind(0x7f)
        );
        let huge = (MAX_PAYLOAD as u32 + 1).to_be_bytes();
        assert!(matches!(
            parse_frames(&[4, huge[0], huge[1], huge[2], huge[3]]),
            Err(WireError::TooLong { .. })
        ));
        // Control frames have a smaller limit.
        let big = (MAX_CONTROL as u32 + 1).to_be_bytes();
        assert!(parse_frames(&[2, big[0], big[1], big[2], big[3]]).is_err());
        let f = Frame {
            kind: Kind::Request,
            payload: b"{\"op\":\"rm\"}".to_vec(),
        };
        assert!(matches!(
            f.control::<Request>(),
            Err(WireError::BadControl { .. })
        ));
    }

    #[test]
    fn reading_over_a_stream() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut a, mut b) = tokio::io::duplex(64);
            let w = async move {
                write_frame(&mut a, Kind::Data, &[7u8; 1000]).await.unwrap();
                send(
                    &mut a,
                    Kind::Done,
                    &Done {
                        bytes: 1,
                        exit: Some(0),
                        signal: None,
                    },
                )
                .await
                .unwrap();
            };
            let r = async {
                let f = read_frame(&mut b).await.unwrap().unwrap();
                assert_eq!(f.payload.len(), 1000);
                let f = read_frame(&mut b).await.unwrap().unwrap();
                assert_eq!(f.control::<Done>().unwrap().exit, Some(0));
                assert!(read_frame(&mut b).await.unwrap().is_none());
            };
            tokio::join!(w, r);
        });
    }
}
