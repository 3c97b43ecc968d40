//! The rtnetlink fallback for attaching the RSS emulator where tcx links are unavailable
//! (kernels before 6.6): a `clsact` qdisc and a `bpf` filter in direct-action mode on the
//! interface's egress hook, the same thing `tc qdisc add dev X clsact; tc filter add dev X
//! egress bpf da fd N` sets up.
//!
//! Unlike a bpf_link this survives the process; [`TcFilter`]'s drop removes the filter, and
//! the qdisc too when it created it (a `clsact` that was already there is left alone).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use crate::afxdp::sys;

const RTM_NEWQDISC: u16 = 36;
const RTM_DELQDISC: u16 = 37;
const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const NLA_F_NESTED: u16 = 0x8000;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NLMSGERR_ATTR_MSG: u16 = 1;
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

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn put_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align4(buf.len()), 0);
}

/// A request with a `struct tcmsg` (family, pads, ifindex, handle, parent, info) and
/// `attrs`.
fn tc_request(
    ty: u16,
    flags: u16,
    seq: u32,
    tcm: [u32; 4],
    attrs: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut msg = vec![0u8; NLMSG_HDRLEN];
    msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    for w in tcm {
        msg.extend_from_slice(&w.to_ne_bytes());
    }
    attrs(&mut msg);
    let len = msg.len() as u32;
    msg[0..4].copy_from_slice(&len.to_ne_bytes());
    msg[4..6].copy_from_slice(&ty.to_ne_bytes());
    msg[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg[8..12].copy_from_slice(&seq.to_ne_bytes());
    msg
}

/// `tcm_info` of the filter: priority in the upper half, protocol (network order) below.
fn filter_info() -> u32 {
    (FILTER_PRIO << 16) | u32::from(u16::from_ne_bytes(ETH_P_ALL.to_be_bytes()))
}

fn qdisc_request(ty: u16, flags: u16, seq: u32, ifindex: u32) -> Vec<u8> {
    tc_request(
        ty,
        flags,
        seq,
        [ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0],
        |m| put_attr(m, TCA_KIND, b"clsact\0"),
    )
}

fn filter_request(ty: u16, flags: u16, seq: u32, ifindex: u32, prog_fd: Option<i32>) -> Vec<u8> {
    let tcm = [ifindex, FILTER_HANDLE, EGRESS_PARENT, filter_info()];
    tc_request(ty, flags, seq, tcm, |m| {
        put_attr(m, TCA_KIND, b"bpf\0");
        if let Some(fd) = prog_fd {
            let mut opts = Vec::with_capacity(32);
            put_attr(&mut opts, TCA_BPF_FD, &fd.to_ne_bytes());
            put_attr(&mut opts, TCA_BPF_NAME, FILTER_NAME);
            put_attr(
                &mut opts,
                TCA_BPF_FLAGS,
                &TCA_BPF_FLAG_ACT_DIRECT.to_ne_bytes(),
            );
            put_attr(m, TCA_OPTIONS | NLA_F_NESTED, &opts);
        }
    })
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The kernel's answer to request `seq` in `reply`: `Some(Ok)` for an ack, `Some(Err)` for
/// an error (with the extended-ack text when there is one), `None` when there is none.
fn parse_ack(reply: &[u8], seq: u32) -> Option<io::Result<()>> {
    let mut at = 0;
    while at + NLMSG_HDRLEN <= reply.len() {
        let len = u32_at(reply, at)? as usize;
        let ty = u16_at(reply, at + 4)?;
        let flags = u16_at(reply, at + 6)?;
        if len < NLMSG_HDRLEN || at + len > reply.len() {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed netlink reply",
            )));
        }
        if ty == NLMSG_ERROR && u32_at(reply, at + 8)? == seq {
            let body = &reply[at + NLMSG_HDRLEN..at + len];
            let errno = i32::from_ne_bytes(body.get(0..4)?.try_into().ok()?);
            if errno == 0 {
                return Some(Ok(()));
            }
            let os = io::Error::from_raw_os_error(errno.saturating_neg());
            let text = (flags & NLM_F_ACK_TLVS != 0)
                .then(|| {
                    let echoed = if flags & NLM_F_CAPPED != 0 {
                        NLMSG_HDRLEN
                    } else {
                        u32_at(body, 4)? as usize
                    };
                    ext_ack_message(body.get(4 + align4(echoed)..)?)
                })
                .flatten();
            return Some(Err(match text {
                Some(t) => io::Error::new(os.kind(), format!("{os}: {t}")),
                None => os,
            }));
        }
        at += align4(len);
    }
    None
}

