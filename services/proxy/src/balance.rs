//! Choosing a backend: round robin, smooth weighted round robin, least connections,
//! power of two choices, and consistent hashing on the client address (Maglev). Each shard
//! keeps its own [`Balancer`]; nothing here is shared between shards, so a shard's view of
//! load is its own connections only (see the README for how the shards' choices add up).

use std::net::IpAddr;

/// How a listener spreads connections over its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// Each backend in turn.
    #[default]
    RoundRobin,
    /// In turn, in proportion to the weights, interleaved (nginx's smooth weighted round
    /// robin: 5,1,1 gives a a b a c a a, not a a a a a b c).
    WeightedRoundRobin,
    /// The backend with the fewest open connections (ties by weight, then in turn).
    LeastConnections,
    /// Two backends at random, the less loaded of them.
    PowerOfTwo,
    /// Consistent hashing of the client address on a Maglev table: a client stays on its
    /// backend, and a backend going away moves only its own clients.
    Maglev,
}

impl Algorithm {
    /// The name the configuration uses.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::WeightedRoundRobin => "weighted_round_robin",
            Algorithm::LeastConnections => "least_connections",
            Algorithm::PowerOfTwo => "power_of_two",
            Algorithm::Maglev => "maglev",
        }
    }
}

/// What the balancer knows of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Name (its address, usually): what Maglev hashes for the backend's permutation.
    pub name: String,
    /// Weight, at least 1.
    pub weight: u32,
    /// Connections open through this shard.
    pub active: u32,
    /// Whether health checks (or passive ejection) consider it up.
    pub up: bool,
    /// Drained by the operator: no new connections.
    pub draining: bool,
    current: i64,
}

impl Backend {
    /// An up backend of weight `weight`.
    pub fn new(name: impl Into<String>, weight: u32) -> Backend {
        Backend {
            name: name.into(),
            weight: weight.max(1),
            active: 0,
            up: true,
            draining: false,
            current: 0,
        }
    }

    /// Whether it may take a new connection.
    pub fn available(&self) -> bool {
        self.up && !self.draining
    }
}

/// Size of the Maglev lookup table: a prime well above the backend count (the table
/// spreads clients within about 1% of an even split for up to a few hundred backends).
pub const MAGLEV_SIZE: usize = 65_537;

/// One shard's balancer for one listener.
#[derive(Debug, Clone)]
pub struct Balancer {
    algorithm: Algorithm,
    backends: Vec<Backend>,
    next: usize,
    rng: u64,
    maglev: Vec<u16>,
    maglev_for: Vec<bool>,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    splitmix(h)
}

fn addr_hash(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => fnv(&a.octets(), 7),
        IpAddr::V6(a) => fnv(&a.octets(), 7),
    }
}

impl Balancer {
    /// A balancer over `backends` (at most 65 535); `seed` varies the random choices per shard.
    pub fn new(algorithm: Algorithm, backends: Vec<Backend>, seed: u64) -> Balancer {
        let mut b = Balancer {
            algorithm,
            backends,
            next: 0,
            rng: splitmix(seed) | 1,
            maglev: Vec::new(),
            maglev_for: Vec::new(),
        };
        b.backends.truncate(usize::from(u16::MAX));
        b
    }

    /// The backends, by index.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// Marks backend `i` up or down (health checks, passive ejection).
    pub fn set_up(&mut self, i: usize, up: bool) {
        if let Some(b) = self.backends.get_mut(i) {
            b.up = up;
        }
    }

    /// Starts or ends draining backend `i`.
    pub fn set_draining(&mut self, i: usize, draining: bool) {
        if let Some(b) = self.backends.get_mut(i) {
            b.draining = draining;
        }
    }

    /// Counts a connection opened to backend `i`.
    pub fn opened(&mut self, i: usize) {
        if let Some(b) = self.backends.get_mut(i) {
            b.active += 1;
        }
    }

