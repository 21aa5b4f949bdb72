//! What an admitted request holds: its slots among requests in flight, and the tokens and
//! money it reserved, settled when the real amounts are known.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keygate_core::Clock;
use keygate_limits::{Check, GlobalLimiter, Kind, Permit, Settlement, Slot};
use tokio_util::task::TaskTracker;

use super::{Limiter, OnRedisFailure};

/// A request's slots among requests in flight: freed when dropped.
#[derive(Debug, Default)]
#[allow(dead_code, reason = "held for what their drop does")]
pub struct Hold {
    pub(super) permits: Vec<Permit>,
    pub(super) shared: Option<SharedSlots>,
}

/// Slots taken in Redis: given back when dropped (and by their lease, should that fail).
pub(super) struct SharedSlots {
    pub(super) limiter: GlobalLimiter,
    pub(super) keys: Vec<String>,
    pub(super) holder: String,
    /// The limiter's background tasks, which the release joins.
    pub(super) tasks: TaskTracker,
}

impl std::fmt::Debug for SharedSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSlots")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl Drop for SharedSlots {
    fn drop(&mut self) {
        let (limiter, keys, holder) = (
            self.limiter.clone(),
            std::mem::take(&mut self.keys),
            std::mem::take(&mut self.holder),
        );
        super::spawn_tracked(&self.tasks, async move {
            let slots: Vec<Slot<'_>> = keys
                .iter()
                .map(|key| Slot {
                    key,
                    max: 0,
                    holder: &holder,
                })
                .collect();
            if limiter.release(&slots).await.is_err() {
                tracing::warn!(
                    "a slot in flight could not be given back to Redis; its lease frees it"
                );
            }
        });
    }
}

/// Tokens and money a request reserved. Settle it with the real amounts, or release it when
/// the request certainly used nothing; dropped unsettled (the client went away mid-call, the
/// amounts are unknown), what was reserved is charged.
#[derive(Debug)]
pub struct Reservation {
    inner: Arc<Reserved>,
}

#[derive(Debug)]
struct Reserved {
    limiter: Arc<Limiter>,
    clock: Arc<dyn Clock>,
    /// When it was made (µs, this node's clock).
    at: u64,
    /// Whether it was made in Redis.
    shared: bool,
    /// The token rates and budgets, each with the amount it reserved.
    checks: Vec<Check>,
    state: Mutex<Grown>,
}

/// What a reservation grew by since it was made, whether it is settled, and where the last
/// request for more stands; one lock, so a growth granted by Redis after the settlement is
/// given back rather than lost.
#[derive(Debug, Default)]
struct Grown {
    ask: Ask,
    /// Micro-dollars reserved from every budget since (where the reservation lives).
    backed: u64,
    /// Micro-dollars granted while Redis could not reserve them (the outage policy allowed
    /// it): they let a stream go on but were taken from nothing, so they are not given back.
    unbacked: u64,
    settled: bool,
}

impl Reservation {
    /// A reservation of `checks` (token rates and budgets, each with what it reserved), made
    /// at `at` in Redis (`shared`) or on this node.
    pub(super) fn new(
        limiter: Arc<Limiter>,
        clock: Arc<dyn Clock>,
        at: u64,
        shared: bool,
        checks: Vec<Check>,
    ) -> Self {
        Self {
            inner: Arc::new(Reserved {
                limiter,
                clock,
                at,
                shared,
                checks,
                state: Mutex::new(Grown::default()),
            }),
        }
    }

    /// Micro-dollars reserved from the budgets so far.
    pub fn cost(&self) -> u64 {
        self.inner.cost()
    }

    /// Whether budgets were reserved from (a stream must then be metered).
    pub fn has_budget(&self) -> bool {
        self.inner
            .checks
            .iter()
            .any(|c| c.limit.kind() == Kind::Budget)
    }

