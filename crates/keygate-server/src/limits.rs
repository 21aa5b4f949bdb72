//! The limits of a key and of its project on the hot path: request and token rates, quotas,
//! budgets and caps on requests in flight, all checked together — a refused request consumes
//! none of them. They are counted in memory on this node ([`keygate_limits::LocalLimiter`])
//! or, with Redis, across all nodes ([`keygate_limits::GlobalLimiter`]). An admitted request
//! holds its slots until its answer ends, and settles what it reserved (tokens, money) when
//! the real amounts are known.
//!
//! When Redis stops answering, the configured policy applies — count on this node and log the
//! outage (the default), or refuse with `limits_unavailable` — and Redis is tried again every
//! two seconds until it answers.

mod meter;
pub mod persist;
mod plan;
mod redis;
mod reservation;
mod throttle;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keygate_core::{Clock, Per, Window};
use keygate_limits::{Concurrency, Decision, GlobalLimiter, LocalLimiter, Slot, State};
use tokio_util::task::TaskTracker;

use crate::cache::CachedKey;
pub use meter::BudgetMeter;
use plan::Plan;
pub use redis::OnRedisFailure;
use redis::Shared;
use reservation::SharedSlots;
pub use reservation::{Ask, Hold, Reservation, ReservationHandle};
pub use throttle::Throttles;

/// The limiter of this node.
#[derive(Debug, Default)]
pub struct Limiter {
    rates: LocalLimiter,
    in_flight: Concurrency,
    /// Checks so far, to prune now and then.
    checks: AtomicU64,
    shared: Option<Shared>,
    /// What runs off the request's path (Redis settlements, growths, slots given back):
    /// joined by [`Limiter::drain`] at shutdown.
    tasks: TaskTracker,
    /// Where refusals are counted, once the server's metrics are attached.
    metrics: Option<crate::metrics::limits::LimitMetrics>,
    /// Budgets past their throttle point (see `throttle.rs`).
    throttles: Throttles,
    /// Told of requests a quota or a budget refused (see `thresholds.rs`).
    exhausted: std::sync::OnceLock<tokio::sync::mpsc::Sender<Exhausted>>,
}

/// A request a quota or a budget refused: the limit is spent, or too little is left of it.
#[derive(Debug, Clone)]
pub struct Exhausted {
    pub key_id: keygate_core::KeyId,
    pub limit: LimitState,
}

/// Spawns `task` on the current runtime, tracked by `tasks`; `false` outside a runtime.
fn spawn_tracked(tasks: &TaskTracker, task: impl Future<Output = ()> + Send + 'static) -> bool {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            tasks.spawn_on(task, &runtime);
            true
        }
        Err(_) => false,
    }
}

/// The UTC window `per` that holds `at`: its start and its end.
pub fn window_bounds(
    per: Window,
    at: keygate_core::Timestamp,
) -> (keygate_core::Timestamp, keygate_core::Timestamp) {
    let micros = u64::try_from(at.as_millis()).unwrap_or(0) * 1_000;
    let (start, end) = plan::window(per).bounds(micros);
    let millis = |us: u64| {
        keygate_core::Timestamp::from_millis(i64::try_from(us / 1_000).unwrap_or(i64::MAX))
    };
    (millis(start), millis(end))
}

/// Every this many checks, whole rates are forgotten.
const PRUNE_EVERY: u64 = 8_192;

/// Whose limit it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Key,
    Project,
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Project => "project",
        }
    }
}

/// What a limit counts, and over what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Requests(Per),
    Tokens(Per),
    Quota(Window),
    Budget(Window),
    /// The requests a budget of this window allows per period once past its throttle point.
    Throttle(Window, Per),
    /// Prepaid credits, never reset.
    Credits,
}

impl Counted {
    /// The name of the limit in the verify API: `requests`, `tokens`, `quota`, `budget`,
    /// `budget_throttle`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Requests(_) => "requests",
            Self::Tokens(_) => "tokens",
            Self::Quota(_) => "quota",
            Self::Budget(_) => "budget",
            Self::Throttle(..) => "budget_throttle",
            Self::Credits => "credits",
        }
    }

    /// The period or window it counts over.
    pub fn per(self) -> &'static str {
        match self {
            Self::Requests(per) | Self::Tokens(per) | Self::Throttle(_, per) => per.as_str(),
            Self::Quota(window) | Self::Budget(window) => window.as_str(),
            Self::Credits => "total",
        }
    }
}

