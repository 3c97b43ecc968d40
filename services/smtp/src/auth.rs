//! SMTP AUTH (RFC 4954): the PLAIN (RFC 4616) and LOGIN mechanisms, the choice between
//! them from what the server's EHLO offers, and credentials that never show in logs.

use std::fmt;

use zeroize::Zeroizing;

use crate::base64;

/// Which mechanism to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AuthChoice {
    /// PLAIN if the server offers it, else LOGIN.
    #[default]
    Auto,
    /// AUTH PLAIN.
    Plain,
    /// AUTH LOGIN.
    Login,
    /// No authentication.
    None,
}

/// A mechanism in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// AUTH PLAIN.
    Plain,
    /// AUTH LOGIN.
    Login,
}

impl Mechanism {
    /// The name in the EHLO reply and the AUTH command.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// A user name and password. `Debug` shows the user only; the password is wiped when
/// dropped.
#[derive(Clone)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: Zeroizing<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Picks the mechanism for `choice` among those the server offers (upper-case names);
/// `None` when the server offers none that fits.
pub fn choose(choice: AuthChoice, offered: &[String]) -> Option<Mechanism> {
    let has = |m: Mechanism| offered.iter().any(|o| o == m.name());
    match choice {
        AuthChoice::Plain => has(Mechanism::Plain).then_some(Mechanism::Plain),
        AuthChoice::Login => has(Mechanism::Login).then_some(Mechanism::Login),
        AuthChoice::Auto => [Mechanism::Plain, Mechanism::Login]
            .into_iter()
            .find(|&m| has(m)),
        AuthChoice::None => None,
    }
}

/// The PLAIN response: base64 of NUL, user, NUL, password (no authorization identity).
pub fn plain_response(c: &Credentials) -> Zeroizing<String> {
    let mut raw = Zeroizing::new(Vec::with_capacity(c.user.len() + c.password.len() + 2));
    raw.push(0);
    raw.extend_from_slice(c.user.as_bytes());
    raw.push(0);
    raw.extend_from_slice(c.password.as_bytes());
    Zeroizing::new(base64::encode(&raw))
}

/// The LOGIN responses: base64 of the user name, then of the password.
pub fn login_responses(c: &Credentials) -> (String, Zeroizing<String>) {
    (
        base64::encode(c.user.as_bytes()),
        Zeroizing::new(base64::encode(c.password.as_bytes())),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            user: "tim".into(),
            password: Zeroizing::new("tanstaaftanstaaf".into()),
        }
    }

    #[test]
    fn plain_encoding() {
        // RFC 4954 §4's example.
        assert_eq!(
            plain_response(&creds()).as_str(),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
    }

    #[test]
    fn login_encoding() {
        let (u, p) = login_responses(&creds());
        assert_eq!(u, "dGlt");
        assert_eq!(base64::decode(p.as_bytes()).unwrap(), b"tanstaaftanstaaf");
    }

    #[test]
    fn the_password_is_not_in_debug() {
        let s = format!("{:?}", creds());
        assert!(s.contains("tim") && !s.contains("tanstaaf"), "{s}");
    }

    #[test]
    fn choice() {
        let both = vec!["LOGIN".to_string(), "PLAIN".to_string()];
        let login = vec!["LOGIN".to_string()];
        assert_eq!(choose(AuthChoice::Auto, &both), Some(Mechanism::Plain));
        assert_eq!(choose(AuthChoice::Auto, &login), Some(Mechanism::Login));
        assert_eq!(choose(AuthChoice::Plain, &login), None);
        assert_eq!(choose(AuthChoice::Login, &both), Some(Mechanism::Login));
        assert_eq!(choose(AuthChoice::Auto, &[]), None);
    }
}
