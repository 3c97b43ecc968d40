//! The vault's error type: what went wrong, told so an operator can act, never with a secret.

use std::fmt;
use std::path::PathBuf;

use crate::key::KeyKind;

/// Why a vault operation failed.
///
/// No message ever holds a secret: passphrases, key bytes and stored passwords are never
/// part of an error, only paths, entry names and line numbers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// Reading, writing, locking, renaming or syncing a file or directory failed (for
    /// instance a missing directory or a permission problem).
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What sixstack was doing with it ("reading the vault", "taking the lock", ...).
        action: &'static str,
        /// What the system returned.
        source: std::io::Error,
    },
    /// The vault file does not exist (open, or a change to a vault that was removed).
    #[error("{path}: no vault here (create one with `sixstack vault init`)")]
    Missing {
        /// Where the vault was looked for.
        path: PathBuf,
    },
    /// `init` was asked to create a vault where a file already exists.
    #[error("{path}: a file already exists here; refusing to overwrite it with a new vault")]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The file does not start with the vault's magic bytes: it is some other file.
    #[error("{path}: not a sixstack vault file")]
    NotAVault {
        /// The file.
        path: PathBuf,
    },
    /// The file is a vault written in a format version this sixstack does not read.
    #[error("{path}: vault format version {found} is not supported (this sixstack reads version {supported})")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u16,
        /// The version this sixstack reads and writes.
        supported: u16,
    },
    /// The passphrase or key file does not open this vault (the key check value in the
    /// header does not match). A damaged salt or key check value also ends here.
    #[error("{path}: wrong passphrase or key file for this vault")]
    WrongKey {
        /// The vault.
        path: PathBuf,
    },
    /// The key is right but the file was changed, truncated, or damaged after it was
    /// written (its whole-file tag, its layout or an entry's seal does not check out).
    /// Nothing from the file was used.
    #[error("{path}: the vault file is damaged or was tampered with; nothing in it was used")]
    Tampered {
        /// The vault.
        path: PathBuf,
    },
    /// The vault is locked with one kind of key (passphrase or key file) and the other
    /// kind was given.
    #[error("{path}: this vault is locked with a {vault}, but a {given} was given")]
    KeyKindMismatch {
        /// The vault.
        path: PathBuf,
        /// The kind of key the vault uses.
        vault: KeyKind,
        /// The kind of key that was given.
        given: KeyKind,
    },
    /// `get` or `rm` named an entry the vault does not hold.
    #[error("no entry named {name:?} in the vault")]
    NotFound {
        /// The entry name asked for.
        name: String,
    },
    /// An entry name is empty, too long, or holds whitespace or non-printable characters.
    #[error("bad entry name {name:?}: {reason}")]
    BadName {
        /// The name as given (cut to its first 64 characters).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A secret is larger than the vault stores per entry.
    #[error(
        "the secret for {name:?} is {len} bytes; the vault holds at most {max} bytes per secret"
    )]
    SecretTooLarge {
        /// The entry it was meant for.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The largest secret accepted.
        max: usize,
    },
    /// An empty passphrase was given to create or rekey a vault.
    #[error("the passphrase is empty; a vault needs a non-empty passphrase")]
    EmptyPassphrase,
    /// A machine key file is unusable (wrong length, not a regular file, or readable by
    /// group or others).
    #[error("{path}: unusable key file: {problem}")]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        problem: KeyFileProblem,
    },
    /// Argon2id parameters given to create or rekey a vault are out of range.
    #[error("bad Argon2id parameters: {reason}")]
    BadKdfParams {
        /// Which limit was broken.
        reason: String,
    },
    /// A .netrc file given to `import_netrc` is malformed; nothing was imported.
    #[error("{path}:{line}: {reason}")]
    Netrc {
        /// The .netrc file.
        path: PathBuf,
        /// The line (from 1) where the problem is.
        line: usize,
        /// What is wrong there.
        reason: String,
    },
    /// The system's random number generator failed (salt, nonce or key file creation).
    #[error("the system random number generator failed: {0}")]
    Random(getrandom::Error),
    /// A cryptographic primitive refused its input; this points at a bug in sixstack.
    #[error("internal cryptographic failure while {0}")]
    Crypto(&'static str),
}

/// What is wrong with a machine key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFileProblem {
    /// The path is a directory, device or other non-regular file.
    NotAFile,
    /// Group or others may read or write it; only its owner may.
    TooOpen {
        /// Its permission bits.
        mode: u32,
    },
    /// It does not hold exactly [`KEY_FILE_LEN`](crate::KEY_FILE_LEN) bytes.
    WrongLength {
        /// How many bytes it holds.
        len: u64,
    },
}

impl fmt::Display for KeyFileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAFile => f.write_str("it is not a regular file"),
            Self::TooOpen { mode } => write!(
                f,
                "its mode is {mode:04o}, so group or others may use it; run `chmod 600` on it"
            ),
            Self::WrongLength { len } => write!(
                f,
                "it holds {len} bytes; a sixstack key file holds exactly {} random bytes",
                crate::KEY_FILE_LEN
            ),
        }
    }
}

impl VaultError {
    /// An [`Io`](Self::Io) error for `path`.
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// A [`BadName`](Self::BadName) error, the name cut short so a stray paste stays small.
    pub(crate) fn bad_name(name: &str, reason: &'static str) -> Self {
        Self::BadName {
            name: name.chars().take(64).collect(),
            reason,
        }
    }
}
