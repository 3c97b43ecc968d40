//! The explicit limits of sixstack's mail client: what it accepts from a server and what it
//! agrees to send.

/// The longest reply line accepted from a server, CR LF included (RFC 5321 allows 512;
/// sixstack is lenient for servers with long texts).
pub const MAX_REPLY_LINE: usize = 2048;

/// The most lines one reply may have (an EHLO reply lists one extension a line).
pub const MAX_REPLY_LINES: usize = 128;

/// The largest message sixstack builds unless the request says otherwise.
pub const DEFAULT_MAX_MESSAGE: usize = 32 << 20;

/// The most recipients (To, Cc and Bcc together) of one message (RFC 5321 §4.5.3.1.8 asks
/// servers to take at least 100).
pub const MAX_RECIPIENTS: usize = 100;

/// The most attachments of one message.
pub const MAX_ATTACHMENTS: usize = 64;

/// The longest subject, in bytes, before encoding.
pub const MAX_SUBJECT: usize = 998;

/// How much of the message is written in one step, each under the data-block time-out.
pub const DATA_CHUNK: usize = 64 << 10;