    /// Counts a connection to backend `i` closed.
    pub fn closed(&mut self, i: usize) {
        if let Some(b) = self.backends.get_mut(i) {
            b.active = b.active.saturating_sub(1);
        }
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// The backend for a new connection from `client`, or `None` when none is available.
    /// `skip` lists backends already tried for this connection.
    pub fn pick(&mut self, client: IpAddr, skip: &[usize]) -> Option<usize> {
        let n = self.backends.len();
        let ok = |b: &Backend, i: usize| b.available() && !skip.contains(&i);
        if !self.backends.iter().enumerate().any(|(i, b)| ok(b, i)) {
            return None;
        }
        match self.algorithm {
            Algorithm::RoundRobin => {
                for _ in 0..n {
                    let i = self.next % n;
                    self.next = (self.next + 1) % n;
                    if ok(&self.backends[i], i) {
                        return Some(i);
                    }
                }
                None
            }
            Algorithm::WeightedRoundRobin => {
                let total: i64 = self
                    .backends
                    .iter()
                    .enumerate()
                    .filter(|(i, b)| ok(b, *i))
                    .map(|(_, b)| i64::from(b.weight))
                    .sum();
                let mut best: Option<usize> = None;
                for i in 0..n {
                    if !ok(&self.backends[i], i) {
                        continue;
                    }
                    let w = i64::from(self.backends[i].weight);
                    self.backends[i].current += w;
                    let cur = self.backends[i].current;
                    if best.is_none_or(|j| cur > self.backends[j].current) {
                        best = Some(i);
                    }
                }
                let j = best?;
                self.backends[j].current -= total;
                Some(j)
            }
            Algorithm::LeastConnections => {
                // Fewest connections per unit of weight; ties broken in turn.
                let start = self.next;
                self.next = (self.next + 1) % n;
                (0..n)
                    .map(|k| (start + k) % n)
                    .filter(|&i| ok(&self.backends[i], i))
                    .min_by(|&a, &b| {
                        let (x, y) = (&self.backends[a], &self.backends[b]);
                        (u64::from(x.active) * u64::from(y.weight))
                            .cmp(&(u64::from(y.active) * u64::from(x.weight)))
                    })
            }
            Algorithm::PowerOfTwo => {
                let avail: Vec<usize> = (0..n).filter(|&i| ok(&self.backends[i], i)).collect();
                let a = avail[(self.random() % avail.len() as u64) as usize];
                let b = avail[(self.random() % avail.len() as u64) as usize];
                let (x, y) = (&self.backends[a], &self.backends[b]);
                let a_less = u64::from(x.active) * u64::from(y.weight)
                    <= u64::from(y.active) * u64::from(x.weight);
                Some(if a_less { a } else { b })
            }
            Algorithm::Maglev => {
                let want: Vec<bool> = (0..n).map(|i| ok(&self.backends[i], i)).collect();
                if want != self.maglev_for {
                    self.maglev = maglev_table(&self.backends, &want);
                    self.maglev_for = want;
                }
                let slot = (addr_hash(client) % MAGLEV_SIZE as u64) as usize;
                self.maglev.get(slot).map(|&i| usize::from(i))
            }
        }
    }
}

/// The Maglev lookup table over the backends marked in `use_`: every backend walks its own
/// permutation of the slots (offset and skip from two hashes of its name) and claims the
/// next free slot in turn, `weight` slots per round, until the table is full.
fn maglev_table(backends: &[Backend], use_: &[bool]) -> Vec<u16> {
    let m = MAGLEV_SIZE as u64;
    let members: Vec<usize> = (0..backends.len()).filter(|&i| use_[i]).collect();
    if members.is_empty() {
        return Vec::new();
    }
    let perm: Vec<(u64, u64)> = members
        .iter()
        .map(|&i| {
            let name = backends[i].name.as_bytes();
            (fnv(name, 1) % m, fnv(name, 2) % (m - 1) + 1)
        })
        .collect();
    let mut next = vec![0u64; members.len()];
    let mut table = vec![u16::MAX; MAGLEV_SIZE];
    let mut filled = 0;
    'fill: loop {
        for (k, &i) in members.iter().enumerate() {
            for _ in 0..backends[i].weight {
                let (offset, skip) = perm[k];
                let mut c = (offset + next[k] * skip) % m;
                while table[c as usize] != u16::MAX {
                    next[k] += 1;
                    c = (offset + next[k] * skip) % m;
                }
                table[c as usize] = i as u16;
                next[k] += 1;
                filled += 1;
                if filled == MAGLEV_SIZE {
                    break 'fill;
                }
            }
        }
    }
    table
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn three(weights: [u32; 3]) -> Vec<Backend> {
        (0..3)
            .map(|i| Backend::new(format!("10.0.0.{i}:80"), weights[i]))
            .collect()
    }

