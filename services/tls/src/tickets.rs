//! Session tickets whose keys rotate on a ratchet that every shard follows by itself.
//!
//! One random seed is drawn when the appliance starts and copied into each shard's
//! [`ShardTicketer`]. Time is cut into epochs of `rotation`; the key of epoch `n + 1` is
//! HMAC-SHA256(key of epoch `n`, "next"), and a ticketer keeps only the current and the
//! previous epoch's keys, erasing older ones as it moves on. Every shard therefore arrives
//! at the same keys without talking to the others (a ticket issued on one shard resumes
//! on any), no lock is shared between shards (each ticketer's own mutex is only ever taken
//! by its shard's thread), and a key that is gone cannot be derived again from what is
//! left: forward secrecy for tickets older than two epochs.
//!
//! A ticket is `epoch (8 bytes) | nonce (12) | AES-256-GCM(plain, aad = epoch)`.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::server::ProducesTickets;
use zeroize::Zeroizing;

use crate::provider::crypto::{aead, hmac};

type Key = Zeroizing<[u8; 32]>;

/// Where the ticketers of one listener get their time (seconds since the seed was drawn).
pub type EpochClock = Arc<dyn Fn() -> Duration + Send + Sync>;

/// The seed and schedule shared (by copy) by the ticketers of one listener.
#[derive(Clone)]
pub struct TicketSeed {
    seed: Key,
    rotation: Duration,
    clock: EpochClock,
}

impl fmt::Debug for TicketSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketSeed")
            .field("rotation", &self.rotation)
            .finish_non_exhaustive()
    }
}

impl TicketSeed {
    /// A fresh random seed; keys rotate every `rotation` (at least one second).
    pub fn new(rotation: Duration) -> Result<TicketSeed, rustls::Error> {
        let start = Instant::now();
        TicketSeed::with_clock(rotation, Arc::new(move || start.elapsed()))
    }

    /// A fresh random seed on the given clock (tests drive time by hand).
    pub fn with_clock(rotation: Duration, clock: EpochClock) -> Result<TicketSeed, rustls::Error> {
        let mut seed = Zeroizing::new([0u8; 32]);
        crate::provider::fill_random(&mut seed[..])?;
        Ok(TicketSeed {
            seed,
            rotation: rotation.max(Duration::from_secs(1)),
            clock,
        })
    }

    /// A ticketer for one shard.
    pub fn ticketer(&self) -> Arc<ShardTicketer> {
        Arc::new(ShardTicketer {
            ratchet: Mutex::new(Ratchet {
                epoch: 0,
                current: self.seed.clone(),
                previous: None,
            }),
            rotation: self.rotation,
            clock: self.clock.clone(),
        })
    }
}

struct Ratchet {
    epoch: u64,
    current: Key,
    previous: Option<Key>,
}

fn hmac32(key: &[u8], label: &[u8]) -> Key {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&k, label);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(tag.as_ref());
    out
}

impl Ratchet {
    /// Moves to `epoch` (never backwards), erasing keys older than `epoch - 1`.
    fn advance(&mut self, epoch: u64) {
        while self.epoch < epoch {
            let next = hmac32(&self.current[..], b"sixstack ticket ratchet: next");
            self.previous = Some(std::mem::replace(&mut self.current, next));
            self.epoch += 1;
        }
    }

    fn aead_key(chain_key: &Key) -> Option<aead::LessSafeKey> {
        let k = hmac32(&chain_key[..], b"sixstack ticket ratchet: aead");
        aead::UnboundKey::new(&aead::AES_256_GCM, &k[..])
            .ok()
            .map(aead::LessSafeKey::new)
    }
}

/// One shard's ticket maker (see the module docs).
pub struct ShardTicketer {
    ratchet: Mutex<Ratchet>,
    rotation: Duration,
    clock: EpochClock,
}

impl fmt::Debug for ShardTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardTicketer")
            .field("rotation", &self.rotation)
            .finish_non_exhaustive()
    }
}

const EPOCH_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

impl ShardTicketer {
    fn epoch_now(&self) -> u64 {
        let secs = (self.clock)().as_secs();
        secs / self.rotation.as_secs().max(1)
    }
}

impl ProducesTickets for ShardTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(self.rotation.as_secs()).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let epoch = self.epoch_now();
        let key = {
            let mut r = self.ratchet.lock().ok()?;
            r.advance(epoch);
            Ratchet::aead_key(&r.current)?
        };
        let mut nonce = [0u8; NONCE_LEN];
        crate::provider::fill_random(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(EPOCH_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(epoch.to_be_bytes()),
            &mut body,
        )
        .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < EPOCH_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (epoch_bytes, rest) = cipher.split_at(EPOCH_LEN);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let epoch = u64::from_be_bytes(epoch_bytes.try_into().ok()?);
        let now = self.epoch_now();
        let key = {
            let mut r = self.ratchet.lock().ok()?;
            r.advance(now);
            if epoch == r.epoch {
                Ratchet::aead_key(&r.current)?
            } else if epoch + 1 == r.epoch {
                Ratchet::aead_key(r.previous.as_ref()?)?
            } else {
                return None;
            }
        };
        let mut buf = body.to_vec();
        let plain = key
            .open_in_place(
                aead::Nonce::try_assume_unique_for_key(nonce).ok()?,
                aead::Aad::from(epoch.to_be_bytes()),
                &mut buf,
            )
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn manual() -> (TicketSeed, Arc<AtomicU64>) {
        let t = Arc::new(AtomicU64::new(0));
        let t2 = t.clone();
        let seed = TicketSeed::with_clock(
            Duration::from_secs(100),
            Arc::new(move || Duration::from_secs(t2.load(Ordering::SeqCst))),
        )
        .unwrap();
        (seed, t)
    }

    #[test]
    fn tickets_cross_shards_and_expire_after_two_epochs() {
        let (seed, time) = manual();
        let a = seed.ticketer();
        let b = seed.ticketer();
        let ticket = a.encrypt(b"session state").unwrap();
        assert_eq!(
            b.decrypt(&ticket).unwrap(),
            b"session state",
            "another shard"
        );
        assert_eq!(a.decrypt(&ticket).unwrap(), b"session state");
        // Next epoch: still accepted (previous key), by a shard that never issued it.
        time.store(150, Ordering::SeqCst);
        assert_eq!(b.decrypt(&ticket).unwrap(), b"session state");
        let newer = b.encrypt(b"newer").unwrap();
        assert_eq!(a.decrypt(&newer).unwrap(), b"newer");
        // Two epochs on: the first key is erased everywhere.
        time.store(250, Ordering::SeqCst);
        assert!(a.decrypt(&ticket).is_none());
        assert!(b.decrypt(&ticket).is_none());
        assert_eq!(a.decrypt(&newer).unwrap(), b"newer");
        assert_eq!(a.lifetime(), 100);
    }

    #[test]
    fn tampered_foreign_and_short_tickets_are_refused() {
        let (seed, _) = manual();
        let a = seed.ticketer();
        let mut t = a.encrypt(b"x").unwrap();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert!(a.decrypt(&t).is_none(), "tampered tag");
        let mut t = a.encrypt(b"x").unwrap();
        t[7] ^= 1;
        assert!(a.decrypt(&t).is_none(), "epoch changed (aad)");
        let (other, _) = manual();
        assert!(other
            .ticketer()
            .decrypt(&a.encrypt(b"x").unwrap())
            .is_none());
        for n in 0..40 {
            assert!(a.decrypt(&vec![0u8; n]).is_none());
        }
    }
}
