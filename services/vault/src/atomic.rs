//! Crash-safe file handling: atomic replacement of the vault file and the exclusive lock
//! that serialises writers.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::error::VaultError;
use crate::key::random_array;

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Flushes the directory holding `path`, so a file created or renamed there survives a
/// crash.
pub(crate) fn sync_parent_dir(path: &Path) -> Result<(), VaultError> {
    let dir = parent_dir(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| VaultError::io(dir, "syncing the directory", e))
}

/// Replaces `path` with `bytes` atomically: writes a temporary file (mode 0600) in the
/// same directory, syncs it, renames it over `path`, then syncs the directory. Readers see
/// either the old file or the new one, never a mix.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let Some(file_name) = path.file_name() else {
        return Err(VaultError::io(
            path,
            "writing the vault",
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file"),
        ));
    };
    let suffix: [u8; 8] = random_array()?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    let tmp = parent_dir(path).join(tmp_name);
    let written = write_new(&tmp, bytes).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| VaultError::io(path, "replacing the vault", e))
    });
    if let Err(e) = written {
        // Best effort: the temporary file is useless now.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent_dir(path)
}

/// Creates `path` (mode 0600, must not exist), writes `bytes` and syncs it.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| VaultError::io(path, "creating a temporary file", e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| VaultError::io(path, "writing a temporary file", e))
}

/// An exclusive advisory lock (flock) on a vault's lock file, released when dropped.
#[derive(Debug)]
pub(crate) struct WriteLock {
    _file: File,
}

impl WriteLock {
    /// Takes the lock on `lock_path` (created with mode 0600 if missing), waiting for any
    /// other holder, thread or process, to release it.
    pub(crate) fn acquire(lock_path: PathBuf) -> Result<Self, VaultError> {
        let action = "taking the vault lock";
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| VaultError::io(&lock_path, action, e))?;
        loop {
            match flock(&file, FlockOperation::LockExclusive) {
                Ok(()) => return Ok(Self { _file: file }),
                Err(rustix::io::Errno::INTR) => continue,
                Err(errno) => return Err(VaultError::io(lock_path, action, errno.into())),
            }
        }
    }
}
