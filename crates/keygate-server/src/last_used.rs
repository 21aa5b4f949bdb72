//! Last-use and last-write times, collected in memory on the hot path and written in batches
//! off it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keygate_core::{KeyId, Timestamp};
use keygate_store::Store;
use tokio_util::sync::CancellationToken;

/// Pending times, one per key (the latest wins).
#[derive(Debug, Default)]
struct Latest(Mutex<HashMap<KeyId, Timestamp>>);

impl Latest {
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn record(&self, id: &KeyId, at: Timestamp) {
        let mut pending = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.get_mut(id) {
            Some(last) if *last >= at => {}
            Some(last) => *last = at,
            None => {
                pending.insert(id.clone(), at);
            }
        }
    }

    fn take(&self) -> Vec<(KeyId, Timestamp)> {
        let mut pending = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        pending.drain().collect()
    }
}

/// Pending last-use and last-write times.
#[derive(Debug, Default)]
pub struct LastUsed {
    uses: Latest,
    writes: Latest,
}

impl LastUsed {
    /// Keys whose last use waits to be written.
    pub fn pending(&self) -> usize {
        self.uses.len()
    }

    pub fn record(&self, id: &KeyId, at: Timestamp) {
        self.uses.record(id, at);
    }

    /// The key made a change at `at` (a write method, a write permission).
    pub fn record_write(&self, id: &KeyId, at: Timestamp) {
        self.writes.record(id, at);
    }

    /// Writes everything pending. On failure the batch is put back for the next flush.
    pub async fn flush(&self, store: &dyn Store) {
        let (uses, writes) = (self.uses.take(), self.writes.take());
        if uses.is_empty() && writes.is_empty() {
            return;
        }
        if let Err(err) = store.touch_keys(&uses, &writes).await {
            tracing::warn!(error = %err, keys = uses.len(), "could not record last use");
            for (id, at) in uses {
                self.uses.record(&id, at);
            }
            for (id, at) in writes {
                self.writes.record(&id, at);
            }
        }
    }

    /// Flushes every `every` until `shutdown`, then once more so nothing is lost.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        every: Duration,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.flush(store.as_ref()).await,
                () = shutdown.cancelled() => break,
            }
        }
        self.flush(store.as_ref()).await;
    }
}
