//! How a model group chooses among its available deployments.

use std::sync::{Mutex, PoisonError};

use serde::Deserialize;

use crate::health::Health;

/// A load-balancing strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Smooth weighted round-robin: over any window, each deployment gets its share of
    /// requests, interleaved rather than in runs.
    #[default]
    WeightedRoundRobin,
    /// The deployment with the fewest requests in flight per unit of weight.
    LeastInFlight,
    /// Power of two choices: two deployments drawn by weight, the one with the lower
    /// latency average times load wins. Deployments without a sample yet are tried first.
    Latency,
}

/// A deployment as the chooser sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub index: usize,
    pub weight: u32,
    pub health: &'a Health,
}

/// Per-group state of the chooser (the round-robin's running weights).
#[derive(Debug)]
pub struct Chooser {
    strategy: Strategy,
    current: Mutex<Vec<i64>>,
}

impl Chooser {
    pub fn new(strategy: Strategy, members: usize) -> Self {
        Self {
            strategy,
            current: Mutex::new(vec![0; members]),
        }
    }

    /// Picks one of `candidates` (never empty when called) and returns its index.
    pub fn choose(&self, candidates: &[Candidate<'_>]) -> Option<usize> {
        match candidates {
            [] => None,
            [only] => Some(only.index),
            _ => Some(match self.strategy {
                Strategy::WeightedRoundRobin => self.round_robin(candidates),
                Strategy::LeastInFlight => least_in_flight(candidates),
                Strategy::Latency => power_of_two(candidates),
            }),
        }
    }

    fn round_robin(&self, candidates: &[Candidate<'_>]) -> usize {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let total: i64 = candidates.iter().map(|c| i64::from(c.weight)).sum();
        let mut best: Option<(usize, i64)> = None;
        for candidate in candidates {
            let Some(slot) = current.get_mut(candidate.index) else {
                continue;
            };
            *slot += i64::from(candidate.weight);
            if best.is_none_or(|(_, w)| *slot > w) {
                best = Some((candidate.index, *slot));
            }
        }
        let chosen = best.map_or(candidates[0].index, |(index, _)| index);
        if let Some(slot) = current.get_mut(chosen) {
            *slot -= total;
        }
        chosen
    }
}

fn least_in_flight(candidates: &[Candidate<'_>]) -> usize {
    // Compare in_flight / weight without division: a.in_flight * b.weight < b.in_flight * a.weight.
    let load = |c: &Candidate<'_>| (u64::from(c.health.in_flight()), u64::from(c.weight));
    let mut best = candidates[0];
    let mut ties = 1u32;
    for candidate in &candidates[1..] {
        let (a_load, a_weight) = load(candidate);
        let (b_load, b_weight) = load(&best);
        let (lhs, rhs) = (a_load * b_weight, b_load * a_weight);
        if lhs < rhs {
            best = *candidate;
            ties = 1;
        } else if lhs == rhs {
            // Reservoir sampling among equals, weighted by nothing: spreads ties evenly.
            ties += 1;
            if fastrand::u32(0..ties) == 0 {
                best = *candidate;
            }
        }
    }
    best.index
}

fn weighted_draw(candidates: &[Candidate<'_>], skip: Option<usize>) -> usize {
    let total: u64 = candidates
        .iter()
        .filter(|c| Some(c.index) != skip)
        .map(|c| u64::from(c.weight))
        .sum();
    let mut point = fastrand::u64(0..total.max(1));
    for candidate in candidates.iter().filter(|c| Some(c.index) != skip) {
        let weight = u64::from(candidate.weight);
        if point < weight {
            return candidate.index;
        }
        point -= weight;
    }
    candidates[0].index
}

fn power_of_two(candidates: &[Candidate<'_>]) -> usize {
    let first = weighted_draw(candidates, None);
    let second = weighted_draw(candidates, Some(first));
    let score = |index: usize| {
        candidates
            .iter()
            .find(|c| c.index == index)
            .map_or(u64::MAX, |c| {
                c.health
                    .latency_micros()
                    .saturating_mul(u64::from(c.health.in_flight()) + 1)
            })
    };
    if score(second) < score(first) {
        second
    } else {
        first
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::breaker::Breaker;

    fn health() -> Health {
        Health::new(Breaker::new(5, Duration::from_secs(30)), None, None)
    }

    #[test]
    fn round_robin_follows_weights_and_interleaves() {
        let (a, b) = (health(), health());
        let candidates = [
            Candidate {
                index: 0,
                weight: 3,
                health: &a,
            },
            Candidate {
                index: 1,
                weight: 1,
                health: &b,
            },
        ];
        let chooser = Chooser::new(Strategy::WeightedRoundRobin, 2);
        let picks: Vec<usize> = (0..8)
            .map(|_| chooser.choose(&candidates).unwrap())
            .collect();
        assert_eq!(picks, [0, 0, 1, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn least_in_flight_prefers_the_idle_one() {
        let (a, b) = (health(), health());
        a.begin(Instant::now()).unwrap();
        let candidates = [
            Candidate {
                index: 0,
                weight: 1,
                health: &a,
            },
            Candidate {
                index: 1,
                weight: 1,
                health: &b,
            },
        ];
        let chooser = Chooser::new(Strategy::LeastInFlight, 2);
        for _ in 0..20 {
            assert_eq!(chooser.choose(&candidates), Some(1));
        }
    }

    #[test]
    fn latency_prefers_the_faster_one() {
        let (fast, slow) = (health(), health());
        fast.succeeded(Duration::from_millis(5));
        slow.succeeded(Duration::from_millis(500));
        let candidates = [
            Candidate {
                index: 0,
                weight: 1,
                health: &slow,
            },
            Candidate {
                index: 1,
                weight: 1,
                health: &fast,
            },
        ];
        let chooser = Chooser::new(Strategy::Latency, 2);
        // With two candidates both are always drawn, so the faster one always wins.
        for _ in 0..20 {
            assert_eq!(chooser.choose(&candidates), Some(1));
        }
    }
}
