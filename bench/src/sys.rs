//! Thin, safe wrappers over the few libc calls the benchmark needs:
//! epoll, batched UDP I/O (`recvmmsg`/`sendmmsg`), listen backlog and CPU
//! pinning.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An owned epoll instance.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

/// A zeroed event buffer for [`Epoll::wait`].
pub fn event_buffer(n: usize) -> Vec<libc::epoll_event> {
    vec![libc::epoll_event { events: 0, u64: 0 }; n.max(1)]
}

/// Token and readiness bits of one event (copied out of the packed struct).
pub fn event_parts(ev: &libc::epoll_event) -> (u64, u32) {
    let token = ev.u64;
    let events = ev.events;
    (token, events)
}

impl Epoll {
    pub fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 has no memory-safety preconditions.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a freshly created descriptor that nobody else owns.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    pub fn modify(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Waits for events; an interrupted wait returns `Ok(0)`.
    pub fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        let max = events.len().min(i32::MAX as usize) as libc::c_int;
        // SAFETY: the buffer is valid for `max` entries.
        let n =
            unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }
}

/// Preallocated buffers, peer addresses and headers for moving UDP datagrams
/// in batches with `recvmmsg(2)` and `sendmmsg(2)`; nothing is allocated per
/// call.
///
/// Slot `i` holds one received datagram: its payload at `bufs[i * slot..]`
/// and its source address (IPv4 or IPv6) in `addrs[i]`. The iovecs and
/// headers handed to the kernel are rebuilt from `&mut self` on every call,
/// so no pointer outlives the borrow it was derived from.
pub struct MmsgBatch {
    /// Payload room per slot.
    slot: usize,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    /// Payload bytes of each received datagram (at most `slot`).
    lens: Vec<usize>,
    /// The datagram was longer than `slot` and lost its tail.
    truncated: Vec<bool>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Slots filled by the last [`MmsgBatch::recv`].
    received: usize,
}

impl std::fmt::Debug for MmsgBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmsgBatch")
            .field("capacity", &self.hdrs.len())
            .field("slot", &self.slot)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

const SOCKADDR_STORAGE_LEN: libc::socklen_t =
    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;

impl MmsgBatch {
    /// Room for `capacity` datagrams (at least 1) of up to `slot` bytes each.
    pub fn new(capacity: usize, slot: usize) -> Self {
        let capacity = capacity.clamp(1, libc::c_uint::MAX as usize);
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for
        // which all-zero bytes (null pointers, zero lengths) are valid values.
        let (addr, iov, hdr) = unsafe {
            (
                std::mem::zeroed::<libc::sockaddr_storage>(),
                std::mem::zeroed::<libc::iovec>(),
                std::mem::zeroed::<libc::mmsghdr>(),
            )
        };
        let slot = slot.max(1);
        Self {
            slot,
            bufs: vec![0; capacity * slot],
            addrs: vec![addr; capacity],
            addr_lens: vec![0; capacity],
            lens: vec![0; capacity],
            truncated: vec![false; capacity],
            iovs: vec![iov; capacity],
            hdrs: vec![hdr; capacity],
            received: 0,
        }
    }

    /// Datagrams one call can move.
    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Changes the payload room per slot; forgets the received datagrams.
    pub fn set_slot_size(&mut self, slot: usize) {
        let slot = slot.max(1);
        if slot != self.slot {
            self.slot = slot;
            self.bufs = vec![0; self.capacity() * slot];
        }
        self.received = 0;
    }

    /// Payload length of received datagram `i` (0 past the received ones).
    pub fn len(&self, i: usize) -> usize {
        if i < self.received {
            self.lens[i]
        } else {
            0
        }
    }

    /// Whether received datagram `i` was longer than a slot (its tail is lost).
    pub fn truncated(&self, i: usize) -> bool {
        i < self.received && self.truncated[i]
    }

