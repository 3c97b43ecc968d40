//! The rtnetlink fallback for attaching the RSS emulator where tcx links are unavailable
//! (kernels before 6.6): a `clsact` qdisc and a `bpf` filter in direct-action mode on the
//! interface's egress hook, the same thing `tc qdisc add dev X clsact; tc filter add dev X
//! egress bpf da fd N` sets up.
//!
//! Unlike a bpf_link this survives the process; [`TcFilter`]'s drop removes the filter, and
//! the qdisc too when it created it (a `clsact` that was already there is left alone).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::netlink::{NlMsg, Rtnl, NLM_F_CREATE, NLM_F_EXCL};

const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_FD: u16 = 6;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;
/// `TC_H_CLSACT` (= `TC_H_INGRESS`): the clsact qdisc's parent.
const TC_H_CLSACT: u32 = 0xffff_fff1;
/// `TC_H_MAKE(TC_H_CLSACT, 0)`: the clsact qdisc's handle.
const CLSACT_HANDLE: u32 = 0xffff_0000;
/// `TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS)`: the egress hook.
const EGRESS_PARENT: u32 = 0xffff_fff3;
const ETH_P_ALL: u16 = 0x0003;
/// The filter's priority and handle: fixed, so that drop names exactly this filter.
const FILTER_PRIO: u32 = 0x5353;
const FILTER_HANDLE: u32 = 1;
/// What `tc filter show` lists the program as.
const FILTER_NAME: &[u8] = b"sixstack_rss\0";

/// `tcm_info` of the filter: priority in the upper half, protocol (network order) below.
fn filter_info() -> u32 {
    (FILTER_PRIO << 16) | u32::from(u16::from_ne_bytes(ETH_P_ALL.to_be_bytes()))
}

/// A clsact qdisc request; the `struct tcmsg` words are ifindex, handle, parent, info.
fn qdisc_request(ty: u16, flags: u16, ifindex: u32) -> NlMsg {
    let mut m = NlMsg::new(ty, flags, &[ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0]);
    m.attr(TCA_KIND, b"clsact\0");
    m
}

fn filter_request(ty: u16, flags: u16, ifindex: u32, prog_fd: Option<i32>) -> NlMsg {
    let tcm = [ifindex, FILTER_HANDLE, EGRESS_PARENT, filter_info()];
    let mut m = NlMsg::new(ty, flags, &tcm);
    m.attr(TCA_KIND, b"bpf\0");
    if let Some(fd) = prog_fd {
        let opts = m.nest_begin(TCA_OPTIONS);
        m.attr(TCA_BPF_FD, &fd.to_ne_bytes());
        m.attr(TCA_BPF_NAME, FILTER_NAME);
        m.attr(TCA_BPF_FLAGS, &TCA_BPF_FLAG_ACT_DIRECT.to_ne_bytes());
        m.nest_end(opts);
    }
    m
}

/// The emulator's cls_bpf filter on an interface's clsact egress hook.
#[derive(Debug)]
pub(crate) struct TcFilter {
    rtnl: Rtnl,
    ifindex: u32,
    ifname: String,
    /// Whether this value created the clsact qdisc (and so removes it).
    own_qdisc: bool,
    /// Whether the filter was added (and so is removed).
    has_filter: bool,
}

impl TcFilter {
    /// Adds a clsact qdisc to `ifindex` unless one is there and attaches `prog` on its
    /// egress hook in direct-action mode. Fails with EEXIST if an emulator filter is
    /// already there.
    pub(crate) fn attach(ifindex: u32, ifname: &str, prog: &OwnedFd) -> io::Result<TcFilter> {
        let mut rtnl = Rtnl::open()?;
        let req = qdisc_request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, ifindex);
        let own_qdisc = match rtnl.request(&req) {
            Ok(()) => true,
            // (The errno is in the kind: extended-ack text replaces the raw error.)
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        };
        let mut filter = TcFilter {
            rtnl,
            ifindex,
            ifname: ifname.to_owned(),
            own_qdisc,
            has_filter: false,
        };
        let req = filter_request(
            RTM_NEWTFILTER,
            NLM_F_CREATE | NLM_F_EXCL,
            ifindex,
            Some(prog.as_raw_fd()),
        );
        // On failure, drop removes the qdisc if it was ours.
        filter.rtnl.request(&req)?;
        filter.has_filter = true;
        Ok(filter)
    }
}

