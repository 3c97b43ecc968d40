//! Sealing one entry's secret with XChaCha20-Poly1305, its name as associated data.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::error::VaultError;
use crate::key::random_array;

/// Length of an entry's random nonce.
pub(crate) const NONCE_LEN: usize = 24;

/// Length of the Poly1305 tag at the end of every sealed secret.
pub(crate) const TAG_LEN: usize = 16;

/// One sealed secret: its nonce and ciphertext (with the tag at the end).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SealedEntry {
    /// The random nonce it was sealed with.
    pub(crate) nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the tag.
    pub(crate) ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedEntry({} bytes)", self.ciphertext.len())
    }
}

/// Seals `secret` for the entry `name` under `key`, with a fresh random nonce.
pub(crate) fn seal(key: &[u8; 32], name: &str, secret: &[u8]) -> Result<SealedEntry, VaultError> {
    let nonce: [u8; NONCE_LEN] = random_array()?;
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    // Room for the tag up front, so the plaintext copy is never left behind by a realloc.
    let mut buffer = Zeroizing::new(Vec::with_capacity(secret.len() + TAG_LEN));
    buffer.extend_from_slice(secret);
    cipher
        .encrypt_in_place(XNonce::from_slice(&nonce), name.as_bytes(), &mut *buffer)
        .map_err(|_| VaultError::Crypto("sealing a secret"))?;
    Ok(SealedEntry {
        nonce,
        ciphertext: std::mem::take(&mut *buffer),
    })
}

/// Opens the entry `name`; `None` when its seal does not check out.
pub(crate) fn open(key: &[u8; 32], name: &str, sealed: &SealedEntry) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let mut buffer = Zeroizing::new(sealed.ciphertext.clone());
    cipher
        .decrypt_in_place(
            XNonce::from_slice(&sealed.nonce),
            name.as_bytes(),
            &mut *buffer,
        )
        .ok()?;
    Some(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_name_binding() {
        let key = [7u8; 32];
        let sealed = seal(&key, "ftp.example", b"hunter2").ok();
        let Some(sealed) = sealed else {
            panic!("sealing failed");
        };
        assert_eq!(
            open(&key, "ftp.example", &sealed)
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"hunter2"[..])
        );
        assert!(open(&key, "ftp.other", &sealed).is_none());
        assert!(open(&[8u8; 32], "ftp.example", &sealed).is_none());
        let mut bent = sealed.clone();
        bent.ciphertext[0] ^= 1;
        assert!(open(&key, "ftp.example", &bent).is_none());
    }
}
