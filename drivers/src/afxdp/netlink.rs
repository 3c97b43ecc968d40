//! The rtnetlink fallback for attaching an XDP program: `RTM_SETLINK` with a nested
//! `IFLA_XDP` attribute, used only where `BPF_LINK_CREATE` for XDP is unavailable.
//!
//! Unlike a bpf_link, a program attached this way stays on the interface if the process
//! dies without detaching. Detaching names the program it expects to remove
//! (`IFLA_XDP_EXPECTED_FD` + `XDP_FLAGS_REPLACE`) so it never removes someone else's.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::sys;

const RTM_SETLINK: u16 = 19;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSG_ERROR: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_EXPECTED_FD: u16 = 8;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSG_HDRLEN: usize = 16;

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

/// Builds the `RTM_SETLINK` request that sets (or, with `prog_fd` = -1, clears) the XDP
/// program of `ifindex`.
fn setlink_xdp_request(
    seq: u32,
    ifindex: u32,
    prog_fd: i32,
    flags: u32,
    expected_fd: Option<i32>,
) -> Vec<u8> {
    let mut msg = Vec::with_capacity(64);
    msg.extend_from_slice(&[0; NLMSG_HDRLEN]);
    // struct ifinfomsg: family, pad, type, index, flags, change.
    msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    msg.extend_from_slice(&ifindex.to_ne_bytes());
    msg.extend_from_slice(&[0; 8]);
    let mut nested = Vec::with_capacity(32);
    put_attr(&mut nested, IFLA_XDP_FD, &prog_fd.to_ne_bytes());
    put_attr(&mut nested, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    if let Some(fd) = expected_fd {
        put_attr(&mut nested, IFLA_XDP_EXPECTED_FD, &fd.to_ne_bytes());
    }
    put_attr(&mut msg, IFLA_XDP | NLA_F_NESTED, &nested);
    let len = msg.len() as u32;
    msg[0..4].copy_from_slice(&len.to_ne_bytes());
    msg[4..6].copy_from_slice(&RTM_SETLINK.to_ne_bytes());
    msg[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg[8..12].copy_from_slice(&seq.to_ne_bytes());
    msg
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses the kernel's answer to a request with sequence `seq`: `Some(Ok)` for an ack,
/// `Some(Err)` for an error (with the extended-ack message when there is one), `None` when
/// the datagram holds no answer to `seq`.
fn parse_ack(reply: &[u8], seq: u32) -> Option<io::Result<()>> {
    let mut at = 0;
    while at + NLMSG_HDRLEN <= reply.len() {
        let len = u32_at(reply, at)? as usize;
        let ty = u16_at(reply, at + 4)?;
        let flags = u16_at(reply, at + 6)?;
        let rseq = u32_at(reply, at + 8)?;
        if len < NLMSG_HDRLEN || at + len > reply.len() {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed netlink reply",
            )));
        }
        let body = &reply[at + NLMSG_HDRLEN..at + len];
        if ty == NLMSG_ERROR && rseq == seq {
            let errno = i32::from_ne_bytes(body.get(0..4)?.try_into().ok()?);
            if errno == 0 {
                return Some(Ok(()));
            }
            let os = io::Error::from_raw_os_error(-errno);
            let msg = (flags & NLM_F_ACK_TLVS != 0)
                .then(|| {
                    // The echoed request: just its header when capped, all of it otherwise.
                    let echoed = if flags & NLM_F_CAPPED != 0 {
                        NLMSG_HDRLEN
                    } else {
                        u32_at(body, 4)? as usize
                    };
                    ext_ack_message(body.get(4 + align4(echoed)..)?)
                })
                .flatten();
            return Some(Err(match msg {
                Some(m) => io::Error::new(os.kind(), format!("{os}: {m}")),
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
        let ty = u16_at(tlvs, 2)?;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if ty == NLMSGERR_ATTR_MSG {
            let s = &tlvs[4..len];
            let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
            return Some(String::from_utf8_lossy(&s[..end]).into_owned());
        }
        tlvs = tlvs.get(align4(len)..)?;
    }
    None
}

/// An rtnetlink socket. It stays in the network namespace it was opened in, so the
/// detach on drop reaches the same interface even from a thread in another namespace.
#[derive(Debug)]
pub(crate) struct RtNetlink {
    sock: OwnedFd,
    seq: u32,
}

impl RtNetlink {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<RtNetlink> {
        let sock = sys::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
        // Best effort: without extended acks the errors just carry less text.
        let _ = sys::setsockopt(&sock, libc::SOL_NETLINK, NETLINK_EXT_ACK, &1i32);
        let timeout = libc::timeval {
            tv_sec: Duration::from_secs(2).as_secs() as libc::time_t,
            tv_usec: 0,
        };
        sys::setsockopt(&sock, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
        Ok(RtNetlink { sock, seq: 0 })
    }

    /// Sends one `RTM_SETLINK` XDP request and waits for its ack.
    fn set_xdp(
        &mut self,
        ifindex: u32,
        prog_fd: i32,
        flags: u32,
        expected_fd: Option<i32>,
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let req = setlink_xdp_request(seq, ifindex, prog_fd, flags, expected_fd);
        sys::send(&self.sock, &req)?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = sys::recv(&self.sock, &mut buf)?;
            if let Some(result) = parse_ack(&buf[..n], seq) {
                return result;
            }
        }
    }

    /// Attaches `prog` to `ifindex` in the mode `mode_flags` says, refusing to replace a
    /// program that is already there.
    pub(crate) fn attach(
        &mut self,
        ifindex: u32,
        prog: &OwnedFd,
        mode_flags: u32,
    ) -> io::Result<()> {
        self.set_xdp(
            ifindex,
            prog.as_raw_fd(),
            mode_flags | sys::XDP_FLAGS_UPDATE_IF_NOEXIST,
            None,
        )
    }

    /// Detaches `prog` from `ifindex` (only if it is still the attached program).
    pub(crate) fn detach(
        &mut self,
        ifindex: u32,
        prog: &OwnedFd,
        mode_flags: u32,
    ) -> io::Result<()> {
        self.set_xdp(
            ifindex,
            -1,
            mode_flags | sys::XDP_FLAGS_REPLACE,
            Some(prog.as_raw_fd()),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let m = setlink_xdp_request(7, 3, 9, sys::XDP_FLAGS_SKB_MODE, Some(5));
        // header 16 + ifinfomsg 16 + IFLA_XDP(4 + 3 × 8)
        assert_eq!(m.len(), 16 + 16 + 4 + 24);
        assert_eq!(u32_at(&m, 0), Some(m.len() as u32));
        assert_eq!(u16_at(&m, 4), Some(RTM_SETLINK));
        assert_eq!(u32_at(&m, 8), Some(7));
        assert_eq!(u32_at(&m, 20), Some(3), "ifindex");
        assert_eq!(u16_at(&m, 32), Some(28), "nested length");
        assert_eq!(u16_at(&m, 34), Some(IFLA_XDP | NLA_F_NESTED));
        assert_eq!(
            (u16_at(&m, 36), u16_at(&m, 38)),
            (Some(8), Some(IFLA_XDP_FD))
        );
        assert_eq!(u32_at(&m, 40), Some(9));
        assert_eq!(u16_at(&m, 46), Some(IFLA_XDP_FLAGS));
        assert_eq!(u32_at(&m, 48), Some(sys::XDP_FLAGS_SKB_MODE));
        assert_eq!(u16_at(&m, 54), Some(IFLA_XDP_EXPECTED_FD));
        assert_eq!(u32_at(&m, 56), Some(5));
    }

    fn error_reply(seq: u32, errno: i32, msg: Option<&str>) -> Vec<u8> {
        let mut body = errno.to_ne_bytes().to_vec();
        // Capped echo of the request header.
        let mut echoed = [0u8; 16];
        echoed[0..4].copy_from_slice(&60u32.to_ne_bytes());
        body.extend_from_slice(&echoed);
        let mut flags = NLM_F_CAPPED;
        if let Some(m) = msg {
            flags |= NLM_F_ACK_TLVS;
            let mut s = m.as_bytes().to_vec();
            s.push(0);
            put_attr(&mut body, NLMSGERR_ATTR_MSG, &s);
        }
        let mut r = Vec::new();
        r.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        r.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        r.extend_from_slice(&flags.to_ne_bytes());
        r.extend_from_slice(&seq.to_ne_bytes());
        r.extend_from_slice(&0u32.to_ne_bytes());
        r.extend_from_slice(&body);
        r
    }

    #[test]
    fn acks_and_errors_parse() {
        assert!(matches!(
            parse_ack(&error_reply(1, 0, None), 1),
            Some(Ok(()))
        ));
        assert!(
            parse_ack(&error_reply(2, 0, None), 1).is_none(),
            "other seq"
        );
        let e = parse_ack(&error_reply(1, -libc::EBUSY, None), 1)
            .unwrap()
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBUSY));
        let e = parse_ack(
            &error_reply(1, -libc::EBUSY, Some("XDP program already attached")),
            1,
        )
        .unwrap()
        .unwrap_err();
        assert!(
            e.to_string().contains("XDP program already attached"),
            "{e}"
        );
        // Truncated garbage never panics.
        let r = error_reply(1, -libc::EINVAL, Some("x"));
        for n in 0..r.len() {
            let _ = parse_ack(&r[..n], 1);
        }
    }
}
