//! Raw Linux interfaces for AF_XDP, bpf(2) and rtnetlink: constants, `#[repr(C)]` structs
//! and thin syscall wrappers that turn return codes into `io::Result`.
//!
//! This module is the only place in `afxdp` that talks to libc directly (besides the
//! pointer work in `ring.rs`/`umem.rs`). It holds no policy: callers decide what an error
//! means.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

// ---- AF_XDP (linux/if_xdp.h) ----

/// `SOL_XDP` socket option level.
pub(crate) const SOL_XDP: libc::c_int = 283;
/// `sockaddr_xdp.sxdp_flags`: copy mode.
pub(crate) const XDP_COPY: u16 = 1 << 1;
/// `sockaddr_xdp.sxdp_flags`: zero-copy mode.
pub(crate) const XDP_ZEROCOPY: u16 = 1 << 2;
/// `sockaddr_xdp.sxdp_flags`: the kernel sets `XDP_RING_NEED_WAKEUP` instead of polling.
pub(crate) const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
/// `sockaddr_xdp.sxdp_flags`: frames larger than one UMEM frame arrive and leave as
/// several descriptors (multi-buffer, kernel 6.6+).
pub(crate) const XDP_USE_SG: u16 = 1 << 4;
/// `xdp_desc.options`: more buffers of the same frame follow this one.
pub(crate) const XDP_PKT_CONTD: u32 = 1 << 0;
/// `BPF_PROG_LOAD` `prog_flags`: the XDP program handles multi-buffer frames.
pub(crate) const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
/// Ring flag: the kernel needs a syscall to make progress on this ring.
pub(crate) const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;
pub(crate) const XDP_MMAP_OFFSETS: libc::c_int = 1;
pub(crate) const XDP_RX_RING: libc::c_int = 2;
pub(crate) const XDP_TX_RING: libc::c_int = 3;
pub(crate) const XDP_UMEM_REG: libc::c_int = 4;
pub(crate) const XDP_UMEM_FILL_RING: libc::c_int = 5;
pub(crate) const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
pub(crate) const XDP_STATISTICS: libc::c_int = 7;
pub(crate) const XDP_OPTIONS: libc::c_int = 8;
pub(crate) const XDP_OPTIONS_ZEROCOPY: u32 = 1 << 0;
pub(crate) const XDP_PGOFF_RX_RING: i64 = 0;
pub(crate) const XDP_PGOFF_TX_RING: i64 = 0x8000_0000;
pub(crate) const XDP_UMEM_PGOFF_FILL_RING: i64 = 0x1_0000_0000;
pub(crate) const XDP_UMEM_PGOFF_COMPLETION_RING: i64 = 0x1_8000_0000;

/// `struct sockaddr_xdp`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SockaddrXdp {
    pub family: u16,
    pub flags: u16,
    pub ifindex: u32,
    pub queue_id: u32,
    pub shared_umem_fd: u32,
}

/// `struct xdp_umem_reg` (with `flags` and `tx_metadata_len`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

/// `struct xdp_ring_offset`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `struct xdp_mmap_offsets`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MmapOffsets {
    pub rx: RingOffset,
    pub tx: RingOffset,
    pub fr: RingOffset,
    pub cr: RingOffset,
}

/// `struct xdp_desc`: one RX or TX ring entry.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// `struct xdp_statistics`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct XdpStatistics {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

// ---- bpf(2) (linux/bpf.h) ----

pub(crate) const BPF_MAP_CREATE: u32 = 0;
pub(crate) const BPF_MAP_UPDATE_ELEM: u32 = 2;
pub(crate) const BPF_PROG_LOAD: u32 = 5;
pub(crate) const BPF_LINK_CREATE: u32 = 28;
pub(crate) const BPF_MAP_TYPE_XSKMAP: u32 = 17;
pub(crate) const BPF_PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type` value for XDP.
pub(crate) const BPF_XDP: u32 = 37;
/// `IFLA_XDP_FLAGS`/`link_create.flags`: fail if a program is already attached (netlink only).
pub(crate) const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1 << 0;
/// Generic (skb) mode.
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// Native (driver) mode.
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// Replace only the program given as the expected one (netlink only).
pub(crate) const XDP_FLAGS_REPLACE: u32 = 1 << 4;
/// XDP action: hand the frame to the kernel stack.
pub(crate) const XDP_PASS: i32 = 2;
/// Helper id of `bpf_redirect_map`.
pub(crate) const BPF_FUNC_REDIRECT_MAP: i32 = 51;

// ---- helpers ----

/// Turns a `-1 and errno` return into an error.
fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Wraps a freshly returned descriptor.
fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    let raw = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `raw` was just returned by the kernel as a new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `socket(domain, ty | SOCK_CLOEXEC, protocol)`.
pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    protocol: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    owned(fd.into())
}

/// `setsockopt` with a plain-old-data value (`T` is one of the `#[repr(C)]` structs above or
/// an integer).
pub(crate) fn setsockopt<T: Copy>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `value` points to `len` readable bytes for the duration of the call.
    let ret =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), len) };
    cvt(ret.into()).map(drop)
}

/// `getsockopt` into a plain-old-data value; returns the value and the length the kernel wrote.
pub(crate) fn getsockopt<T: Copy + Default>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<(T, usize)> {
    let mut value = T::default();
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `value` is a live, writable `T` of `len` bytes and `len` a live socklen_t; the
    // kernel writes at most `len` bytes. `T` is plain old data (integers only), so any bytes
    // the kernel writes form a valid value.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    cvt(ret.into())?;
    Ok((value, len as usize))
}

