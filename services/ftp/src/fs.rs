//! The file layer: every path is opened beneath the user's home with `openat2` and
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so neither `..` (already gone from a
//! [`VirtualPath`]) nor a symbolic link, absolute or relative, can reach outside it: the
//! kernel refuses the resolution (EXDEV). Uploads go to a temporary name in the target's
//! directory and are renamed over the final name only when complete.
//!
//! These calls are metadata operations on a local disk (microseconds); file contents move
//! through the shard's io_uring (`Net::read_at`/`write_at`).

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};

use crate::vpath::VirtualPath;

const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// A directory.
    pub dir: bool,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, seconds since the Unix epoch.
    pub mtime: i64,
    /// Mode bits (permissions).
    pub mode: u32,
}

/// A user's home, open.
#[derive(Debug)]
pub struct Home {
    dir: OwnedFd,
    path: PathBuf,
}

fn io_err(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

static UPLOADS: AtomicU64 = AtomicU64::new(0);

impl Home {
    /// Opens `path` (a directory) as a home.
    pub fn open(path: &Path) -> io::Result<Home> {
        let dir = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err)?;
        Ok(Home {
            dir,
            path: path.to_path_buf(),
        })
    }

    /// The home's path on the disk.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_beneath(&self, p: &VirtualPath, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        rustix::fs::openat2(
            &self.dir,
            p.relative(),
            flags | OFlags::CLOEXEC,
            mode,
            BENEATH,
        )
        .map_err(io_err)
    }

    /// The directory above `p`, open, and `p`'s last component.
    fn parent_of<'a>(&self, p: &'a VirtualPath) -> io::Result<(OwnedFd, &'a str)> {
        let name = p
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the home itself"))?;
        let dir =
            self.open_beneath(&p.parent(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        Ok((dir, name))
    }

    /// Facts of `p` (symbolic links inside the home are followed).
    pub fn stat(&self, p: &VirtualPath) -> io::Result<Entry> {
        let fd = self.open_beneath(p, OFlags::PATH, Mode::empty())?;
        let st = rustix::fs::fstat(&fd).map_err(io_err)?;
        Ok(entry(p.file_name().unwrap_or("/").to_string(), &st))
    }

    /// Whether `p` is a directory one can enter.
    pub fn is_dir(&self, p: &VirtualPath) -> bool {
        self.open_beneath(p, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .is_ok()
    }

    /// The entries of directory `p`, sorted by name (`.` and `..` left out).
    pub fn list(&self, p: &VirtualPath) -> io::Result<Vec<Entry>> {
        let fd = self.open_beneath(p, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        let mut dir = rustix::fs::Dir::read_from(&fd).map_err(io_err)?;
        let mut out = Vec::new();
        while let Some(e) = dir.read() {
            let e = e.map_err(io_err)?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            if let Ok(st) = rustix::fs::statat(&fd, e.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                out.push(entry(name, &st));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Opens a file to read.
    pub fn open_read(&self, p: &VirtualPath) -> io::Result<File> {
        let fd = self.open_beneath(p, OFlags::RDONLY, Mode::empty())?;
        let f = File::from(fd);
        if f.metadata()?.is_dir() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a directory"));
        }
        Ok(f)
    }

    /// Starts an upload to `p`: a new temporary file beside it, or, to resume (`offset >
    /// 0`) or append, the file itself.
    pub fn begin_upload(&self, p: &VirtualPath, offset: u64, append: bool) -> io::Result<Upload> {
        let (dir, name) = self.parent_of(p)?;
        if offset > 0 || append {
            let fd = rustix::fs::openat2(
                &dir,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o644),
                BENEATH,
            )
            .map_err(io_err)?;
            let file = File::from(fd);
            let start = if append {
                file.metadata()?.len()
            } else {
                offset
            };
            return Ok(Upload {
                file,
                start,
                dir,
                temp: None,
                name: name.to_string(),
            });
        }
        let temp = format!(
            ".{name}.part-{}-{}",
            std::process::id(),
            UPLOADS.fetch_add(1, Ordering::Relaxed)
        );
        let fd = rustix::fs::openat2(
            &dir,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
            BENEATH,
        )
        .map_err(io_err)?;
        Ok(Upload {
            file: File::from(fd),
            start: 0,
            dir,
            temp: Some(temp),
            name: name.to_string(),
        })
    }

    /// Deletes a file.
    pub fn delete(&self, p: &VirtualPath) -> io::Result<()> {
        let (dir, name) = self.parent_of(p)?;
        rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(io_err)
    }

    /// Removes an empty directory.
    pub fn remove_dir(&self, p: &VirtualPath) -> io::Result<()> {
        let (dir, name) = self.parent_of(p)?;
        rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR).map_err(io_err)
    }

    /// Makes a directory.
    pub fn make_dir(&self, p: &VirtualPath) -> io::Result<()> {
        let (dir, name) = self.parent_of(p)?;
        rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)).map_err(io_err)
    }

    /// Renames `from` to `to`.
    pub fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> io::Result<()> {
        let (fd, fname) = self.parent_of(from)?;
        let (td, tname) = self.parent_of(to)?;
        rustix::fs::renameat(&fd, fname, &td, tname).map_err(io_err)
    }
}

/// An upload in progress.
#[derive(Debug)]
pub struct Upload {
    /// Where the bytes go.
    pub file: File,
    /// The offset of the first byte.
    pub start: u64,
    dir: OwnedFd,
    temp: Option<String>,
    name: String,
}

impl Upload {
    /// The upload is complete (and synced by the caller): the temporary file takes the
    /// final name.
    pub fn finish(self) -> io::Result<()> {
        if let Some(t) = &self.temp {
            rustix::fs::renameat(&self.dir, t.as_str(), &self.dir, self.name.as_str())
                .map_err(io_err)?;
        }
        Ok(())
    }

    /// The upload failed: a temporary file is removed, the final name is untouched.
    pub fn abandon(self) {
        if let Some(t) = &self.temp {
            let _ = rustix::fs::unlinkat(&self.dir, t.as_str(), AtFlags::empty());
        }
    }
}

fn entry(name: String, st: &rustix::fs::Stat) -> Entry {
    let mode = st.st_mode;
    Entry {
        name,
        dir: rustix::fs::FileType::from_raw_mode(mode) == rustix::fs::FileType::Directory,
        size: u64::try_from(st.st_size).unwrap_or(0),
        mtime: st.st_mtime,
        mode: mode & 0o7777,
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
pub(crate) fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYYMMDDHHMMSS` in UTC (MDTM, MLSD's `modify`).
pub fn timeval(secs: i64) -> String {
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One `ls -l` line (LIST), UTC times.
pub fn long_line(e: &Entry) -> String {
    let mut perms = String::with_capacity(10);
    perms.push(if e.dir { 'd' } else { '-' });
    for shift in [6, 3, 0] {
        let bits = (e.mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let (y, m, d) = civil(e.mtime.div_euclid(86_400));
    let s = e.mtime.rem_euclid(86_400);
    let month = MONTHS[(m as usize).saturating_sub(1).min(11)];
    format!(
        "{perms} 1 ftp ftp {:>12} {month} {d:>2} {y:04} {:02}:{:02} {}",
        e.size,
        s / 3600,
        s % 3600 / 60,
        e.name
    )
}

/// One MLSD/MLST fact line (without the leading space MLST adds).
pub fn facts_line(e: &Entry, writable: bool) -> String {
    let perm = match (e.dir, writable) {
        (true, true) => "elcmfp",
        (true, false) => "el",
        (false, true) => "radwf",
        (false, false) => "r",
    };
    format!(
        "type={};size={};modify={};perm={perm}; {}",
        if e.dir { "dir" } else { "file" },
        e.size,
        timeval(e.mtime),
        e.name
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tree() -> (PathBuf, Home) {
        let base = std::env::temp_dir().join(format!(
            "sixstack-ftp-fs-{}-{}",
            std::process::id(),
            UPLOADS.fetch_add(1, Ordering::Relaxed)
        ));
        let home = base.join("home");
        std::fs::create_dir_all(home.join("sub")).unwrap();
        std::fs::write(base.join("secret"), b"outside").unwrap();
        std::fs::write(home.join("a.txt"), b"hello").unwrap();
        std::os::unix::fs::symlink("../secret", home.join("escape")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", home.join("abs")).unwrap();
        std::os::unix::fs::symlink("a.txt", home.join("inside")).unwrap();
        let h = Home::open(&home).unwrap();
        (base, h)
    }

    fn vp(p: &str) -> VirtualPath {
        VirtualPath::root().resolve(p).unwrap()
    }

    #[test]
    fn symbolic_links_cannot_leave_the_home() {
        let (base, h) = tree();
        assert!(h.open_read(&vp("escape")).is_err());
        assert!(h.open_read(&vp("abs")).is_err());
        assert!(h.stat(&vp("escape")).is_err());
        assert!(h.begin_upload(&vp("escape"), 1, false).is_err());
        use std::io::Read;
        let mut s = String::new();
        h.open_read(&vp("inside"))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello");
        let names: Vec<String> = h
            .list(&vp("/"))
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a.txt", "abs", "escape", "inside", "sub"]);
        assert!(h.is_dir(&vp("sub")) && !h.is_dir(&vp("a.txt")));
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn uploads_appear_only_when_finished() {
        let (base, h) = tree();
        use std::io::Write;
        let mut up = h.begin_upload(&vp("sub/new.bin"), 0, false).unwrap();
        up.file.write_all(b"data").unwrap();
        assert!(
            h.stat(&vp("sub/new.bin")).is_err(),
            "not there before finish"
        );
        up.finish().unwrap();
        assert_eq!(h.stat(&vp("sub/new.bin")).unwrap().size, 4);
        let mut up = h.begin_upload(&vp("sub/gone.bin"), 0, false).unwrap();
        up.file.write_all(b"partial").unwrap();
        up.abandon();
        assert_eq!(h.list(&vp("sub")).unwrap().len(), 1, "no partial file left");
        let up = h.begin_upload(&vp("a.txt"), 0, true).unwrap();
        assert_eq!(up.start, 5);
        h.rename(&vp("a.txt"), &vp("sub/b.txt")).unwrap();
        h.make_dir(&vp("d")).unwrap();
        h.remove_dir(&vp("d")).unwrap();
        h.delete(&vp("sub/b.txt")).unwrap();
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn times_and_lines() {
        assert_eq!(timeval(0), "19700101000000");
        assert_eq!(timeval(1_764_547_200), "20251201000000");
        assert_eq!(timeval(951_782_400), "20000229000000");
        let e = Entry {
            name: "f".into(),
            dir: false,
            size: 5,
            mtime: 1_764_547_200 + 3661,
            mode: 0o644,
        };
        assert_eq!(
            long_line(&e),
            "-rw-r--r-- 1 ftp ftp            5 Dec  1 2025 01:01 f"
        );
        assert_eq!(
            facts_line(&e, false),
            "type=file;size=5;modify=20251201010101;perm=r; f"
        );
    }
}
