//! sixstack's remote execution client: the rexec protocol (TCP 512) with its separate
//! standard-error connection.
//!
//! A run ([`run`]) goes like this, over either of sixstack's transports:
//!
//! 1. connect to the server (port 512);
//! 2. listen on an ephemeral port of the connection's local address and send that port
//!    in decimal, then NUL (a lone NUL with [`Options::separate_stderr`] off); the server
//!    connects back to it from its own address (other connections are dropped);
//! 3. send the user name, password and command, each ended by NUL, and half-close the
//!    main connection: the command's standard input is empty;
//! 4. the server's first byte says 0, accepted, or 1, refused, followed by a message line
//!    ([`Error::Refused`]); Debian's in.rexecd closes without a byte when the login is
//!    wrong ([`Error::ClosedWithoutAnswer`]);
//! 5. standard output (main connection) and standard error (second connection) are
//!    relayed to the caller's sinks as they arrive, both at once.
//!
//! # The exit status
//!
//! The protocol does not carry the command's exit status, so sixstack sends the command
//! wrapped (see [`ExitMarker::wrap`]): run in a subshell, then followed by
//!
//! ```text
//! printf 'sixstack-rexec-status-%s%s %d\n' TOKEN-FIRST-HALF TOKEN-SECOND-HALF "$?"
//! ```
//!
//! TOKEN is 128 random bits in hex, new for every run. The status line
//! `sixstack-rexec-status-TOKEN N` + newline is taken out of standard output wherever it
//! appears (the command's output need not end with a newline) and N, 0 to 255, is the
//! exit status. Everything else, lines that look like status lines with another token
//! included, is relayed unchanged. No status line (the connection was cut, or a syntax
//! error in the command stopped the remote shell) is [`Error::ExitStatusUnknown`]; two are
//! [`Error::ExitStatusAmbiguous`]. The remote login shell must understand `( )`, `$?` and
//! `printf` (any POSIX shell).
//!
//! # Limits
//!
//! User name [`MAX_USER`] bytes, password [`MAX_PASSWORD`] bytes (rexecd(8)), command
//! [`MAX_COMMAND`] bytes, server error message [`MAX_ERROR_TEXT`] bytes. The password is
//! never logged nor put in an error; the request holding it is wiped after sending.

#![forbid(unsafe_code)]

mod answer;
pub mod cli;
mod client;
mod error;
mod relay;
mod request;
mod status;

#[cfg(test)]
mod client_tests;

pub use answer::{first_byte, Answer, ErrorText, MAX_ERROR_TEXT};
pub use client::{run, Options, Outcome};
pub use error::Error;
pub use request::{
    login_fields, port_field, Credentials, Job, MAX_COMMAND, MAX_PASSWORD, MAX_USER,
};
pub use status::{ExitMarker, StatusScanner};
