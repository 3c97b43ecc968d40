//! The AF_XDP driver: kernel bypass for the frames addressed to the stack, while the kernel
//! keeps every other frame of the same interface.
//!
//! Two pieces. An [`XdpProgram`] is attached once per interface: a filter generated in Rust
//! as raw eBPF (no C toolchain, no libbpf) that redirects into an XSKMAP only IPv4/IPv6
//! frames for the stack's addresses and ARP/NDP about them, and passes everything else. An
//! [`XdpLink`] is one XSK socket bound to one queue with its own UMEM; it is the shard's
//! smoltcp [`Device`](smoltcp::phy::Device) and [`Link`](crate::Link).
//!
//! Layout: `sys` (raw structs and syscalls), `umem` and `ring` (the shared memory),
//! `asm` and `program` (the filter), `bpf` and `netlink` (loading and attaching),
//! `socket` (the link).

pub(crate) mod asm;
pub(crate) mod bpf;
#[cfg(test)]
mod lab_tests;
mod netlink;
mod program;
mod ring;
#[doc(hidden)]
pub mod ring_loopback;
mod socket;
pub(crate) mod sys;
mod umem;

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

pub use program::MAX_ADDRS_PER_FAMILY;
pub use socket::XdpLink;

/// How to attach the XDP program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpAttachMode {
    /// Native (driver) mode if the driver supports it, generic (skb) mode otherwise.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode only: works on any interface, slower.
    Generic,
}

/// The mode an XDP program ended up attached in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    /// Native (driver) mode.
    Native,
    /// Generic (skb) mode.
    Generic,
}

impl AttachedMode {
    fn flags(self) -> u32 {
        match self {
            AttachedMode::Native => sys::XDP_FLAGS_DRV_MODE,
            AttachedMode::Generic => sys::XDP_FLAGS_SKB_MODE,
        }
    }
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        })
    }
}

/// Whether the XSK socket binds in zero-copy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroCopy {
    /// Try `XDP_ZEROCOPY`; fall back to `XDP_COPY` when the driver refuses it.
    #[default]
    Auto,
    /// `XDP_ZEROCOPY` or fail.
    Require,
    /// `XDP_COPY` only.
    Off,
}

/// The stack's own addresses: the frames the XDP program redirects to the stack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XdpFilter {
    /// IPv4 destinations (and ARP targets) to redirect.
    pub ipv4: Vec<Ipv4Addr>,
    /// IPv6 destinations (and Neighbor Solicitation targets) to redirect.
    pub ipv6: Vec<Ipv6Addr>,
}

/// Everything needed to open one AF_XDP link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpConfig {
    /// Interface name.
    pub ifname: String,
    /// Receive queue to bind to.
    pub queue: u32,
    /// Bytes per UMEM frame: a power of two from 2048 to the page size.
    pub frame_size: u32,
    /// UMEM frames; half receive, half transmit.
    pub frame_count: u32,
    /// Entries of the RX and TX rings (a power of two); the fill and completion rings are
    /// sized to hold every frame of their half.
    pub ring_size: u32,
    /// How the program is attached (used by [`XdpLink::open`]).
    pub attach: XdpAttachMode,
    /// Zero-copy policy.
    pub zero_copy: ZeroCopy,
    /// The addresses to redirect (used by [`XdpLink::open`]).
    pub filter: XdpFilter,
    /// The IP MTU of the interface (1500 by default). When a whole Ethernet frame of this
    /// MTU does not fit in one UMEM frame after the kernel's headroom, the socket binds
    /// with `XDP_USE_SG` (multi-buffer, kernel 6.6+): received frames arrive as several
    /// buffers and are gathered, transmitted frames leave as several descriptors.
    pub mtu: u32,
}

/// Bytes the kernel keeps free at the start of every receive buffer
/// (`XDP_PACKET_HEADROOM`).
pub(crate) const RX_HEADROOM: u32 = 256;
/// Ethernet header bytes on top of the IP MTU (no FCS, no VLAN tag).
const ETH_HEADER: u32 = crate::ETH_HEADER as u32;
/// The largest IP MTU a link accepts (the jumbo frames NICs carry).
pub const MAX_MTU: u32 = 9702;

impl XdpConfig {
    /// A configuration with the defaults: 4096 frames of 2048 bytes, rings of 2048,
    /// automatic attach and zero-copy modes.
    pub fn new(ifname: impl Into<String>, queue: u32, filter: XdpFilter) -> XdpConfig {
        XdpConfig {
            ifname: ifname.into(),
            queue,
            frame_size: 2048,
            frame_count: 4096,
            ring_size: 2048,
            attach: XdpAttachMode::Auto,
            zero_copy: ZeroCopy::Auto,
            filter,
            mtu: 1500,
        }
    }

