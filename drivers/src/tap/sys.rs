//! The two system calls the TAP driver cannot make through std: `TUNSETIFF` (attach a
//! `/dev/net/tun` descriptor to a TAP interface) and `F_SETFL O_NONBLOCK`.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;

/// Interface names are at most 15 bytes plus the terminating NUL.
pub(super) const IFNAMSIZ: usize = 16;
/// `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

/// `struct ifreq` as TUNSETIFF reads it: a name, the flags, and padding to 40 bytes.
#[repr(C)]
struct IfReqFlags {
    name: [libc::c_char; IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens `/dev/net/tun` (read-write, close-on-exec, blocking).
pub(super) fn open_tun() -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
}

/// Attaches `fd` to the TAP interface `name` (created in the calling thread's network
/// namespace if it does not exist), frames without the packet-information header.
/// `name` must already be checked: 1 to 15 bytes, no NUL.
pub(super) fn set_tap(fd: &File, name: &str) -> io::Result<()> {
    let mut req = IfReqFlags {
        name: [0; IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    for (dst, src) in req.name.iter_mut().zip(name.bytes().take(IFNAMSIZ - 1)) {
        *dst = src as libc::c_char;
    }
    // SAFETY: TUNSETIFF reads (and may write back the name into) a `struct ifreq`; `req`
    // is a live, properly laid out 40-byte ifreq for the whole call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReqFlags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Puts `fd` in non-blocking mode.
pub(super) fn set_nonblocking(fd: &File) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL take no pointers; the descriptor is open (borrowed).
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