impl Drop for TcFilter {
    fn drop(&mut self) {
        if self.has_filter {
            let req = filter_request(RTM_DELTFILTER, 0, self.ifindex, None);
            if let Err(e) = self.rtnl.request(&req) {
                log::warn!("{}: removing the RSS emulator filter: {e}", self.ifname);
            }
        }
        if self.own_qdisc {
            let req = qdisc_request(RTM_DELQDISC, 0, self.ifindex);
            if let Err(e) = self.rtnl.request(&req) {
                log::warn!("{}: removing the clsact qdisc: {e}", self.ifname);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::netlink::{align4, u16_at, u32_at, NLA_F_NESTED};

    #[test]
    fn qdisc_request_layout() {
        let m = qdisc_request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, 7).bytes(3);
        assert_eq!(m.len(), 16 + 20 + 12);
        assert_eq!(u32_at(&m, 0), Some(m.len() as u32));
        assert_eq!(u16_at(&m, 4), Some(RTM_NEWQDISC));
        assert_eq!(u16_at(&m, 6), Some(0x605));
        assert_eq!(u32_at(&m, 8), Some(3));
        assert_eq!(m[16], 0, "AF_UNSPEC");
        assert_eq!(u32_at(&m, 20), Some(7), "ifindex");
        assert_eq!(u32_at(&m, 24), Some(0xffff_0000), "handle");
        assert_eq!(u32_at(&m, 28), Some(0xffff_fff1), "parent");
        assert_eq!((u16_at(&m, 36), u16_at(&m, 38)), (Some(11), Some(TCA_KIND)));
        assert_eq!(&m[40..47], b"clsact\0");
    }

    #[test]
    fn filter_request_layout() {
        let m = filter_request(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, 9, Some(5)).bytes(4);
        assert_eq!(u32_at(&m, 0), Some(m.len() as u32));
        assert_eq!(u32_at(&m, 8), Some(4));
        assert_eq!(u32_at(&m, 24), Some(FILTER_HANDLE));
        assert_eq!(u32_at(&m, 28), Some(0xffff_fff3), "egress parent");
        let info = u32_at(&m, 32).unwrap();
        assert_eq!(info >> 16, FILTER_PRIO);
        assert_eq!(
            (info & 0xffff) as u16,
            u16::from_ne_bytes([0x00, 0x03]),
            "ETH_P_ALL"
        );
        // TCA_KIND "bpf\0", then the nested options.
        assert_eq!((u16_at(&m, 36), u16_at(&m, 38)), (Some(8), Some(TCA_KIND)));
        assert_eq!(u16_at(&m, 44), Some((m.len() - 44) as u16), "nested length");
        assert_eq!(u16_at(&m, 46), Some(TCA_OPTIONS | NLA_F_NESTED));
        assert_eq!(
            (u16_at(&m, 48), u16_at(&m, 50)),
            (Some(8), Some(TCA_BPF_FD))
        );
        assert_eq!(u32_at(&m, 52), Some(5));
        assert_eq!(u16_at(&m, 58), Some(TCA_BPF_NAME));
        let flags_at = 56 + align4(4 + FILTER_NAME.len());
        assert_eq!(u16_at(&m, flags_at + 2), Some(TCA_BPF_FLAGS));
        assert_eq!(u32_at(&m, flags_at + 4), Some(TCA_BPF_FLAG_ACT_DIRECT));
        assert_eq!(m.len(), flags_at + 8);
        // The delete names the same filter and carries no options.
        let d = filter_request(RTM_DELTFILTER, 0, 9, None).bytes(5);
        assert_eq!(d.len(), 16 + 20 + 8);
        assert_eq!(d[20..36], m[20..36]);
    }
}
