//! Mail addresses as sixstack's users give them (`anna@example.org` or
//! `Anna Example <anna@example.org>`), checked before anything is sent.

use std::fmt;

/// Why an address is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Not of the form `local@domain`.
    #[error("{0:?} is not a mail address (local@domain)")]
    Malformed(String),
    /// A character that has no place in an SMTP path (space, control, `<>`, ...).
    #[error("{0:?} has characters that are not allowed in a mail address")]
    BadCharacter(String),
    /// A non-ASCII address (SMTPUTF8 is not used by sixstack).
    #[error("{0:?} is not ASCII; sixstack sends to ASCII addresses only")]
    NotAscii(String),
    /// Longer than RFC 5321 allows (64 for the local part, 254 in all).
    #[error("{0:?} is too long")]
    TooLong(String),
}

/// A mailbox: an address and an optional display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name (any Unicode; encoded in headers as needed).
    pub name: Option<String>,
    /// The address, `local@domain`.
    pub address: String,
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// Checks a bare address.
pub fn check_address(a: &str) -> Result<(), AddressError> {
    let err = |f: fn(String) -> AddressError| Err(f(a.chars().take(300).collect()));
    if !a.is_ascii() {
        return err(AddressError::NotAscii);
    }
    if a.len() > 254 {
        return err(AddressError::TooLong);
    }
    let Some((local, domain)) = a.rsplit_once('@') else {
        return err(AddressError::Malformed);
    };
    if local.is_empty() || domain.is_empty() {
        return err(AddressError::Malformed);
    }
    if local.len() > 64 {
        return err(AddressError::TooLong);
    }
    let local_ok = local
        .split('.')
        .all(|p| !p.is_empty() && p.chars().all(is_atext));
    let domain_ok = if let Some(lit) = domain.strip_prefix('[') {
        lit.strip_suffix(']').is_some_and(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".:-".contains(c))
        })
    } else {
        domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    };
    if !local_ok || !domain_ok {
        return err(AddressError::BadCharacter);
    }
    Ok(())
}

impl Mailbox {
    /// A mailbox without a display name.
    pub fn new(address: &str) -> Result<Mailbox, AddressError> {
        check_address(address)?;
        Ok(Mailbox {
            name: None,
            address: address.to_string(),
        })
    }

    /// Parses `addr`, `<addr>` or `Name <addr>` (the name may be in double quotes).
    pub fn parse(text: &str) -> Result<Mailbox, AddressError> {
        let text = text.trim();
        let Some(open) = text.rfind('<') else {
            return Mailbox::new(text);
        };
        let Some(addr) = text[open + 1..].strip_suffix('>') else {
            return Err(AddressError::Malformed(text.chars().take(300).collect()));
        };
        let mut mb = Mailbox::new(addr)?;
        let name = text[..open].trim();
        let name = name
            .strip_prefix('"')
            .and_then(|n| n.strip_suffix('"'))
            .unwrap_or(name);
        if name.chars().any(char::is_control) {
            return Err(AddressError::BadCharacter(text.chars().take(300).collect()));
        }
        if !name.is_empty() {
            mb.name = Some(name.to_string());
        }
        Ok(mb)
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n} <{}>", self.address),
            None => f.write_str(&self.address),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn good_addresses() {
        for a in [
            "anna@example.org",
            "a.b+c@x.y-z.example",
            "root@[192.0.2.1]",
            "o'hara@ex.org",
        ] {
            assert_eq!(Mailbox::parse(a).unwrap().address, a);
        }
        let m = Mailbox::parse("  \"Anna Émile\" <anna@example.org> ").unwrap();
        assert_eq!(m.name.as_deref(), Some("Anna Émile"));
        assert_eq!(m.address, "anna@example.org");
        let m = Mailbox::parse("<anna@example.org>").unwrap();
        assert_eq!(m.name, None);
    }

    #[test]
    fn bad_addresses() {
        for a in [
            "",
            "anna",
            "@x.org",
            "anna@",
            "an na@x.org",
            "anna@x..org",
            "anna@-x.org",
            "a>b@x.org",
            "anna@x.org\r\nRCPT TO:<b@y>",
            ".anna@x.org",
            "Anna <anna@x.org",
            "An\nna <anna@x.org>",
        ] {
            assert!(Mailbox::parse(a).is_err(), "{a:?}");
        }
        assert!(matches!(
            Mailbox::parse("jörg@x.org"),
            Err(AddressError::NotAscii(_))
        ));
        assert!(matches!(
            Mailbox::parse(&format!("{}@x.org", "a".repeat(65))),
            Err(AddressError::TooLong(_))
        ));
    }
}
