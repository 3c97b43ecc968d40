//! File attributes as SFTP version 3 carries them (ATTRS): each field present only when
//! its flag is set. Access time and extended attributes are read past and not kept.

use super::packet::{put_u32, put_u64, Cursor, PacketError};

const SIZE: u32 = 0x0000_0001;
const UIDGID: u32 = 0x0000_0002;
const PERMISSIONS: u32 = 0x0000_0004;
const ACMODTIME: u32 = 0x0000_0008;
const EXTENDED: u32 = 0x8000_0000;

/// The file type bits of `permissions` (`S_IFMT`) and the two types scpd cares about.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;

/// Attributes of a remote file; `None` where the server did not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Size in bytes.
    pub size: Option<u64>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Mode bits, file type included (`st_mode`).
    pub permissions: Option<u32>,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: Option<u32>,
}

impl Attrs {
    /// True when the permissions say regular file.
    pub fn is_regular(&self) -> bool {
        self.permissions.is_some_and(|p| p & S_IFMT == S_IFREG)
    }

    /// True when the permissions say directory.
    pub fn is_dir(&self) -> bool {
        self.permissions.is_some_and(|p| p & S_IFMT == S_IFDIR)
    }

    /// Appends the ATTRS encoding. A uid without a gid (or the reverse) is not sent, as the
    /// protocol carries them together; an mtime is sent as access time too.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        let ids = self.uid.zip(self.gid);
        let mut flags = 0;
        if self.size.is_some() {
            flags |= SIZE;
        }
        if ids.is_some() {
            flags |= UIDGID;
        }
        if self.permissions.is_some() {
            flags |= PERMISSIONS;
        }
        if self.mtime.is_some() {
            flags |= ACMODTIME;
        }
        put_u32(out, flags);
        if let Some(size) = self.size {
            put_u64(out, size);
        }
        if let Some((uid, gid)) = ids {
            put_u32(out, uid);
            put_u32(out, gid);
        }
        if let Some(p) = self.permissions {
            put_u32(out, p);
        }
        if let Some(t) = self.mtime {
            put_u32(out, t);
            put_u32(out, t);
        }
    }

    /// Reads ATTRS off the cursor.
    pub(super) fn decode(cur: &mut Cursor<'_>) -> Result<Attrs, PacketError> {
        let flags = cur.u32("attribute flags")?;
        let mut a = Attrs::default();
        if flags & SIZE != 0 {
            a.size = Some(cur.u64("size")?);
        }
        if flags & UIDGID != 0 {
            a.uid = Some(cur.u32("uid")?);
            a.gid = Some(cur.u32("gid")?);
        }
        if flags & PERMISSIONS != 0 {
            a.permissions = Some(cur.u32("permissions")?);
        }
        if flags & ACMODTIME != 0 {
            cur.u32("atime")?;
            a.mtime = Some(cur.u32("mtime")?);
        }
        if flags & EXTENDED != 0 {
            let count = cur.u32("extended count")?;
            // Each pair takes at least 8 bytes, so a false count ends at a truncation.
            for _ in 0..count {
                cur.string("extended type")?;
                cur.string("extended data")?;
            }
        }
        Ok(a)
    }
}