    /// Settles with what the request used: `tokens` against the token rates, `cost`
    /// micro-dollars against the budgets; `None` charges what was reserved.
    pub fn settle(self, tokens: Option<u64>, cost: Option<u64>) {
        self.inner.settle(tokens, cost);
    }

    /// Gives everything back: the request certainly used nothing (the upstream refused it).
    pub fn release(self) {
        self.inner.settle(Some(0), Some(0));
    }

    /// A handle the stream's meter keeps.
    pub fn share(&self) -> ReservationHandle {
        ReservationHandle(self.inner.clone())
    }
}

/// The meter's handle on a reservation.
#[derive(Debug, Clone)]
pub struct ReservationHandle(Arc<Reserved>);

impl ReservationHandle {
    /// Asks every budget for `cost` more micro-dollars, for a stream that runs past its
    /// reservation. On this node the answer is there at once; Redis answers later. Either
    /// way [`Self::answer`] reads it; a second ask while one waits is ignored.
    pub fn ask(&self, cost: u64) {
        self.0.clone().ask(cost);
    }

    /// Where the last ask stands; a granted or refused answer is read once.
    pub fn answer(&self) -> Ask {
        let mut grown = self.0.grown();
        match grown.ask {
            Ask::Waiting => Ask::Waiting,
            answered => {
                grown.ask = Ask::Idle;
                answered
            }
        }
    }

    /// Micro-dollars reserved from the budgets so far.
    pub fn cost(&self) -> u64 {
        self.0.cost()
    }

    /// Whether an ask waits for Redis (tests wait for the answer as a stream would).
    #[cfg(test)]
    pub(super) fn answer_pending(&self) -> bool {
        self.0.grown().ask == Ask::Waiting
    }
}

/// Where a request for more budget stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ask {
    /// Nothing asked since the last answer was read.
    #[default]
    Idle,
    /// Asked of Redis, not answered yet.
    Waiting,
    /// Granted (it shows in [`ReservationHandle::cost`]), leaving `left` micro-dollars in
    /// the budgets (the least of them).
    Granted { left: u64 },
    /// Refused: the budgets have only `left` micro-dollars to give.
    Refused { left: u64 },
}

/// What is left of the budgets a decision looked at: the least of them.
fn left(decision: &keygate_limits::Decision) -> u64 {
    decision
        .states
        .iter()
        .map(|s| s.remaining)
        .min()
        .unwrap_or(0)
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inner.settle(None, None);
    }
}

/// How long a settlement waits for Redis to answer again before it is given up (and what it
/// reserved stays charged until its window ends).
const SETTLE_PATIENCE: u32 = 30;