/// One limit that applied to a request, with its state after the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    pub owner: Owner,
    pub counted: Counted,
    pub state: State,
}

/// What a request asks of the limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Demand {
    /// Takes a slot of the caps on requests in flight until its answer ends.
    pub hold: bool,
    /// LLM tokens to reserve (an estimate of the prompt and the most output); token rates
    /// apply only to requests that say.
    pub tokens: Option<u64>,
    /// The highest cost in micro-dollars; budgets apply only to requests that say.
    pub cost: Option<u64>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A rate, quota or budget: the limit that refused, as it stands.
    Limit {
        limit: LimitState,
        retry_after: Option<Duration>,
    },
    /// As many requests as the key (or its project) allows are running.
    Concurrency { owner: Owner, limit: u64 },
    /// Redis is unreachable and the policy is to refuse.
    Unavailable,
}

impl Refusal {
    /// The kind of limit, for the metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Limit { limit, .. } => limit.counted.name(),
            Self::Concurrency { .. } => "concurrency",
            Self::Unavailable => "unavailable",
        }
    }

    /// Whose limit it was, for the metrics.
    pub fn owner(&self) -> &'static str {
        match self {
            Self::Limit { limit, .. } => limit.owner.as_str(),
            Self::Concurrency { owner, .. } => owner.as_str(),
            Self::Unavailable => "none",
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Limit { limit, .. } => match limit.counted {
                Counted::Requests(_) | Counted::Tokens(_) => "rate_limited",
                Counted::Quota(_) => "quota_exhausted",
                Counted::Budget(_) => "budget_exceeded",
                Counted::Throttle(..) => "budget_throttled",
                Counted::Credits => "credits_exhausted",
            },
            Self::Concurrency { .. } => "concurrency_limited",
            Self::Unavailable => "limits_unavailable",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Limit { limit, retry_after } => {
                let owner = limit.owner.as_str();
                let n = limit.state.limit;
                let wait = if retry_after.is_some() {
                    "; retry after the time in Retry-After"
                } else {
                    "; this request alone is more than the whole limit"
                };
                match limit.counted {
                    Counted::Requests(per) => {
                        format!(
                            "this {owner} may make {n} requests per {}{wait}",
                            per.as_str()
                        )
                    }
                    Counted::Tokens(per) => {
                        format!("this {owner} may use {n} tokens per {}{wait}", per.as_str())
                    }
                    Counted::Quota(window) => format!(
                        "this {owner}'s quota of {n} uses per {} is used up{wait}",
                        window.as_str()
                    ),
                    Counted::Budget(window) => format!(
                        "this request could cost more than is left of this {owner}'s budget of ${} per {}{wait}",
                        keygate_core::MicroUsd(i64::try_from(n).unwrap_or(i64::MAX)),
                        window.as_str()
                    ),
                    Counted::Credits => format!(
                        "this request could cost more than is left of this {owner}'s prepaid \
                         credits (${} in all); add credits to go on",
                        keygate_core::MicroUsd(i64::try_from(n).unwrap_or(i64::MAX)),
                    ),
                    Counted::Throttle(window, per) => format!(
                        "this {owner} has spent past the throttle point of its budget per {}: \
                         it may make {n} LLM requests per {} until the budget resets{wait}",
                        window.as_str(),
                        per.as_str()
                    ),
                }
            }
            Self::Concurrency { owner, limit } => {
                format!(
                    "this {} may have {limit} requests in flight at once",
                    owner.as_str()
                )
            }
            Self::Unavailable => {
                "the key's limits cannot be checked right now; retry shortly".to_owned()
            }
        }
    }

    /// Whether a client should retry on its own: not when waiting cannot help, nor when it
    /// would wait more than a minute (a spent quota or budget). The OpenAI and Anthropic SDKs
    /// read this as `x-should-retry: false` and raise at once instead of retrying.
    pub fn worth_retrying(&self) -> bool {
        self.retry_after()
            .is_some_and(|after| after <= Duration::from_secs(60))
    }

    /// When to retry: a limit says; a slot in flight frees when a request ends, soon.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Limit { retry_after, .. } => *retry_after,
            Self::Concurrency { .. } | Self::Unavailable => Some(Duration::from_secs(1)),
        }
    }
}

