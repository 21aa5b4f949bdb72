//! The state of a key's limits, as the verify API shows it.

use serde::Serialize;
use utoipa::ToSchema;

use crate::limits::{Counted, LimitState};

/// One limit of a key or its project, as it stands after the verification.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LimitStateView {
    /// `key` or `project`.
    pub owner: &'static str,
    /// `requests`, `tokens`, `quota`, `budget` or `budget_throttle` (the requests a budget
    /// past its throttle point allows).
    pub kind: &'static str,
    /// The period or window: `second`, `minute`, `hour`, `day` or `month`.
    pub per: &'static str,
    /// Requests, tokens or uses; for a budget, micro-dollars.
    pub limit: u64,
    pub remaining: u64,
    /// Until the limit is whole again.
    pub reset_ms: u64,
    /// For a budget or credits, `limit` and `remaining` in dollars (decimal strings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_usd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_usd: Option<String>,
}

impl From<&LimitState> for LimitStateView {
    fn from(limit: &LimitState) -> Self {
        let dollars = |micros: u64| {
            keygate_core::MicroUsd(i64::try_from(micros).unwrap_or(i64::MAX)).to_string()
        };
        let budget = matches!(limit.counted, Counted::Budget(_) | Counted::Credits);
        Self {
            owner: limit.owner.as_str(),
            kind: limit.counted.name(),
            per: limit.counted.per(),
            limit: limit.state.limit,
            remaining: limit.state.remaining,
            reset_ms: u64::try_from(limit.state.reset_after.as_millis()).unwrap_or(u64::MAX),
            limit_usd: budget.then(|| dollars(limit.state.limit)),
            remaining_usd: budget.then(|| dollars(limit.state.remaining)),
        }
    }
}
