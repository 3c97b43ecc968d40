//! The lab of the root tests (`afxdp::lab_tests`, `rss::lab_tests`): two fresh, uniquely
//! named network namespaces joined by a veth pair, deleted on drop (failure included).
//!
//! Not here: what a test puts on top (XDP programs, sockets, neighbours); the tests do that.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::netdev::{in_netns, set_offloads};

/// Whether the tests run as root; prints why a test is skipped when not.
pub(crate) fn is_root() -> bool {
    if !crate::afxdp::bpf::is_root() {
        eprintln!("skipped: needs root (network namespaces, XDP/BPF)");
        return false;
    }
    true
}

/// Runs `cmd` with `args`, panics (with its stderr) unless it succeeds, and returns its
/// standard output.
pub(crate) fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What [`Lab::new`] builds.
pub(crate) struct Veth<'a> {
    /// Starts the namespace names (which go on with the process id and a counter).
    pub(crate) prefix: &'a str,
    /// The veth end in the appliance namespace.
    pub(crate) appliance_if: &'a str,
    /// The veth end in the peer namespace.
    pub(crate) peer_if: &'a str,
    /// Transmit and receive queues of each end; the kernel's default when `None`.
    pub(crate) queues: Option<u32>,
    /// Addresses (with prefix length) of the peer end; IPv6 ones skip DAD.
    pub(crate) peer_addrs: &'a [&'a str],
}

/// Two namespaces joined by a veth pair, both ends up, the peer's offloads off; deleted on
/// drop.
pub(crate) struct Lab {
    pub(crate) appliance: String,
    pub(crate) peer: String,
}

impl Lab {
    pub(crate) fn new(veth: &Veth<'_>) -> Lab {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}{}n{}",
            veth.prefix,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // Made first, so that a failure below still deletes what was created.
        let lab = Lab {
            appliance: format!("{id}a"),
            peer: format!("{id}b"),
        };
        run("ip", &["netns", "add", &lab.appliance]);
        run("ip", &["netns", "add", &lab.peer]);
        let q = veth.queues.map(|q| q.to_string());
        let queues: Vec<&str> = match &q {
            Some(q) => vec!["numtxqueues", q, "numrxqueues", q],
            None => vec![],
        };
        let mut args = vec!["link", "add", veth.appliance_if];
        args.extend_from_slice(&queues);
        args.extend_from_slice(&["netns", &lab.appliance, "type", "veth"]);
        args.extend_from_slice(&["peer", "name", veth.peer_if]);
        args.extend_from_slice(&queues);
        args.extend_from_slice(&["netns", &lab.peer]);
        run("ip", &args);
        for (ns, dev) in [
            (&lab.appliance, veth.appliance_if),
            (&lab.peer, veth.peer_if),
        ] {
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        for addr in veth.peer_addrs {
            let mut args = vec!["-n", &lab.peer, "addr", "add", addr, "dev", veth.peer_if];
            if addr.contains(':') {
                args.push("nodad");
            }
            run("ip", &args);
        }
        // A veth peer otherwise hands frames to the appliance's queues only through
        // netif_rx, and the XSK sees partial checksums.
        lab.in_peer(|| set_offloads(veth.peer_if, false, false, false, false))
            .unwrap();
        lab
    }

    /// Runs `f` in the appliance namespace.
    pub(crate) fn in_appliance<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.appliance, f).unwrap()
    }

    /// Runs `f` in the peer namespace.
    pub(crate) fn in_peer<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.peer, f).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.appliance, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
