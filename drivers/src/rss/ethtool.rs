//! The NIC's own RSS configuration and n-tuple steering over the `SIOCETHTOOL` ioctl:
//! `ETHTOOL_GRSSH` (key and indirection table), `ETHTOOL_SRXCLSRLINS` /
//! `ETHTOOL_SRXCLSRLDEL` (classification rules that send a destination port to a queue).
//!
//! Not here: any other ethtool command (`netdev.rs` has the offload switches and channel
//! counts; the ioctl itself is `netdev::ethtool`).

use std::io;
use std::os::fd::OwnedFd;

use super::{Proto, RssConfig, RssError};
use crate::netdev::{ethtool, ioctl_socket};

const ETHTOOL_SRXCLSRLDEL: u32 = 0x31;
const ETHTOOL_SRXCLSRLINS: u32 = 0x32;
const ETHTOOL_GRSSH: u32 = 0x46;
/// `ETH_RSS_HASH_TOP`: Toeplitz.
const ETH_RSS_HASH_TOP: u8 = 1;
const TCP_V4_FLOW: u32 = 0x01;
const UDP_V4_FLOW: u32 = 0x02;
const TCP_V6_FLOW: u32 = 0x05;
const UDP_V6_FLOW: u32 = 0x06;
const RX_CLS_LOC_ANY: u32 = 0xffff_ffff;
/// Size of `struct ethtool_rxfh` up to its flexible `rss_config` array.
const RXFH_HDR: usize = 24;

/// `struct ethtool_rx_flow_spec`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct FlowSpec {
    flow_type: u32,
    h_u: [u8; 52],
    h_ext: [u8; 20],
    m_u: [u8; 52],
    m_ext: [u8; 20],
    /// Explicit alignment padding (so the struct has no uninitialised bytes).
    _pad: u32,
    ring_cookie: u64,
    location: u32,
    _pad2: u32,
}

/// `struct ethtool_rxnfc` (without its flexible `rule_locs`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct RxNfc {
    cmd: u32,
    flow_type: u32,
    data: u64,
    fs: FlowSpec,
    rule_cnt: u32,
    _pad: u32,
}

impl RxNfc {
    fn zeroed(cmd: u32) -> RxNfc {
        RxNfc {
            cmd,
            flow_type: 0,
            data: 0,
            fs: FlowSpec {
                flow_type: 0,
                h_u: [0; 52],
                h_ext: [0; 20],
                m_u: [0; 52],
                m_ext: [0; 20],
                _pad: 0,
                ring_cookie: 0,
                location: 0,
                _pad2: 0,
            },
            rule_cnt: 0,
            _pad: 0,
        }
    }
}

/// Runs an rxnfc command.
fn ethtool_rxnfc(sock: &OwnedFd, ifname: &str, nfc: &mut RxNfc) -> io::Result<()> {
    ethtool(sock, ifname, nfc)
}

/// `Ok` when `ifname` names an interface in the calling thread's namespace.
fn check_interface(ifname: &str) -> Result<(), RssError> {
    crate::netdev::ifindex(ifname)
        .map(drop)
        .map_err(|source| RssError::Interface {
            ifname: ifname.to_owned(),
            source,
        })
}

fn is_unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EOPNOTSUPP)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

