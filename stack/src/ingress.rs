//! Ingress steering: every received frame is classified, looked up in the shard's flow
//! table and either fed to smoltcp here (through a one-frame device, zero-copy) or handed to
//! the shard that owns its flow.

use smoltcp::phy::{DeviceCapabilities, TxToken};
use smoltcp::time::Instant;

use crate::flow::{classify, Class, FlowKey};
use crate::mesh::MeshEnd;
use crate::net::{Core, FlowEntry};
use crate::oneframe::OneFrame;
use crate::sockets::LISTEN_SET;

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Feed it to this shard's smoltcp.
    Local,
    /// Feed it here, and remember the flow as a handshake under way.
    LocalSyn,
    /// Hand it to shard `0` with hop count `1`.
    Send(u32, u8),
    /// Feed it here and copy it to every other shard (neighbor discovery).
    LocalAndCopy,
}

/// The hop count that marks a copy for every shard (not to be copied again).
pub(crate) const COPY: u8 = u8::MAX;

/// Hand-off counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SteerCounters {
    /// Frames handed to another shard (owner known or passed on along the ring).
    pub handoffs_out: u64,
    /// Frames received from another shard.
    pub handoffs_in: u64,
    /// Of `handoffs_out`, frames passed on along the ring because their owner was unknown.
    pub ring_forwards: u64,
    /// Frames that could not be handed over (the owner's queue was full): dropped.
    pub handoff_dropped: u64,
    /// ARP/NDP frames copied to the other shards so every neighbor cache learns them.
    pub neighbor_copies: u64,
    /// Half-open handshakes reset to make room for a new SYN (a full backlog: a SYN flood).
    pub syn_evicted: u64,
}

/// Decides where a frame goes.
pub(crate) fn decide(core: &Core, mesh: Option<&MeshEnd>, class: Class, hops: u8) -> Verdict {
    let n = core.shards;
    let me = core.shard;
    if mesh.is_none() || n <= 1 {
        return match class {
            Class::Tcp {
                key,
                syn_only: true,
            } if core.listen_ports.contains_key(&key.local_port) => Verdict::LocalSyn,
            _ => Verdict::Local,
        };
    }
    match class {
        Class::Local => Verdict::Local,
        Class::Neighbor if hops == COPY => Verdict::Local,
        Class::Neighbor => Verdict::LocalAndCopy,
        Class::EchoReply { ident } => {
            let owner = crate::icmp::ident_owner(ident, n);
            if owner != me {
                Verdict::Send(owner, hops)
            } else {
                Verdict::Local
            }
        }
        Class::Tcp { key, syn_only } => {
            if core.flows.contains_key(&key) {
                return Verdict::Local;
            }
            let listening = core.listen_ports.contains_key(&key.local_port);
            if !listening {
                if let Some(owner) = core.port_owner(key.local_port) {
                    if owner != me {
                        return Verdict::Send(owner, hops);
                    }
                    return Verdict::Local;
                }
            }
            if syn_only {
                if listening {
                    return Verdict::LocalSyn;
                }
                if let Some(to) = pinned_owner(core, &key) {
                    return Verdict::Send(to, hops);
                }
                return Verdict::Local;
            }
            if u32::from(hops) + 1 < n {
                Verdict::Send((me + 1) % n, hops + 1)
            } else {
                Verdict::Local
            }
        }
        Class::Udp { key } => {
            if core.udp_ports.contains_key(&key.local_port) {
                return Verdict::Local;
            }
            match core.port_owner(key.local_port) {
                Some(owner) if owner != me => Verdict::Send(owner, hops),
                _ => match pinned_owner(core, &key) {
                    Some(to) => Verdict::Send(to, hops),
                    None => Verdict::Local,
                },
            }
        }
    }
}

/// For a service pinned to other shards, the one that takes this flow (spread by the
/// remote port so one client's connections do not all land on one shard).
fn pinned_owner(core: &Core, key: &FlowKey) -> Option<u32> {
    let owners = core.elsewhere.get(&(key.proto, key.local_port))?;
    let i = usize::from(key.remote_port) % owners.len().max(1);
    owners.get(i).copied().filter(|&s| s != core.shard)
}

