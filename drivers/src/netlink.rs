//! Hand-built rtnetlink requests for the attach fallbacks (`afxdp::netlink` for
//! `IFLA_XDP`, `rss::tc` for clsact and cls_bpf): a message builder ([`NlMsg`]), a socket
//! that sends one and waits for its ack ([`Rtnl`]), and the parser of that ack.
//!
//! Not here: dumps, multipart replies or notifications; each request is answered by one
//! `NLMSG_ERROR` (an ack or an error) and nothing else is read.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::afxdp::sys;

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
/// In an `NLMSG_ERROR`: the echoed request is only its header.
const NLM_F_CAPPED: u16 = 0x100;
/// In an `NLMSG_ERROR`: extended-ack attributes follow the echoed request.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NLMSGERR_ATTR_MSG: u16 = 1;

pub(crate) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Appends attribute `ty` with `payload` to `buf`, padded to 4 bytes.
fn put_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align4(buf.len()), 0);
}

/// An open nested attribute; [`NlMsg::nest_end`] closes it.
#[derive(Debug)]
#[must_use = "a nest is closed with NlMsg::nest_end"]
pub(crate) struct Nest(usize);

/// One rtnetlink request: the message header, the family header and the attributes.
/// Every request asks for an ack (`NLM_F_REQUEST | NLM_F_ACK`).
#[derive(Debug, Clone)]
pub(crate) struct NlMsg {
    buf: Vec<u8>,
}

impl NlMsg {
    /// A request of type `ty` with `flags` whose family header is `AF_UNSPEC` in the first
    /// byte (then padding to 4) followed by `words`: the shape of both `struct ifinfomsg`
    /// (`ifi_type` 0, then index, flags, change) and `struct tcmsg` (then ifindex, handle,
    /// parent, info).
    pub(crate) fn new(ty: u16, flags: u16, words: &[u32]) -> NlMsg {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        // Sequence number and port id: filled in by `bytes`, and by the kernel.
        buf.extend_from_slice(&[0; 8]);
        buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        for w in words {
            buf.extend_from_slice(&w.to_ne_bytes());
        }
        NlMsg { buf }
    }

    /// Appends attribute `ty` with `payload` (padded to 4 bytes).
    pub(crate) fn attr(&mut self, ty: u16, payload: &[u8]) {
        put_attr(&mut self.buf, ty, payload);
    }

    /// Opens nested attribute `ty` (`NLA_F_NESTED` is added): the attributes appended
    /// until [`nest_end`](Self::nest_end) are its payload.
    pub(crate) fn nest_begin(&mut self, ty: u16) -> Nest {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 2]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        Nest(at)
    }

    /// Closes `nest`, setting its length.
    pub(crate) fn nest_end(&mut self, nest: Nest) {
        let len = (self.buf.len() - nest.0) as u16;
        self.buf[nest.0..nest.0 + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// The request as sent with sequence number `seq`.
    pub(crate) fn bytes(&self, seq: u32) -> Vec<u8> {
        let mut msg = self.buf.clone();
        let len = msg.len() as u32;
        msg[0..4].copy_from_slice(&len.to_ne_bytes());
        msg[8..12].copy_from_slice(&seq.to_ne_bytes());
        msg
    }
}

/// The kernel's answer to request `seq` in `reply`: `Some(Ok)` for an ack, `Some(Err)` for
/// an error (with the extended-ack text when there is one), `None` when the datagram holds
/// no answer to `seq`.
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
                    // The echoed request: just its header when capped, all of it otherwise.
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

/// An rtnetlink socket. It stays in the network namespace it was opened in, so requests
/// made later (a detach on drop) reach the same interfaces even from a thread in another
/// namespace.
#[derive(Debug)]
pub(crate) struct Rtnl {
    sock: OwnedFd,
    seq: u32,
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace, with extended acks where
    /// the kernel has them and a 2 s receive timeout.
    pub(crate) fn open() -> io::Result<Rtnl> {
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

    /// Sends `msg` with the next sequence number and waits for its ack. The error carries
    /// the errno in its kind and raw value unless the kernel added extended-ack text, which
    /// then replaces the raw error (the kind stays).
    pub(crate) fn request(&mut self, msg: &NlMsg) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        sys::send(&self.sock, &msg.bytes(seq))?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = sys::recv(&self.sock, &mut buf)?;
            if let Some(result) = parse_ack(&buf[..n], seq) {
                return result;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn message_header_attributes_and_nests() {
        let mut m = NlMsg::new(19, NLM_F_CREATE, &[7, 0]);
        m.attr(1, b"abc\0\0");
        let nest = m.nest_begin(43);
        m.attr(2, &5u32.to_ne_bytes());
        m.nest_end(nest);
        let b = m.bytes(9);
        assert_eq!(b.len(), 16 + 12 + 12 + 12);
        assert_eq!(u32_at(&b, 0), Some(b.len() as u32));
        assert_eq!(u16_at(&b, 4), Some(19));
        assert_eq!(
            u16_at(&b, 6),
            Some(NLM_F_CREATE | NLM_F_REQUEST | NLM_F_ACK)
        );
        assert_eq!(u32_at(&b, 8), Some(9));
        assert_eq!(b[16], libc::AF_UNSPEC as u8);
        assert_eq!(u32_at(&b, 20), Some(7));
        assert_eq!((u16_at(&b, 28), u16_at(&b, 30)), (Some(9), Some(1)));
        assert_eq!(&b[32..40], b"abc\0\0\0\0\0", "padded to 4");
        assert_eq!(
            (u16_at(&b, 40), u16_at(&b, 42)),
            (Some(12), Some(43 | NLA_F_NESTED))
        );
        assert_eq!((u16_at(&b, 44), u32_at(&b, 48)), (Some(8), Some(5)));
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
        // Extended-ack text replaces the raw error but keeps its kind.
        let e = parse_ack(
            &error_reply(1, -libc::EEXIST, Some("Exclusivity flag on")),
            1,
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("Exclusivity flag on"), "{e}");
        // Truncated garbage never panics.
        let r = error_reply(1, -libc::EINVAL, Some("x"));
        for n in 0..r.len() {
            let _ = parse_ack(&r[..n], 1);
        }
    }
}
