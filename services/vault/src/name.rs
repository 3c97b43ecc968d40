//! Entry names and secret sizes: what the vault accepts.

use crate::error::VaultError;

/// The longest entry name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The largest secret one entry holds, in bytes.
pub const MAX_SECRET_LEN: usize = 64 * 1024;

/// Why `name` is not a valid entry name, if it is not.
///
/// A name is 1 to [`MAX_NAME_LEN`] bytes of printable ASCII without whitespace, such as
/// `ftp.example` or `smtp:reports@mail`.
pub(crate) fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 255 bytes")
    } else if !name.bytes().all(|b| b.is_ascii_graphic()) {
        Some("only printable ASCII without spaces is allowed")
    } else {
        None
    }
}

/// Checks that `name` is a valid entry name: 1 to [`MAX_NAME_LEN`] bytes of printable
/// ASCII without whitespace (`ftp.example`, `smtp:reports@mail`).
///
/// # Errors
///
/// [`VaultError::BadName`] saying what is wrong.
pub fn validate_name(name: &str) -> Result<(), VaultError> {
    match name_problem(name) {
        Some(reason) => Err(VaultError::bad_name(name, reason)),
        None => Ok(()),
    }
}

/// Checks that a secret for `name` fits in an entry.
pub(crate) fn validate_secret(name: &str, secret: &str) -> Result<(), VaultError> {
    if secret.len() > MAX_SECRET_LEN {
        return Err(VaultError::SecretTooLarge {
            name: name.to_owned(),
            len: secret.len(),
            max: MAX_SECRET_LEN,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_names() {
        for name in [
            "ftp.example",
            "smtp:reports@mail",
            "a",
            &"x".repeat(255),
            "~!#$%^&*()",
        ] {
            assert!(name_problem(name).is_none(), "{name}");
        }
    }

    #[test]
    fn refuses_bad_names() {
        for name in [
            "",
            "a b",
            "tab\there",
            "new\nline",
            "é",
            "nul\0",
            &"x".repeat(256),
            "del\x7f",
        ] {
            assert!(validate_name(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn bad_name_error_is_cut_short() {
        let long = format!(" {}", "y".repeat(1000));
        let text = validate_name(&long)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(text.len() < 200, "{text}");
    }

    #[test]
    fn secret_size_limit() {
        assert!(validate_secret("n", &"s".repeat(MAX_SECRET_LEN)).is_ok());
        assert!(matches!(
            validate_secret("n", &"s".repeat(MAX_SECRET_LEN + 1)),
            Err(VaultError::SecretTooLarge { .. })
        ));
    }
}
