//! Redis, when configured: the connection, made again after a failure, and what happens to
//! limits while it is unreachable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use keygate_limits::GlobalLimiter;

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
pub(super) struct Shared {
    url: String,
    pub(super) on_failure: OnRedisFailure,
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
    pub(super) fn new(url: &str, on_failure: OnRedisFailure) -> Self {
        Self {
            url: url.to_owned(),
            on_failure,
            limiter: RwLock::new(None),
            rest_until: AtomicU64::new(0),
            epoch: Instant::now(),
            down: AtomicBool::new(false),
        }
    }

    fn elapsed(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The limiter to use now, connecting first when there is none and it is time to try.
    pub(super) async fn limiter(&self) -> Option<GlobalLimiter> {
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

    pub(super) fn failed(&self, err: &keygate_limits::GlobalError) {
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

    /// The connection, when there is one and Redis is not resting after a failure.
    pub(super) fn current(&self) -> Option<GlobalLimiter> {
        if self.elapsed() < self.rest_until.load(Ordering::Relaxed) {
            return None;
        }
        self.limiter
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the last attempt failed (and none has answered since).
    pub(super) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    pub(super) fn answered(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again: limits are shared across nodes");
        }
    }
}