    /// The largest Ethernet frame the link sends or receives.
    pub fn frame_len(&self) -> u32 {
        self.mtu + ETH_HEADER
    }

    /// Whether frames of this MTU need several UMEM buffers (`XDP_USE_SG`).
    pub fn multi_buffer(&self) -> bool {
        self.frame_len() + RX_HEADROOM > self.frame_size
    }

    /// Consecutive UMEM frames one transmitted frame may span.
    pub(crate) fn tx_span(&self) -> u32 {
        self.frame_len().div_ceil(self.frame_size)
    }

    fn validate(&self) -> Result<(), XdpError> {
        let bad = |why: String| Err(XdpError::Config(why));
        if !self.frame_size.is_power_of_two() || !(2048..=4096).contains(&self.frame_size) {
            return bad(format!(
                "frame_size {} is not a power of two from 2048 to 4096",
                self.frame_size
            ));
        }
        if self.frame_count < 4 || !self.frame_count.is_multiple_of(2) || self.frame_count > 1 << 20
        {
            return bad(format!(
                "frame_count {} must be even, at least 4 and at most 2^20",
                self.frame_count
            ));
        }
        if !self.ring_size.is_power_of_two() || !(8..=1 << 16).contains(&self.ring_size) {
            return bad(format!(
                "ring_size {} is not a power of two from 8 to 65536",
                self.ring_size
            ));
        }
        if !(576..=MAX_MTU).contains(&self.mtu) {
            return bad(format!("mtu {} is not from 576 to {MAX_MTU}", self.mtu));
        }
        if self.frame_count / 2 < self.tx_span() * 2 {
            return bad(format!(
                "frame_count {} leaves fewer than two transmit frames of MTU {}",
                self.frame_count, self.mtu
            ));
        }
        check_filter(&self.filter)
    }
}

fn check_filter(filter: &XdpFilter) -> Result<(), XdpError> {
    for (family, count) in [("IPv4", filter.ipv4.len()), ("IPv6", filter.ipv6.len())] {
        if count > MAX_ADDRS_PER_FAMILY {
            return Err(XdpError::TooManyAddresses {
                family,
                count,
                max: MAX_ADDRS_PER_FAMILY,
            });
        }
    }
    Ok(())
}

/// Why setting up AF_XDP failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XdpError {
    /// The configuration cannot work (frame or ring geometry); the text says which field.
    #[error("invalid AF_XDP configuration: {0}")]
    Config(String),
    /// The filter lists more addresses of one family than the program matches.
    #[error("the XDP filter has {count} {family} addresses; at most {max} are supported")]
    TooManyAddresses {
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// Addresses given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The interface does not exist (or its name is not valid).
    #[error("interface {ifname}: {source}")]
    Interface {
        /// The name looked up.
        ifname: String,
        /// What the lookup returned.
        source: io::Error,
    },
    /// A system call failed while creating a map, the socket, its UMEM or rings.
    #[error("{syscall}: {source}")]
    Syscall {
        /// The call and, where useful, what it was for.
        syscall: &'static str,
        /// The error it returned.
        source: io::Error,
    },
    /// The kernel's verifier rejected the generated program. Includes its log.
    #[error("bpf(BPF_PROG_LOAD) rejected the XDP program: {source}\nverifier log:\n{log}")]
    ProgramLoad {
        /// The error `BPF_PROG_LOAD` returned.
        source: io::Error,
        /// The verifier's log from a second attempt with logging on.
        log: String,
    },
    /// The program could not be attached in any mode allowed. `source` is the
    /// `BPF_LINK_CREATE` error; `fallback` what the netlink attach said.
    #[error("attaching XDP to {ifname} in {mode} mode: bpf(BPF_LINK_CREATE): {source}; rtnetlink IFLA_XDP: {fallback}")]
    Attach {
        /// Interface name.
        ifname: String,
        /// The last mode tried.
        mode: AttachedMode,
        /// Why `BPF_LINK_CREATE` failed.
        source: io::Error,
        /// Why the rtnetlink fallback failed.
        fallback: io::Error,
    },
    /// The queue is not covered by the program's XSKMAP (it was attached for fewer queues).
    #[error("queue {queue} is outside the XDP program's {queues} queues")]
    QueueOutOfRange {
        /// The queue asked for.
        queue: u32,
        /// Queues the program was attached for.
        queues: u32,
    },
    /// The link's interface is not the one the program is attached to.
    #[error("the XDP program is attached to {program}, not {link}")]
    WrongInterface {
        /// The program's interface.
        program: String,
        /// The link's interface.
        link: String,
    },
    /// `bind` of the XSK socket failed (EBUSY persisted past the retry window, or the
    /// queue does not exist, …).
    #[error("binding AF_XDP socket to {ifname} queue {queue}: {source}")]
    Bind {
        /// Interface name.
        ifname: String,
        /// Queue.
        queue: u32,
        /// The error `bind` returned last.
        source: io::Error,
    },
    /// [`ZeroCopy::Require`] was asked for and the driver refused zero-copy.
    #[error("zero-copy AF_XDP is not available on {ifname} queue {queue}: {source}")]
    ZeroCopyUnavailable {
        /// Interface name.
        ifname: String,
        /// Queue.
        queue: u32,
        /// The error the zero-copy `bind` returned.
        source: io::Error,
    },
}