fn ext_ack_message(mut tlvs: &[u8]) -> Option<String> {
    while tlvs.len() >= 4 {
        let len = u16_at(tlvs, 0)? as usize;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if u16_at(tlvs, 2)? == NLMSGERR_ATTR_MSG {
            let s = &tlvs[4..len];
            let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
            return Some(String::from_utf8_lossy(&s[..end]).into_owned());
        }
        tlvs = tlvs.get(align4(len)..)?;
    }
    None
}

/// An rtnetlink socket that stays in the namespace it was opened in.
#[derive(Debug)]
struct Rtnl {
    sock: OwnedFd,
    seq: u32,
}

impl Rtnl {
    fn open() -> io::Result<Rtnl> {
        let sock = sys::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
        // Best effort: without extended acks the errors just carry less text.
        let _ = sys::setsockopt(&sock, libc::SOL_NETLINK, NETLINK_EXT_ACK, &1i32);
        let timeout = libc::timeval {
            tv_sec: Duration::from_secs(2).as_secs() as libc::time_t,
            tv_usec: 0,
        };
        sys::setsockopt(&sock, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
        Ok(Rtnl { sock, seq: 0 })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `req` (built with sequence number `seq`) and waits for its ack.
    fn call(&mut self, seq: u32, req: &[u8]) -> io::Result<()> {
        sys::send(&self.sock, req)?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = sys::recv(&self.sock, &mut buf)?;
            if let Some(result) = parse_ack(&buf[..n], seq) {
                return result;
            }
        }
    }
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
        let seq = rtnl.next_seq();
        let req = qdisc_request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, seq, ifindex);
        let own_qdisc = match rtnl.call(seq, &req) {
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
        let seq = filter.rtnl.next_seq();
        let req = filter_request(
            RTM_NEWTFILTER,
            NLM_F_CREATE | NLM_F_EXCL,
            seq,
            ifindex,
            Some(prog.as_raw_fd()),
        );
        // On failure, drop removes the qdisc if it was ours.
        filter.rtnl.call(seq, &req)?;
        filter.has_filter = true;
        Ok(filter)
    }
}

impl Drop for TcFilter {
    fn drop(&mut self) {
        if self.has_filter {
            let seq = self.rtnl.next_seq();
            let req = filter_request(RTM_DELTFILTER, 0, seq, self.ifindex, None);
            if let Err(e) = self.rtnl.call(seq, &req) {
                log::warn!("{}: removing the RSS emulator filter: {e}", self.ifname);
            }
        }
        if self.own_qdisc {
            let seq = self.rtnl.next_seq();
            let req = qdisc_request(RTM_DELQDISC, 0, seq, self.ifindex);
            if let Err(e) = self.rtnl.call(seq, &req) {
                log::warn!("{}: removing the clsact qdisc: {e}", self.ifname);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn qdisc_request_layout() {
        let m = qdisc_request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, 3, 7);
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
        let m = filter_request(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, 4, 9, Some(5));
        assert_eq!(u32_at(&m, 0), Some(m.len() as u32));
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
        let d = filter_request(RTM_DELTFILTER, 0, 5, 9, None);
        assert_eq!(d.len(), 16 + 20 + 8);
        assert_eq!(d[20..36], m[20..36]);
    }

    #[test]
    fn acks_errors_and_garbage() {
        let reply = |seq: u32, errno: i32, text: Option<&str>| {
            let mut body = errno.to_ne_bytes().to_vec();
            body.extend_from_slice(&[0u8; 16]);
            let mut flags = NLM_F_CAPPED;
            if let Some(t) = text {
                flags |= NLM_F_ACK_TLVS;
                let mut s = t.as_bytes().to_vec();
                s.push(0);
                put_attr(&mut body, NLMSGERR_ATTR_MSG, &s);
            }
            let mut r = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
            r.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            r.extend_from_slice(&flags.to_ne_bytes());
            r.extend_from_slice(&seq.to_ne_bytes());
            r.extend_from_slice(&[0; 4]);
            r.extend_from_slice(&body);
            r
        };
        assert!(matches!(parse_ack(&reply(1, 0, None), 1), Some(Ok(()))));
        assert!(parse_ack(&reply(2, 0, None), 1).is_none());
        let e = parse_ack(&reply(1, -libc::EEXIST, Some("Exclusivity flag on")), 1)
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("Exclusivity flag on"), "{e}");
        let r = reply(1, -libc::EINVAL, Some("x"));
        for n in 0..r.len() {
            let _ = parse_ack(&r[..n], 1);
        }
    }
}
