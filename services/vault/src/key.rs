//! Key sources and key derivation: passphrases stretched with Argon2id, machine key files,
//! and the subkeys that seal entries, tag the whole file and check the key.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2bMac;
use zeroize::Zeroizing;

use crate::atomic::sync_parent_dir;
use crate::error::{KeyFileProblem, VaultError};

/// How many random bytes a machine key file holds.
pub const KEY_FILE_LEN: usize = 32;

/// How many random salt bytes a vault header holds.
pub(crate) const SALT_LEN: usize = 16;

/// Length of the master key and of every subkey, in bytes.
const KEY_LEN: usize = 32;

type Blake2bMac256 = Blake2bMac<U32>;

/// What unlocks a vault.
#[derive(Clone)]
#[non_exhaustive]
pub enum KeySource {
    /// A passphrase, stretched with Argon2id and the salt stored in the vault header.
    Passphrase(Zeroizing<String>),
    /// A machine key file of [`KEY_FILE_LEN`] random bytes, readable only by its owner
    /// (mode 0600). [`Vault::init`](crate::Vault::init) and
    /// [`Vault::rekey`](crate::Vault::rekey) create it when it does not exist.
    KeyFile(PathBuf),
}

impl KeySource {
    /// A passphrase source; the passphrase is wiped from memory when the source is dropped.
    pub fn passphrase(passphrase: impl Into<String>) -> Self {
        Self::Passphrase(Zeroizing::new(passphrase.into()))
    }

    /// A machine key file source.
    pub fn key_file(path: impl Into<PathBuf>) -> Self {
        Self::KeyFile(path.into())
    }

    /// Which kind of key this is.
    pub fn kind(&self) -> KeyKind {
        match self {
            Self::Passphrase(_) => KeyKind::Passphrase,
            Self::KeyFile(_) => KeyKind::KeyFile,
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
            Self::KeyFile(path) => f.debug_tuple("KeyFile").field(path).finish(),
        }
    }
}

/// The kind of key a vault is locked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// A passphrase stretched with Argon2id.
    Passphrase,
    /// A machine key file.
    KeyFile,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Passphrase => "passphrase",
            Self::KeyFile => "key file",
        })
    }
}

/// Argon2id cost parameters for passphrase vaults.
///
/// [`KdfParams::default`] (64 MiB, 3 passes, 1 lane) is what operators should use;
/// [`KdfParams::new`] takes cheaper values for tests. The values are stored in the vault
/// header, so opening always uses the parameters the vault was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    memory_kib: u32,
    time_cost: u32,
    lanes: u32,
}

impl KdfParams {
    /// The most memory accepted, in KiB (1 GiB), so a damaged header cannot exhaust memory.
    pub const MAX_MEMORY_KIB: u32 = 1 << 20;
    /// The most passes accepted.
    pub const MAX_TIME_COST: u32 = 64;
    /// The most lanes accepted.
    pub const MAX_LANES: u32 = 64;

    /// Parameters with `memory_kib` KiB of memory, `time_cost` passes and `lanes` lanes.
    ///
    /// # Errors
    ///
    /// [`VaultError::BadKdfParams`] when a value is zero, above the maximums above, or
    /// `memory_kib` is below 8 × `lanes`.
    pub fn new(memory_kib: u32, time_cost: u32, lanes: u32) -> Result<Self, VaultError> {
        let bad = |reason: String| Err(VaultError::BadKdfParams { reason });
        if lanes == 0 || lanes > Self::MAX_LANES {
            return bad(format!("lanes must be 1 to {}", Self::MAX_LANES));
        }
        if time_cost == 0 || time_cost > Self::MAX_TIME_COST {
            return bad(format!("passes must be 1 to {}", Self::MAX_TIME_COST));
        }
        if memory_kib < 8 * lanes || memory_kib > Self::MAX_MEMORY_KIB {
            return bad(format!(
                "memory must be 8 KiB per lane up to {} KiB",
                Self::MAX_MEMORY_KIB
            ));
        }
        Ok(Self {
            memory_kib,
            time_cost,
            lanes,
        })
    }