/// An admitted request: the states of its limits, its slots among requests in flight and
/// what it reserved.
#[derive(Debug, Default)]
pub struct Admission {
    pub limits: Vec<LimitState>,
    pub hold: Hold,
    /// Tokens and money reserved, to settle when the real amounts are known.
    pub reservation: Option<Reservation>,
}

impl Admission {
    /// The state that runs out first among the limits that `matches`: the fewest remaining,
    /// then the latest reset.
    pub fn tightest(&self, matches: impl Fn(Counted) -> bool) -> Option<State> {
        self.limits
            .iter()
            .filter(|l| matches(l.counted))
            .map(|l| l.state)
            .min_by_key(|s| (s.remaining, std::cmp::Reverse(s.reset_after)))
    }

    /// The tightest request rate (a budget's throttle among them), for
    /// `x-ratelimit-*-requests`.
    pub fn requests(&self) -> Option<State> {
        self.tightest(|c| matches!(c, Counted::Requests(_) | Counted::Throttle(..)))
    }

    /// The tightest token rate, for `x-ratelimit-*-tokens`.
    pub fn tokens(&self) -> Option<State> {
        self.tightest(|c| matches!(c, Counted::Tokens(_)))
    }
}

impl Limiter {
    /// The slots of `plan`'s caps that `holder` took in Redis, given back when dropped.
    fn taken(&self, global: &GlobalLimiter, plan: &Plan, holder: &str) -> SharedSlots {
        SharedSlots {
            limiter: global.clone(),
            keys: plan.caps.iter().map(|(key, ..)| key.clone()).collect(),
            holder: holder.to_owned(),
            tasks: self.tasks.clone(),
        }
    }

