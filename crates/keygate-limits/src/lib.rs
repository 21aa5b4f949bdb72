//! keygate's limits: how much a key or a project may do, checked on the hot path.
//!
//! - [`Limit::Rate`]: a generic cell rate algorithm (GCRA) — `limit` per `period`, with bursts
//!   of up to `limit`, and no fixed window to game. A request costs 1, or its tokens.
//! - [`Limit::Quota`]: remaining uses, set back to `amount` every `interval`.
//! - [`Limit::Budget`]: money (micro-dollars) per UTC day or month; a request reserves its
//!   highest cost first and settles the real one after.
//!
//! All limits that apply to a request are checked together: a refused request consumes none of
//! them. The arithmetic ([`gcra`], [`quota`], [`budget`]) is pure and shared by the local limiter
//! ([`LocalLimiter`], one node, memory only) and the global one (Redis, the same rules in Lua).
//! Time is wall-clock microseconds since the Unix epoch, so nodes agree on it.

pub mod budget;
mod concurrency;
pub mod gcra;
mod global;
mod local;
pub mod quota;
mod window;

use std::time::Duration;

pub use concurrency::{Concurrency, Permit};
pub use global::{GlobalError, GlobalLimiter, SLOT_LEASE, Slot};
pub use local::{CountKind, LocalLimiter, SavedCount};
pub use window::Window;

/// One limit, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// At most `limit` units per `period`, in bursts of up to `limit`.
    Rate { limit: u64, period: Duration },
    /// `amount` uses per window, whole again when the next one starts.
    Quota { amount: u64, window: Window },
    /// At most `limit` micro-dollars per window.
    Budget { limit: u64, window: Window },
}

impl Limit {
    /// The kind, for errors and headers.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Rate { .. } => Kind::Rate,
            Self::Quota { .. } => Kind::Quota,
            Self::Budget { .. } => Kind::Budget,
        }
    }

    /// The configured maximum (requests, tokens, uses or micro-dollars).
    pub fn maximum(&self) -> u64 {
        match *self {
            Self::Rate { limit, .. } => limit,
            Self::Quota { amount, .. } => amount,
            Self::Budget { limit, .. } => limit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Rate,
    Quota,
    Budget,
    /// Requests in flight (counted across nodes by the shared limiter).
    Concurrency,
}

impl Kind {
    /// The stable error code of a request this kind of limit refused.
    pub fn code(self) -> &'static str {
        match self {
            Self::Rate => "rate_limited",
            Self::Quota => "quota_exhausted",
            Self::Budget => "budget_exceeded",
            Self::Concurrency => "concurrency_limited",
        }
    }
}

/// One limit to check for a request: where its state lives, the limit, and what the request
/// costs against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// A name unique to the limit and its owner, such as `key:<id>:rpm`.
    pub key: String,
    pub limit: Limit,
    pub cost: u64,
}

/// A reservation to settle: `check` was admitted at `at` (µs, this node's clock), reserving
/// `check.cost`; `actual` was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub check: Check,
    pub at: u64,
    pub actual: u64,
}

/// A limit's state after a check, for `x-ratelimit-*` headers and the verify API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub kind: Kind,
    pub limit: u64,
    pub remaining: u64,
    /// Until the limit is whole again.
    pub reset_after: Duration,
}

/// What a check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The states of the checks, in order (after the request when it was admitted; as they
    /// stand when it was refused).
    pub states: Vec<State>,
    /// The first check that refused, and when the request could pass.
    pub refused: Option<Refusal>,
}

impl Decision {
    pub fn admitted(&self) -> bool {
        self.refused.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Index into the checks.
    pub index: usize,
    pub kind: Kind,
    /// When the same request could pass; `None` when waiting cannot help (it costs more than
    /// the whole limit).
    pub retry_after: Option<Duration>,
}