    fn client(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    fn counts(b: &mut Balancer, n: u32) -> [u32; 3] {
        let mut c = [0; 3];
        for i in 0..n {
            c[b.pick(client(i), &[]).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn round_robin_is_even_and_skips_the_unavailable() {
        let mut b = Balancer::new(Algorithm::RoundRobin, three([1, 1, 1]), 1);
        assert_eq!(counts(&mut b, 300), [100, 100, 100]);
        b.set_up(1, false);
        assert_eq!(counts(&mut b, 300), [150, 0, 150]);
        b.set_draining(0, true);
        assert_eq!(counts(&mut b, 10), [0, 0, 10]);
        assert_eq!(
            b.pick(client(1), &[2]),
            None,
            "everything tried or unavailable"
        );
    }

    #[test]
    fn weighted_round_robin_is_proportional_and_interleaved() {
        let mut b = Balancer::new(Algorithm::WeightedRoundRobin, three([5, 1, 1]), 1);
        let seq: Vec<usize> = (0..7).map(|i| b.pick(client(i), &[]).unwrap()).collect();
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0], "smooth: {seq:?}");
        let mut b = Balancer::new(Algorithm::WeightedRoundRobin, three([1, 2, 3]), 1);
        assert_eq!(counts(&mut b, 600), [100, 200, 300]);
    }

    #[test]
    fn least_connections_and_two_choices_follow_load() {
        let mut b = Balancer::new(Algorithm::LeastConnections, three([1, 1, 1]), 1);
        b.opened(0);
        b.opened(0);
        b.opened(1);
        assert_eq!(b.pick(client(0), &[]), Some(2));
        b.opened(2);
        // 2, 1, 1 open: one of the two lighter ones, in turn.
        let (p, q) = (
            b.pick(client(0), &[]).unwrap(),
            b.pick(client(0), &[]).unwrap(),
        );
        assert!(p != 0 && q != 0, "{p} {q}");
        // Per unit of weight: 4 on weight 4 is lighter than 2 on weight 1.
        let mut b = Balancer::new(Algorithm::LeastConnections, three([4, 1, 1]), 1);
        for _ in 0..4 {
            b.opened(0);
        }
        b.opened(1);
        b.opened(1);
        b.opened(2);
        b.opened(2);
        assert_eq!(b.pick(client(0), &[]), Some(0));
        // Two choices never picks the busiest of two when it can see the other.
        let mut b = Balancer::new(Algorithm::PowerOfTwo, three([1, 1, 1]), 7);
        for _ in 0..50 {
            b.opened(0);
        }
        let c = counts(&mut b, 300);
        assert!(c[0] < c[1] && c[0] < c[2], "{c:?}");
    }

    #[test]
    fn maglev_is_sticky_even_and_moves_only_the_lost_backends_clients() {
        let mut b = Balancer::new(Algorithm::Maglev, three([1, 1, 1]), 1);
        let before: Vec<usize> = (0..3000).map(|i| b.pick(client(i), &[]).unwrap()).collect();
        let again: Vec<usize> = (0..3000).map(|i| b.pick(client(i), &[]).unwrap()).collect();
        assert_eq!(before, again, "sticky");
        let mut c = [0u32; 3];
        for &i in &before {
            c[i] += 1;
        }
        assert!(c.iter().all(|&n| (900..1100).contains(&n)), "{c:?}");
        b.set_up(2, false);
        for (i, &was) in before.iter().enumerate() {
            let now = b.pick(client(i as u32), &[]).unwrap();
            assert_ne!(now, 2);
            if was != 2 {
                assert_eq!(now, was, "client {i} moved although its backend stayed");
            }
        }
    }
}
