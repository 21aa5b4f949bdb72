//! A key's limits on the hot path: its request rates and its cap on requests in flight. Rates
//! are counted in memory on this node ([`keygate_limits::LocalLimiter`]) or, with Redis, across
//! all nodes ([`keygate_limits::GlobalLimiter`]). A refused request consumes nothing; an
//! admitted one holds a permit until its answer ends.
//!
//! When Redis stops answering, the configured policy applies — count on this node and log the
//! outage (the default), or refuse with `limits_unavailable` — and Redis is tried again every
//! two seconds until it answers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use keygate_core::{Clock, KeyRecord};
use keygate_limits::{
    Check, Concurrency, Decision, GlobalLimiter, Limit, LocalLimiter, Permit, State,
};

/// What happens to limits while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnRedisFailure {
    /// Count on each node (a key may then get up to its limit on every node) and log it.
    #[default]
    Local,
    /// Refuse limited requests with 503 `limits_unavailable`.
    Closed,
}

/// How long a check waits for Redis.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// How long after a failure Redis is left alone before it is tried again.
const REDIS_REST: Duration = Duration::from_secs(2);

/// Redis, when configured: the connection (made again after a failure) and its health.
struct Shared {
    url: String,
    on_failure: OnRedisFailure,
    limiter: RwLock<Option<GlobalLimiter>>,
    /// Microseconds after `epoch` before which Redis is not tried.
    rest_until: AtomicU64,
    epoch: Instant,
    down: AtomicBool,
}

impl std::fmt::Debug for Shared {
    /// Leaves the URL (which may hold a password) out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("on_failure", &self.on_failure)
            .field("down", &self.down)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn elapsed(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The limiter to use now, connecting first when there is none and it is time to try.
    async fn limiter(&self) -> Option<GlobalLimiter> {
        let now = self.elapsed();
        if now < self.rest_until.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(limiter) = self
            .limiter
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Some(limiter);
        }
        // One request at a time tries to connect; the others use the fallback meanwhile.
        let rest = now + u64::try_from(REDIS_REST.as_micros()).unwrap_or(u64::MAX);
        let due = self.rest_until.load(Ordering::Relaxed);
        if self
            .rest_until
            .compare_exchange(due, rest, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        match GlobalLimiter::connect(&self.url, REDIS_TIMEOUT).await {
            Ok(limiter) => {
                *self.limiter.write().unwrap_or_else(PoisonError::into_inner) =
                    Some(limiter.clone());
                self.rest_until.store(0, Ordering::Relaxed);
                Some(limiter)
            }
            Err(err) => {
                self.failed(&err);
                None
            }
        }
    }

    fn failed(&self, err: &keygate_limits::GlobalError) {
        let rest = self.elapsed() + u64::try_from(REDIS_REST.as_micros()).unwrap_or(u64::MAX);
        self.rest_until.store(rest, Ordering::Relaxed);
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::error!(
                error = %err,
                policy = ?self.on_failure,
                "Redis is unreachable: limits are not shared across nodes until it answers"
            );
        }
    }

    fn answered(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again: limits are shared across nodes");
        }
    }
}

/// The limiter of this node.
#[derive(Debug, Default)]
pub struct Limiter {
    rates: LocalLimiter,
    in_flight: Concurrency,
    /// Checks so far, to prune now and then.
    checks: AtomicU64,
    shared: Option<Shared>,
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
    /// Redis is unreachable and the policy is to refuse.
    Unavailable,
}

impl Refusal {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Rate { .. } => "rate_limited",
            Self::Concurrency { .. } => "concurrency_limited",
            Self::Unavailable => "limits_unavailable",
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
            Self::Unavailable => {
                "the key's limits cannot be checked right now; retry shortly".to_owned()
            }
        }
    }

    /// When to retry: a rate says; a concurrency slot frees when a request ends, soon.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Rate { retry_after, .. } => *retry_after,
            Self::Concurrency { .. } | Self::Unavailable => Some(Duration::from_secs(1)),
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
    /// Rates counted on this node only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rates shared through Redis at `url`, with `on_failure` while it is unreachable. The
    /// first connection is made by the first limited request.
    pub fn shared(url: &str, on_failure: OnRedisFailure) -> Self {
        Self {
            shared: Some(Shared {
                url: url.to_owned(),
                on_failure,
                limiter: RwLock::new(None),
                rest_until: AtomicU64::new(0),
                epoch: Instant::now(),
                down: AtomicBool::new(false),
            }),
            ..Self::default()
        }
    }

    /// Connects to Redis now (rather than on the first limited request); `false`, with the
    /// outage logged, when it does not answer. Later requests try again.
    pub async fn connect(&self) -> bool {
        match &self.shared {
            Some(shared) => shared.limiter().await.is_some(),
            None => false,
        }
    }

    /// Checks rates across nodes when Redis answers, else as the policy says.
    async fn decide(&self, now: u64, checks: &[Check]) -> Result<Decision, Refusal> {
        let Some(shared) = &self.shared else {
            return Ok(self.rates.check(now, checks));
        };
        if let Some(limiter) = shared.limiter().await {
            match limiter.check(checks).await {
                Ok(decision) => {
                    shared.answered();
                    return Ok(decision);
                }
                Err(err) => shared.failed(&err),
            }
        }
        match shared.on_failure {
            OnRedisFailure::Local => Ok(self.rates.check(now, checks)),
            OnRedisFailure::Closed => Err(Refusal::Unavailable),
        }
    }

    fn now(clock: &dyn Clock) -> u64 {
        u64::try_from(clock.now().as_millis()).unwrap_or(0) * 1_000
    }

    /// Admits one request of `key`, or says which limit refused it. With `hold`, the request
    /// takes a slot of the key's concurrency cap (counted on this node) until the returned
    /// permit drops.
    pub async fn admit(
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
        let decision = self.decide(now, &checks).await?;
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

    #[tokio::test]
    async fn rates_then_concurrency() {
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
        let first = limiter.admit(&limited, &clock, true).await.unwrap();
        assert_eq!(
            first.rate.unwrap().remaining,
            1,
            "the minute's rate is the tightest"
        );
        assert_eq!(
            limiter.admit(&limited, &clock, true).await.unwrap_err(),
            Refusal::Concurrency { limit: 1 }
        );
        drop(first);
        let second = limiter.admit(&limited, &clock, true).await.unwrap();
        drop(second);
        let refused = limiter.admit(&limited, &clock, true).await.unwrap_err();
        assert_eq!(refused.code(), "rate_limited");
        assert_eq!(refused.retry_after(), Some(Duration::from_secs(30)));
        let free = key(KeyLimits::default());
        assert!(
            limiter
                .admit(&free, &clock, true)
                .await
                .unwrap()
                .rate
                .is_none()
        );
    }

    #[test]
    fn durations_in_openai_style() {
        assert_eq!(openai_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(openai_duration(Duration::from_millis(1_500)), "2s");
        assert_eq!(openai_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(openai_duration(Duration::from_secs(3_700)), "1h1m40s");
    }
}
