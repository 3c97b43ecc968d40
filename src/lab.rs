//! The lab: network namespaces joined by a veth pair (or a TAP device), so a newcomer and
//! every test get a real link to run the appliance on. Traffic stays inside these
//! namespaces. Built with iproute2's `ip`; offloads are set through the driver crate's
//! ethtool ioctls.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;

use sixstack_drivers::netdev;
use sixstack_drivers::rss::{RssConfig, RssEmulator};

/// Lab failures carry the command that failed and what it printed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// An `ip` command failed.
    #[error("`{cmd}` failed: {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its standard error.
        stderr: String,
    },
    /// Setting the peer's offloads failed.
    #[error("setting offloads on {ifname}: {source}")]
    Offload {
        /// The interface.
        ifname: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Names and addresses of one lab.
#[derive(Debug, Clone)]
pub struct Lab {
    /// Namespace the appliance runs in (veth labs).
    pub app_ns: String,
    /// Namespace of the kernel peer.
    pub peer_ns: String,
    /// Appliance side interface (veth end, or the TAP device in the peer namespace).
    pub app_if: String,
    /// Peer side veth end.
    pub peer_if: String,
    /// Whether this lab is a TAP lab (no appliance namespace, no veth).
    pub tap: bool,
    /// IPv4 /24 prefix's third octet (10.77.N.0/24 for the default lab).
    pub net4: [u8; 3],
    /// IPv6 /64 prefix's first four groups.
    pub net6: [u16; 4],
    /// RX/TX queues of each veth end (one shard per queue).
    pub queues: u32,
    /// Keep the veth's checksum/segmentation offloads on (a lab for the kernel alone: an
    /// XSK would see partial checksums and GSO frames).
    pub offloads: bool,
    /// IP MTU of both veth ends (1500, or 9000 for the jumbo lab).
    pub mtu: u32,
}

impl Lab {
    /// The default veth lab of `sixstack lab up` / `sixstack up`.
    pub fn default_veth() -> Lab {
        Lab {
            app_ns: "sixapp".into(),
            peer_ns: "sixpeer".into(),
            app_if: "six0".into(),
            peer_if: "six0p".into(),
            tap: false,
            net4: [10, 77, 0],
            net6: [0xfd77, 0, 0, 0],
            queues: 2,
            offloads: false,
            mtu: 1500,
        }
    }

    /// The default TAP lab.
    pub fn default_tap() -> Lab {
        Lab {
            app_ns: String::new(),
            peer_ns: "sixtap".into(),
            app_if: "sixtap0".into(),
            peer_if: String::new(),
            tap: true,
            net4: [10, 78, 0],
            net6: [0xfd78, 0, 0, 0],
            queues: 1,
            offloads: false,
            mtu: 1500,
        }
    }

    /// A veth lab for the kernel alone with every offload left on (the benchmarks' "kernel
    /// with offloads" server): `sixkapp` / `sixkpeer`, 10.79.0.0/24.
    pub fn kernel_offloads() -> Lab {
        Lab {
            app_ns: "sixkapp".into(),
            peer_ns: "sixkpeer".into(),
            app_if: "sixk0".into(),
            peer_if: "sixk0p".into(),
            tap: false,
            net4: [10, 79, 0],
            net6: [0xfd79, 0, 0, 0],
            queues: 1,
            offloads: true,
            mtu: 1500,
        }
    }

    /// A veth lab with jumbo frames (MTU 9000) and one queue, offloads off, for sixstack's
    /// multi-buffer AF_XDP and the kernel side by side: `sixjapp` / `sixjpeer`,
    /// 10.80.0.0/24.
    pub fn jumbo() -> Lab {
        Lab {
            app_ns: "sixjapp".into(),
            peer_ns: "sixjpeer".into(),
            app_if: "sixj0".into(),
            peer_if: "sixj0p".into(),
            tap: false,
            net4: [10, 80, 0],
            net6: [0xfd80, 0, 0, 0],
            queues: 1,
            offloads: false,
            mtu: 9000,
        }
    }

    /// A uniquely named lab for one test: `tag` must be unique among concurrent labs
    /// (at most 8 characters) and `index` picks the subnet.
    pub fn for_test(tag: &str, index: u8, tap: bool) -> Lab {
        Lab {
            app_ns: if tap {
                String::new()
            } else {
                format!("sx{tag}a")
            },
            peer_ns: format!("sx{tag}p"),
            app_if: if tap {
                format!("sx{tag}t")
            } else {
                format!("sx{tag}")
            },
            peer_if: if tap {
                String::new()
            } else {
                format!("sx{tag}q")
            },
            tap,
            net4: [10, 200, index],
            net6: [0xfd99, 0, 0, index as u16],
            queues: if tap { 1 } else { 2 },
            offloads: false,
            mtu: 1500,
        }
    }

    fn v4(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.net4[0], self.net4[1], self.net4[2], host)
    }

    fn v6(&self, host: u16) -> Ipv6Addr {
        let n = self.net6;
        Ipv6Addr::new(n[0], n[1], n[2], n[3], 0, 0, 0, host)
    }

    /// The kernel peer's IPv4 address.
    pub fn peer4(&self) -> Ipv4Addr {
        self.v4(1)
    }
    /// The stack's IPv4 address.
    pub fn stack4(&self) -> Ipv4Addr {
        self.v4(2)
    }
    /// The appliance namespace kernel's own IPv4 address on the shared link (veth labs).
    pub fn kernel4(&self) -> Ipv4Addr {
        self.v4(3)
    }
    /// The kernel peer's IPv6 address.
    pub fn peer6(&self) -> Ipv6Addr {
        self.v6(1)
    }
    /// The stack's IPv6 address.
    pub fn stack6(&self) -> Ipv6Addr {
        self.v6(2)
    }
    /// The appliance namespace kernel's IPv6 address (veth labs).
    pub fn kernel6(&self) -> Ipv6Addr {
        self.v6(3)
    }

    /// Whether the lab's namespaces exist.
    pub fn exists(&self) -> bool {
        let list = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        let has = |n: &str| list.lines().any(|l| l.split_whitespace().next() == Some(n));
        has(&self.peer_ns) && (self.tap || has(&self.app_ns))
    }

    /// Creates the lab. On failure whatever was created is removed again.
    pub fn up(&self) -> Result<(), LabError> {
        let r = if self.tap {
            self.up_tap()
        } else {
            self.up_veth()
        };
        if r.is_err() {
            self.down();
        }
        r
    }

    fn up_veth(&self) -> Result<(), LabError> {
        let (a, p) = (&self.app_ns, &self.peer_ns);
        ip(&["netns", "add", a])?;
        ip(&["netns", "add", p])?;
        ip(&["-n", a, "link", "set", "lo", "up"])?;
        ip(&["-n", p, "link", "set", "lo", "up"])?;
        let q = self.queues.max(1).to_string();
        ip(&[
            "-n",
            a,
            "link",
            "add",
            &self.app_if,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &self.peer_if,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            p,
        ])?;
        // The stack owns the link-local address derived from the shared MAC: the kernel of
        // the appliance namespace must not claim it too.
        ip(&["-n", a, "link", "set", &self.app_if, "addrgenmode", "none"])?;
        ip(&[
            "-n",
            p,
            "link",
            "set",
            &self.peer_if,
            "addrgenmode",
            "eui64",
        ])?;
        addr_add(a, &self.app_if, &format!("{}/24", self.kernel4()))?;
        addr_add(a, &self.app_if, &format!("{}/64", self.kernel6()))?;
        addr_add(p, &self.peer_if, &format!("{}/24", self.peer4()))?;
        addr_add(p, &self.peer_if, &format!("{}/64", self.peer6()))?;
        // A veth peer otherwise hands the XSK frames with partial checksums and 64 KiB
        // GSO super-frames. A kernel-only lab keeps them (the kernel's best case).
        let ends: &[(&String, &String)] = if self.offloads {
            &[]
        } else {
            &[(p, &self.peer_if), (a, &self.app_if)]
        };
        for &(ns, ifname) in ends {
            let name = ifname.clone();
            netdev::in_netns(ns, move || {
                netdev::set_offloads(&name, false, false, false, false)
            })
            .and_then(|r| r)
            .map_err(|source| LabError::Offload {
                ifname: ifname.clone(),
                source,
            })?;
        }
        if self.mtu != 1500 {
            let mtu = self.mtu.to_string();
            ip(&["-n", a, "link", "set", &self.app_if, "mtu", &mtu])?;
            ip(&["-n", p, "link", "set", &self.peer_if, "mtu", &mtu])?;
        }
        ip(&["-n", a, "link", "set", &self.app_if, "up"])?;
        ip(&["-n", p, "link", "set", &self.peer_if, "up"])?;
        Ok(())
    }

    fn up_tap(&self) -> Result<(), LabError> {
        let p = &self.peer_ns;
        ip(&["netns", "add", p])?;
        ip(&["-n", p, "link", "set", "lo", "up"])?;
        ip(&["-n", p, "tuntap", "add", "dev", &self.app_if, "mode", "tap"])?;
        addr_add(p, &self.app_if, &format!("{}/24", self.peer4()))?;
        addr_add(p, &self.app_if, &format!("{}/64", self.peer6()))?;
        ip(&["-n", p, "link", "set", &self.app_if, "up"])?;
        Ok(())
    }

    /// Removes the lab (namespaces take their veth and TAP devices with them). Quiet about
    /// parts that are already gone.
    pub fn down(&self) {
        for ns in [&self.app_ns, &self.peer_ns] {
            if !ns.is_empty() {
                let _ = Command::new("ip")
                    .args(["netns", "del", ns])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }

    /// The namespace the appliance opens its interface in.
    pub fn appliance_ns(&self) -> &str {
        if self.tap {
            &self.peer_ns
        } else {
            &self.app_ns
        }
    }

    /// Emulates NIC RSS on this veth lab: a BPF program on the peer's egress puts every
    /// TCP/UDP flow on the appliance queue that the lab's Toeplitz key and table choose
    /// (`RssConfig::with_queues(queues)`, what `rss = "lab"` tells the stack). It stays while
    /// the returned value lives.
    pub fn emulate_rss(&self) -> Result<RssEmulator, String> {
        if self.tap {
            return Err("a TAP lab has one queue".into());
        }
        let ifname = self.peer_if.clone();
        let rss = RssConfig::with_queues(self.queues);
        netdev::in_netns(&self.peer_ns, move || RssEmulator::attach(&ifname, &rss))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// What `lab up` prints: how to reach the appliance.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if self.tap {
            s += &format!(
                "TAP lab: device {} in namespace {} (kernel peer {} / {})\n",
                self.app_if,
                self.peer_ns,
                self.peer4(),
                self.peer6()
            );
        } else {
            s += &format!(
                "veth lab: {} ({}) <-> {} ({}), MTU {}\n  kernel peer {} / {}; appliance kernel keeps {} / {}\n",
                self.app_if,
                self.app_ns,
                self.peer_if,
                self.peer_ns,
                self.mtu,
                self.peer4(),
                self.peer6(),
                self.kernel4(),
                self.kernel6()
            );
        }
        s += &format!(
            "  sixstack answers on {} and {}\n  try: ip netns exec {} ping -c3 {}\n       ip netns exec {} ping -6 -c3 {}\n       ip netns exec {} socat - TCP:{}:7\n       ip netns exec {} socat - TCP6:[{}]:7",
            self.stack4(),
            self.stack6(),
            self.peer_ns,
            self.stack4(),
            self.peer_ns,
            self.stack6(),
            self.peer_ns,
            self.stack4(),
            self.peer_ns,
            self.stack6()
        );
        s
    }

    /// One line per namespace and link of this lab that exists.
    pub fn status(&self) -> String {
        if !self.exists() {
            return "lab is down".into();
        }
        let mut s = String::new();
        for ns in [&self.app_ns, &self.peer_ns] {
            if ns.is_empty() {
                continue;
            }
            let out = Command::new("ip")
                .args(["-n", ns, "-br", "addr"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            s += &format!("namespace {ns}:\n{out}");
        }
        s
    }
}

/// Adds an address (IPv6 without duplicate address detection, so it is usable at once).
fn addr_add(ns: &str, ifname: &str, cidr: &str) -> Result<(), LabError> {
    if cidr.contains(':') {
        ip(&["-n", ns, "addr", "add", cidr, "dev", ifname, "nodad"])
    } else {
        ip(&["-n", ns, "addr", "add", cidr, "dev", ifname])
    }
}

/// Runs `ip ARGS`, turning a failure into an error with its stderr.
pub fn ip(args: &[&str]) -> Result<(), LabError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| LabError::Command {
            cmd: format!("ip {}", args.join(" ")),
            stderr: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            cmd: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