/// `bind(fd, sockaddr_xdp)`.
pub(crate) fn bind_xdp(fd: &OwnedFd, addr: &SockaddrXdp) -> io::Result<()> {
    // SAFETY: `addr` is a live sockaddr_xdp and the length passed is its size.
    let ret = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (addr as *const SockaddrXdp).cast(),
            std::mem::size_of::<SockaddrXdp>() as libc::socklen_t,
        )
    };
    cvt(ret.into()).map(drop)
}

/// `sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`: asks the kernel to process the TX ring.
pub(crate) fn kick_tx(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: a zero-length send with null buffer and address reads no memory.
    let ret = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    cvt(ret as libc::c_long).map(drop)
}

/// `recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL)`: asks the kernel to process the fill ring.
pub(crate) fn kick_rx(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: a zero-length receive with null buffer and address writes no memory.
    let ret = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    cvt(ret as libc::c_long).map(drop)
}

/// `send(fd, buf, 0)`; returns bytes sent.
pub(crate) fn send(fd: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is readable for its length during the call.
    let ret = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
    cvt(ret as libc::c_long).map(|n| n as usize)
}

/// `recv(fd, buf, 0)`; returns bytes received.
pub(crate) fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its length during the call.
    let ret = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    cvt(ret as libc::c_long).map(|n| n as usize)
}

/// `poll` for readability with a zero timeout; `true` when readable.
pub(crate) fn poll_readable(fd: &OwnedFd) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd, count 1, no timeout.
    let ret = unsafe { libc::poll(&mut pfd, 1, 0) };
    cvt(ret.into())?;
    Ok(pfd.revents & libc::POLLIN != 0)
}

/// The `bpf(2)` syscall.
///
/// # Safety
/// `attr` must be a prefix of `union bpf_attr` valid for `cmd`: every pointer stored in it
/// (as a `u64`) must point to memory that is live, and for output buffers writable, with the
/// sizes the same attr states, for the duration of the call.
pub(crate) unsafe fn bpf<T>(cmd: u32, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: the caller guarantees the pointers inside `attr`; `attr` itself is live for
    // `size_of::<T>()` bytes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            (attr as *mut T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::c_long,
        )
    };
    cvt(ret)
}

/// `bpf(2)` for commands that return a new file descriptor.
///
/// # Safety
/// As for [`bpf`].
pub(crate) unsafe fn bpf_fd<T>(cmd: u32, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: forwarded contract.
    let fd = unsafe { bpf(cmd, attr) }?;
    owned(fd)
}

/// A memory mapping, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
    /// `false` only for the test-only aliases, which must not unmap.
    owned: bool,
}

// SAFETY: a mapping is plain memory owned by this value; moving the owner between threads
// does not change who may access it. Access to the bytes is governed by the types that
// hand them out (rings, UMEM areas), which take `&mut self` or split ownership.
unsafe impl Send for Mmap {}
// SAFETY: `Mmap` itself only exposes the base pointer and length (no access to the bytes).
unsafe impl Sync for Mmap {}

impl Mmap {
    /// An anonymous private read/write mapping of `len` bytes (zero-filled).
    pub(crate) fn anonymous(len: usize) -> io::Result<Mmap> {
        // SAFETY: a fresh anonymous mapping aliases no existing memory.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        Self::from_raw(ptr, len)
    }

    /// A shared read/write mapping of `len` bytes of `fd` at page offset `offset`
    /// (the AF_XDP rings).
    pub(crate) fn shared(fd: &OwnedFd, len: usize, offset: i64) -> io::Result<Mmap> {
        // SAFETY: a fresh mapping chosen by the kernel aliases no Rust-owned memory.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset,
            )
        };
        Self::from_raw(ptr, len)
    }

    fn from_raw(ptr: *mut libc::c_void, len: usize) -> io::Result<Mmap> {
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Mmap {
            ptr,
            len,
            owned: true,
        })
    }

    /// A second, non-owning view of a mapping (tests play the kernel's side of a ring).
    ///
    /// # Safety
    /// The alias must be dropped before the mapping it views is unmapped.
    #[cfg(test)]
    pub(crate) unsafe fn alias_for_test(ptr: NonNull<u8>, len: usize) -> Mmap {
        Mmap {
            ptr,
            len,
            owned: false,
        }
    }

    /// Base address.
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        // SAFETY: `ptr`/`len` describe a mapping this value created and nobody else unmaps;
        // every pointer derived from it is owned by values that hold this mapping alive.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<SockaddrXdp>(), 16);
        assert_eq!(std::mem::size_of::<UmemReg>(), 32);
        assert_eq!(std::mem::size_of::<RingOffset>(), 32);
        assert_eq!(std::mem::size_of::<MmapOffsets>(), 128);
        assert_eq!(std::mem::size_of::<XdpDesc>(), 16);
        assert_eq!(std::mem::size_of::<XdpStatistics>(), 48);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn anonymous_mapping_is_zeroed_and_sized() {
        let m = Mmap::anonymous(8192).unwrap();
        assert_eq!(m.len(), 8192);
        // SAFETY: the mapping is 8192 readable bytes owned by `m`.
        let bytes = unsafe { std::slice::from_raw_parts(m.ptr().as_ptr(), m.len()) };
        assert!(bytes.iter().all(|&b| b == 0));
    }
}
