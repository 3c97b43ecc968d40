//! Small network-device helpers for the lab, the tests and the binary: interface index,
//! MAC address, MTU, receive-queue count, legacy ethtool offload switches, and running code
//! inside a named network namespace. ioctl and setns only; no subprocesses.
//!
//! Not here: creating interfaces or namespaces (the lab does that).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const IFNAMSIZ: usize = 16;
const SIOCGIFMTU: libc::c_ulong = 0x8921;
const SIOCGIFHWADDR: libc::c_ulong = 0x8927;
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_SGRO: u32 = 0x2c;
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// `struct ifreq`: a name and a 24-byte union, of which we use the first bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct IfReq {
    name: [libc::c_char; IFNAMSIZ],
    /// `ifr_ifru`, 8-byte aligned so it can hold `ifr_data` (a pointer).
    data: [u64; 3],
}

/// `struct ethtool_value`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ethtool_channels`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

impl IfReq {
    fn new(name: &str) -> io::Result<IfReq> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid interface name {name:?}"),
            ));
        }
        let mut req = IfReq {
            name: [0; IFNAMSIZ],
            data: [0; 3],
        };
        for (d, s) in req.name.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        Ok(req)
    }

    fn data_bytes(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        for (chunk, word) in out.chunks_exact_mut(8).zip(self.data) {
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        out
    }
}

/// A datagram socket to issue interface ioctls on (in the calling thread's namespace).
pub(crate) fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl(sock: &OwnedFd, req: libc::c_ulong, ifr: &mut IfReq) -> io::Result<()> {
    // SAFETY: `ifr` is a live, writable ifreq (40 bytes, the kernel's size); for
    // SIOCETHTOOL its data pointer (set by `ethtool`) points to a live, writable ethtool
    // argument as long as the command needs (the callers size it from the kernel's own
    // structure and the counts in it), borrowed for the duration of the call.
    let ret = unsafe { libc::ioctl(sock.as_raw_fd(), req as _, ifr as *mut IfReq) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs one SIOCETHTOOL command on interface `name` whose argument is `arg`: a command
/// structure or a byte buffer that starts with its `cmd` word and is as long as the
/// command's structure (with its trailing array) needs.
pub(crate) fn ethtool<T: ?Sized>(sock: &OwnedFd, name: &str, arg: &mut T) -> io::Result<()> {
    let mut ifr = IfReq::new(name)?;
    ifr.data[0] = (arg as *mut T).cast::<u8>() as u64;
    ioctl(sock, SIOCETHTOOL, &mut ifr)
}

/// The interface index of `name` (in the calling thread's network namespace).
pub fn ifindex(name: &str) -> io::Result<u32> {
    IfReq::new(name)?;
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// The hardware (MAC) address of `name` (SIOCGIFHWADDR).
pub fn mac_address(name: &str) -> io::Result<[u8; 6]> {
    let sock = ioctl_socket()?;
    let mut ifr = IfReq::new(name)?;
    ioctl(&sock, SIOCGIFHWADDR, &mut ifr)?;
    // ifr_hwaddr is a sockaddr: 2 bytes of family, then the address.
    let d = ifr.data_bytes();
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&d[2..8]);
    Ok(mac)
}

/// The MTU of `name` (SIOCGIFMTU).
pub fn mtu(name: &str) -> io::Result<u32> {
    let sock = ioctl_socket()?;
    let mut ifr = IfReq::new(name)?;
    ioctl(&sock, SIOCGIFMTU, &mut ifr)?;
    let d = ifr.data_bytes();
    let mtu = i32::from_ne_bytes([d[0], d[1], d[2], d[3]]);
    u32::try_from(mtu).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// How many receive queues `name` has; 1 when it cannot tell.
///
/// Asks ethtool for the channel counts first (answers in the calling thread's namespace,
/// which sysfs does not when it was mounted in another one), then counts
/// `/sys/class/net/NAME/queues/rx-*`.
pub fn rx_queue_count(name: &str) -> u32 {
    let from_ethtool = ioctl_socket().and_then(|sock| {
        let mut ch = EthtoolChannels {
            cmd: ETHTOOL_GCHANNELS,
            ..Default::default()
        };
        ethtool(&sock, name, &mut ch)?;
        Ok(ch.rx_count + ch.combined_count)
    });
    if let Ok(n @ 1..) = from_ethtool {
        return n;
    }
    let dir = format!("/sys/class/net/{name}/queues");
    let count = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(0);
    u32::try_from(count).unwrap_or(u32::MAX).max(1)
}

/// Turns TX checksum offload, TSO, GSO and GRO of `name` on or off with the legacy ethtool
/// ioctls. An offload the driver does not implement (EOPNOTSUPP) is skipped.
pub fn set_offloads(name: &str, tx_csum: bool, tso: bool, gso: bool, gro: bool) -> io::Result<()> {
    let sock = ioctl_socket()?;
    for (cmd, on) in [
        (ETHTOOL_STXCSUM, tx_csum),
        (ETHTOOL_STSO, tso),
        (ETHTOOL_SGSO, gso),
        (ETHTOOL_SGRO, gro),
    ] {
        let mut v = EthtoolValue {
            cmd,
            data: u32::from(on),
        };
        match ethtool(&sock, name, &mut v) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs `f` on a fresh thread that first joins the network namespace `/run/netns/NS_NAME`
/// (as created by `ip netns add`), and returns its result. Sockets `f` creates stay in that
/// namespace wherever they are used afterwards. A panic in `f` is propagated.
pub fn in_netns<T: Send>(ns_name: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    if ns_name.is_empty() || ns_name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid namespace name {ns_name:?}"),
        ));
    }
    let ns = File::open(format!("/run/netns/{ns_name}"))?;
    std::thread::scope(|s| {
        let handle = s.spawn(move || {
            // SAFETY: setns takes a live descriptor we own; CLONE_NEWNET only changes this
            // (fresh, private) thread's network namespace.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        });
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        assert_eq!(std::mem::size_of::<EthtoolValue>(), 8);
        assert_eq!(std::mem::size_of::<EthtoolChannels>(), 36);
    }

    #[test]
    fn loopback_is_described() {
        assert_eq!(ifindex("lo").unwrap(), 1);
        assert_eq!(mac_address("lo").unwrap(), [0; 6]);
        assert!(mtu("lo").unwrap() >= 1500);
        assert!(rx_queue_count("lo") >= 1);
    }

    #[test]
    fn bad_names_are_errors() {
        assert!(ifindex("").is_err());
        assert!(ifindex("a-name-much-too-long").is_err());
        assert!(ifindex("nonexistent9").is_err());
        assert!(mac_address("nonexistent9").is_err());
        assert_eq!(rx_queue_count("nonexistent9"), 1);
        assert!(in_netns("no/such", || ()).is_err());
        assert!(in_netns("sixstack-no-such-ns", || ()).is_err());
    }
}
