//! The audit log as figures: events by action and outcome (admin actions, refused ones among
//! them, secret reveals and reads by API keys), the chain's length, whether the hash chain
//! holds, and the master key in use. Read from the log itself when scraped — every action is
//! in it, on every node's behalf — so nothing is counted on a request's path; a node counts
//! (and checks, link by link) the events appended since it last looked: the whole log at its
//! first scrape, a page at a time.

use std::sync::atomic::{AtomicI64, Ordering};

use keygate_core::audit::ChainVerifier;
use keygate_store::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Most events read in one scrape; the rest wait for the next.
const EVENTS_PER_SCRAPE: u32 = 20_000;
/// The log is read at most this often, however often `/metrics` is asked for (it may face
/// clients): Prometheus scrapes every 15 s or so.
const READ_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
const PAGE: u32 = 1_000;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `key.create`, `secret.reveal`, `admin.auth_failed`, … (`other` for anything else).
    pub action: String,
    /// `success`, `denied` or `failure`.
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KekLabels {
    pub kek_id: String,
}

#[derive(Debug)]
pub(super) struct AuditMetrics {
    pub(super) events: Family<EventLabels, Counter>,
    pub(super) length: Gauge,
    valid: Gauge,
    kek: Family<KekLabels, Gauge>,
    /// The last sequence number counted.
    seen: AtomicI64,
    /// The chain as checked so far, and when it was last read; one scrape reads at a time,
    /// so no event is counted twice.
    reading: tokio::sync::Mutex<(ChainVerifier, Option<std::time::Instant>)>,
}

impl AuditMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "keygate_audit_events",
            "Events in the audit log (every node's) by action and outcome: admin actions, refusals, reveals, reads by API keys",
            events.clone(),
        );
        let length = Gauge::default();
        registry.register(
            "keygate_audit_chain_length",
            "Events in the audit log's hash chain",
            length.clone(),
        );
        let valid = Gauge::default();
        registry.register(
            "keygate_audit_chain_valid",
            "1 while every event read so far links to the one before it and hashes to its stored hash; 0 once one does not (the log was altered)",
            valid.clone(),
        );
        valid.set(1);
        let kek = Family::<KekLabels, Gauge>::default();
        registry.register(
            "keygate_kek_info",
            "1 for the master key (KEK) this node seals with",
            kek.clone(),
        );
        Self {
            events,
            length,
            valid,
            kek,
            seen: AtomicI64::new(0),
            reading: tokio::sync::Mutex::new((ChainVerifier::default(), None)),
        }
    }

    pub(super) fn kek_in_use(&self, id: &str) {
        self.kek.clear();
        self.kek
            .get_or_create(&KekLabels {
                kek_id: id.to_owned(),
            })
            .set(1);
    }

    /// Counts the events appended since the last look. A store that fails leaves the figures
    /// as they were: the next scrape tries again.
    pub(super) async fn catch_up(&self, store: &dyn Store) {
        let mut reading = self.reading.lock().await;
        let (verifier, last_read) = &mut *reading;
        if last_read.is_some_and(|at| at.elapsed() < READ_EVERY) {
            return;
        }
        *last_read = Some(std::time::Instant::now());
        let Ok(head) = store.audit_head().await else {
            return;
        };
        self.length.set(head.seq);
        let mut after = self.seen.load(Ordering::Relaxed);
        let mut budget = EVENTS_PER_SCRAPE;
        while after < head.seq && budget > 0 {
            let Ok(page) = store
                .audit_chain_page(after, head.seq, PAGE.min(budget))
                .await
            else {
                break;
            };
            let Some(last) = page.last() else {
                break;
            };
            after = last.seq;
            budget = budget.saturating_sub(page.len() as u32);
            for event in &page {
                if verifier.push(event).is_err() {
                    self.valid.set(0);
                }
                self.events
                    .get_or_create(&EventLabels {
                        action: bounded(&event.action),
                        outcome: bounded(&event.outcome),
                    })
                    .inc();
            }
        }
        self.seen.store(after, Ordering::Relaxed);
    }
}

/// A label value from the log: an action's name as keygate writes them, else `other` (the
/// log is data; a label set must stay bounded whatever it holds).
fn bounded(text: &str) -> String {
    let plain = !text.is_empty()
        && text.len() <= 48
        && text
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c == b'.' || c == b'_');
    if plain {
        text.to_owned()
    } else {
        "other".to_owned()
    }
}
