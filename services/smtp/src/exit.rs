//! The exit status of `sixstack mail send`, one per thing an operator does about it.

/// Sent to every recipient.
pub const OK: i32 = 0;
/// The request is unusable (bad address, option, file): fix the command.
pub const USAGE: i32 = 2;
/// The server cannot be reached (name, route, refused connection).
pub const CONNECT: i32 = 10;
/// The server did not answer in time.
pub const TIMEOUT: i32 = 11;
/// TLS failed: STARTTLS not offered or refused, certificate not trusted, handshake.
pub const TLS: i32 = 12;
/// Authentication was refused or no usable mechanism was offered.
pub const AUTH: i32 = 13;
/// The server refused the sender or the session.
pub const SENDER: i32 = 14;
/// Every recipient was refused; nothing was sent.
pub const ALL_REFUSED: i32 = 15;
/// Sent, but some recipients were refused.
pub const SOME_REFUSED: i32 = 16;
/// The server refused the message (content, size).
pub const MESSAGE: i32 = 17;
/// The server broke the protocol or the connection was lost.
pub const PROTOCOL: i32 = 18;