    /// Builds iovec and header `j` for slot `s`: for a receive (`send` is
    /// `None`) `s = j` with the whole slot and address field; for a send,
    /// `s = send[j]` with the received payload length and address length.
    /// Returns the number of headers built. `iovs` is filled first and `hdrs`
    /// second, each through one `as_mut_ptr` base taken after the last write
    /// to that vector, so the pointers handed to the kernel stay valid.
    fn build(&mut self, send: Option<&[usize]>) -> usize {
        let cap = self.capacity();
        let (n, full) = match send {
            Some(slots) => (slots.len().min(cap), false),
            None => (cap, true),
        };
        let slot_of = |j: usize| match send {
            Some(slots) => slots[j],
            None => j,
        };
        let buf_base = self.bufs.as_mut_ptr();
        for (j, iov) in self.iovs[..n].iter_mut().enumerate() {
            let s = slot_of(j);
            iov.iov_base = buf_base.wrapping_add(s * self.slot).cast();
            iov.iov_len = if full { self.slot } else { self.lens[s] };
        }
        let iov_base = self.iovs.as_mut_ptr();
        let addr_base = self.addrs.as_mut_ptr();
        for (j, h) in self.hdrs[..n].iter_mut().enumerate() {
            let s = slot_of(j);
            h.msg_hdr.msg_name = addr_base.wrapping_add(s).cast();
            h.msg_hdr.msg_namelen = if full {
                SOCKADDR_STORAGE_LEN
            } else {
                self.addr_lens[s]
            };
            h.msg_hdr.msg_iov = iov_base.wrapping_add(j);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = std::ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        n
    }

    /// Receives up to [`capacity`](Self::capacity) datagrams without blocking
    /// (`MSG_DONTWAIT`); returns how many arrived. `WouldBlock` when none.
    pub fn recv(&mut self, sock: &impl AsFd) -> io::Result<usize> {
        self.received = 0;
        let cap = self.build(None);
        let fd = sock.as_fd().as_raw_fd();
        // SAFETY: `hdrs[..cap]` were just built by `build`: each points at its
        // own sockaddr_storage (msg_namelen = its full size) and its own iovec
        // covering exactly slot `i` of `bufs` (in bounds: bufs holds cap * slot
        // bytes). All three vectors are exclusively borrowed through `&mut self`
        // for the whole call and are not resized; the timeout is null.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                cap as libc::c_uint,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (n as usize).min(cap);
        for i in 0..n {
            let h = &self.hdrs[i];
            self.lens[i] = (h.msg_len as usize).min(self.slot);
            self.addr_lens[i] = h.msg_hdr.msg_namelen.min(SOCKADDR_STORAGE_LEN);
            self.truncated[i] = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        self.received = n;
        Ok(n)
    }

    /// Sends the received datagrams in `slots` (in that order, at most
    /// [`capacity`](Self::capacity) of them) back to their sources with one
    /// `sendmmsg` call without blocking; returns how many of the leading ones
    /// were sent. An error means the first one was not sent (`WouldBlock`:
    /// the socket buffer is full); `InvalidInput` for a slot that holds no
    /// received datagram.
    pub fn send_back(&mut self, sock: &impl AsFd, slots: &[usize]) -> io::Result<usize> {
        if slots.iter().any(|&s| s >= self.received) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "slot holds no received datagram",
            ));
        }
        let n = self.build(Some(slots));
        if n == 0 {
            return Ok(0);
        }
        let fd = sock.as_fd().as_raw_fd();
        // SAFETY: `hdrs[..n]` were just built by `build`: each points at the
        // sockaddr_storage of a received slot with the address length the
        // kernel reported (at most its size) and at its own iovec covering
        // the first `lens[s] <= slot` bytes of that slot in `bufs` (in
        // bounds: s < received <= capacity). The vectors are exclusively
        // borrowed through `&mut self` for the whole call and not resized.
        let r = unsafe {
            libc::sendmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT as _,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((r as usize).min(n))
    }
}

/// Re-issues `listen(2)` to raise the accept backlog of a bound listener.
pub fn set_backlog(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen on a descriptor has no memory-safety preconditions.
    let r = unsafe { libc::listen(fd, backlog) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `SO_LINGER` on with a zero timeout: `close` resets the connection instead of leaving a
/// TIME-WAIT socket behind.
pub fn set_linger_zero(fd: RawFd) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` is a valid `linger` for the duration of the call and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Pins the calling thread to `core`.
pub fn pin_current(core: usize) -> Result<(), String> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(format!("cannot pin thread to core {core}"))
    }
}

/// The core for worker `i` given a `--pin` list (round robin), if any.
pub fn core_for(pin: &[usize], i: usize) -> Option<usize> {
    if pin.is_empty() {
        None
    } else {
        Some(pin[i % pin.len()])
    }
}
