//! The request a client sends (sans-IO): the standard-error port field, then user name,
//! password and command, each ended by a NUL byte, with the protocol's limits.

use std::fmt;
use std::net::SocketAddr;

use zeroize::Zeroizing;

use crate::status::ExitMarker;
use crate::Error;

/// The longest user name, in bytes, that rexecd(8) accepts. Debian's in.rexecd takes one
/// byte less (its buffer holds the NUL too) and answers `username too long`.
pub const MAX_USER: usize = 16;

/// The longest password, in bytes, that rexecd(8) accepts; Debian's in.rexecd takes one
/// byte less and answers `password too long`.
pub const MAX_PASSWORD: usize = 16;

/// The longest command, in bytes. The server hands the command to the user's shell as one
/// argument, and Linux caps one argument at 128 KiB; this leaves room for the exit-status
/// wrapper.
pub const MAX_COMMAND: usize = 64 * 1024;

/// A user name and its password, checked against the protocol's limits. `Debug` never
/// shows the password.
#[derive(Clone)]
pub struct Credentials {
    user: String,
    password: Zeroizing<String>,
}

impl Credentials {
    /// Checks `user` (1 to [`MAX_USER`] bytes, no control characters) and `password` (at
    /// most [`MAX_PASSWORD`] bytes, no NUL).
    pub fn new(user: impl Into<String>, password: Zeroizing<String>) -> Result<Self, Error> {
        let user = user.into();
        if user.is_empty() || user.len() > MAX_USER || user.chars().any(char::is_control) {
            return Err(Error::BadUser {
                len: user.len(),
                max: MAX_USER,
            });
        }
        if password.len() > MAX_PASSWORD || password.as_bytes().contains(&0) {
            return Err(Error::BadPassword { max: MAX_PASSWORD });
        }
        Ok(Credentials { user, password })
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One command to run: where, as whom, and what.
#[derive(Debug, Clone)]
pub struct Job {
    /// The server's address (port 512 normally).
    pub server: SocketAddr,
    /// Who to run it as.
    pub credentials: Credentials,
    command: String,
}

impl Job {
    /// Checks `command` (1 to [`MAX_COMMAND`] bytes, no NUL) and builds the job. The command
    /// is shell text, run by the user's login shell on the server.
    pub fn new(
        server: SocketAddr,
        credentials: Credentials,
        command: impl Into<String>,
    ) -> Result<Self, Error> {
        let command = command.into();
        check_command(&command)?;
        Ok(Job {
            server,
            credentials,
            command,
        })
    }

    /// The command as given (without the exit-status wrapper).
    pub fn command(&self) -> &str {
        &self.command
    }
}

fn check_command(command: &str) -> Result<(), Error> {
    if command.trim().is_empty() {
        return Err(Error::BadCommand { why: "is empty" });
    }
    if command.len() > MAX_COMMAND {
        return Err(Error::BadCommand {
            why: "is longer than 64 KiB",
        });
    }
    if command.as_bytes().contains(&0) {
        return Err(Error::BadCommand {
            why: "contains a NUL byte",
        });
    }
    Ok(())
}

/// The first field: the port the server connects back to for standard error, in decimal,
/// then NUL; a lone NUL when there is no such connection.
pub fn port_field(port: Option<u16>) -> Vec<u8> {
    let mut v = port.map(|p| p.to_string().into_bytes()).unwrap_or_default();
    v.push(0);
    v
}

/// The rest of the request: user NUL password NUL command NUL, the command wrapped by
/// `marker` so the exit status comes back. Wiped when dropped: it holds the password.
pub fn login_fields(job: &Job, marker: &ExitMarker) -> Zeroizing<Vec<u8>> {
    let wrapped = marker.wrap(&job.command);
    let c = &job.credentials;
    let mut v = Zeroizing::new(Vec::with_capacity(
        c.user.len() + c.password.len() + wrapped.len() + 3,
    ));
    for field in [c.user.as_bytes(), c.password.as_bytes(), wrapped.as_bytes()] {
        v.extend_from_slice(field);
        v.push(0);
    }
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.to_string())
    }

    fn server() -> SocketAddr {
        "192.0.2.1:512".parse().unwrap()
    }

    #[test]
    fn port_field_is_decimal_then_nul() {
        assert_eq!(port_field(Some(49153)), b"49153\0");
        assert_eq!(port_field(Some(7)), b"7\0");
        assert_eq!(port_field(None), b"\0");
    }

    #[test]
    fn login_fields_are_nul_terminated_in_order() {
        let c = Credentials::new("alice", pw("s3cret")).unwrap();
        let job = Job::new(server(), c, "uname -a").unwrap();
        let m = ExitMarker::from_token(0x1234);
        let v = login_fields(&job, &m);
        let parts: Vec<&[u8]> = v.split(|b| *b == 0).collect();
        assert_eq!(parts.len(), 4, "three fields and the empty rest");
        assert_eq!(parts[0], b"alice");
        assert_eq!(parts[1], b"s3cret");
        assert_eq!(parts[2], m.wrap("uname -a").as_bytes());
        assert!(parts[3].is_empty());
    }

    #[test]
    fn limits_are_enforced() {
        assert!(Credentials::new("u".repeat(MAX_USER), pw("p")).is_ok());
        assert!(matches!(
            Credentials::new("u".repeat(MAX_USER + 1), pw("p")),
            Err(Error::BadUser { len: 17, max: 16 })
        ));
        assert!(Credentials::new("", pw("p")).is_err());
        assert!(Credentials::new("a\nb", pw("p")).is_err());
        assert!(Credentials::new("a\0b", pw("p")).is_err());
        assert!(Credentials::new("u", pw(&"p".repeat(MAX_PASSWORD))).is_ok());
        assert!(Credentials::new("u", pw("")).is_ok());
        assert!(matches!(
            Credentials::new("u", pw(&"p".repeat(MAX_PASSWORD + 1))),
            Err(Error::BadPassword { .. })
        ));
        assert!(Credentials::new("u", pw("a\0b")).is_err());
        let c = Credentials::new("u", pw("p")).unwrap();
        assert!(Job::new(server(), c.clone(), "x".repeat(MAX_COMMAND)).is_ok());
        assert!(Job::new(server(), c.clone(), "x".repeat(MAX_COMMAND + 1)).is_err());
        assert!(Job::new(server(), c.clone(), " \n").is_err());
        assert!(Job::new(server(), c, "echo a\0b").is_err());
    }

    #[test]
    fn the_password_stays_out_of_debug_and_errors() {
        let c = Credentials::new("bob", pw("hunter2")).unwrap();
        let shown = format!("{c:?}");
        assert!(
            shown.contains("bob") && !shown.contains("hunter2"),
            "{shown}"
        );
        let e = Credentials::new("bob", pw("hunter2-far-too-long")).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let job = Job::new(server(), c, "true").unwrap();
        assert!(!format!("{job:?}").contains("hunter2"));
    }
}
