//! Reading one control message off the channel: a reply byte, or a reply byte and a
//! line bounded by [`MAX_LINE`], handed to the [`wire`](super::wire) parser.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use super::wire::{parse_message, Message, WireError, MAX_LINE};
use super::ScpError;

/// Reads one whole control message into `buf` (cleared first) and parses it.
pub(super) async fn read_message<'b, R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    buf: &'b mut Vec<u8>,
) -> Result<Message<'b>, ScpError> {
    buf.clear();
    let lead = r.read_u8().await?;
    buf.push(lead);
    if lead != 0 {
        let limit = u64::try_from(MAX_LINE - 1).unwrap_or(u64::MAX);
        (&mut *r).take(limit).read_until(b'\n', buf).await?;
        if buf.last() != Some(&b'\n') {
            if buf.len() >= MAX_LINE {
                return Err(WireError::LineTooLong.into());
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the channel closed inside an scp control line",
            )
            .into());
        }
    }
    match parse_message(buf)? {
        Some((m, _)) => Ok(m),
        None => Err(ScpError::Protocol("incomplete control message".into())),
    }
}

/// The error for a reply that is not a success: the remote's message, or a protocol
/// error showing what came instead.
pub(super) fn refusal(m: &Message<'_>, expected: &str) -> ScpError {
    match m {
        Message::Warning(t) | Message::Fatal(t) => {
            ScpError::Remote(String::from_utf8_lossy(t).trim_end().to_owned())
        }
        Message::Other(t) => ScpError::Protocol(format!(
            "expected {expected}, got the line {:?}",
            String::from_utf8_lossy(t)
        )),
        other => ScpError::Protocol(format!("expected {expected}, got {}", describe(other))),
    }
}

fn describe(m: &Message<'_>) -> &'static str {
    match m {
        Message::Ok => "a success reply",
        Message::Warning(_) => "a warning",
        Message::Fatal(_) => "a fatal error",
        Message::File(_) => "a file line",
        Message::Time { .. } => "a time line",
        Message::Directory(_) => "a directory line",
        Message::EndDirectory => "an end-of-directory line",
        Message::Other(_) => "an unknown line",
    }
}
