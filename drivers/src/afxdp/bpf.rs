//! bpf(2) wrappers for what the driver needs: an XSKMAP (`BPF_MAP_CREATE`,
//! `BPF_MAP_UPDATE_ELEM`), loading the generated program (`BPF_PROG_LOAD`, with the
//! verifier's log on failure) and attaching it to an interface as a bpf_link
//! (`BPF_LINK_CREATE`).
//!
//! Not here: the program itself (`program.rs`) or the netlink fallback (`netlink.rs`).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::asm::Insn;
use super::sys;
use super::XdpError;

/// `bpf_attr` for `BPF_MAP_CREATE`.
#[repr(C)]
#[derive(Debug, Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `bpf_attr` for `BPF_MAP_UPDATE_ELEM`.
#[repr(C)]
#[derive(Debug, Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `bpf_attr` for `BPF_PROG_LOAD`.
#[repr(C)]
#[derive(Debug, Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `bpf_attr` for `BPF_LINK_CREATE`.
#[repr(C)]
#[derive(Debug, Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// `enum bpf_map_type` value of a plain array.
const BPF_MAP_TYPE_ARRAY: u32 = 2;
/// License the program is loaded under (`bpf_redirect_map` is not GPL-only, but say so).
const LICENSE: &[u8] = b"Dual MIT/GPL\0";
/// Verifier log size on the retry after a failed load.
const LOG_SIZE: usize = 1 << 20;

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = b;
    }
    out
}

fn raw(fd: &OwnedFd) -> u32 {
    // Descriptors are non-negative.
    fd.as_raw_fd() as u32
}

/// Creates an XSKMAP with `entries` slots (one per queue), keyed by queue id.
pub(crate) fn create_xskmap(entries: u32) -> Result<OwnedFd, XdpError> {
    let mut attr = MapCreateAttr {
        map_type: sys::BPF_MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries: entries,
        map_name: name16("sixstack_xsks"),
        ..Default::default()
    };
    // SAFETY: this attr holds no pointers.
    unsafe { sys::bpf_fd(sys::BPF_MAP_CREATE, &mut attr) }.map_err(|source| XdpError::Syscall {
        syscall: "bpf(BPF_MAP_CREATE, XSKMAP)",
        source,
    })
}

/// Stores socket `xsk` in slot `queue` of the XSKMAP `map`.
pub(crate) fn xskmap_set(map: &OwnedFd, queue: u32, xsk: &OwnedFd) -> Result<(), XdpError> {
    let key: u32 = queue;
    let value: u32 = raw(xsk);
    let mut attr = MapElemAttr {
        map_fd: raw(map),
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        flags: 0, // BPF_ANY
        ..Default::default()
    };
    // SAFETY: `key` and `value` are live u32s (the map's key and value size) until the
    // call returns.
    unsafe { sys::bpf(sys::BPF_MAP_UPDATE_ELEM, &mut attr) }
        .map(drop)
        .map_err(|source| XdpError::Syscall {
            syscall: "bpf(BPF_MAP_UPDATE_ELEM, XSKMAP)",
            source,
        })
}

/// What a program is loaded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProgKind {
    /// `enum bpf_prog_type`.
    pub prog_type: u32,
    /// `enum bpf_attach_type` the program is meant for.
    pub expected_attach_type: u32,
    /// The name the kernel shows (at most 15 bytes are kept).
    pub name: &'static str,
    /// `prog_flags` of `BPF_PROG_LOAD` (e.g. `BPF_F_XDP_HAS_FRAGS`).
    pub prog_flags: u32,
}

const XDP_KIND: ProgKind = ProgKind {
    prog_type: sys::BPF_PROG_TYPE_XDP,
    expected_attach_type: sys::BPF_XDP,
    name: "sixstack_xdp",
    prog_flags: sys::BPF_F_XDP_HAS_FRAGS,
};

/// The same program for kernels that do not know `BPF_F_XDP_HAS_FRAGS` (before 5.18).
const XDP_KIND_LINEAR: ProgKind = ProgKind {
    prog_flags: 0,
    ..XDP_KIND
};

