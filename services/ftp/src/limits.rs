//! Limits that span connections and shards: clients in all, clients per address, and the
//! lockout of a user at an address after repeated failed logins. They are touched when a
//! connection opens or closes and when a login fails or succeeds, never per packet, so one
//! small lock shared by the shards is enough (a per-shard count would let a client that
//! spreads its connections over the shards get shards × the attempts).
//!
//! Time comes in from the caller.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Control connections open at once, all addresses.
    pub max_clients: u32,
    /// Control connections open at once from one address.
    pub max_per_address: u32,
    /// Failed logins of one user from one address that lock them out.
    pub max_failures: u32,
    /// How long a lockout lasts (and how long failures are remembered).
    pub lockout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_clients: 256,
            max_per_address: 16,
            max_failures: 5,
            lockout: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    total: u32,
    per_addr: HashMap<IpAddr, u32>,
    /// (user, address) → failures so far and when the first of them happened.
    failures: HashMap<(String, IpAddr), (u32, Instant)>,
    /// (user, address) → locked until.
    locked: HashMap<(String, IpAddr), Instant>,
}

/// The shared limits.
#[derive(Debug, Default)]
pub struct Limits {
    cfg: LimitsConfig,
    state: Mutex<State>,
}

/// Why a connection is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The server is full.
    #[error("too many clients")]
    Full,
    /// That address has too many connections open.
    #[error("too many connections from this address")]
    PerAddress,
}

/// A connection counted against the limits; released when dropped.
#[derive(Debug)]
pub struct Admission {
    limits: Arc<Limits>,
    addr: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut s = self.limits.lock();
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_addr.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                s.per_addr.remove(&self.addr);
            }
        }
    }
}

impl Limits {
    /// Limits with this configuration.
    pub fn new(cfg: LimitsConfig) -> Arc<Limits> {
        Arc::new(Limits {
            cfg,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a new connection from `addr`, or says why it is refused.
    pub fn admit(self: &Arc<Self>, addr: IpAddr) -> Result<Admission, Refusal> {
        let mut s = self.lock();
        if s.total >= self.cfg.max_clients {
            return Err(Refusal::Full);
        }
        let n = s.per_addr.entry(addr).or_insert(0);
        if *n >= self.cfg.max_per_address {
            return Err(Refusal::PerAddress);
        }
        *n += 1;
        s.total += 1;
        Ok(Admission {
            limits: self.clone(),
            addr,
        })
    }

    /// Whether `user` at `addr` is locked out at `now`.
    pub fn locked(&self, user: &str, addr: IpAddr, now: Instant) -> bool {
        let mut s = self.lock();
        let key = (user.to_string(), addr);
        match s.locked.get(&key) {
            Some(&until) if now < until => true,
            Some(_) => {
                s.locked.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Records a failed login; true when it locks the user out at that address.
    pub fn failed(&self, user: &str, addr: IpAddr, now: Instant) -> bool {
        let mut s = self.lock();
        let key = (user.to_string(), addr);
        // Forget failures older than a lockout period, and bound the table: an attacker
        // naming a new user each time must not grow it without end.
        let lockout = self.cfg.lockout;
        if s.failures.len() > 10_000 {
            s.failures
                .retain(|_, (_, first)| now.saturating_duration_since(*first) < lockout);
            s.locked.retain(|_, until| now < *until);
        }
        let entry = s.failures.entry(key.clone()).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= lockout {
            *entry = (0, now);
        }
        entry.0 += 1;
        if entry.0 >= self.cfg.max_failures {
            s.failures.remove(&key);
            s.locked.insert(key, now + lockout);
            return true;
        }
        false
    }

    /// A login succeeded: its failures are forgotten.
    pub fn succeeded(&self, user: &str, addr: IpAddr) {
        self.lock().failures.remove(&(user.to_string(), addr));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits() -> Arc<Limits> {
        Limits::new(LimitsConfig {
            max_clients: 3,
            max_per_address: 2,
            max_failures: 3,
            lockout: Duration::from_secs(60),
        })
    }

    #[test]
    fn connections_are_counted_and_released() {
        let l = limits();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = l.admit(a).unwrap();
        let _a2 = l.admit(a).unwrap();
        assert_eq!(l.admit(a).unwrap_err(), Refusal::PerAddress);
        let _b1 = l.admit(b).unwrap();
        assert_eq!(l.admit(b).unwrap_err(), Refusal::Full);
        drop(a1);
        assert!(l.admit(b).is_ok());
    }

    #[test]
    fn failures_lock_a_user_at_an_address_for_a_while() {
        let l = limits();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t = Instant::now();
        assert!(!l.failed("anna", a, t));
        assert!(!l.failed("anna", a, t));
        assert!(l.failed("anna", a, t));
        assert!(l.locked("anna", a, t + Duration::from_secs(59)));
        assert!(!l.locked("anna", b, t), "another address is not locked");
        assert!(!l.locked("ben", a, t), "another user is not locked");
        assert!(!l.locked("anna", a, t + Duration::from_secs(60)));
        // Old failures are forgotten; a success forgets them too.
        assert!(!l.failed("ben", a, t));
        assert!(!l.failed("ben", a, t));
        l.succeeded("ben", a);
        assert!(!l.failed("ben", a, t));
        assert!(!l.failed("ben", a, t + Duration::from_secs(61)));
    }
}
