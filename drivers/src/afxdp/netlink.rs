//! The rtnetlink fallback for attaching an XDP program: `RTM_SETLINK` with a nested
//! `IFLA_XDP` attribute, used only where `BPF_LINK_CREATE` for XDP is unavailable.
//!
//! Unlike a bpf_link, a program attached this way stays on the interface if the process
//! dies without detaching. Detaching names the program it expects to remove
//! (`IFLA_XDP_EXPECTED_FD` + `XDP_FLAGS_REPLACE`) so it never removes someone else's.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::sys;
use crate::netlink::{NlMsg, Rtnl};

const RTM_SETLINK: u16 = 19;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_EXPECTED_FD: u16 = 8;

/// Builds the `RTM_SETLINK` request that sets (or, with `prog_fd` = -1, clears) the XDP
/// program of `ifindex`.
fn setlink_xdp_request(ifindex: u32, prog_fd: i32, flags: u32, expected_fd: Option<i32>) -> NlMsg {
    // struct ifinfomsg: family, pad, type, then index, flags, change.
    let mut msg = NlMsg::new(RTM_SETLINK, 0, &[ifindex, 0, 0]);
    let xdp = msg.nest_begin(IFLA_XDP);
    msg.attr(IFLA_XDP_FD, &prog_fd.to_ne_bytes());
    msg.attr(IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    if let Some(fd) = expected_fd {
        msg.attr(IFLA_XDP_EXPECTED_FD, &fd.to_ne_bytes());
    }
    msg.nest_end(xdp);
    msg
}

/// An rtnetlink socket. It stays in the network namespace it was opened in, so the
/// detach on drop reaches the same interface even from a thread in another namespace.
#[derive(Debug)]
pub(crate) struct RtNetlink {
    rtnl: Rtnl,
}

impl RtNetlink {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<RtNetlink> {
        Ok(RtNetlink {
            rtnl: Rtnl::open()?,
        })
    }

    /// Sends one `RTM_SETLINK` XDP request and waits for its ack.
    fn set_xdp(
        &mut self,
        ifindex: u32,
        prog_fd: i32,
        flags: u32,
        expected_fd: Option<i32>,
    ) -> io::Result<()> {
        let req = setlink_xdp_request(ifindex, prog_fd, flags, expected_fd);
        self.rtnl.request(&req)
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
    use crate::netlink::{u16_at, u32_at, NLA_F_NESTED};

    #[test]
    fn request_layout() {
        let m = setlink_xdp_request(3, 9, sys::XDP_FLAGS_SKB_MODE, Some(5)).bytes(7);
        // header 16 + ifinfomsg 16 + IFLA_XDP(4 + 3 × 8)
        assert_eq!(m.len(), 16 + 16 + 4 + 24);
        assert_eq!(u32_at(&m, 0), Some(m.len() as u32));
        assert_eq!(u16_at(&m, 4), Some(RTM_SETLINK));
        assert_eq!(u16_at(&m, 6), Some(0x5), "NLM_F_REQUEST | NLM_F_ACK");
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
}
