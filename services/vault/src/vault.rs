//! The vault itself: opening, reading and changing one encrypted file of named secrets.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::atomic::{write_atomically, WriteLock};
use crate::error::VaultError;
use crate::format::{decode, encode, Contents, Entries};
use crate::key::{create_key_file_if_missing, Kdf, KdfParams, KeyKind, KeySource, MasterKey};
use crate::name::{validate_name, validate_secret};
use crate::netrc;
use crate::seal;

/// An open vault: a snapshot of one vault file plus the key that opened it.
///
/// Reads ([`get`](Self::get), [`list`](Self::list)) use the snapshot taken when the vault
/// was opened or last changed; [`reload`](Self::reload) refreshes it. Every change
/// ([`set`](Self::set), [`rm`](Self::rm), [`rekey`](Self::rekey),
/// [`import_netrc`](Self::import_netrc)) takes the exclusive lock on
/// [`lock_path`]`(path)`, re-reads the file, applies the change and replaces the file
/// atomically, so changes made meanwhile by other threads or processes are kept.
///
/// `Debug` shows the path, key kind and entry count, never a key or secret.
pub struct Vault {
    path: PathBuf,
    source: KeySource,
    contents: Contents,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.path)
            .field("key", &self.contents.kdf.kind())
            .field("entries", &self.contents.entries.len())
            .finish_non_exhaustive()
    }
}

/// The lock file that serialises writers of the vault at `vault`: `<vault>.lock`.
pub fn lock_path(vault: &Path) -> PathBuf {
    let mut name = OsString::from(vault.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

/// Refuses an empty passphrase for a new key.
fn check_new_source(source: &KeySource) -> Result<(), VaultError> {
    match source {
        KeySource::Passphrase(p) if p.is_empty() => Err(VaultError::EmptyPassphrase),
        KeySource::Passphrase(_) => Ok(()),
        KeySource::KeyFile(path) => create_key_file_if_missing(path).map(drop),
    }
}

/// Reads the vault file's bytes.
fn read_file(path: &Path) -> Result<Vec<u8>, VaultError> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            VaultError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            VaultError::io(path, "reading the vault", e)
        }
    })
}

impl Vault {
    /// Creates a new, empty vault at `path`, locked with `source`; passphrases are
    /// stretched with the default [`KdfParams`] (64 MiB, 3 passes).
    ///
    /// A [`KeySource::KeyFile`] that does not exist is created (32 random bytes, mode
    /// 0600); an existing one is used if it passes the key file checks.
    ///
    /// # Errors
    ///
    /// [`VaultError::AlreadyExists`] when `path` exists; [`VaultError::EmptyPassphrase`],
    /// [`VaultError::BadKeyFile`], or [`VaultError::Io`] when the directory is missing or
    /// not writable.
    pub fn init(path: impl AsRef<Path>, source: &KeySource) -> Result<Self, VaultError> {
        Self::init_with(path, source, KdfParams::default())
    }

