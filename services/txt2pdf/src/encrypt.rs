//! AES-256 encryption (ISO 32000-2 standard security handler, V5/R6) through lopdf, and the
//! permission names the command line accepts.

use crate::error::Txt2PdfError;
use crate::options::{Encryption, Permissions};
use lopdf::encryption::crypt_filters::{Aes256CryptFilter, CryptFilter};
use lopdf::{Document, EncryptionState, EncryptionVersion};
use rand::RngCore;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Names accepted by [`parse_permissions`].
pub const PERMISSION_NAMES: &str =
    "all, none, print, print-high, modify, copy, annotate, forms, accessibility, assemble";

/// Parses a comma-separated permission list such as `print,copy` (`all` and `none` too).
pub fn parse_permissions(list: &str) -> Result<Permissions, Txt2PdfError> {
    let mut p = Permissions::NONE;
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name.to_ascii_lowercase().as_str() {
            "all" => p = Permissions::ALL,
            "none" => p = Permissions::NONE,
            "print" => p.print = true,
            "print-high" => {
                p.print = true;
                p.print_high_quality = true;
            }
            "modify" => p.modify = true,
            "copy" => p.copy = true,
            "annotate" => p.annotate = true,
            "forms" => p.fill_forms = true,
            "accessibility" => p.accessibility = true,
            "assemble" => p.assemble = true,
            _ => {
                return Err(Txt2PdfError::UnknownName {
                    what: "permission",
                    value: name.to_string(),
                    expected: PERMISSION_NAMES,
                })
            }
        }
    }
    Ok(p)
}

fn lopdf_permissions(p: &Permissions) -> lopdf::Permissions {
    use lopdf::Permissions as L;
    let mut out = L::empty();
    for (on, flag) in [
        (p.print, L::PRINTABLE),
        (
            p.print && p.print_high_quality,
            L::PRINTABLE_IN_HIGH_QUALITY,
        ),
        (p.modify, L::MODIFIABLE),
        (p.copy, L::COPYABLE),
        (p.annotate, L::ANNOTABLE),
        (p.fill_forms, L::FILLABLE),
        (p.accessibility, L::COPYABLE_FOR_ACCESSIBILITY),
        (p.assemble, L::ASSEMBLABLE),
    ] {
        if on {
            out |= flag;
        }
    }
    out
}

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], Txt2PdfError> {
    let mut b = [0u8; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut b)
        .map_err(|e| Txt2PdfError::Random(e.to_string()))?;
    Ok(b)
}

fn check_password(pw: &str) -> Result<(), Txt2PdfError> {
    if pw.len() > 127 {
        return Err(Txt2PdfError::InvalidPassword(
            "longer than 127 bytes".into(),
        ));
    }
    Ok(())
}

/// Checks the passwords before any work is done.
pub fn validate(enc: &Encryption) -> Result<(), Txt2PdfError> {
    check_password(&enc.user_password)?;
    enc.owner_password.as_deref().map_or(Ok(()), check_password)
}

/// Encrypts every string and stream of `doc` with a fresh random 256-bit file key and adds the
/// /Encrypt dictionary. lopdf computes /U, /UE, /O, /OE and /Perms (Algorithms 8, 9, 10, 2.B).
pub fn encrypt(doc: &mut Document, enc: &Encryption) -> Result<(), Txt2PdfError> {
    validate(enc)?;
    let key: [u8; 32] = random_bytes()?;
    let owner = match &enc.owner_password {
        Some(o) => o.clone(),
        None => random_bytes::<16>()?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    };
    let filter: Arc<dyn CryptFilter> = Arc::new(Aes256CryptFilter);
    let version = EncryptionVersion::V5 {
        encrypt_metadata: true,
        crypt_filters: BTreeMap::from([(b"StdCF".to_vec(), filter)]),
        file_encryption_key: &key,
        stream_filter: b"StdCF".to_vec(),
        string_filter: b"StdCF".to_vec(),
        owner_password: &owner,
        user_password: &enc.user_password,
        permissions: lopdf_permissions(&enc.permissions),
    };
    let state = EncryptionState::try_from(version)
        .map_err(|e| Txt2PdfError::InvalidPassword(e.to_string()))?;
    doc.encrypt(&state)?;
    complete_encrypt_dict(doc)
}

/// Adds the key lengths lopdf leaves out (/Length 256, and 32 bytes on the crypt filter):
/// without them some readers (poppler) assume a 40-bit key and decrypt garbage.
fn complete_encrypt_dict(doc: &mut Document) -> Result<(), Txt2PdfError> {
    let id = doc
        .trailer
        .get(b"Encrypt")
        .and_then(lopdf::Object::as_reference)?;
    let dict = doc.get_dictionary_mut(id)?;
    dict.set("Length", 256);
    if let Ok(filter) = dict.get_mut(b"CF").and_then(lopdf::Object::as_dict_mut) {
        if let Ok(std_cf) = filter
            .get_mut(b"StdCF")
            .and_then(lopdf::Object::as_dict_mut)
        {
            std_cf.set("Length", 32);
            std_cf.set("AuthEvent", "DocOpen");
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn permission_lists() {
        let p = parse_permissions("print, copy").unwrap();
        assert!(p.print && p.copy && !p.modify && !p.print_high_quality);
        assert_eq!(parse_permissions("all").unwrap(), Permissions::ALL);
        assert_eq!(parse_permissions("").unwrap(), Permissions::NONE);
        assert!(parse_permissions("print,fly").is_err());
        let l = lopdf_permissions(&parse_permissions("print-high,assemble").unwrap());
        assert!(l.contains(lopdf::Permissions::PRINTABLE_IN_HIGH_QUALITY));
        assert!(!l.contains(lopdf::Permissions::COPYABLE));
    }

    #[test]
    fn rejects_long_password() {
        let enc = Encryption {
            user_password: "x".repeat(128),
            owner_password: None,
            permissions: Permissions::ALL,
        };
        assert!(validate(&enc).is_err());
    }
}
