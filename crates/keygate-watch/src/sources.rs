//! Bursts of failed authentications per source: a client that presents bad keys (guessing, or
//! a deployment left with a dead key) more than `threshold` times in a minute is refused for
//! a while, whatever it presents. A source is an IPv4 address or an IPv6 /64. The check on
//! every request costs one atomic load while no source is blocked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use keygate_core::Timestamp;

const SHARDS: usize = 16;
/// Sources tracked per shard; past it, the one seen longest ago is forgotten.
const SHARD_SOURCES: usize = 4096;
const WINDOW_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, Default)]
struct SourceState {
    window: i64,
    failures: u32,
    blocked_until: i64,
    last_seen: i64,
}

/// A block that has just started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub source: IpAddr,
    /// Failures in the minute that started it.
    pub failures: u32,
    pub until: Timestamp,
}

/// Per-source failure counts and blocks, in memory.
#[derive(Debug)]
pub struct SourceGuard {
    threshold: u32,
    block: Duration,
    blocked: AtomicUsize,
    shards: Vec<Mutex<HashMap<IpAddr, SourceState>>>,
}

/// The source an address belongs to: itself for IPv4, its /64 for IPv6.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

impl SourceGuard {
    pub fn new(threshold: u32, block: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            block,
            blocked: AtomicUsize::new(0),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, source: &IpAddr) -> &Mutex<HashMap<IpAddr, SourceState>> {
        let byte = match source {
            IpAddr::V4(v4) => v4.octets()[3] ^ v4.octets()[2],
            IpAddr::V6(v6) => v6.octets()[7] ^ v6.octets()[6],
        };
        &self.shards[usize::from(byte) % SHARDS]
    }

    /// How long `ip`'s source stays refused, if it is.
    pub fn blocked(&self, ip: IpAddr, now: Timestamp) -> Option<Duration> {
        if self.blocked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let source = source_of(ip);
        let mut shard = self
            .shard(&source)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let state = shard.get_mut(&source)?;
        let left = state.blocked_until - now.as_millis();
        if left > 0 {
            return Some(Duration::from_millis(left.unsigned_abs()));
        }
        if state.blocked_until != 0 {
            state.blocked_until = 0;
            self.blocked.fetch_sub(1, Ordering::Relaxed);
        }
        None
    }

    /// Refuses `source` until `until` (a block decided elsewhere: by the cluster's counts, or
    /// on another node); returns the block when it starts one here, `failures` its count.
    pub fn block(
        &self,
        source: IpAddr,
        until: Timestamp,
        failures: u32,
        now: Timestamp,
    ) -> Option<Block> {
        let source = source_of(source);
        let mut shard = self
            .shard(&source)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.make_room(&mut shard, &source, now.as_millis());
        let state = shard.entry(source).or_default();
        state.last_seen = state.last_seen.max(now.as_millis());
        let was_blocked = state.blocked_until > now.as_millis();
        if state.blocked_until == 0 {
            self.blocked.fetch_add(1, Ordering::Relaxed);
        }
        state.blocked_until = state.blocked_until.max(until.as_millis());
        (!was_blocked).then_some(Block {
            source,
            failures,
            until: Timestamp::from_millis(state.blocked_until),
        })
    }

