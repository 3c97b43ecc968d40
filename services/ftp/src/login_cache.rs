//! Passwords verified a moment ago: a batch client that logs in for every file (what
//! mainframe jobs and scripted `curl` runs do) pays for one Argon2id check per
//! `login_cache_s`, not one per connection. Only a keyed digest of user and password is
//! kept (BLAKE2b under a key drawn at start, never written anywhere), so the cache holds
//! nothing a password could be recovered from; failed logins are never cached and always
//! pay the full check (and the failure delay). The exit method is never cached: its
//! authority decides every login.
//!
//! One cache serves every shard; a lookup holds its lock for a map access, once per login.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use blake2::{Blake2b512, Digest};

/// Entries kept at most (expired ones are dropped first when it is full).
const MAX_ENTRIES: usize = 16_384;

/// Recently verified logins.
#[derive(Debug)]
pub struct LoginCache {
    key: [u8; 32],
    ttl: Duration,
    entries: Mutex<HashMap<String, ([u8; 64], Instant)>>,
}

impl LoginCache {
    /// A cache whose entries last `ttl` (zero: nothing is cached).
    pub fn new(ttl: Duration) -> LoginCache {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        LoginCache {
            key,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn digest(&self, user: &str, password: &str) -> [u8; 64] {
        let mut h = Blake2b512::new();
        h.update(self.key);
        h.update((user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Whether `user` logged in with this `password` less than the lifetime ago.
    pub fn verified(&self, user: &str, password: &str, now: Instant) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let d = self.digest(user, password);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(user).is_some_and(|(want, until)| {
            // Compared in full whatever differs first (the digest is keyed anyway).
            let same = want
                .iter()
                .zip(d.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
            same && now < *until
        })
    }

    /// `user` just logged in with `password` (checked in full).
    pub fn remember(&self, user: &str, password: &str, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let d = self.digest(user, password);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, until)| now < *until);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(user.to_string(), (d, now + self.ttl));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_password_within_the_lifetime() {
        let c = LoginCache::new(Duration::from_secs(60));
        let t = Instant::now();
        assert!(!c.verified("anna", "pw", t));
        c.remember("anna", "pw", t);
        assert!(c.verified("anna", "pw", t + Duration::from_secs(59)));
        assert!(!c.verified("anna", "pw", t + Duration::from_secs(60)));
        assert!(!c.verified("anna", "pw2", t));
        assert!(
            !c.verified("ann", "apw", t),
            "user and password are kept apart"
        );
        assert!(!c.verified("ben", "pw", t));
        // A new password replaces the old one.
        c.remember("anna", "new", t);
        assert!(c.verified("anna", "new", t) && !c.verified("anna", "pw", t));
    }

    #[test]
    fn a_zero_lifetime_caches_nothing() {
        let c = LoginCache::new(Duration::ZERO);
        let t = Instant::now();
        c.remember("anna", "pw", t);
        assert!(!c.verified("anna", "pw", t));
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first() {
        let c = LoginCache::new(Duration::from_secs(1));
        let t = Instant::now();
        for i in 0..MAX_ENTRIES {
            c.remember(&format!("u{i}"), "pw", t);
        }
        let later = t + Duration::from_secs(2);
        c.remember("fresh", "pw", later);
        assert!(c.verified("fresh", "pw", later));
        let n = c.entries.lock().unwrap().len();
        assert_eq!(n, 1);
    }
}
