//! Which limits apply to a request: the key's, then its project's, each with what the request
//! costs against it.

use keygate_core::{KeyLimits, Window};
use keygate_limits::{Check, Limit};

use super::{Counted, Demand, Owner, Throttles};
use crate::cache::CachedKey;

/// Where `owner`'s limits of `key` are counted: `keygate:key:<id>` or `keygate:project:<id>`.
pub(super) fn prefix(key: &CachedKey, owner: Owner) -> Option<String> {
    match owner {
        Owner::Key => Some(format!("keygate:key:{}", key.record.id)),
        Owner::Project => key
            .record
            .project_id
            .as_ref()
            .map(|project| format!("keygate:project:{project}")),
    }
}

/// The name of a budget's count, which its throttle mark goes by too.
pub(super) fn budget_name(prefix: &str, per: Window) -> String {
    format!("{prefix}:budget:{}", per.as_str())
}

/// The window of `keygate-limits` for a window of the model.
pub(super) fn window(window: Window) -> keygate_limits::Window {
    match window {
        Window::Minute => keygate_limits::Window::Minute,
        Window::Hour => keygate_limits::Window::Hour,
        Window::Day => keygate_limits::Window::Day,
        Window::Month => keygate_limits::Window::Month,
    }
}

/// The limits of a request: for the key, then its project.
pub(super) struct Plan {
    pub(super) checks: Vec<Check>,
    pub(super) what: Vec<(Owner, Counted)>,
    /// Caps on requests in flight: where, whose, how many.
    pub(super) caps: Vec<(String, Owner, u64)>,
}

impl Plan {
    /// The limits of `key`'s request at `now` (µs), with the budgets `throttles` marks.
    pub(super) fn new(key: &CachedKey, demand: Demand, throttles: &Throttles, now: u64) -> Self {
        let mut plan = Self {
            checks: Vec::new(),
            what: Vec::new(),
            caps: Vec::new(),
        };
        // An anomaly's throttle holds the key to its cut rates too.
        let throttled = key
            .record
            .throttle
            .as_ref()
            .filter(|t| u64::try_from(t.until.as_millis()).unwrap_or(0) * 1_000 > now);
        // Most keys have no limits: they cost no allocation here.
        for (owner, limits) in [
            (Owner::Key, &key.record.limits),
            (Owner::Project, &key.project_limits),
        ] {
            let throttled = throttled.filter(|_| owner == Owner::Key);
            if (!limits.is_empty() || throttled.is_some())
                && let Some(prefix) = prefix(key, owner)
            {
                plan.add(owner, &prefix, limits, demand, (throttles, now));
                if let Some(throttle) = throttled {
                    plan.held_to(owner, &prefix, &throttle.requests);
                }
            }
        }
        plan
    }

    /// Adds `rates` beside `owner`'s own request rates, counted apart from them: the
    /// lower of the two holds.
    fn held_to(&mut self, owner: Owner, prefix: &str, rates: &[keygate_core::RequestRate]) {
        for rate in rates {
            self.checks.push(Check {
                key: format!("{prefix}:requests:{}:throttled", rate.per.as_str()),
                limit: Limit::Rate {
                    limit: rate.limit,
                    period: rate.per.duration(),
                },
                cost: 1,
            });
            self.what.push((owner, Counted::Requests(rate.per)));
        }
    }

    fn add(
        &mut self,
        owner: Owner,
        prefix: &str,
        limits: &KeyLimits,
        demand: Demand,
        (throttles, now): (&Throttles, u64),
    ) {
        for rate in &limits.requests {
            self.checks.push(Check {
                key: format!("{prefix}:requests:{}", rate.per.as_str()),
                limit: Limit::Rate {
                    limit: rate.limit,
                    period: rate.per.duration(),
                },
                cost: 1,
            });
            self.what.push((owner, Counted::Requests(rate.per)));
        }
        if let Some(tokens) = demand.tokens {
            for rate in &limits.tokens {
                self.checks.push(Check {
                    key: format!("{prefix}:tokens:{}", rate.per.as_str()),
                    limit: Limit::Rate {
                        limit: rate.limit,
                        period: rate.per.duration(),
                    },
                    cost: tokens,
                });
                self.what.push((owner, Counted::Tokens(rate.per)));
            }
        }
        if let Some(quota) = limits.quota {
            self.checks.push(Check {
                key: format!("{prefix}:quota:{}", quota.per.as_str()),
                limit: Limit::Quota {
                    amount: quota.amount,
                    window: window(quota.per),
                },
                cost: 1,
            });
            self.what.push((owner, Counted::Quota(quota.per)));
        }
        if let Some(cost) = demand.cost {
            for budget in &limits.budgets {
                let name = budget_name(prefix, budget.per);
                if let Some((_, rate)) = budget.throttled()
                    && throttles.active(&name, now)
                {
                    self.checks.push(Check {
                        key: format!("{name}:throttle"),
                        limit: Limit::Rate {
                            limit: rate.limit,
                            period: rate.per.duration(),
                        },
                        cost: 1,
                    });
                    self.what
                        .push((owner, Counted::Throttle(budget.per, rate.per)));
                }
                self.checks.push(Check {
                    key: name,
                    limit: Limit::Budget {
                        limit: u64::try_from(budget.usd.0).unwrap_or(0),
                        window: window(budget.per),
                    },
                    cost,
                });
                self.what.push((owner, Counted::Budget(budget.per)));
            }
            if let Some(credits) = limits.credits {
                self.checks.push(Check {
                    key: format!("{prefix}:credits"),
                    limit: Limit::Budget {
                        limit: u64::try_from(credits.0).unwrap_or(0),
                        window: keygate_limits::Window::Forever,
                    },
                    cost,
                });
                self.what.push((owner, Counted::Credits));
            }
        }
        if demand.hold
            && let Some(cap) = limits.concurrency
        {
            self.caps
                .push((format!("{prefix}:inflight"), owner, u64::from(cap)));
        }
    }

    /// The reservation to settle: token rates and budgets, with what they reserved.
    pub(super) fn reserved(&self) -> Vec<Check> {
        self.checks
            .iter()
            .zip(&self.what)
            .filter(|(check, (_, counted))| {
                check.cost > 0
                    && matches!(
                        counted,
                        Counted::Tokens(_) | Counted::Budget(_) | Counted::Credits
                    )
            })
            .map(|(check, _)| check.clone())
            .collect()
    }
}