    /// Memory in KiB.
    pub fn memory_kib(&self) -> u32 {
        self.memory_kib
    }

    /// Number of passes.
    pub fn time_cost(&self) -> u32 {
        self.time_cost
    }

    /// Number of lanes.
    pub fn lanes(&self) -> u32 {
        self.lanes
    }
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            time_cost: 3,
            lanes: 1,
        }
    }
}

/// How a vault's master key is made, as recorded in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kdf {
    /// Argon2id over a passphrase.
    Argon2id {
        /// Cost parameters.
        params: KdfParams,
        /// Random salt.
        salt: [u8; SALT_LEN],
    },
    /// Keyed BLAKE2b of the salt under a machine key file's bytes.
    KeyFile {
        /// Random salt.
        salt: [u8; SALT_LEN],
    },
}

impl Kdf {
    /// A fresh header entry (new random salt) for `source`.
    pub(crate) fn fresh(source: &KeySource, params: KdfParams) -> Result<Self, VaultError> {
        let salt = random_array()?;
        Ok(match source {
            KeySource::Passphrase(_) => Self::Argon2id { params, salt },
            KeySource::KeyFile(_) => Self::KeyFile { salt },
        })
    }

    /// The kind of key this header asks for.
    pub(crate) fn kind(&self) -> KeyKind {
        match self {
            Self::Argon2id { .. } => KeyKind::Passphrase,
            Self::KeyFile { .. } => KeyKind::KeyFile,
        }
    }
}

/// A vault's master key; wiped when dropped. Only subkeys derived from it are ever used.
#[derive(Clone)]
pub(crate) struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

const LABEL_KEY_FILE: &[u8] = b"sixstack-vault v1 key file";
const LABEL_CHECK: &[u8] = b"sixstack-vault v1 key check";
const LABEL_ENTRY: &[u8] = b"sixstack-vault v1 entry key";
const LABEL_FILE_TAG: &[u8] = b"sixstack-vault v1 file tag";

impl MasterKey {
    /// Derives the master key of a vault whose header holds `kdf`, from `source`.
    pub(crate) fn derive(source: &KeySource, kdf: &Kdf, vault: &Path) -> Result<Self, VaultError> {
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        match (source, kdf) {
            (KeySource::Passphrase(passphrase), Kdf::Argon2id { params, salt }) => {
                let argon_params = argon2::Params::new(
                    params.memory_kib,
                    params.time_cost,
                    params.lanes,
                    Some(KEY_LEN),
                )
                .map_err(|e| VaultError::BadKdfParams {
                    reason: e.to_string(),
                })?;
                argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    argon_params,
                )
                .hash_password_into(passphrase.as_bytes(), salt, &mut *out)
                .map_err(|_| VaultError::Crypto("stretching the passphrase"))?;
            }
            (KeySource::KeyFile(path), Kdf::KeyFile { salt }) => {
                let file_key = read_key_file(path)?;
                *out = keyed_hash(&*file_key, LABEL_KEY_FILE, &[salt])?;
            }
            (given, _) => {
                return Err(VaultError::KeyKindMismatch {
                    path: vault.to_path_buf(),
                    vault: kdf.kind(),
                    given: given.kind(),
                })
            }
        }
        Ok(Self(out))
    }

    /// The key that seals entries.
    pub(crate) fn entry_key(&self) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
        Ok(Zeroizing::new(keyed_hash(&*self.0, LABEL_ENTRY, &[])?))
    }

    /// The key check value stored in the header; it reveals nothing about the key.
    pub(crate) fn check_value(&self) -> Result<[u8; KEY_LEN], VaultError> {
        keyed_hash(&*self.0, LABEL_CHECK, &[])
    }

    /// Whether `stored` is this key's check value (compared in constant time).
    pub(crate) fn check_matches(&self, stored: &[u8]) -> Result<bool, VaultError> {
        Ok(mac(&*self.0, LABEL_CHECK, &[])?
            .verify_slice(stored)
            .is_ok())
    }

    /// The whole-file tag over `data`.
    pub(crate) fn file_tag(&self, data: &[u8]) -> Result<[u8; KEY_LEN], VaultError> {
        let tag_key = Zeroizing::new(keyed_hash(&*self.0, LABEL_FILE_TAG, &[])?);
        keyed_hash(&*tag_key, LABEL_FILE_TAG, &[data])
    }

    /// Whether `tag` is the whole-file tag over `data` (compared in constant time).
    pub(crate) fn file_tag_matches(&self, data: &[u8], tag: &[u8]) -> Result<bool, VaultError> {
        let tag_key = Zeroizing::new(keyed_hash(&*self.0, LABEL_FILE_TAG, &[])?);
        Ok(mac(&*tag_key, LABEL_FILE_TAG, &[data])?
            .verify_slice(tag)
            .is_ok())
    }
}