    /// Like [`init`](Self::init), with explicit Argon2id parameters (tests use cheap ones).
    ///
    /// # Errors
    ///
    /// As for [`init`](Self::init).
    pub fn init_with(
        path: impl AsRef<Path>,
        source: &KeySource,
        params: KdfParams,
    ) -> Result<Self, VaultError> {
        let path = path.as_ref();
        if let KeySource::Passphrase(p) = source {
            if p.is_empty() {
                return Err(VaultError::EmptyPassphrase);
            }
        }
        let _lock = WriteLock::acquire(lock_path(path))?;
        match std::fs::symlink_metadata(path) {
            Ok(_) => {
                return Err(VaultError::AlreadyExists {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(VaultError::io(path, "checking for an existing vault", e)),
        }
        check_new_source(source)?;
        let kdf = Kdf::fresh(source, params)?;
        let key = MasterKey::derive(source, &kdf, path)?;
        let contents = Contents {
            kdf,
            key,
            entries: Entries::new(),
        };
        write_atomically(path, &encode(&contents)?)?;
        Ok(Self {
            path: path.to_path_buf(),
            source: source.clone(),
            contents,
        })
    }

    /// Opens the vault at `path` with `source`.
    ///
    /// # Errors
    ///
    /// [`VaultError::Missing`], [`VaultError::NotAVault`],
    /// [`VaultError::UnsupportedVersion`], [`VaultError::KeyKindMismatch`],
    /// [`VaultError::WrongKey`], [`VaultError::Tampered`], [`VaultError::BadKeyFile`] or
    /// [`VaultError::Io`].
    pub fn open(path: impl AsRef<Path>, source: &KeySource) -> Result<Self, VaultError> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        let contents = decode(path, &bytes, |kdf| MasterKey::derive(source, kdf, path))?;
        Ok(Self {
            path: path.to_path_buf(),
            source: source.clone(),
            contents,
        })
    }

    /// Re-reads the vault file, picking up changes made by others since it was opened.
    ///
    /// # Errors
    ///
    /// As for [`open`](Self::open); the snapshot is kept on error.
    pub fn reload(&mut self) -> Result<(), VaultError> {
        self.contents = self.read_current()?;
        Ok(())
    }

    /// The vault file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kind of key the vault is locked with.
    pub fn key_kind(&self) -> KeyKind {
        self.contents.kdf.kind()
    }

    /// The Argon2id parameters of a passphrase vault; `None` for a key file vault.
    pub fn kdf_params(&self) -> Option<KdfParams> {
        match self.contents.kdf {
            Kdf::Argon2id { params, .. } => Some(params),
            Kdf::KeyFile { .. } => None,
        }
    }

    /// The secret stored under `name`, wiped from memory when dropped.
    ///
    /// # Errors
    ///
    /// [`VaultError::NotFound`] naming the entry; [`VaultError::Tampered`] if its seal does
    /// not check out.
    pub fn get(&self, name: &str) -> Result<Zeroizing<String>, VaultError> {
        let sealed = self
            .contents
            .entries
            .get(name)
            .ok_or_else(|| VaultError::NotFound {
                name: name.chars().take(300).collect(),
            })?;
        let tampered = || VaultError::Tampered {
            path: self.path.clone(),
        };
        let entry_key = self.contents.key.entry_key()?;
        let mut plain = seal::open(&entry_key, name, sealed).ok_or_else(tampered)?;
        match String::from_utf8(std::mem::take(&mut *plain)) {
            Ok(secret) => Ok(Zeroizing::new(secret)),
            Err(e) => {
                drop(Zeroizing::new(e.into_bytes()));
                Err(tampered())
            }
        }
    }

    /// Whether an entry named `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.contents.entries.contains_key(name)
    }

    /// The entry names, sorted.
    pub fn list(&self) -> Vec<String> {
        self.contents.entries.keys().cloned().collect()
    }

    /// How many entries the vault holds.
    pub fn len(&self) -> usize {
        self.contents.entries.len()
    }

    /// Whether the vault holds no entry.
    pub fn is_empty(&self) -> bool {
        self.contents.entries.is_empty()
    }

    /// Stores `secret` under `name`, replacing any earlier secret of that name.
    ///
    /// # Errors
    ///
    /// [`VaultError::BadName`], [`VaultError::SecretTooLarge`], or any error of
    /// [`open`](Self::open) while re-reading the file under the lock, or
    /// [`VaultError::Io`] while writing it.
    pub fn set(&mut self, name: &str, secret: &str) -> Result<(), VaultError> {
        validate_name(name)?;
        validate_secret(name, secret)?;
        self.change(|contents| {
            let entry_key = contents.key.entry_key()?;
            let sealed = seal::seal(&entry_key, name, secret.as_bytes())?;
            contents.entries.insert(name.to_owned(), sealed);
            Ok(())
        })
    }

    /// Removes the entry `name`.
    ///
    /// # Errors
    ///
    /// [`VaultError::NotFound`] when the vault (as re-read under the lock) has no such
    /// entry, or any error of [`set`](Self::set).
    pub fn rm(&mut self, name: &str) -> Result<(), VaultError> {
        self.change(|contents| match contents.entries.remove(name) {
            Some(_) => Ok(()),
            None => Err(VaultError::NotFound {
                name: name.chars().take(300).collect(),
            }),
        })
    }

    /// Re-seals every entry under `new` (with a fresh salt) in one atomic replacement.
    /// A passphrase vault keeps its Argon2id parameters; a key file vault turned into a
    /// passphrase vault gets the default ones. A missing key file is created.
    ///
    /// # Errors
    ///
    /// [`VaultError::EmptyPassphrase`], [`VaultError::BadKeyFile`], or any error of
    /// [`set`](Self::set) (the old key must still open the file).
    pub fn rekey(&mut self, new: &KeySource) -> Result<(), VaultError> {
        let params = self.kdf_params().unwrap_or_default();
        self.rekey_with(new, params)
    }

    /// Like [`rekey`](Self::rekey), with explicit Argon2id parameters for a passphrase.
    ///
    /// # Errors
    ///
    /// As for [`rekey`](Self::rekey).
    pub fn rekey_with(&mut self, new: &KeySource, params: KdfParams) -> Result<(), VaultError> {
        check_new_source(new)?;
        let path = self.path.clone();
        self.change(|contents| {
            let old_key = contents.key.entry_key()?;
            let kdf = Kdf::fresh(new, params)?;
            let key = MasterKey::derive(new, &kdf, &path)?;
            let new_key = key.entry_key()?;
            let mut entries = Entries::new();
            for (name, sealed) in &contents.entries {
                let plain = seal::open(&old_key, name, sealed)
                    .ok_or_else(|| VaultError::Tampered { path: path.clone() })?;
                entries.insert(name.clone(), seal::seal(&new_key, name, &plain)?);
            }
            *contents = Contents { kdf, key, entries };
            Ok(())
        })?;
        self.source = new.clone();
        Ok(())
    }

    /// Imports every `machine M login L password P` of the .netrc file at `netrc_path` as
    /// entry `M:L` (`M` when there is no login), replacing entries of the same name, in one
    /// atomic change. Returns the imported names in file order. `src/netrc.rs` documents
    /// exactly what is accepted: tokens may span lines, `default` entries and entries
    /// without a password are skipped, `macdef` bodies are skipped, `#` comments and
    /// double-quoted values are accepted.
    ///
    /// # Errors
    ///
    /// [`VaultError::Netrc`] with the line of the first problem (nothing is imported), or
    /// any error of [`set`](Self::set).
    pub fn import_netrc(
        &mut self,
        netrc_path: impl AsRef<Path>,
    ) -> Result<Vec<String>, VaultError> {
        let netrc_path = netrc_path.as_ref();
        let bytes = Zeroizing::new(
            std::fs::read(netrc_path)
                .map_err(|e| VaultError::io(netrc_path, "reading the netrc file", e))?,
        );
        let netrc_error = |line, reason: String| VaultError::Netrc {
            path: netrc_path.to_path_buf(),
            line,
            reason,
        };
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            netrc_error(
                netrc::line_of(&bytes, e.valid_up_to()),
                "the file is not valid UTF-8 text".to_owned(),
            )
        })?;
        let entries = netrc::parse(text).map_err(|e| netrc_error(e.line, e.reason))?;
        self.change(|contents| {
            let entry_key = contents.key.entry_key()?;
            for entry in &entries {
                let sealed = seal::seal(&entry_key, &entry.name, entry.password.as_bytes())?;
                contents.entries.insert(entry.name.clone(), sealed);
            }
            Ok(())
        })?;
        Ok(entries.into_iter().map(|e| e.name).collect())
    }

    /// Reads and checks the current file, reusing the key already derived when the header
    /// still has the same key recipe (so passphrase stretching runs once per handle).
    fn read_current(&self) -> Result<Contents, VaultError> {
        let bytes = read_file(&self.path)?;
        decode(&self.path, &bytes, |kdf| {
            if *kdf == self.contents.kdf {
                Ok(self.contents.key.clone())
            } else {
                MasterKey::derive(&self.source, kdf, &self.path)
            }
        })
    }

    /// Read-modify-write under the lock: re-reads the file, applies `apply` to a fresh
    /// copy, writes the result atomically and keeps it as the new snapshot. Nothing is
    /// written when `apply` fails.
    fn change(
        &mut self,
        apply: impl FnOnce(&mut Contents) -> Result<(), VaultError>,
    ) -> Result<(), VaultError> {
        let _lock = WriteLock::acquire(lock_path(&self.path))?;
        let mut contents = self.read_current()?;
        apply(&mut contents)?;
        write_atomically(&self.path, &encode(&contents)?)?;
        self.contents = contents;
        Ok(())
    }
}

#[cfg(test)]
mod concurrency_tests;
#[cfg(test)]
mod tamper_tests;
#[cfg(test)]
mod tests;