impl Reserved {
    fn grown(&self) -> std::sync::MutexGuard<'_, Grown> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cost(&self) -> u64 {
        let first = self
            .checks
            .iter()
            .find(|c| c.limit.kind() == Kind::Budget)
            .map_or(0, |c| c.cost);
        let grown = self.grown();
        first
            .saturating_add(grown.backed)
            .saturating_add(grown.unbacked)
    }

    fn budgets(&self, cost: u64) -> Vec<Check> {
        self.checks
            .iter()
            .filter(|c| c.limit.kind() == Kind::Budget)
            .map(|c| Check { cost, ..c.clone() })
            .collect()
    }

    fn ask(self: Arc<Self>, cost: u64) {
        let budgets = self.budgets(cost);
        let mut grown = self.grown();
        if grown.ask == Ask::Waiting {
            return;
        }
        if budgets.is_empty() || grown.settled {
            grown.ask = Ask::Refused { left: 0 };
            return;
        }
        if !self.shared {
            let now = Limiter::now(self.clock.as_ref());
            let decision = self.limiter.rates.check(now, &budgets);
            grown.ask = if decision.admitted() {
                grown.backed = grown.backed.saturating_add(cost);
                Ask::Granted {
                    left: left(&decision),
                }
            } else {
                Ask::Refused {
                    left: left(&decision),
                }
            };
            return;
        }
        let Some(shared) = self.limiter.shared.as_ref() else {
            grown.ask = Ask::Refused { left: 0 };
            return;
        };
        let Some(global) = shared.current() else {
            // Redis is resting after a failure: the policy decides.
            grown.ask = match shared.on_failure {
                OnRedisFailure::Local => {
                    grown.unbacked = grown.unbacked.saturating_add(cost);
                    Ask::Granted { left: u64::MAX }
                }
                OnRedisFailure::Closed => Ask::Refused { left: 0 },
            };
            return;
        };
        grown.ask = Ask::Waiting;
        drop(grown);
        let this = self.clone();
        let spawned = self.limiter.spawn(async move {
            // Charged to the window the reservation was made in, as its settlement will be.
            let answer = global.check(this.at, &budgets, &[]).await;
            // Decided under the lock, so a growth and the settlement never cross.
            let give_back = {
                let mut grown = this.grown();
                match answer {
                    Ok(decision) if decision.admitted() => {
                        grown.ask = Ask::Granted {
                            left: left(&decision),
                        };
                        if !grown.settled {
                            grown.backed = grown.backed.saturating_add(cost);
                        }
                        grown.settled
                    }
                    // An outage counts as a refusal only when the policy is to refuse.
                    Err(_) if this.limiter.on_failure() == OnRedisFailure::Local => {
                        grown.ask = Ask::Granted { left: u64::MAX };
                        grown.unbacked = grown.unbacked.saturating_add(cost);
                        false
                    }
                    Ok(decision) => {
                        grown.ask = Ask::Refused {
                            left: left(&decision),
                        };
                        false
                    }
                    Err(_) => {
                        grown.ask = Ask::Refused { left: 0 };
                        false
                    }
                }
            };
            if give_back {
                // Settled meanwhile: this step was never part of the settlement.
                let back: Vec<Settlement> = budgets
                    .into_iter()
                    .map(|check| Settlement {
                        check,
                        at: this.at,
                        actual: 0,
                    })
                    .collect();
                let _ = global.settle(&back).await;
            }
        });
        if !spawned {
            self.grown().ask = Ask::Refused { left: 0 };
        }
    }

    /// Settles with what was used; `None` charges what was reserved. Once only.
    fn settle(&self, tokens: Option<u64>, cost: Option<u64>) {
        let backed = {
            let mut grown = self.grown();
            if std::mem::replace(&mut grown.settled, true) {
                return;
            }
            grown.backed
        };
        let settlements: Vec<Settlement> = self
            .checks
            .iter()
            .map(|check| {
                let budget = check.limit.kind() == Kind::Budget;
                let reserved = if budget {
                    check.cost.saturating_add(backed)
                } else {
                    check.cost
                };
                Settlement {
                    check: Check {
                        cost: reserved,
                        ..check.clone()
                    },
                    at: self.at,
                    actual: if budget { cost } else { tokens }.unwrap_or(reserved),
                }
            })
            .collect();
        if !self.shared {
            let now = Limiter::now(self.clock.as_ref());
            for settlement in &settlements {
                self.limiter.rates.settle(now, settlement);
            }
            return;
        }
        let limiter = self.limiter.clone();
        // Off the request's path; while Redis rests after a failure, the settlement waits
        // for it (a while) rather than leave the whole reservation charged.
        let spawned = self.limiter.spawn(async move {
            let Some(shared) = limiter.shared.as_ref() else {
                return;
            };
            for _ in 0..SETTLE_PATIENCE {
                if let Some(global) = shared.limiter().await
                    && global.settle(&settlements).await.is_ok()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            tracing::warn!(
                "a reservation could not be settled in Redis; it stays charged until its window ends"
            );
        });
        if !spawned {
            tracing::warn!("a reservation made in Redis could not be settled: no runtime");
        }
    }
}
