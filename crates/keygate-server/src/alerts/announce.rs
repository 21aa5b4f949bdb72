//! The audit log's events, announced: one node at a time (under a lease) reads the log after
//! the cursor and writes the events it announces to the outbox, moving the cursor in the same
//! transaction, so that each is announced once whatever stops when. The entries are checked as
//! they are read; a break in the chain is announced as `audit.verification_failed`.

use keygate_core::audit::ChainVerifier;
use keygate_core::{ChainHead, Timestamp};
use keygate_store::{CursorMove, OutboxEvent};
use keygate_watch::{Event, EventType, from_audit};

use super::Alerts;
use crate::ServiceError;

const CURSOR: &str = "alerts.audit";
const LEASE: &str = "alerts.announce";
const LEASE_MS: i64 = 10_000;
const PAGE: u32 = 500;

impl Alerts {
    /// Announces what the audit log gained since the last call (by any node).
    pub(super) async fn announce(&self, holder: &str) -> Result<(), ServiceError> {
        let store = self.keygate.store();
        let now = self.keygate.clock().now();
        let until = Timestamp::from_millis(now.as_millis().saturating_add(LEASE_MS));
        if !store.take_lease(LEASE, holder, now, until).await? {
            return Ok(());
        }
        let Some(mut after) = store.cursor(CURSOR).await? else {
            // The first run starts at the log's head: what happened before alerts existed
            // had no endpoint to hear it.
            let start = CursorMove {
                name: CURSOR,
                from: None,
                to: store.audit_head().await?.seq,
            };
            store.enqueue_events(&[], None, Some(&start), now).await?;
            return Ok(());
        };
        // The entries read are checked against the one before them as they go by: a tail
        // rewritten (or an entry changed) after it was written is announced at once.
        let mut verifier = match store.audit_chain_page(after - 1, after, 1).await?.pop() {
            Some(entry) => ChainVerifier::continuing(ChainHead {
                seq: entry.seq,
                hash: entry.hash,
            }),
            None => ChainVerifier::default(),
        };
        loop {
            let page = store.audit_chain_page(after, i64::MAX, PAGE).await?;
            let Some(last) = page.last().map(|entry| entry.seq) else {
                return Ok(());
            };
            let mut events: Vec<Event> = Vec::new();
            for entry in &page {
                if let Err(broken) = verifier.push(entry) {
                    events.push(Event::new(
                        EventType::AuditVerificationFailed,
                        now,
                        None,
                        None,
                        serde_json::json!({ "seq": entry.seq, "reason": broken.to_string() }),
                    ));
                    verifier = ChainVerifier::continuing(ChainHead {
                        seq: entry.seq,
                        hash: entry.hash.clone(),
                    });
                }
                events.extend(from_audit::event_for(entry));
            }
            let events: Vec<OutboxEvent> = events
                .into_iter()
                .map(|event| OutboxEvent {
                    payload: event.payload(),
                    id: event.id,
                    org_id: event.org_id,
                    project_id: event.project_id,
                    event_type: event.kind.as_str().to_owned(),
                    at: event.at,
                })
                .collect();
            let moved = CursorMove {
                name: CURSOR,
                from: Some(after),
                to: last,
            };
            store
                .enqueue_events(&events, None, Some(&moved), now)
                .await?;
            if page.len() < PAGE as usize {
                return Ok(());
            }
            after = last;
        }
    }
}