/// Feeds a frame to smoltcp through socket set `set` (the shard calls it directly for a
/// frame of an established connection, whose flow table entry names the set: what
/// [`steer`] would decide, without deciding again).
pub(crate) fn feed<T: TxToken>(
    core: &mut Core,
    caps: &DeviceCapabilities,
    frame: &[u8],
    tx: T,
    now: Instant,
    set: u32,
) {
    let mut dev = OneFrame {
        frame: Some(frame),
        tx: Some(tx),
        caps: caps.clone(),
    };
    core.sockets.mark(set);
    let Core { iface, sockets, .. } = &mut *core;
    let _ = iface.poll_ingress_single(now, &mut dev, sockets.set_mut(set));
}

/// Steers one frame: feeds it to smoltcp with `tx` for the reply, or hands it over.
/// Returns true when it was handed over. Time spent handing over or copying to other
/// shards (the serialized work of the NP ratio) is added to `np_ns`; the local path reads
/// no clock.
#[allow(clippy::too_many_arguments)]
pub(crate) fn steer<T: TxToken>(
    core: &mut Core,
    mesh: Option<&MeshEnd>,
    counters: &mut SteerCounters,
    caps: &DeviceCapabilities,
    frame: &[u8],
    tx: T,
    now: Instant,
    hops: u8,
    np_ns: &mut u64,
) -> bool {
    let class = classify(frame);
    steer_classified(
        core, mesh, counters, caps, class, frame, tx, now, hops, np_ns,
    )
}

/// [`steer`] for a frame already classified as `class`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn steer_classified<T: TxToken>(
    core: &mut Core,
    mesh: Option<&MeshEnd>,
    counters: &mut SteerCounters,
    caps: &DeviceCapabilities,
    class: Class,
    frame: &[u8],
    tx: T,
    now: Instant,
    hops: u8,
    np_ns: &mut u64,
) -> bool {
    match decide(core, mesh, class, hops) {
        Verdict::Send(to, hops_now) => {
            let t = std::time::Instant::now();
            let sent = mesh.is_some_and(|m| m.send(to, frame, hops_now));
            *np_ns += t.elapsed().as_nanos() as u64;
            if sent {
                counters.handoffs_out += 1;
                if hops_now > hops {
                    counters.ring_forwards += 1;
                }
            } else {
                counters.handoff_dropped += 1;
            }
            true
        }
        v => {
            if v == Verdict::LocalAndCopy {
                if let Some(m) = mesh {
                    let t = std::time::Instant::now();
                    for to in (0..m.shards()).filter(|&s| s != core.shard) {
                        if m.send(to, frame, COPY) {
                            counters.neighbor_copies += 1;
                        } else {
                            counters.handoff_dropped += 1;
                        }
                    }
                    *np_ns += t.elapsed().as_nanos() as u64;
                }
            }
            if v == Verdict::LocalSyn {
                if let Class::Tcp { key, .. } = class {
                    if !core.source_allows(&key) {
                        // Its source holds its limit of connections: the SYN goes to its
                        // connection bucket, where no socket takes it, so the protocol
                        // engine answers RST and the client learns at once.
                        let set = core.set_for(&key);
                        feed(core, caps, frame, tx, now, set);
                        return false;
                    }
                    if core.make_room(&key, now) {
                        counters.syn_evicted += 1;
                    }
                    core.flows.entry(key).or_insert(FlowEntry::new(None, now));
                }
            }
            let set = match class {
                Class::Tcp { key, .. } => core
                    .flows
                    .get(&key)
                    .and_then(|e| e.socket)
                    .map_or(LISTEN_SET, |s| s.set),
                _ => 0,
            };
            feed(core, caps, frame, tx, now, set);
            if v == Verdict::LocalSyn {
                if let Class::Tcp { key, .. } = class {
                    core.syn_taken(&key, now);
                }
            }
            false
        }
    }
}
