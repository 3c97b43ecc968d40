//! sixstack's NIC backends: every driver is a smoltcp [`phy::Device`] plus the small
//! [`Link`] contract the shard loop needs (flush a TX batch, an fd to sleep on, counters).
//!
//! Drivers: [`afxdp`] (production, kernel bypass over AF_XDP), [`tap`] (fallback, io_uring
//! batched), [`pipe`] (two stacks in one process over lock-free rings, for deterministic
//! tests), [`pcap`] (a wrapper that records any link's frames for Wireshark) and [`fault`]
//! (a wrapper that loses, reorders, duplicates, corrupts, delays and rate-limits frames,
//! seeded, for tests and demonstrations).
//! This crate holds no protocol logic: it moves Ethernet frames and nothing else.
//!
//! [`phy::Device`]: smoltcp::phy::Device

#![deny(unsafe_code)]

/// Length of an Ethernet header (no VLAN tag, no FCS), added to the IP MTU to get the
/// frame size.
pub(crate) const ETH_HEADER: usize = 14;

pub mod afxdp;
pub mod fault;
pub mod link;
pub mod memory;
pub mod netdev;
mod netlink;
pub mod pcap;
pub mod pipe;
pub mod rss;
pub mod tap;
#[cfg(test)]
mod test_lab;
pub mod uring;
pub mod wait;

pub use link::{Link, LinkStats};