/// How a program got onto its interface.
#[derive(Debug)]
enum Attachment {
    /// A bpf_link: closing it detaches the program.
    Link(#[allow(dead_code)] OwnedFd),
    /// `IFLA_XDP` over rtnetlink with these mode flags: detached explicitly on drop, over
    /// the socket it was attached with (which stays in the interface's namespace).
    Netlink {
        flags: u32,
        sock: netlink::RtNetlink,
    },
}

/// Which attach mechanism to use (tests force each one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttachMethod {
    /// bpf_link, then rtnetlink.
    Auto,
    /// bpf_link only.
    #[allow(dead_code)]
    Link,
    /// rtnetlink only.
    #[allow(dead_code)]
    Netlink,
}

#[derive(Debug)]
struct ProgramInner {
    ifname: String,
    ifindex: u32,
    queues: u32,
    mode: AttachedMode,
    attachment: Attachment,
    prog: OwnedFd,
    map: OwnedFd,
}

impl Drop for ProgramInner {
    fn drop(&mut self) {
        if let Attachment::Netlink { flags, sock } = &mut self.attachment {
            if let Err(e) = sock.detach(self.ifindex, &self.prog, *flags) {
                log::warn!("detaching XDP from {}: {e}", self.ifname);
            }
        }
        // A bpf_link detaches when its descriptor (dropped with `attachment`) closes.
    }
}

/// The XDP program attached to an interface (one per interface, shared by all its queues);
/// detaches when the last handle, and every [`XdpLink`] bound through it, is dropped.
///
/// Clones share one attachment. The program is attached as a bpf_link
/// (`BPF_LINK_CREATE`) whenever the kernel allows it, because the kernel detaches a
/// bpf_link by itself when the last descriptor to it closes, which includes the process
/// dying: even a SIGKILL or a crash leaves no program behind on the interface. Only where
/// that is unavailable is it attached over rtnetlink (`IFLA_XDP`), which survives the
/// process unless detached on drop.
#[derive(Debug, Clone)]
pub struct XdpProgram {
    inner: Arc<ProgramInner>,
}

impl XdpProgram {
    /// Generates the filter for `filter`, loads it with an XSKMAP of `queues` entries and
    /// attaches it to `ifname` in `mode`.
    pub fn attach(
        ifname: &str,
        filter: &XdpFilter,
        mode: XdpAttachMode,
        queues: u32,
    ) -> Result<XdpProgram, XdpError> {
        Self::attach_using(ifname, filter, mode, queues, AttachMethod::Auto)
    }

    pub(crate) fn attach_using(
        ifname: &str,
        filter: &XdpFilter,
        mode: XdpAttachMode,
        queues: u32,
        method: AttachMethod,
    ) -> Result<XdpProgram, XdpError> {
        check_filter(filter)?;
        if queues == 0 {
            return Err(XdpError::Config(
                "an XDP program needs at least one queue".into(),
            ));
        }
        let ifindex = crate::netdev::ifindex(ifname).map_err(|source| XdpError::Interface {
            ifname: ifname.to_owned(),
            source,
        })?;
        let map = bpf::create_xskmap(queues)?;
        let insns = program::build(filter, map.as_raw_fd()).map_err(|e| {
            XdpError::Config(format!("the XDP filter could not be assembled: {e:?}"))
        })?;
        let prog = bpf::load_xdp(&insns)?;
        let modes: &[AttachedMode] = match mode {
            XdpAttachMode::Auto => &[AttachedMode::Native, AttachedMode::Generic],
            XdpAttachMode::Native => &[AttachedMode::Native],
            XdpAttachMode::Generic => &[AttachedMode::Generic],
        };
        let unused = || io::Error::new(io::ErrorKind::Unsupported, "not tried");
        let mut last = None;
        for &m in modes {
            let link_err = if method != AttachMethod::Netlink {
                match bpf::link_xdp(&prog, ifindex, m.flags()) {
                    Ok(link) => {
                        return Ok(Self::new(
                            ifname,
                            ifindex,
                            queues,
                            m,
                            Attachment::Link(link),
                            prog,
                            map,
                        ));
                    }
                    Err(e) => e,
                }
            } else {
                unused()
            };
            let nl_err = if method != AttachMethod::Link {
                let attached = netlink::RtNetlink::open()
                    .and_then(|mut sock| sock.attach(ifindex, &prog, m.flags()).map(|()| sock));
                match attached {
                    Ok(sock) => {
                        log::info!("{ifname}: BPF_LINK_CREATE failed ({link_err}); XDP attached over rtnetlink");
                        let att = Attachment::Netlink {
                            flags: m.flags(),
                            sock,
                        };
                        return Ok(Self::new(ifname, ifindex, queues, m, att, prog, map));
                    }
                    Err(e) => e,
                }
            } else {
                unused()
            };
            log::debug!("{ifname}: XDP {m} attach failed: link: {link_err}; netlink: {nl_err}");
            last = Some((m, link_err, nl_err));
        }
        let (mode, source, fallback) =
            last.unwrap_or_else(|| (AttachedMode::Generic, unused(), unused()));
        Err(XdpError::Attach {
            ifname: ifname.to_owned(),
            mode,
            source,
            fallback,
        })
    }

