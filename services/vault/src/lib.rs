//! sixstack's password vault: one encrypted file of named secrets that every batch client
//! reads its passwords from.
//!
//! A vault is opened with a [`KeySource`] (a passphrase stretched with Argon2id, or a
//! machine key file of 32 random bytes) and then read with [`Vault::get`] and
//! [`Vault::list`], or changed with [`Vault::set`], [`Vault::rm`], [`Vault::rekey`] and
//! [`Vault::import_netrc`]. Every change is a read-modify-write under an exclusive lock on
//! `<vault>.lock`, written atomically, so concurrent writers never lose an entry.
//!
//! Each secret is sealed with XChaCha20-Poly1305 (its name as associated data) and the
//! whole file carries a keyed BLAKE2b tag, so any changed, removed or reordered byte is
//! refused ([`VaultError::Tampered`]); a key check value in the header tells a wrong
//! passphrase or key file ([`VaultError::WrongKey`]) apart from a damaged file. The file
//! layout is documented at the top of `src/format.rs`.
//!
//! Secrets come back as [`Zeroizing<String>`](zeroize::Zeroizing), keys are wiped when
//! dropped, and no `Debug` or `Display` output of this crate ever shows a secret.

#![forbid(unsafe_code)]

mod atomic;
mod error;
mod format;
mod key;
mod name;
mod netrc;
mod seal;
#[cfg(test)]
mod test_support;
mod vault;

pub use error::{KeyFileProblem, VaultError};
pub use key::{KdfParams, KeyKind, KeySource, KEY_FILE_LEN};
pub use name::{validate_name, MAX_NAME_LEN, MAX_SECRET_LEN};
pub use vault::{lock_path, Vault};
pub use zeroize::Zeroizing;
