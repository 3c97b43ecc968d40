//! What a shard is told at start: its addresses, gateways and socket sizes.

use std::net::{Ipv4Addr, Ipv6Addr};

use std::sync::Arc;

use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Cidr, Ipv6Cidr};

/// The receive queue the NIC picks for a frame with this 4-tuple, as seen on receive:
/// `(source address, destination address, source port, destination port)`. The shard
/// uses it to choose client ports whose replies come back to its own queue.
pub type ReceiveQueueFn = Arc<dyn Fn(IpAddress, IpAddress, u16, u16) -> u32 + Send + Sync>;

/// A shard's network identity and socket sizing.
#[derive(Clone)]
pub struct StackConfig {
    /// This shard's index (0-based).
    pub shard: u32,
    /// How many shards the appliance runs.
    pub shards: u32,
    /// The NIC receive queue this shard serves.
    pub queue: u32,
    /// The NIC's receive hash, when known; `None`: client ports are chosen by `port % shards`
    /// only, and replies that land elsewhere are handed over.
    pub receive_queue: Option<ReceiveQueueFn>,
    /// Services pinned to other shards: (transport, port, the shards that host it). A
    /// connection or datagram for such a port arriving here is handed to one of them.
    pub pinned_elsewhere: Vec<(crate::Proto, u16, Vec<u32>)>,
    /// The stack's own MAC address.
    pub mac: [u8; 6],
    /// IPv4 address with prefix length, if any.
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// IPv6 addresses with prefix length (a link-local one is added from the MAC).
    pub ipv6: Vec<(Ipv6Addr, u8)>,
    /// IPv4 default gateway.
    pub gateway4: Option<Ipv4Addr>,
    /// IPv6 default gateway.
    pub gateway6: Option<Ipv6Addr>,
    /// Receive buffer of each TCP socket, bytes.
    pub tcp_rx_buffer: usize,
    /// Send buffer of each TCP socket, bytes.
    pub tcp_tx_buffer: usize,
    /// Listening sockets kept ready per listener: SYNs beyond it in one burst are refused.
    pub backlog: usize,
    /// The most TCP buffer memory (receive plus send, bytes) the shard's sockets may hold:
    /// beyond it new connections, accepted or opened, are refused cleanly.
    pub socket_memory: usize,
    /// The most connections one source address may hold with this shard's listeners
    /// (handshakes and accepted connections; 0: no limit). SYNs beyond it are answered
    /// with RST.
    pub max_per_source: u32,
    /// Datagrams queued per UDP socket and direction.
    pub udp_packets: usize,
    /// Payload bytes queued per UDP socket and direction.
    pub udp_buffer: usize,
    /// Seed for smoltcp's sequence numbers and the ephemeral port choice.
    pub seed: u64,
    /// How long a shard spins polling its link before it sleeps, microseconds.
    pub busy_poll_us: u64,
    /// The workload manager's thresholds (checked when the shard is built).
    pub workload: crate::workload::Policy,
    /// Where run-time policy changes come from and the manager's reports go (one board
    /// for all shards of an appliance; `None`: the policy above stays, no reports).
    pub workload_board: Option<std::sync::Arc<crate::workload::Board>>,
}

impl std::fmt::Debug for StackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackConfig")
            .field("shard", &self.shard)
            .field("shards", &self.shards)
            .field("queue", &self.queue)
            .field("steered", &self.receive_queue.is_some())
            .field("mac", &self.mac)
            .field("ipv4", &self.ipv4)
            .field("ipv6", &self.ipv6)
            .field("backlog", &self.backlog)
            .finish_non_exhaustive()
    }
}

/// An address the stack cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The MAC address is multicast or all zeros.
    #[error("MAC address {0} is not a unicast address")]
    Mac(String),
    /// The prefix length is longer than the address.
    #[error("prefix length /{0} is too long for {1}")]
    Prefix(u8, String),
    /// Unspecified, multicast or broadcast addresses cannot be an interface address.
    #[error("{0} cannot be an interface address")]
    NotUnicast(String),
}

