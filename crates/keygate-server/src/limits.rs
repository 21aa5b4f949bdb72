//! A key's limits on the hot path: its request rates and its cap on requests in flight,
//! checked in memory on this node ([`keygate_limits::LocalLimiter`]). A refused request
//! consumes nothing; an admitted one holds a permit until its answer ends.

use std::time::Duration;

use keygate_core::{Clock, KeyRecord};
use keygate_limits::{Check, Concurrency, Limit, LocalLimiter, Permit, State};

/// The limiter of this node.
#[derive(Debug, Default)]
pub struct Limiter {
    rates: LocalLimiter,
    in_flight: Concurrency,
    /// Checks so far, to prune now and then.
    checks: std::sync::atomic::AtomicU64,
}

/// Every this many checks, whole rates are forgotten.
const PRUNE_EVERY: u64 = 8_192;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A request rate is used up; `state` is the rate that refused.
    Rate {
        state: State,
        retry_after: Option<Duration>,
    },
    /// As many requests as the key allows are running.
    Concurrency { limit: u32 },
}

impl Refusal {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Rate { .. } => "rate_limited",
            Self::Concurrency { .. } => "concurrency_limited",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Rate { state, .. } => format!(
                "this key may make {} requests per {}; retry after the time in Retry-After",
                state.limit,
                period_name(state)
            ),
            Self::Concurrency { limit } => {
                format!("this key may have {limit} requests in flight at once")
            }
        }
    }

    /// When to retry: a rate says; a concurrency slot frees when a request ends, soon.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Rate { retry_after, .. } => *retry_after,
            Self::Concurrency { .. } => Some(Duration::from_secs(1)),
        }
    }
}

fn period_name(state: &State) -> &'static str {
    // The reset of a full bucket is its period; the message names it loosely.
    match state.reset_after.as_secs() {
        0..=1 => "second",
        2..=60 => "minute",
        61..=3_600 => "hour",
        _ => "day",
    }
}

/// An admitted request: the state of its tightest rate (for headers) and its permit.
#[derive(Debug, Default)]
pub struct Admission {
    pub rate: Option<State>,
    pub permit: Option<Permit>,
}

/// The checks of a key's request rates.
fn checks(key: &KeyRecord) -> Vec<Check> {
    key.limits
        .requests
        .iter()
        .map(|rate| Check {
            key: format!("key:{}:requests:{}", key.id, rate.per.as_str()),
            limit: Limit::Rate {
                limit: rate.limit,
                period: rate.per.duration(),
            },
            cost: 1,
        })
        .collect()
}

/// The state that runs out first: the fewest remaining, then the latest reset.
fn tightest(states: &[State]) -> Option<State> {
    states
        .iter()
        .copied()
        .min_by_key(|s| (s.remaining, std::cmp::Reverse(s.reset_after)))
}

impl Limiter {
    pub fn new() -> Self {
        Self::default()
    }

    fn now(clock: &dyn Clock) -> u64 {
        u64::try_from(clock.now().as_millis()).unwrap_or(0) * 1_000
    }

    /// Admits one request of `key`, or says which limit refused it. With `hold`, the request
    /// takes a slot of the key's concurrency cap until the returned permit drops.
    pub fn admit(
        &self,
        key: &KeyRecord,
        clock: &dyn Clock,
        hold: bool,
    ) -> Result<Admission, Refusal> {
        let permit = match key.limits.concurrency {
            Some(limit) if hold => Some(
                self.in_flight
                    .acquire(key.id.as_str(), u64::from(limit))
                    .ok_or(Refusal::Concurrency { limit })?,
            ),
            _ => None,
        };
        let checks = checks(key);
        if checks.is_empty() {
            return Ok(Admission { rate: None, permit });
        }
        let now = Self::now(clock);
        let seen = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if seen % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.rates.prune(now);
        }
        let decision = self.rates.check(now, &checks);
        if let Some(refused) = decision.refused {
            return Err(Refusal::Rate {
                state: decision.states[refused.index],
                retry_after: refused.retry_after,
            });
        }
        Ok(Admission {
            rate: tightest(&decision.states),
            permit,
        })
    }

    /// The state of `key`'s tightest rate, without using any of it.
    pub fn peek(&self, key: &KeyRecord, clock: &dyn Clock) -> Option<State> {
        let checks = checks(key);
        if checks.is_empty() {
            return None;
        }
        tightest(&self.rates.peek(Self::now(clock), &checks))
    }
}

/// `Retry-After` in whole seconds, rounded up.
pub fn seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// A reset as OpenAI writes it in `x-ratelimit-reset-requests`: `1s`, `6m0s`, `20ms`.
pub fn openai_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1_000 {
        return format!("{millis}ms");
    }
    let seconds = seconds_up(duration);
    match (seconds / 3_600, seconds / 60 % 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use keygate_core::{
        KeyEnv, KeyHint, KeyLimits, KeySpec, ManualClock, OrgId, Per, ProjectId, RequestRate,
        Timestamp,
    };

    use super::*;

    fn key(limits: KeyLimits) -> KeyRecord {
        let mut spec = KeySpec::api(
            OrgId::generate(),
            ProjectId::generate(),
            "k".into(),
            KeyEnv::Live,
        );
        spec.limits = limits;
        KeyRecord::issue(
            spec,
            KeyHint::from_stored("kg_live_abcd…wxyz".into()),
            Timestamp::from_millis(0),
        )
    }

    #[test]
    fn rates_then_concurrency() {
        let clock = ManualClock::starting_at(Timestamp::from_millis(1_771_063_200_000));
        let limiter = Limiter::new();
        let limited = key(KeyLimits {
            requests: vec![
                RequestRate {
                    limit: 2,
                    per: Per::Minute,
                },
                RequestRate {
                    limit: 100,
                    per: Per::Day,
                },
            ],
            concurrency: Some(1),
        });
        let first = limiter.admit(&limited, &clock, true).unwrap();
        assert_eq!(
            first.rate.unwrap().remaining,
            1,
            "the minute's rate is the tightest"
        );
        assert_eq!(
            limiter.admit(&limited, &clock, true).unwrap_err(),
            Refusal::Concurrency { limit: 1 }
        );
        drop(first);
        let second = limiter.admit(&limited, &clock, true).unwrap();
        drop(second);
        let refused = limiter.admit(&limited, &clock, true).unwrap_err();
        assert_eq!(refused.code(), "rate_limited");
        assert_eq!(refused.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(limiter.peek(&limited, &clock).unwrap().remaining, 0);
        let free = key(KeyLimits::default());
        assert!(limiter.admit(&free, &clock, true).unwrap().rate.is_none());
    }

    #[test]
    fn durations_in_openai_style() {
        assert_eq!(openai_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(openai_duration(Duration::from_millis(1_500)), "2s");
        assert_eq!(openai_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(openai_duration(Duration::from_secs(3_700)), "1h1m40s");
    }
}
