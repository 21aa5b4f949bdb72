//! The generic cell rate algorithm. A limit of `L` per period `P` emits one unit every
//! `T = P / L` and tolerates a burst of `L`: the state is one number, the theoretical arrival
//! time (TAT) of the next unit. A request of cost `c` at `now` passes when
//! `max(TAT, now) + c·T − L·T <= now`, and moves the TAT to `max(TAT, now) + c·T`.

use std::time::Duration;

/// The emission interval and burst of a rate, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Microseconds per unit; at least 1.
    pub interval: u64,
    pub burst: u64,
}

impl Rate {
    /// `limit` per `period`; `None` for a zero limit or period.
    pub fn new(limit: u64, period: Duration) -> Option<Self> {
        let period = u64::try_from(period.as_micros()).ok()?;
        if limit == 0 || period == 0 {
            return None;
        }
        Some(Self {
            interval: (period / limit).max(1),
            burst: limit,
        })
    }

    /// The whole bucket, in microseconds.
    fn window(self) -> u64 {
        self.interval.saturating_mul(self.burst)
    }
}

/// The outcome of a check against one rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub allowed: bool,
    /// The TAT to store when the request is admitted (unchanged when refused).
    pub tat: u64,
    pub remaining: u64,
    pub reset_after: u64,
    /// Microseconds until the request could pass; `None` when it never could.
    pub retry_after: Option<u64>,
}

/// Checks a request of `cost` at `now` against `rate`, with the stored `tat` (0 when none).
pub fn check(rate: Rate, tat: u64, now: u64, cost: u64) -> Checked {
    let base = tat.max(now);
    let new_tat = base.saturating_add(cost.saturating_mul(rate.interval));
    let allow_at = new_tat.saturating_sub(rate.window());
    if cost > rate.burst {
        return refused(rate, tat, now, None);
    }
    if allow_at > now {
        return refused(rate, tat, now, Some(allow_at - now));
    }
    Checked {
        allowed: true,
        tat: new_tat,
        remaining: remaining(rate, new_tat, now),
        reset_after: new_tat - now,
        retry_after: None,
    }
}

fn refused(rate: Rate, tat: u64, now: u64, retry_after: Option<u64>) -> Checked {
    Checked {
        allowed: false,
        tat,
        remaining: remaining(rate, tat, now),
        reset_after: tat.saturating_sub(now),
        retry_after,
    }
}

/// Units that would pass at `now` with the TAT at `tat`.
fn remaining(rate: Rate, tat: u64, now: u64) -> u64 {
    let used = tat.saturating_sub(now);
    rate.window().saturating_sub(used) / rate.interval
}

/// Moves a TAT after a request's real cost is known: `reserved` units were taken, `actual`
/// were used. Returning units never moves the TAT before `now` (they cannot be saved up).
pub fn settle(rate: Rate, tat: u64, now: u64, reserved: u64, actual: u64) -> u64 {
    if actual >= reserved {
        tat.saturating_add((actual - reserved).saturating_mul(rate.interval))
    } else {
        tat.saturating_sub((reserved - actual).saturating_mul(rate.interval))
            .max(now)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECOND: u64 = 1_000_000;

    #[test]
    fn a_burst_of_the_limit_then_one_per_interval() {
        let rate = Rate::new(10, Duration::from_secs(1)).unwrap();
        let mut tat = 0;
        let now = 1_000 * SECOND;
        for n in 0..10 {
            let checked = check(rate, tat, now, 1);
            assert!(checked.allowed, "request {n}");
            assert_eq!(checked.remaining, 9 - n);
            tat = checked.tat;
        }
        let refused = check(rate, tat, now, 1);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Some(SECOND / 10));
        assert_eq!(refused.tat, tat, "a refusal changes nothing");
        assert!(check(rate, tat, now + SECOND / 10, 1).allowed);
        assert_eq!(
            check(rate, tat, now, 11).retry_after,
            None,
            "more than the limit"
        );
    }

    #[test]
    fn settling_returns_or_takes_units() {
        let rate = Rate::new(1000, Duration::from_secs(60)).unwrap();
        let now = 5 * SECOND;
        let reserved = check(rate, 0, now, 500);
        let tat = settle(rate, reserved.tat, now, 500, 100);
        assert_eq!(check(rate, tat, now, 1).remaining, 899);
        let tat = settle(rate, tat, now, 100, 100_000);
        assert!(!check(rate, tat, now, 1).allowed);
        assert_eq!(
            settle(rate, now + 10, now, 1000, 0),
            now,
            "never before now"
        );
    }

    proptest! {
        /// In any run of requests, no more pass than the burst plus one per interval elapsed,
        /// and `remaining` never exceeds the limit.
        #[test]
        fn never_admits_more_than_the_rate(
            limit in 1u64..200,
            period_ms in 1u64..10_000,
            steps in proptest::collection::vec((0u64..50_000, 1u64..5), 1..300),
        ) {
            let rate = Rate::new(limit, Duration::from_millis(period_ms)).unwrap();
            let start = 1_000 * SECOND;
            let mut now = start;
            let mut tat = 0;
            let mut admitted = 0u64;
            for (gap, cost) in steps {
                now += gap;
                let checked = check(rate, tat, now, cost);
                prop_assert!(checked.remaining <= limit);
                if checked.allowed {
                    admitted += cost;
                    tat = checked.tat;
                } else {
                    prop_assert_eq!(checked.tat, tat);
                    if let Some(wait) = checked.retry_after {
                        prop_assert!(check(rate, tat, now + wait, cost).allowed);
                        prop_assert!(wait == 0 || !check(rate, tat, now + wait - 1, cost).allowed);
                    }
                }
                let elapsed = now - start;
                prop_assert!(admitted <= rate.burst + elapsed / rate.interval);
            }
        }
    }
}
