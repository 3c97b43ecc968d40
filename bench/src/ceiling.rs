//! The link's AF_XDP ceiling: frames per second from one XSK to another across the lab's
//! veth, with no stack at either end. Every sixstack packet rate is reported as a fraction
//! of it, which separates the stack's own cost from what the link allows.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sixstack_drivers::afxdp::{XdpAttachMode, XdpConfig, XdpFilter, XdpLink, XdpProgram};
use sixstack_drivers::{netdev, Link};
use smoltcp::phy::{Device, RxToken, TxToken};

/// Where to measure: a veth pair whose two ends live in two namespaces.
#[derive(Debug, Clone)]
pub struct CeilingPlan {
    /// Sender side: namespace and interface.
    pub tx_ns: String,
    /// Sender interface.
    pub tx_if: String,
    /// Receiver side: namespace and interface.
    pub rx_ns: String,
    /// Receiver interface.
    pub rx_if: String,
    /// The address the receiver's program takes (any address nobody else uses).
    pub dst: Ipv4Addr,
    /// Frame length (64 for the small-frame ceiling).
    pub frame_len: usize,
    /// Measured seconds.
    pub secs: f64,
}

/// Sent and received frames over the measured interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ceiling {
    /// Frames handed to the sender's TX ring per second.
    pub sent_per_s: f64,
    /// Frames taken from the receiver's RX ring per second.
    pub received_per_s: f64,
}

fn frame(len: usize, dst_mac: [u8; 6], src_mac: [u8; 6], dst: Ipv4Addr) -> Vec<u8> {
    let len = len.max(60);
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (len - 14) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 250, 0, 1]);
    f[30..34].copy_from_slice(&dst.octets());
    let mut sum: u32 = 0;
    for i in (14..34).step_by(2) {
        sum += u32::from(u16::from_be_bytes([f[i], f[i + 1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&9u16.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

/// Measures the ceiling. Needs root; the interfaces must carry no other XDP program.
pub fn measure(plan: &CeilingPlan) -> Result<Ceiling, String> {
    let rx_if = plan.rx_if.clone();
    let dst = plan.dst;
    let (dst_mac, mut rx_link) = netdev::in_netns(&plan.rx_ns, move || -> Result<_, String> {
        let mac = netdev::mac_address(&rx_if).map_err(|e| e.to_string())?;
        let filter = XdpFilter {
            ipv4: vec![dst],
            ipv6: Vec::new(),
        };
        let link =
            XdpLink::open(&XdpConfig::new(rx_if.clone(), 0, filter)).map_err(|e| e.to_string())?;
        Ok((mac, link))
    })
    .map_err(|e| e.to_string())??;
    let tx_if = plan.tx_if.clone();
    let (src_mac, mut tx_link) = netdev::in_netns(&plan.tx_ns, move || -> Result<_, String> {
        let mac = netdev::mac_address(&tx_if).map_err(|e| e.to_string())?;
        // The sender's own program only takes frames for the frames' (unused) source
        // address: it is there because a veth needs XDP on both ends for XSK traffic.
        let own = XdpFilter {
            ipv4: vec![Ipv4Addr::new(10, 250, 0, 1)],
            ipv6: Vec::new(),
        };
        let prog =
            XdpProgram::attach(&tx_if, &own, XdpAttachMode::Auto, 1).map_err(|e| e.to_string())?;
        let link = XdpLink::bind(&prog, &XdpConfig::new(tx_if.clone(), 0, own.clone()))
            .map_err(|e| e.to_string())?;
        Ok((mac, link))
    })
    .map_err(|e| e.to_string())??;
    let f = frame(plan.frame_len, dst_mac, src_mac, plan.dst);
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let (stop2, recv2) = (stop.clone(), received.clone());
    let receiver = std::thread::spawn(move || {
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id: 1 });
        let ts = smoltcp::time::Instant::from_micros(0);
        while !stop2.load(Ordering::Relaxed) {
            let mut n = 0;
            while let Some((rx, _tx)) = rx_link.receive(ts) {
                rx.consume(|_| ());
                n += 1;
            }
            if n > 0 {
                recv2.fetch_add(n, Ordering::Relaxed);
            }
            let _ = rx_link.flush();
        }
    });
    // The sender runs on a thread of its own, pinned to core 0 (this thread keeps its
    // affinity, so processes started later do not inherit the pin).
    let secs = plan.secs;
    let sender = std::thread::spawn(move || -> Result<(u64, f64), String> {
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
        let ts = smoltcp::time::Instant::from_micros(0);
        let warm = Instant::now() + Duration::from_millis(300);
        while Instant::now() < warm {
            for _ in 0..64 {
                if let Some(t) = tx_link.transmit(ts) {
                    t.consume(f.len(), |b| b.copy_from_slice(&f));
                }
            }
            let _ = tx_link.flush();
        }
        let s0 = tx_link.stats().tx_frames;
        let start = Instant::now();
        let end = start + Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())?;
        while Instant::now() < end {
            for _ in 0..64 {
                match tx_link.transmit(ts) {
                    Some(t) => t.consume(f.len(), |b| b.copy_from_slice(&f)),
                    None => break,
                }
            }
            let _ = tx_link.flush();
        }
        Ok((
            tx_link.stats().tx_frames - s0,
            start.elapsed().as_secs_f64(),
        ))
    });
    std::thread::sleep(Duration::from_millis(300));
    let r0 = received.load(Ordering::Relaxed);
    let (sent, secs) = sender
        .join()
        .map_err(|_| "sender thread panicked".to_string())??;
    std::thread::sleep(Duration::from_millis(100));
    let got = received.load(Ordering::Relaxed) - r0;
    stop.store(true, Ordering::Relaxed);
    let _ = receiver.join();
    Ok(Ceiling {
        sent_per_s: sent as f64 / secs,
        received_per_s: got as f64 / secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_a_valid_udp_datagram() {
        let f = frame(64, [2; 6], [4; 6], Ipv4Addr::new(10, 77, 0, 9));
        let eth = smoltcp::wire::EthernetFrame::new_checked(&f[..]).expect("eth");
        let ip = smoltcp::wire::Ipv4Packet::new_checked(eth.payload()).expect("ip");
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 77, 0, 9));
        assert_eq!(usize::from(ip.total_len()), 50);
    }
}