/// Reads the NIC's RSS key and indirection table (`ETHTOOL_GRSSH`), in the calling
/// thread's namespace.
///
/// `Ok(None)` when the device has no RSS to report: the driver does not implement the
/// command (EOPNOTSUPP: veth, loopback, TAP) or reports neither a key nor a table.
/// [`RssError::Unsupported`] when it reports a configuration [`RssConfig`] cannot model:
/// a hash function other than Toeplitz, a symmetric input transform, a table without a key.
/// [`RssError::InvalidIndirection`] for a table that is not a power of two long.
pub fn read_from_nic(ifname: &str) -> Result<Option<RssConfig>, RssError> {
    let syscall = |source| RssError::Syscall {
        syscall: "ioctl(SIOCETHTOOL, ETHTOOL_GRSSH)",
        source,
    };
    check_interface(ifname)?;
    let sock = ioctl_socket().map_err(syscall)?;
    let mut hdr = [0u8; RXFH_HDR];
    hdr[0..4].copy_from_slice(&ETHTOOL_GRSSH.to_ne_bytes());
    match ethtool(&sock, ifname, &mut hdr[..]) {
        Ok(()) => {}
        Err(e) if is_unsupported(&e) => return Ok(None),
        Err(e) => return Err(syscall(e)),
    }
    let (indir_size, key_size) = (u32_at(&hdr, 8), u32_at(&hdr, 12));
    if indir_size == 0 && key_size == 0 {
        return Ok(None);
    }
    let unsupported = |what| {
        Err(RssError::Unsupported {
            ifname: ifname.to_owned(),
            what,
        })
    };
    if key_size == 0 {
        return unsupported("RSS without a readable hash key");
    }
    let (n, k) = (indir_size as usize, key_size as usize);
    if n > super::MAX_INDIRECTION || k > super::MAX_KEY_LEN {
        return Err(RssError::InvalidIndirection { len: n });
    }
    let mut buf = vec![0u8; RXFH_HDR + 4 * n + k];
    buf[0..4].copy_from_slice(&ETHTOOL_GRSSH.to_ne_bytes());
    buf[8..12].copy_from_slice(&indir_size.to_ne_bytes());
    buf[12..16].copy_from_slice(&key_size.to_ne_bytes());
    ethtool(&sock, ifname, &mut buf[..]).map_err(syscall)?;
    let (hfunc, input_xfrm) = (buf[16], buf[17]);
    // 0: the driver does not say (the hardware default, Toeplitz on the NICs we know).
    if hfunc != 0 && hfunc != ETH_RSS_HASH_TOP {
        return unsupported("an RSS hash function other than Toeplitz");
    }
    if input_xfrm != 0 {
        return unsupported("an RSS input transform (symmetric hashing)");
    }
    let indirection = (0..n).map(|i| u32_at(&buf, RXFH_HDR + 4 * i)).collect();
    let key_at = RXFH_HDR + 4 * n;
    let key = buf[key_at..key_at + k].to_vec();
    RssConfig::new(key, indirection).map(Some)
}

/// An n-tuple filter rule steering a TCP or UDP destination port to a receive queue
/// (`ETHTOOL_SRXCLSRLINS` at `RX_CLS_LOC_ANY`), removed on drop (`ETHTOOL_SRXCLSRLDEL`).
///
/// One rule for IPv4 is always inserted; one for IPv6 too where the NIC takes it (some
/// only filter IPv4: then [`covers_ipv6`](Self::covers_ipv6) is false). Drop works from
/// any thread: the ioctl socket stays in the namespace the rule was inserted from.
#[derive(Debug)]
pub struct NtupleRule {
    sock: OwnedFd,
    ifname: String,
    /// IPv4 rule location, then the IPv6 one if any.
    locations: Vec<u32>,
}

/// `flow_type` for a protocol and family.
fn flow_type(proto: Proto, v6: bool) -> u32 {
    match (proto, v6) {
        (Proto::Tcp, false) => TCP_V4_FLOW,
        (Proto::Udp, false) => UDP_V4_FLOW,
        (Proto::Tcp, true) => TCP_V6_FLOW,
        (Proto::Udp, true) => UDP_V6_FLOW,
    }
}

/// The insert request for one family.
fn insert_request(proto: Proto, v6: bool, dst_port: u16, queue: u32) -> RxNfc {
    let mut nfc = RxNfc::zeroed(ETHTOOL_SRXCLSRLINS);
    nfc.fs.flow_type = flow_type(proto, v6);
    // tcp_ip4_spec.pdst is at 10, tcp_ip6_spec.pdst at 34 (after the addresses and psrc).
    let pdst = if v6 { 34 } else { 10 };
    nfc.fs.h_u[pdst..pdst + 2].copy_from_slice(&dst_port.to_be_bytes());
    nfc.fs.m_u[pdst..pdst + 2].copy_from_slice(&[0xff, 0xff]);
    nfc.fs.ring_cookie = u64::from(queue);
    nfc.fs.location = RX_CLS_LOC_ANY;
    nfc
}

