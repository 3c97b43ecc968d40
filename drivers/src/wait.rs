//! Sleeping and waking a shard: an eventfd another thread can ring, and `poll(2)` over a
//! few descriptors with a timeout. The only blocking the shard loop ever does happens here.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// An eventfd used to wake a sleeping shard from another thread (stop, control messages).
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
}

impl Doorbell {
    /// Creates a non-blocking eventfd.
    pub fn new() -> io::Result<Doorbell> {
        // SAFETY: eventfd takes no pointers; the return value is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly created descriptor that nothing else owns.
        Ok(Doorbell {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Rings the bell: the descriptor becomes readable until [`Doorbell::drain`].
    pub fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. A full counter
        // (EAGAIN) still leaves the fd readable, which is all a ring needs.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Clears the readable state.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN (not rung) is harmless.
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut v as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// The descriptor to poll on.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Waits until one of `fds` is readable or `timeout` passes (`None`: no limit).
/// Returns how many descriptors are ready; an interrupted wait returns 0.
pub fn wait_readable(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<usize> {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; 4];
    let n = fds.len().min(pfds.len());
    for (p, fd) in pfds.iter_mut().zip(fds.iter()) {
        p.fd = *fd;
        p.events = libc::POLLIN;
    }
    let ms: libc::c_int = match timeout {
        None => -1,
        Some(d) => {
            // Round up so a 300 µs deadline does not become a busy 0 ms poll.
            let ms = d.as_micros().div_ceil(1000);
            ms.min(i32::MAX as u128) as libc::c_int
        }
    };
    // SAFETY: pfds is a live array of at least n pollfd entries.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), n as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(rc as usize)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn doorbell_wakes_a_wait() {
        let bell = Doorbell::new().unwrap();
        assert_eq!(
            wait_readable(&[bell.fd()], Some(Duration::from_millis(1))).unwrap(),
            0
        );
        bell.ring();
        assert_eq!(wait_readable(&[bell.fd()], None).unwrap(), 1);
        bell.drain();
        assert_eq!(
            wait_readable(&[bell.fd()], Some(Duration::ZERO)).unwrap(),
            0
        );
    }
}