impl StackConfig {
    /// A configuration with the given MAC and no addresses, with default sizes.
    pub fn new(mac: [u8; 6]) -> StackConfig {
        StackConfig {
            shard: 0,
            shards: 1,
            queue: 0,
            receive_queue: None,
            pinned_elsewhere: Vec::new(),
            mac,
            ipv4: None,
            ipv6: Vec::new(),
            gateway4: None,
            gateway6: None,
            tcp_rx_buffer: 64 * 1024,
            tcp_tx_buffer: 64 * 1024,
            backlog: 64,
            socket_memory: 1 << 30,
            max_per_source: 0,
            udp_packets: 64,
            udp_buffer: 64 * 1024,
            seed: 0x5157_4143_4b00_0001,
            busy_poll_us: 50,
            workload: crate::workload::Policy::default(),
            workload_board: None,
        }
    }

    /// Checks addresses and returns the CIDRs the interface gets, link-local first-class.
    pub(crate) fn cidrs(&self) -> Result<Vec<IpCidr>, AddressError> {
        let mac = EthernetAddress(self.mac);
        if !mac.is_unicast() {
            return Err(AddressError::Mac(mac.to_string()));
        }
        let mut out = Vec::new();
        if let Some((a, len)) = self.ipv4 {
            if len > 32 {
                return Err(AddressError::Prefix(len, a.to_string()));
            }
            if a.is_unspecified() || a.is_multicast() || a.is_broadcast() {
                return Err(AddressError::NotUnicast(a.to_string()));
            }
            out.push(IpCidr::Ipv4(Ipv4Cidr::new(a, len)));
        }
        for &(a, len) in &self.ipv6 {
            if len > 128 {
                return Err(AddressError::Prefix(len, a.to_string()));
            }
            if a.is_unspecified() || a.is_multicast() {
                return Err(AddressError::NotUnicast(a.to_string()));
            }
            out.push(IpCidr::Ipv6(Ipv6Cidr::new(a, len)));
        }
        out.push(IpCidr::Ipv6(Ipv6Cidr::new(self.link_local(), 64)));
        Ok(out)
    }

    /// The IPv6 link-local address derived from the MAC (modified EUI-64).
    pub fn link_local(&self) -> Ipv6Addr {
        let m = self.mac;
        Ipv6Addr::from([
            0xfe,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            m[0] ^ 0x02,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ])
    }

    /// Every address the stack answers on (for the XDP filter).
    pub fn addresses(&self) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
        let v4 = self.ipv4.iter().map(|(a, _)| *a).collect();
        let mut v6: Vec<Ipv6Addr> = self.ipv6.iter().map(|(a, _)| *a).collect();
        v6.push(self.link_local());
        (v4, v6)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn link_local_from_mac() {
        let c = StackConfig::new([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(
            c.link_local(),
            "fe80::11:22ff:fe33:4455".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn rejects_bad_addresses() {
        let mut c = StackConfig::new([0x01, 0, 0, 0, 0, 1]);
        assert!(matches!(c.cidrs(), Err(AddressError::Mac(_))));
        c.mac = [2, 0, 0, 0, 0, 1];
        c.ipv4 = Some((Ipv4Addr::new(10, 0, 0, 1), 33));
        assert!(matches!(c.cidrs(), Err(AddressError::Prefix(33, _))));
        c.ipv4 = Some((Ipv4Addr::new(224, 0, 0, 1), 24));
        assert!(matches!(c.cidrs(), Err(AddressError::NotUnicast(_))));
        c.ipv4 = Some((Ipv4Addr::new(10, 0, 0, 1), 24));
        c.ipv6 = vec![("fd00::1".parse().unwrap(), 64)];
        assert_eq!(c.cidrs().unwrap().len(), 3);
    }
}