impl NtupleRule {
    /// Inserts rules sending `proto` frames for `dst_port` to `queue` on `ifname` (in the
    /// calling thread's namespace). [`RssError::Unsupported`] where the device has no
    /// n-tuple filters (veth: callers then hand frames over in software).
    pub fn insert(
        ifname: &str,
        proto: Proto,
        dst_port: u16,
        queue: u32,
    ) -> Result<NtupleRule, RssError> {
        let syscall = |source| RssError::Syscall {
            syscall: "ioctl(SIOCETHTOOL, ETHTOOL_SRXCLSRLINS)",
            source,
        };
        check_interface(ifname)?;
        let sock = ioctl_socket().map_err(syscall)?;
        let mut v4 = insert_request(proto, false, dst_port, queue);
        match ethtool_rxnfc(&sock, ifname, &mut v4) {
            Ok(()) => {}
            Err(e) if is_unsupported(&e) => {
                return Err(RssError::Unsupported {
                    ifname: ifname.to_owned(),
                    what: "n-tuple filtering (ETHTOOL_SRXCLSRLINS)",
                })
            }
            Err(e) => return Err(syscall(e)),
        }
        let mut rule = NtupleRule {
            sock,
            ifname: ifname.to_owned(),
            locations: vec![v4.fs.location],
        };
        let mut v6 = insert_request(proto, true, dst_port, queue);
        match ethtool_rxnfc(&rule.sock, ifname, &mut v6) {
            Ok(()) => rule.locations.push(v6.fs.location),
            Err(e) => log::debug!("{ifname}: no IPv6 n-tuple rule for port {dst_port}: {e}"),
        }
        Ok(rule)
    }

    /// Where the NIC put the (IPv4) rule.
    pub fn location(&self) -> u32 {
        self.locations.first().copied().unwrap_or(RX_CLS_LOC_ANY)
    }

    /// Whether an IPv6 rule was inserted as well.
    pub fn covers_ipv6(&self) -> bool {
        self.locations.len() > 1
    }
}

impl Drop for NtupleRule {
    fn drop(&mut self) {
        for &loc in &self.locations {
            let mut nfc = RxNfc::zeroed(ETHTOOL_SRXCLSRLDEL);
            nfc.fs.location = loc;
            if let Err(e) = ethtool_rxnfc(&self.sock, &self.ifname, &mut nfc) {
                log::warn!("{}: removing n-tuple rule {loc}: {e}", self.ifname);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn struct_layouts_match_the_kernel() {
        assert_eq!(size_of::<FlowSpec>(), 168);
        assert_eq!(offset_of!(FlowSpec, ring_cookie), 152);
        assert_eq!(offset_of!(FlowSpec, location), 160);
        assert_eq!(size_of::<RxNfc>(), 192);
        assert_eq!(offset_of!(RxNfc, fs), 16);
        assert_eq!(offset_of!(RxNfc, rule_cnt), 184);
    }

    #[test]
    fn insert_request_matches_port_exactly() {
        let r = insert_request(Proto::Udp, false, 0x1234, 3);
        assert_eq!((r.cmd, r.fs.flow_type), (ETHTOOL_SRXCLSRLINS, UDP_V4_FLOW));
        assert_eq!(&r.fs.h_u[10..12], &[0x12, 0x34]);
        assert_eq!(&r.fs.m_u[10..12], &[0xff, 0xff]);
        assert!(
            r.fs.m_u[..10].iter().all(|&b| b == 0),
            "only the port is matched"
        );
        assert_eq!((r.fs.ring_cookie, r.fs.location), (3, RX_CLS_LOC_ANY));
        let r = insert_request(Proto::Tcp, true, 443, 1);
        assert_eq!(r.fs.flow_type, TCP_V6_FLOW);
        assert_eq!(&r.fs.h_u[34..36], &443u16.to_be_bytes());
        assert_eq!(&r.fs.m_u[34..36], &[0xff, 0xff]);
    }

    #[test]
    fn loopback_has_no_rss_and_no_ntuple() {
        assert!(read_from_nic("lo").unwrap().is_none());
        match NtupleRule::insert("lo", Proto::Tcp, 80, 0) {
            Err(RssError::Unsupported { .. }) => {}
            // Without CAP_NET_ADMIN the kernel refuses before asking the driver.
            Err(RssError::Syscall { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => {
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
        assert!(matches!(
            read_from_nic("nonexistent9"),
            Err(RssError::Interface { .. })
        ));
        assert!(matches!(
            read_from_nic("a-name-much-too-long"),
            Err(RssError::Interface { .. })
        ));
        assert!(matches!(
            NtupleRule::insert("nonexistent9", Proto::Udp, 53, 0),
            Err(RssError::Interface { .. })
        ));
    }
}