/// Keyed BLAKE2b-256 of `label`, a zero byte, then `parts`.
fn mac(key: &[u8], label: &[u8], parts: &[&[u8]]) -> Result<Blake2bMac256, VaultError> {
    let mut mac = <Blake2bMac256 as KeyInit>::new_from_slice(key)
        .map_err(|_| VaultError::Crypto("keying BLAKE2b"))?;
    mac.update(label);
    mac.update(&[0]);
    for part in parts {
        mac.update(part);
    }
    Ok(mac)
}

/// The output of [`mac`].
fn keyed_hash(key: &[u8], label: &[u8], parts: &[&[u8]]) -> Result<[u8; KEY_LEN], VaultError> {
    Ok(mac(key, label, parts)?.finalize().into_bytes().into())
}

/// `N` bytes from the system's random number generator.
pub(crate) fn random_array<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(VaultError::Random)?;
    Ok(bytes)
}

/// Reads a machine key file, refusing one that is not a regular file, that group or
/// others may use, or that does not hold exactly [`KEY_FILE_LEN`] bytes.
pub(crate) fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; KEY_FILE_LEN]>, VaultError> {
    let action = "reading the key file";
    let mut file = File::open(path).map_err(|e| VaultError::io(path, action, e))?;
    let meta = file
        .metadata()
        .map_err(|e| VaultError::io(path, action, e))?;
    let bad = |problem| VaultError::BadKeyFile {
        path: path.to_path_buf(),
        problem,
    };
    if !meta.is_file() {
        return Err(bad(KeyFileProblem::NotAFile));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(bad(KeyFileProblem::TooOpen { mode }));
    }
    if meta.len() != KEY_FILE_LEN as u64 {
        return Err(bad(KeyFileProblem::WrongLength { len: meta.len() }));
    }
    let mut key = Zeroizing::new([0u8; KEY_FILE_LEN]);
    file.read_exact(&mut *key).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            bad(KeyFileProblem::WrongLength { len: meta.len() })
        } else {
            VaultError::io(path, action, e)
        }
    })?;
    let mut extra = [0u8; 1];
    if file
        .read(&mut extra)
        .map_err(|e| VaultError::io(path, action, e))?
        != 0
    {
        return Err(bad(KeyFileProblem::WrongLength {
            len: meta.len() + 1,
        }));
    }
    Ok(key)
}

/// Creates a machine key file of fresh random bytes (mode 0600) if `path` does not exist;
/// returns whether it created one. An existing file is left alone (it is checked when read).
pub(crate) fn create_key_file_if_missing(path: &Path) -> Result<bool, VaultError> {
    let action = "creating the key file";
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(VaultError::io(path, action, e)),
    };
    let written = (|| {
        let mut key = Zeroizing::new([0u8; KEY_FILE_LEN]);
        getrandom::getrandom(&mut *key).map_err(VaultError::Random)?;
        file.write_all(&*key)
            .and_then(|()| file.sync_all())
            .map_err(|e| VaultError::io(path, action, e))?;
        sync_parent_dir(path)
    })();
    if let Err(e) = written {
        // Best effort: a half-written key file would be refused later anyway.
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(true)
}