fn prog_load(kind: ProgKind, insns: &[Insn], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let insn_cnt =
        u32::try_from(insns.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let mut attr = ProgLoadAttr {
        prog_type: kind.prog_type,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        prog_name: name16(kind.name),
        expected_attach_type: kind.expected_attach_type,
        prog_flags: kind.prog_flags,
        ..Default::default()
    };
    if let Some(buf) = log {
        attr.log_level = 1;
        attr.log_size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        attr.log_buf = buf.as_mut_ptr() as u64;
    }
    // SAFETY: `insns` (insn_cnt × 8 bytes, `Insn` is `struct bpf_insn`), the NUL-terminated
    // license and the writable log buffer of `log_size` bytes all outlive the call.
    unsafe { sys::bpf_fd(sys::BPF_PROG_LOAD, &mut attr) }
}

/// Loads a program of `kind`; on failure loads it again with a verifier log and returns
/// the first error with that log.
pub(crate) fn load_program(kind: ProgKind, insns: &[Insn]) -> Result<OwnedFd, (io::Error, String)> {
    match prog_load(kind, insns, None) {
        Ok(fd) => Ok(fd),
        Err(source) => {
            let mut buf = vec![0u8; LOG_SIZE];
            // A success on the retry (the first failure was transient) is a success.
            if let Ok(fd) = prog_load(kind, insns, Some(&mut buf)) {
                return Ok(fd);
            }
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let log = String::from_utf8_lossy(&buf[..end]).trim_end().to_owned();
            Err((source, log))
        }
    }
}

/// Loads an XDP program; on failure loads it again with a verifier log and returns the log
/// in the error.
///
/// The program is loaded as frags-aware (`BPF_F_XDP_HAS_FRAGS`): it only reads headers,
/// which always sit in the first buffer, so it is correct for multi-buffer frames, and the
/// kernel then lets it run on interfaces whose MTU exceeds one page (jumbo frames) and
/// hand such frames to sockets bound with `XDP_USE_SG`. A kernel that does not know the
/// flag gets the plain program.
pub(crate) fn load_xdp(insns: &[Insn]) -> Result<OwnedFd, XdpError> {
    match prog_load(XDP_KIND, insns, None) {
        Ok(fd) => Ok(fd),
        Err(e) => {
            log::debug!("frags-aware XDP program refused ({e}); loading it without frags");
            load_program(XDP_KIND_LINEAR, insns)
                .map_err(|(source, log)| XdpError::ProgramLoad { source, log })
        }
    }
}

/// Creates a `BPF_MAP_TYPE_ARRAY` map with 4-byte keys, `value_size`-byte values,
/// `max_entries` entries and `map_flags` (e.g. `BPF_F_RDONLY_PROG`).
pub(crate) fn create_array(
    name: &str,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size,
        max_entries,
        map_flags,
        map_name: name16(name),
        ..Default::default()
    };
    // SAFETY: this attr holds no pointers.
    unsafe { sys::bpf_fd(sys::BPF_MAP_CREATE, &mut attr) }
}

/// Stores `value` under the 4-byte key `key` of `map`. `value` must be exactly the map's
/// value size (the kernel reads that many bytes); EINVAL otherwise is the caller's bug, so
/// a length mismatch is refused here before the call.
pub(crate) fn map_update(map: &OwnedFd, key: u32, value: &[u8], value_size: u32) -> io::Result<()> {
    if usize::try_from(value_size).ok() != Some(value.len()) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut attr = MapElemAttr {
        map_fd: raw(map),
        key: &key as *const u32 as u64,
        value: value.as_ptr() as u64,
        flags: 0, // BPF_ANY
        ..Default::default()
    };
    // SAFETY: `key` is a live u32 (the key size) and `value` holds exactly the map's
    // value size in readable bytes (checked above) until the call returns.
    unsafe { sys::bpf(sys::BPF_MAP_UPDATE_ELEM, &mut attr) }.map(drop)
}

/// `BPF_LINK_CREATE` of `prog` on interface `ifindex` with `attach_type` and `flags`.
/// Closing the returned descriptor detaches the program.
pub(crate) fn link_create(
    prog: &OwnedFd,
    ifindex: u32,
    attach_type: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: raw(prog),
        target_ifindex: ifindex,
        attach_type,
        flags,
    };
    // SAFETY: this attr holds no pointers.
    unsafe { sys::bpf_fd(sys::BPF_LINK_CREATE, &mut attr) }
}

/// Attaches `prog` to interface `ifindex` as a bpf_link with XDP mode `flags`
/// (`XDP_FLAGS_DRV_MODE` or `XDP_FLAGS_SKB_MODE`). Closing the returned descriptor detaches
/// the program; so does the death of the process, however it dies.
pub(crate) fn link_xdp(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    link_create(prog, ifindex, sys::BPF_XDP, flags)
}

/// Whether the current process may load BPF programs (root tests check before running).
#[cfg(test)]
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::afxdp::asm::{reg, Asm};
    use crate::afxdp::{program, XdpFilter};

    #[test]
    fn attr_layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<MapCreateAttr>(), 44);
        assert_eq!(std::mem::size_of::<MapElemAttr>(), 32);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::size_of::<LinkCreateAttr>(), 16);
        assert_eq!(
            &name16("a_very_long_program_name")[..],
            b"a_very_long_pro\0"
        );
    }

    #[test]
    fn generated_filter_loads_as_root() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let map = create_xskmap(4).unwrap();
        let filter = XdpFilter {
            ipv4: vec!["10.99.1.2".parse().unwrap(), "192.0.2.200".parse().unwrap()],
            ipv6: vec!["fd00:99::2".parse().unwrap()],
        };
        let insns = program::build(&filter, map.as_raw_fd()).unwrap();
        load_xdp(&insns).unwrap();
        // The largest filter loads too.
        let big = XdpFilter {
            ipv4: (0..16)
                .map(|i| std::net::Ipv4Addr::new(10, 0, 0, i))
                .collect(),
            ipv6: (0..16)
                .map(|i| std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i))
                .collect(),
        };
        load_xdp(&program::build(&big, map.as_raw_fd()).unwrap()).unwrap();
    }

    #[test]
    fn verifier_log_comes_back_on_rejection() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        // Reads the packet without a bounds check: the verifier must refuse it.
        let mut a = Asm::new();
        a.ldx(crate::afxdp::asm::Size::W, reg::R2, reg::R1, 0);
        a.ldx(crate::afxdp::asm::Size::W, reg::R0, reg::R2, 0);
        a.exit();
        match load_xdp(&a.finish().unwrap()) {
            Err(XdpError::ProgramLoad { log, .. }) => {
                assert!(!log.is_empty(), "empty verifier log");
            }
            other => panic!("expected a verifier rejection, got {other:?}"),
        }
    }
}
