//! Usage records, queued in memory on the request path and written in batches off it. A
//! stream whose provider reported no usage is counted here too, with the tokenizer, so that
//! counting never delays a response.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keygate_core::{TokenCounts, TokenSource, UsageRecord};
use keygate_llm::Gateway;
use keygate_store::Store;
use tokio_util::sync::CancellationToken;

use crate::metrics::gateway::GatewayMetrics;

/// Most records held in memory while the store is unreachable; past it, the newest are
/// dropped (and counted in the log) rather than growing without bound.
const MAX_PENDING: usize = 100_000;
/// Most records in one write.
const BATCH: usize = 5_000;

enum Flushed {
    /// A batch was written and more is waiting.
    More,
    Done,
    Failed,
}

/// A record whose tokens are still to be counted.
#[derive(Debug)]
pub struct ToCount {
    pub record: UsageRecord,
    /// The upstream model, whose tokenizer and price apply.
    pub model: String,
    /// The client's prompt.
    pub prompt: keygate_llm::tokens::Prompt,
    pub text: String,
    /// What the request used that is priced by the unit.
    pub units: keygate_llm::price::Units,
    pub gateway: Arc<Gateway>,
    /// Tokens and money the request reserved, settled once counted.
    pub reservation: Option<crate::limits::Reservation>,
}

/// Most bytes (request bodies and streamed text) held for counting; past it, a stream without
/// reported usage is recorded without tokens instead.
const MAX_COUNT_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Default)]
struct Pending {
    ready: Vec<UsageRecord>,
    /// Records of a batch the store refused, written again before the rest; already in the
    /// metrics.
    failed: Vec<UsageRecord>,
    to_count: Vec<ToCount>,
    /// Bytes held by `to_count`.
    to_count_bytes: usize,
    dropped: u64,
}

/// Something that looks at every usage record once, off the request path (the anomaly
/// detectors, the budget thresholds).
pub trait UsageWatcher: Send + Sync + std::fmt::Debug {
    fn observe(&self, records: &[UsageRecord]);
    /// Whether it still listens; one that stopped is forgotten when another is added.
    fn is_live(&self) -> bool {
        true
    }
}

#[derive(Debug)]
pub struct UsageLog {
    pending: Mutex<Pending>,
    /// Every record is shown to the metrics once, when its batch is taken to be written, and
    /// to the watchers.
    metrics: GatewayMetrics,
    watchers: std::sync::RwLock<Vec<Arc<dyn UsageWatcher>>>,
    dropped_total: AtomicU64,
}

impl Default for UsageLog {
    /// A log whose records go to metrics of its own.
    fn default() -> Self {
        Self::new(crate::metrics::Metrics::new().gateway)
    }
}

impl UsageLog {
    pub fn new(metrics: GatewayMetrics) -> Self {
        Self {
            pending: Mutex::default(),
            metrics,
            watchers: std::sync::RwLock::default(),
            dropped_total: AtomicU64::new(0),
        }
    }

    /// Shows every record from now on to `watcher` too.
    pub fn watched_by(&self, watcher: Arc<dyn UsageWatcher>) {
        let mut watchers = self
            .watchers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        watchers.retain(|w| w.is_live());
        watchers.push(watcher);
    }

    /// Shows fresh records to the metrics and the watchers, once.
    fn observe(&self, records: &[UsageRecord]) {
        records
            .iter()
            .for_each(|record| self.metrics.observe(record));
        let watchers = self
            .watchers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for watcher in watchers.iter() {
            watcher.observe(records);
        }
    }

    /// Records waiting to be written.
    pub fn pending(&self) -> usize {
        let pending = self.lock();
        pending.ready.len() + pending.failed.len() + pending.to_count.len()
    }

