//! Last-use times, collected in memory on the hot path and written in batches off it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keygate_core::{KeyId, Timestamp};
use keygate_store::Store;
use tokio_util::sync::CancellationToken;

/// Pending last-use times, one per key (the latest wins).
#[derive(Debug, Default)]
pub struct LastUsed {
    pending: Mutex<HashMap<KeyId, Timestamp>>,
}

impl LastUsed {
    /// Keys whose last use waits to be written.
    pub fn pending(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn record(&self, id: &KeyId, at: Timestamp) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.get_mut(id) {
            Some(last) if *last >= at => {}
            Some(last) => *last = at,
            None => {
                pending.insert(id.clone(), at);
            }
        }
    }

    fn take(&self) -> Vec<(KeyId, Timestamp)> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.drain().collect()
    }

    /// Writes everything pending. On failure the batch is put back for the next flush.
    pub async fn flush(&self, store: &dyn Store) {
        let batch = self.take();
        if batch.is_empty() {
            return;
        }
        if let Err(err) = store.touch_keys(&batch).await {
            tracing::warn!(error = %err, keys = batch.len(), "could not record last use");
            for (id, at) in batch {
                self.record(&id, at);
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