    fn new(
        ifname: &str,
        ifindex: u32,
        queues: u32,
        mode: AttachedMode,
        attachment: Attachment,
        prog: OwnedFd,
        map: OwnedFd,
    ) -> XdpProgram {
        XdpProgram {
            inner: Arc::new(ProgramInner {
                ifname: ifname.to_owned(),
                ifindex,
                queues,
                mode,
                attachment,
                prog,
                map,
            }),
        }
    }

    /// The mode the program is attached in.
    pub fn mode(&self) -> AttachedMode {
        self.inner.mode
    }

    /// The interface the program is attached to.
    pub fn ifname(&self) -> &str {
        &self.inner.ifname
    }

    /// Queues its XSKMAP covers (`0..queues`).
    pub fn queues(&self) -> u32 {
        self.inner.queues
    }

    /// Whether it is attached as a bpf_link (detached by the kernel if the process dies).
    pub fn is_bpf_link(&self) -> bool {
        matches!(self.inner.attachment, Attachment::Link(_))
    }

    fn ifindex(&self) -> u32 {
        self.inner.ifindex
    }

    fn map(&self) -> &OwnedFd {
        &self.inner.map
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_validation() {
        let c = XdpConfig::new("six0", 1, XdpFilter::default());
        assert_eq!(
            (c.frame_size, c.frame_count, c.ring_size),
            (2048, 4096, 2048)
        );
        assert_eq!(
            (c.attach, c.zero_copy),
            (XdpAttachMode::Auto, ZeroCopy::Auto)
        );
        c.validate().unwrap();
        assert!(!c.multi_buffer());
        let jumbo = XdpConfig {
            mtu: 9000,
            frame_size: 4096,
            ..c.clone()
        };
        jumbo.validate().unwrap();
        assert!(jumbo.multi_buffer());
        assert_eq!(jumbo.tx_span(), 3);
        // The largest single-buffer MTU with 2048-byte frames: 2048 - 256 headroom - 14.
        let edge = XdpConfig {
            mtu: 1778,
            ..c.clone()
        };
        assert!(!edge.multi_buffer() && edge.tx_span() == 1);
        assert!(XdpConfig {
            mtu: 1779,
            ..c.clone()
        }
        .multi_buffer());
        for bad in [
            XdpConfig {
                frame_size: 3000,
                ..c.clone()
            },
            XdpConfig {
                frame_size: 1024,
                ..c.clone()
            },
            XdpConfig {
                frame_count: 3,
                ..c.clone()
            },
            XdpConfig {
                ring_size: 1000,
                ..c.clone()
            },
            XdpConfig {
                mtu: 9800,
                ..c.clone()
            },
            XdpConfig {
                mtu: 9000,
                frame_count: 8,
                ..c.clone()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(XdpError::Config(_))),
                "{bad:?}"
            );
        }
        let many = XdpFilter {
            ipv4: vec![Ipv4Addr::LOCALHOST; MAX_ADDRS_PER_FAMILY + 1],
            ipv6: vec![],
        };
        assert!(matches!(
            XdpConfig::new("six0", 0, many).validate(),
            Err(XdpError::TooManyAddresses { family: "IPv4", .. })
        ));
    }

    #[test]
    fn unknown_interface_is_a_typed_error() {
        let e = XdpProgram::attach(
            "nonexistent9",
            &XdpFilter::default(),
            XdpAttachMode::Auto,
            1,
        )
        .unwrap_err();
        assert!(matches!(e, XdpError::Interface { .. }), "{e}");
    }
}