    /// Records dropped since start.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    pub fn record(&self, record: UsageRecord) {
        let mut pending = self.lock();
        if pending.ready.len() + pending.failed.len() + pending.to_count.len() >= MAX_PENDING {
            pending.dropped += 1;
            return;
        }
        pending.ready.push(record);
    }

    pub fn record_uncounted(&self, entry: ToCount) {
        let mut pending = self.lock();
        if pending.ready.len() + pending.failed.len() + pending.to_count.len() >= MAX_PENDING {
            pending.dropped += 1;
            // Not counted: what was reserved is charged.
            if let Some(reservation) = entry.reservation {
                reservation.settle(None, None);
            }
            return;
        }
        let bytes = entry.prompt.len() + entry.text.len();
        if pending.to_count_bytes + bytes > MAX_COUNT_BYTES {
            pending.ready.push(entry.record);
            if let Some(reservation) = entry.reservation {
                reservation.settle(None, None);
            }
            return;
        }
        pending.to_count_bytes += bytes;
        pending.to_count.push(entry);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes everything pending, a batch at a time; stops early (keeping the rest for the
    /// next flush) when the store fails.
    pub async fn flush(&self, store: &dyn Store) {
        loop {
            match self.flush_batch(store).await {
                Flushed::More => {}
                Flushed::Done | Flushed::Failed => return,
            }
        }
    }

    /// Counts what needs counting and writes one batch. On failure the batch is put back.
    async fn flush_batch(&self, store: &dyn Store) -> Flushed {
        let (mut batch, fresh, to_count, dropped) = {
            let mut pending = self.lock();
            let retried = !pending.failed.is_empty();
            let queue = if retried {
                &mut pending.failed
            } else {
                &mut pending.ready
            };
            let take = queue.len().min(BATCH);
            let batch: Vec<UsageRecord> = queue.drain(..take).collect();
            pending.to_count_bytes = 0;
            (
                batch,
                !retried,
                std::mem::take(&mut pending.to_count),
                std::mem::take(&mut pending.dropped),
            )
        };
        self.dropped_total.fetch_add(dropped, Ordering::Relaxed);
        if fresh {
            self.observe(&batch);
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "usage records dropped: the store could not keep up"
            );
        }
        if !to_count.is_empty() {
            // The tokenizer is CPU work (and loads its tables on first use): keep it off the
            // runtime's workers.
            match tokio::task::spawn_blocking(move || to_count.into_iter().map(count).collect())
                .await
            {
                Ok(counted) => {
                    let counted: Vec<UsageRecord> = counted;
                    self.observe(&counted);
                    batch.extend(counted);
                }
                Err(err) => tracing::warn!(error = %err, "token counting failed"),
            }
        }
        if batch.is_empty() {
            return Flushed::Done;
        }
        if let Err(err) = store.insert_usage(&batch).await {
            tracing::warn!(error = %err, records = batch.len(), "could not write usage records");
            let mut pending = self.lock();
            let room = MAX_PENDING.saturating_sub(pending.ready.len() + pending.failed.len());
            let kept = batch.len().min(room);
            pending.dropped += (batch.len() - kept) as u64;
            pending.failed.extend(batch.into_iter().take(kept));
            return Flushed::Failed;
        }
        let pending = self.lock();
        if pending.ready.is_empty() && pending.failed.is_empty() {
            Flushed::Done
        } else {
            Flushed::More
        }
    }

    /// Whether anything waits to be written.
    pub fn is_empty(&self) -> bool {
        let pending = self.lock();
        pending.ready.is_empty() && pending.failed.is_empty() && pending.to_count.is_empty()
    }

    /// Flushes every `every` until `shutdown`, then once more, until nothing is left (or the
    /// store fails).
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

fn count(entry: ToCount) -> UsageRecord {
    let mut record = entry.record;
    let tokens = TokenCounts {
        prompt: entry.prompt.count(&entry.model),
        completion: keygate_llm::tokens::count(&entry.model, &entry.text),
        cached: 0,
    };
    record.tokens = tokens;
    record.token_source = TokenSource::Counted;
    record.cost = entry.gateway.cost(&entry.model, tokens, entry.units);
    if let Some(reservation) = entry.reservation {
        // Without a price the tokens are still known; what was reserved of budgets is
        // charged (a budget refuses unpriced models, so there is none in practice).
        reservation.settle(
            Some(tokens.prompt.saturating_add(tokens.completion)),
            record.cost.map(|cost| u64::try_from(cost.0).unwrap_or(0)),
        );
    }
    record
}
