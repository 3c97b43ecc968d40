//! How shards hand frames to each other: one crossbeam channel per shard, a doorbell per
//! shard to wake it. A frame lands on the wrong shard when its flow was opened elsewhere
//! and the NIC (or the veth) delivered it to another queue; the receiving shard hands it
//! to the owner instead of dropping it, and counts it.
//!
//! Owners: an active open's local port encodes its shard (`port % shards`); a passive
//! flow is owned by the shard whose flow table holds it, found by passing the frame on
//! around the ring of shards (at most `shards - 1` hops; the last hop answers it itself,
//! which for an unknown flow means a RST).

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use sixstack_drivers::wait::Doorbell;

/// A frame on its way to another shard.
#[derive(Debug)]
pub struct Handoff {
    /// The whole Ethernet frame.
    pub bytes: Vec<u8>,
    /// How many shards already passed it on without owning its flow.
    pub hops: u8,
}

/// One shard's end of the mesh.
#[derive(Debug)]
pub struct MeshEnd {
    /// This shard's index.
    pub me: u32,
    /// Senders to every shard (including this one, unused).
    pub senders: Vec<Sender<Handoff>>,
    /// Frames handed to this shard.
    pub receiver: Receiver<Handoff>,
    /// Every shard's doorbell.
    pub bells: Vec<Arc<Doorbell>>,
}

/// Frames that may wait in a shard's hand-off queue before further ones are dropped
/// (and counted as `handoff_full`).
pub const HANDOFF_QUEUE: usize = 4096;

/// Builds the ends for `n` shards.
pub fn mesh(n: u32) -> std::io::Result<Vec<MeshEnd>> {
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    let mut bells = Vec::new();
    for _ in 0..n {
        let (s, r) = crossbeam_channel::bounded(HANDOFF_QUEUE);
        senders.push(s);
        receivers.push(r);
        bells.push(Arc::new(Doorbell::new()?));
    }
    Ok(receivers
        .into_iter()
        .enumerate()
        .map(|(i, receiver)| MeshEnd {
            me: i as u32,
            senders: senders.clone(),
            receiver,
            bells: bells.clone(),
        })
        .collect())
}

impl MeshEnd {
    /// Number of shards in the mesh.
    pub fn shards(&self) -> u32 {
        self.senders.len() as u32
    }

    /// Hands `frame` to shard `to`; false when its queue is full (the frame is dropped).
    pub(crate) fn send(&self, to: u32, frame: &[u8], hops: u8) -> bool {
        let Some(s) = self.senders.get(to as usize) else {
            return false;
        };
        match s.try_send(Handoff {
            bytes: frame.to_vec(),
            hops,
        }) {
            Ok(()) => {
                if let Some(b) = self.bells.get(to as usize) {
                    b.ring();
                }
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }
}
