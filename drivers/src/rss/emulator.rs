//! Loads the RSS emulator program (`program.rs`) with its map and attaches it to an
//! interface's egress: as a tcx bpf_link where the kernel has tcx (6.6 and later), else
//! as a cls_bpf filter on a clsact qdisc over rtnetlink (`tc.rs`).
//!
//! Not here: what the program computes.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::tc::TcFilter;
use super::{program, RssConfig, RssError};
use crate::afxdp::bpf::{self, ProgKind};

/// `BPF_PROG_TYPE_SCHED_CLS`.
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
/// `enum bpf_attach_type` value of `BPF_TCX_EGRESS` (46 is `BPF_TCX_INGRESS`).
const BPF_TCX_EGRESS: u32 = 47;
/// `BPF_F_RDONLY_PROG`: the program may only read the map.
const BPF_F_RDONLY_PROG: u32 = 1 << 7;

const KIND: ProgKind = ProgKind {
    prog_type: BPF_PROG_TYPE_SCHED_CLS,
    expected_attach_type: BPF_TCX_EGRESS,
    name: "sixstack_rss",
    prog_flags: 0,
};

/// How the program got onto the interface.
#[derive(Debug)]
enum Attachment {
    /// A tcx bpf_link: closing it detaches the program, even when the process dies.
    Link(#[allow(dead_code)] OwnedFd),
    /// A cls_bpf filter on clsact egress, removed on drop.
    Tc(#[allow(dead_code)] TcFilter),
}

/// Which attach mechanism to use (tests force each one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttachMethod {
    /// tcx link, then clsact over rtnetlink.
    Auto,
    /// clsact over rtnetlink only.
    #[cfg_attr(not(test), allow(dead_code))]
    Tc,
}

/// The lab's RSS emulator: a BPF program on `ifname`'s egress (the *peer* side of the
/// appliance's veth) that computes the same Toeplitz queue as [`RssConfig::queue_for`] over
/// each frame's IPv4/IPv6 TCP/UDP 4-tuple and sets `skb->queue_mapping = queue + 1`, so
/// veth delivers the frame on the appliance's receive queue `queue`. Other frames (ARP,
/// ICMP, fragments, IPv6 with extension headers, non-IP) get queue 0.
///
/// Detached when dropped. It is attached as a tcx bpf_link when the kernel has tcx
/// (≥ 6.6), which the kernel also detaches if the process dies; otherwise as a clsact
/// `bpf` filter over rtnetlink, which only drop removes.
#[derive(Debug)]
pub struct RssEmulator {
    // Field order is drop order: detach before closing the program and the map.
    attachment: Attachment,
    #[allow(dead_code)]
    prog: OwnedFd,
    #[allow(dead_code)]
    map: OwnedFd,
    ifname: String,
}

impl RssEmulator {
    /// Loads the emulator for `rss` and attaches it to the egress of `ifname`. Must be
    /// called from a thread inside the interface's network namespace (e.g. through
    /// [`crate::netdev::in_netns`]); the emulator may then be moved and dropped anywhere.
    pub fn attach(ifname: &str, rss: &RssConfig) -> Result<RssEmulator, RssError> {
        Self::attach_using(ifname, rss, AttachMethod::Auto)
    }

    pub(crate) fn attach_using(
        ifname: &str,
        rss: &RssConfig,
        method: AttachMethod,
    ) -> Result<RssEmulator, RssError> {
        // Checks what `RssConfig::new` checks, for configurations built field by field.
        let rss = RssConfig::new(rss.key.clone(), rss.indirection.clone())?;
        let value = program::map_value(&rss)?;
        let ifindex = crate::netdev::ifindex(ifname).map_err(|source| RssError::Interface {
            ifname: ifname.to_owned(),
            source,
        })?;
        let syscall = |syscall: &'static str| move |source| RssError::Syscall { syscall, source };
        let value_size = u32::try_from(value.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))
            .map_err(syscall("bpf(BPF_MAP_CREATE, RSS table)"))?;
        let map = bpf::create_array("sixstack_rss", value_size, 1, BPF_F_RDONLY_PROG)
            .map_err(syscall("bpf(BPF_MAP_CREATE, RSS table)"))?;
        bpf::map_update(&map, 0, &value, value_size)
            .map_err(syscall("bpf(BPF_MAP_UPDATE_ELEM, RSS table)"))?;
        let insns = program::build(rss.indirection.len(), map.as_raw_fd()).map_err(|e| {
            RssError::Syscall {
                syscall: "assembling the RSS emulator",
                source: io::Error::new(io::ErrorKind::InvalidInput, format!("{e:?}")),
            }
        })?;
        let prog = bpf::load_program(KIND, &insns)
            .map_err(|(source, log)| RssError::ProgramLoad { source, log })?;

        let link_err = if method == AttachMethod::Auto {
            match bpf::link_create(&prog, ifindex, BPF_TCX_EGRESS, 0) {
                Ok(link) => {
                    return Ok(RssEmulator {
                        attachment: Attachment::Link(link),
                        prog,
                        map,
                        ifname: ifname.to_owned(),
                    })
                }
                Err(e) => e,
            }
        } else {
            io::Error::new(io::ErrorKind::Unsupported, "not tried")
        };
        match TcFilter::attach(ifindex, ifname, &prog) {
            Ok(filter) => {
                log::info!("{ifname}: tcx link failed ({link_err}); RSS emulator on clsact");
                Ok(RssEmulator {
                    attachment: Attachment::Tc(filter),
                    prog,
                    map,
                    ifname: ifname.to_owned(),
                })
            }
            Err(netlink) => Err(RssError::Attach {
                ifname: ifname.to_owned(),
                link: link_err,
                netlink,
            }),
        }
    }

    /// Whether it is attached as a tcx bpf_link (detached by the kernel if the process
    /// dies) rather than as a clsact filter.
    pub fn is_bpf_link(&self) -> bool {
        matches!(self.attachment, Attachment::Link(_))
    }

    /// The interface whose egress it is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bad_configurations_and_interfaces_are_typed_errors() {
        let mut rss = RssConfig::with_queues(2);
        rss.indirection.push(0);
        assert!(matches!(
            RssEmulator::attach("lo", &rss),
            Err(RssError::InvalidIndirection { len: 129 })
        ));
        let mut rss = RssConfig::with_queues(2);
        rss.indirection[0] = 70_000;
        assert!(matches!(
            RssEmulator::attach("lo", &rss),
            Err(RssError::QueueOutOfRange { queue: 70_000 })
        ));
        assert!(matches!(
            RssEmulator::attach("nonexistent9", &RssConfig::with_queues(2)),
            Err(RssError::Interface { .. })
        ));
    }
}