    /// Makes room for `source` in a full shard: the source seen longest ago goes, preferring
    /// one not blocked at `at`.
    fn make_room(&self, shard: &mut HashMap<IpAddr, SourceState>, source: &IpAddr, at: i64) {
        if shard.len() < SHARD_SOURCES || shard.contains_key(source) {
            return;
        }
        let stalest = shard
            .iter()
            .min_by_key(|(_, s)| (s.blocked_until > at, s.last_seen))
            .map(|(ip, _)| *ip);
        if let Some(gone) = stalest.and_then(|ip| shard.remove(&ip))
            && gone.blocked_until != 0
        {
            self.blocked.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Counts a failed authentication from `ip`; returns the block it starts, if it does.
    pub fn failed(&self, ip: IpAddr, now: Timestamp) -> Option<Block> {
        let at = now.as_millis();
        let source = source_of(ip);
        let mut shard = self
            .shard(&source)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.make_room(&mut shard, &source, at);
        let state = shard.entry(source).or_default();
        state.last_seen = at;
        if state.blocked_until > at {
            return None;
        }
        let window = at.div_euclid(WINDOW_MS);
        if state.window != window {
            state.window = window;
            state.failures = 0;
        }
        state.failures += 1;
        if state.failures < self.threshold {
            return None;
        }
        if state.blocked_until == 0 {
            self.blocked.fetch_add(1, Ordering::Relaxed);
        }
        let until = now.saturating_add(self.block);
        state.blocked_until = until.as_millis();
        Some(Block {
            source,
            failures: state.failures,
            until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(T0 + ms)
    }

    #[test]
    fn a_burst_blocks_its_source_for_a_while_and_no_other() {
        let guard = SourceGuard::new(5, Duration::from_secs(300));
        let attacker: IpAddr = "198.51.100.7".parse().unwrap();
        let neighbour: IpAddr = "198.51.100.8".parse().unwrap();
        for i in 0..4 {
            assert_eq!(guard.failed(attacker, at(i * 1000)), None);
        }
        assert_eq!(guard.blocked(attacker, at(4000)), None);
        let block = guard.failed(attacker, at(5000)).unwrap();
        assert_eq!((block.failures, block.until), (5, at(305_000)));
        assert_eq!(
            guard.blocked(attacker, at(6000)),
            Some(Duration::from_secs(299))
        );
        assert_eq!(guard.blocked(neighbour, at(6000)), None);
        // Failures while blocked start no new block; the block ends on time.
        assert_eq!(guard.failed(attacker, at(7000)), None);
        assert_eq!(guard.blocked(attacker, at(305_000)), None);
    }

    #[test]
    fn a_steady_trickle_never_blocks() {
        let guard = SourceGuard::new(5, Duration::from_secs(300));
        let client: IpAddr = "203.0.113.1".parse().unwrap();
        for minute in 0..60 {
            for i in 0..4 {
                assert_eq!(guard.failed(client, at(minute * 60_000 + i * 1000)), None);
            }
        }
    }

    #[test]
    fn a_full_shard_forgets_its_stalest_source_and_its_block() {
        let guard = SourceGuard::new(1, Duration::from_secs(1));
        // Every address below lands in shard 0 (its last two octets' xor is 0 mod 16).
        let addr = |i: u32| IpAddr::from([10, (i >> 8) as u8, (i & 0xff) as u8, (i & 0xff) as u8]);
        assert!(guard.failed(addr(0), at(0)).is_some());
        for i in 1..=SHARD_SOURCES as u32 {
            guard.failed(addr(i), at(10_000 + i64::from(i)));
        }
        // The first block ended long ago and its source was forgotten; the count went with it.
        assert_eq!(guard.shards[0].lock().unwrap().len(), SHARD_SOURCES);
        assert!(guard.blocked.load(Ordering::Relaxed) <= SHARD_SOURCES);
        assert!(guard.blocked(addr(0), at(20_000)).is_none());
    }

    #[test]
    fn a_block_from_elsewhere_starts_once_and_never_shortens() {
        let guard = SourceGuard::new(5, Duration::from_secs(300));
        let source: IpAddr = "192.0.2.9".parse().unwrap();
        let started = guard.block(source, at(60_000), 7, at(0)).unwrap();
        assert_eq!((started.failures, started.until), (7, at(60_000)));
        // Already refused: no new block, and an earlier end does not cut it short.
        assert_eq!(guard.block(source, at(30_000), 9, at(1000)), None);
        assert_eq!(
            guard.blocked(source, at(50_000)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(guard.blocked(source, at(60_000)), None);
        // Over: a later block starts again.
        assert!(guard.block(source, at(90_000), 5, at(61_000)).is_some());
    }

    #[test]
    fn an_ipv6_source_is_its_64() {
        let guard = SourceGuard::new(2, Duration::from_secs(60));
        guard.failed("2001:db8:1:2::1".parse().unwrap(), at(0));
        assert!(
            guard
                .failed("2001:db8:1:2::ffff".parse().unwrap(), at(1))
                .is_some()
        );
        assert!(
            guard
                .blocked("2001:db8:1:2:aaaa::1".parse().unwrap(), at(2))
                .is_some()
        );
        assert!(
            guard
                .blocked("2001:db8:1:3::1".parse().unwrap(), at(2))
                .is_none()
        );
    }
}