    /// Runs `task` off the request's path, tracked (shutdown waits for it in
    /// [`Limiter::drain`]); `false` outside a runtime.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> bool {
        spawn_tracked(&self.tasks, task)
    }

    /// Whether limits are shared through Redis (configured, whether it answers now or not).
    pub fn shares_limits(&self) -> bool {
        self.shared.is_some()
    }

    /// The Redis connection limits are shared through, when there is one and Redis answers:
    /// for others that share state across nodes the same way (the answer cache).
    pub(crate) async fn redis(&self) -> Option<::redis::aio::ConnectionManager> {
        let shared = self.shared.as_ref()?;
        Some(shared.limiter().await?.connection())
    }

    /// Waits (at most `patience`) for what runs off the request's path — settlements and
    /// slots given back to Redis — once no request is left to start more.
    pub async fn drain(&self, patience: Duration) {
        self.tasks.close();
        if tokio::time::timeout(patience, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "limits still settling in Redis at shutdown; their reservations lapse with their windows"
            );
        }
        self.tasks.reopen();
    }

    /// Limits counted on this node only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits shared through Redis at `url`, with `on_failure` while it is unreachable. The
    /// first connection is made by the first limited request.
    pub fn shared(url: &str, on_failure: OnRedisFailure) -> Self {
        Self {
            shared: Some(Shared::new(url, on_failure)),
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

    /// Where limits are counted now: `local`, `redis` or `redis_unreachable`.
    pub fn mode(&self) -> &'static str {
        match &self.shared {
            None => "local",
            Some(shared) if shared.is_down() => "redis_unreachable",
            Some(_) => "redis",
        }
    }

    pub(super) fn on_failure(&self) -> OnRedisFailure {
        self.shared
            .as_ref()
            .map_or(OnRedisFailure::Local, |s| s.on_failure)
    }

    fn now(clock: &dyn Clock) -> u64 {
        u64::try_from(clock.now().as_millis()).unwrap_or(0) * 1_000
    }

    /// Counts refusals in `metrics` from now on.
    pub fn observed_by(self, metrics: crate::metrics::limits::LimitMetrics) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }

    /// Admits one request of `key` (and its project) asking `demand` of their limits, or
    /// says which limit refused it; a refused request consumes none of them. The refusal is
    /// counted in the metrics.
    pub async fn admit(
        self: &Arc<Self>,
        key: &CachedKey,
        clock: &Arc<dyn Clock>,
        demand: Demand,
    ) -> Result<Admission, Refusal> {
        let admitted = self.admit_uncounted(key, clock, demand).await;
        if let Err(refusal) = &admitted {
            self.count_refusal(refusal);
            self.tell_exhausted(key, refusal);
        }
        admitted
    }

    /// Tells the thresholds task, if one listens, of a request a quota or a budget refused.
    pub fn tell_exhausted(&self, key: &CachedKey, refusal: &Refusal) {
        if let Refusal::Limit { limit, .. } = refusal
            && matches!(
                limit.counted,
                Counted::Quota(_) | Counted::Budget(_) | Counted::Credits
            )
            && let Some(listener) = self.exhausted.get()
        {
            let _ = listener.try_send(Exhausted {
                key_id: key.record.id.clone(),
                limit: *limit,
            });
        }
    }

    /// Sends the requests a quota or a budget refuses to `listener` from now on.
    pub fn on_exhausted(&self, listener: tokio::sync::mpsc::Sender<Exhausted>) {
        let _ = self.exhausted.set(listener);
    }

    /// Throttles `owner`'s budget per `per` of `key` until `until` (the window's end), or
    /// lifts the throttle, at `now`.
    pub fn throttle_budget(
        &self,
        key: &CachedKey,
        owner: Owner,
        per: Window,
        until: Option<keygate_core::Timestamp>,
        now: keygate_core::Timestamp,
    ) {
        let micros = |t: keygate_core::Timestamp| u64::try_from(t.as_millis()).unwrap_or(0) * 1_000;
        if let Some(prefix) = plan::prefix(key, owner) {
            self.throttles.set(
                &plan::budget_name(&prefix, per),
                until.map(micros),
                micros(now),
            );
        }
    }

    /// Counts a refusal of [`Limiter::admit_uncounted`] that stands.
    pub fn count_refusal(&self, refusal: &Refusal) {
        if let Some(metrics) = &self.metrics {
            metrics.refused(refusal.kind(), refusal.owner());
        }
    }

    /// The same, uncounted: for a first try that may be followed by a smaller one, whose
    /// refusal is not the request's (see [`Limiter::count_refusal`]).
    pub async fn admit_uncounted(
        self: &Arc<Self>,
        key: &CachedKey,
        clock: &Arc<dyn Clock>,
        demand: Demand,
    ) -> Result<Admission, Refusal> {
        let now = Self::now(clock.as_ref());
        let plan = Plan::new(key, demand, &self.throttles, now);
        if plan.checks.is_empty() && plan.caps.is_empty() {
            return Ok(Admission::default());
        }
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.rates.prune(now);
        }
        let (decision, hold, shared) = self.decide(now, &plan).await?;
        let limits: Vec<LimitState> = plan
            .what
            .iter()
            .zip(&decision.states)
            .map(|((owner, counted), state)| LimitState {
                owner: *owner,
                counted: *counted,
                state: *state,
            })
            .collect();
        if let Some(refused) = decision.refused {
            return Err(match plan.what.get(refused.index) {
                Some(_) => Refusal::Limit {
                    limit: limits[refused.index],
                    // Credits come back only when added: waiting never helps.
                    retry_after: refused
                        .retry_after
                        .filter(|_| limits[refused.index].counted != Counted::Credits),
                },
                None => {
                    let (_, owner, limit) = &plan.caps[refused.index - plan.checks.len()];
                    Refusal::Concurrency {
                        owner: *owner,
                        limit: *limit,
                    }
                }
            });
        }
        let reserved = plan.reserved();
        let reservation = (!reserved.is_empty())
            .then(|| Reservation::new(self.clone(), clock.clone(), now, shared, reserved));
        Ok(Admission {
            limits,
            hold,
            reservation,
        })
    }

    /// Checks the plan across nodes when Redis answers, else as the policy says. Returns
    /// the decision, the slots held, and whether Redis decided.
    async fn decide(&self, now: u64, plan: &Plan) -> Result<(Decision, Hold, bool), Refusal> {
        if let Some(shared) = &self.shared {
            if let Some(global) = shared.limiter().await {
                let holder = uuid::Uuid::now_v7().to_string();
                let slots: Vec<Slot<'_>> = plan
                    .caps
                    .iter()
                    .map(|(key, _, max)| Slot {
                        key,
                        max: *max,
                        holder: &holder,
                    })
                    .collect();
                let asked = std::time::Instant::now();
                let checked = global.check(now, &plan.checks, &slots).await;
                if let Some(metrics) = &self.metrics {
                    metrics.redis_answered(asked.elapsed(), checked.is_ok());
                }
                match checked {
                    Ok(decision) => {
                        shared.answered();
                        let hold = Hold {
                            permits: Vec::new(),
                            shared: (decision.admitted() && !slots.is_empty())
                                .then(|| self.taken(&global, plan, &holder)),
                        };
                        return Ok((decision, hold, true));
                    }
                    Err(err) => {
                        shared.failed(&err);
                        // A script that timed out may still have run and taken the slots:
                        // give them back (removing a holder that is not there is harmless).
                        if !slots.is_empty() {
                            drop(self.taken(&global, plan, &holder));
                        }
                    }
                }
            }
            if shared.on_failure == OnRedisFailure::Closed {
                return Err(Refusal::Unavailable);
            }
        }
        // On this node: the slots first (a refusal frees those taken), then the limits.
        let mut permits = Vec::with_capacity(plan.caps.len());
        for (key, owner, max) in &plan.caps {
            match self.in_flight.acquire(key, *max) {
                Some(permit) => permits.push(permit),
                None => {
                    return Err(Refusal::Concurrency {
                        owner: *owner,
                        limit: *max,
                    });
                }
            }
        }
        let decision = self.rates.check(now, &plan.checks);
        Ok((
            decision,
            Hold {
                permits,
                shared: None,
            },
            false,
        ))
    }

    /// The states of `key`'s limits (and its project's) as they stand, consuming nothing:
    /// for the verify API. Token rates and budgets are included. While Redis does not
    /// answer, this node's own counts.
    pub async fn peek(&self, key: &CachedKey, clock: &dyn Clock) -> Vec<LimitState> {
        self.read(key, clock, true).await.unwrap_or_default()
    }

    /// The same, but `None` while limits shared through Redis cannot be read: this node's
    /// own counts would say nothing of the others' (for decisions such as a throttle).
    pub async fn peek_shared(&self, key: &CachedKey, clock: &dyn Clock) -> Option<Vec<LimitState>> {
        self.read(key, clock, false).await
    }

    async fn read(
        &self,
        key: &CachedKey,
        clock: &dyn Clock,
        fall_back: bool,
    ) -> Option<Vec<LimitState>> {
        let now = Self::now(clock);
        let plan = Plan::new(
            key,
            Demand {
                hold: false,
                tokens: Some(0),
                cost: Some(0),
            },
            &self.throttles,
            now,
        );
        if plan.checks.is_empty() {
            return Some(Vec::new());
        }
        let mut states = None;
        if let Some(shared) = &self.shared
            && let Some(global) = shared.limiter().await
        {
            match global.peek(now, &plan.checks).await {
                Ok(found) => states = Some(found),
                Err(err) => shared.failed(&err),
            }
        }
        if states.is_none() && self.shared.is_some() && !fall_back {
            return None;
        }
        let states = states.unwrap_or_else(|| self.rates.peek(now, &plan.checks));
        Some(
            plan.what
                .iter()
                .zip(states)
                .map(|((owner, counted), state)| LimitState {
                    owner: *owner,
                    counted: *counted,
                    state,
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
