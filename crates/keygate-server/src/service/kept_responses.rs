//! Responses API answers waiting to be kept: a stream ends inside the relay, off any task
//! that could wait for the store, so its answer is handed here and written by one task. Until
//! it is written it is read from here, so a follow-up on this node finds it at once. Bounded:
//! past [`PENDING`] answers or [`PENDING_BYTES`] waiting, the newest is not kept (and said so
//! in the log). One deleted while it is being written is deleted again once written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use keygate_store::{Store, StoredResponse};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Answers waiting at most.
const PENDING: usize = 1_000;
/// Bytes of answers waiting at most.
const PENDING_BYTES: usize = 64 * 1024 * 1024;

type Id = (String, String);
type Waiting = (Arc<StoredResponse>, u64);

fn size(response: &StoredResponse) -> usize {
    response.response.len() + response.conversation.len()
}

/// Answers handed over and not yet written, by project and id, with how many of the
/// project's are kept.
#[derive(Debug, Default)]
pub struct KeptResponses {
    pending: Mutex<HashMap<Id, Waiting>>,
    wake: Notify,
}

impl KeptResponses {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Id, Waiting>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands over an answer to keep, with how many of its project's are kept at most.
    pub fn keep(&self, response: StoredResponse, per_project: u64) {
        {
            let mut pending = self.pending();
            let bytes: usize = pending.values().map(|(waiting, _)| size(waiting)).sum();
            if pending.len() >= PENDING || bytes + size(&response) > PENDING_BYTES {
                tracing::warn!("too many responses waiting to be kept: one is not kept");
                return;
            }
            let id = (response.project_id.clone(), response.id.clone());
            pending.insert(id, (Arc::new(response), per_project));
        }
        self.wake.notify_one();
    }

    /// A project's answer still waiting to be written.
    pub fn waiting(&self, project: &str, id: &str) -> Option<StoredResponse> {
        self.pending()
            .get(&(project.to_owned(), id.to_owned()))
            .map(|(response, _)| StoredResponse::clone(response))
    }

    /// Forgets a waiting answer (deleted before it was written); whether it waited.
    pub fn forget(&self, project: &str, id: &str) -> bool {
        self.pending()
            .remove(&(project.to_owned(), id.to_owned()))
            .is_some()
    }

    /// Writes answers as they are handed over, until `stop`; then writes what still waits.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>, stop: CancellationToken) {
        loop {
            self.write(store.as_ref()).await;
            tokio::select! {
                () = self.wake.notified() => {}
                () = stop.cancelled() => break,
            }
        }
        self.write(store.as_ref()).await;
    }

    async fn write(&self, store: &dyn Store) {
        let waiting: Vec<(Id, Waiting)> = self
            .pending()
            .iter()
            .map(|(id, entry)| (id.clone(), entry.clone()))
            .collect();
        for (id, (response, per_project)) in waiting {
            if let Err(err) = store.put_response(&response, per_project).await {
                tracing::warn!(error = %err, "a response could not be kept");
            }
            // Gone from here once written (unless handed over again meanwhile); deleted
            // again if it was deleted while being written.
            let forgotten = {
                let mut pending = self.pending();
                match pending.get(&id) {
                    Some((kept, _)) if Arc::ptr_eq(kept, &response) => {
                        pending.remove(&id);
                        false
                    }
                    Some(_) => false,
                    None => true,
                }
            };
            if forgotten && let Err(err) = store.delete_response(&id.0, &id.1).await {
                tracing::warn!(error = %err, "a deleted response could not be deleted again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use keygate_core::Timestamp;

    use super::*;

    fn answer(id: &str) -> StoredResponse {
        StoredResponse {
            project_id: "p".to_owned(),
            id: id.to_owned(),
            key_id: "k".to_owned(),
            model: "chat".to_owned(),
            created_at: Timestamp::from_millis(0),
            expires_at: Timestamp::from_millis(1),
            response: "{}".to_owned(),
            conversation: "[]".to_owned(),
        }
    }

    #[test]
    fn waiting_answers_are_read_forgotten_and_bounded() {
        let kept = KeptResponses::default();
        kept.keep(answer("a"), 10);
        assert_eq!(kept.waiting("p", "a"), Some(answer("a")));
        assert_eq!(kept.waiting("other", "a"), None, "per project");
        assert!(kept.forget("p", "a"));
        assert!(!kept.forget("p", "a"));
        for n in 0..PENDING + 5 {
            kept.keep(answer(&n.to_string()), 10);
        }
        assert_eq!(
            kept.pending().len(),
            PENDING,
            "the newest past the bound are not kept"
        );
        assert_eq!(kept.waiting("p", &(PENDING + 1).to_string()), None);
    }
}
