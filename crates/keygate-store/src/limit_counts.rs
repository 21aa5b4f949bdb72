//! The limit-count part of the store: quota and budget counts of nodes that limit without
//! Redis, saved in batches and read back when a node starts.

use async_trait::async_trait;
use keygate_core::Timestamp;

use crate::StoreError;

/// Most counts in one INSERT statement: five parameters each stays far under both databases'
/// limits, and a statement stays small enough to write in one go.
pub const LIMIT_COUNTS_PER_STATEMENT: usize = 1_000;

/// What a count counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitCountKind {
    /// Uses of a quota.
    Quota,
    /// Micro-dollars of a budget.
    Budget,
}

impl LimitCountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quota => "quota",
            Self::Budget => "budget",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "quota" => Some(Self::Quota),
            "budget" => Some(Self::Budget),
            _ => None,
        }
    }
}

/// One limit's count in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCount {
    /// The limit's name, such as `key:<id>:quota:day`.
    pub name: String,
    pub kind: LimitCountKind,
    /// The start of the window counted, in microseconds since the epoch (the limiter's unit).
    pub window_start: u64,
    pub used: u64,
}

#[async_trait]
pub trait LimitCountStore: Send + Sync {
    /// Writes `counts` in one transaction, each replacing the stored count of its name unless
    /// that one belongs to a later window (a node whose clock lags cannot take a newer count
    /// back). Of two counts of one name, the last is written.
    async fn save_limit_counts(
        &self,
        counts: &[LimitCount],
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Every count whose window started at or after `since` (µs), and those of the window that
    /// never turns (prepaid credits), which starts at 0.
    async fn load_limit_counts(&self, since: u64) -> Result<Vec<LimitCount>, StoreError>;
    /// Deletes the counts whose window started before `before` (µs), never those of the window
    /// that never turns; returns how many.
    async fn prune_limit_counts(&self, before: u64) -> Result<u64, StoreError>;
}

/// A row of `limit_counts` as both databases return it: name, kind, window start, used.
pub(crate) type LimitCountRow = (String, String, i64, i64);

/// Converts a row, once for both backends.
pub(crate) fn from_row(
    (name, kind, window_start, used): LimitCountRow,
) -> Result<LimitCount, StoreError> {
    let corrupt = |column| StoreError::Corrupt { column };
    Ok(LimitCount {
        kind: LimitCountKind::parse(&kind).ok_or(corrupt("limit_counts.kind"))?,
        window_start: u64::try_from(window_start)
            .map_err(|_| corrupt("limit_counts.window_start"))?,
        used: u64::try_from(used).map_err(|_| corrupt("limit_counts.used"))?,
        name,
    })
}
