//! The Responses API's stored answers, kept by keygate rather than by any provider, so that
//! a conversation continued with `previous_response_id` goes on whichever deployment serves
//! the next turn. An answer is kept (unless the request says `"store": false`) with the input
//! items of the whole conversation that led to it, per project, for `max_age`, at most
//! `max_per_project` of them (the oldest go first) and none larger than `max_bytes`. A request
//! naming a previous response has that conversation and its output put before its own input,
//! and goes upstream without the id: the provider never needs to have kept anything. Reasoning
//! items without their encrypted content are left out of what goes on (a provider could only
//! resolve them from its own store).

use std::time::Duration;

use bytes::Bytes;
use keygate_store::StoredResponse;
use serde_json::{Map, Value};

use super::{Refused, Service};
use crate::cache::CachedKey;

/// How answers of the Responses API are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseStoreSettings {
    /// Whether they are kept at all; without it, `previous_response_id` is refused.
    pub enabled: bool,
    pub max_age: Duration,
    pub max_per_project: u64,
    /// The largest answer kept, with its conversation (bytes of JSON).
    pub max_bytes: usize,
}

impl Default for ResponseStoreSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_age: Duration::from_secs(30 * 86_400),
            max_per_project: 10_000,
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What a Responses request carries to the end of its call, to keep its answer.
#[derive(Debug)]
pub struct Conversation {
    /// Every input item up to this request's own, as the next turn will need them.
    input: Vec<Value>,
    /// The alias asked: the answer is read again only with its scope.
    model: String,
}

/// Why a conversation could not go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationRefusal {
    /// No such answer is kept for the key's project (or it expired).
    NotFound(String),
    /// The same, asked for by its id (`GET` or `DELETE /v1/responses/{id}`).
    Unknown(String),
    /// Answers are not kept on this server.
    NotStored,
    /// The store did not answer.
    Unavailable,
}

impl ConversationRefusal {
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound(_) | Self::NotStored => 400,
            Self::Unknown(_) => 404,
            Self::Unavailable => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "previous_response_not_found",
            Self::Unknown(_) => "response_not_found",
            Self::NotStored => "unsupported_feature",
            Self::Unavailable => "store_unavailable",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::NotFound(id) => format!(
                "previous response `{id}` is not kept for this project (never stored, deleted, or expired)"
            ),
            Self::Unknown(id) => format!(
                "response `{id}` is not kept for this project (never stored, deleted, or expired)"
            ),
            Self::NotStored => "this server keeps no responses ([response_store] enabled = false): send the whole conversation as `input`".to_owned(),
            Self::Unavailable => "the response store could not be read; try again".to_owned(),
        }
    }
}

/// A request's input as items: a string is one user message.
fn items(input: Option<Value>) -> Vec<Value> {
    match input {
        Some(Value::Array(items)) => items,
        Some(Value::String(text)) => {
            let mut message = Map::new();
            message.insert("role".into(), "user".into());
            message.insert("content".into(), Value::String(text));
            vec![Value::Object(message)]
        }
        _ => Vec::new(),
    }
}

/// Whether an item can go to any provider again: a reasoning item only with its encrypted
/// content.
fn portable(item: &Value) -> bool {
    item.get("type").and_then(Value::as_str) != Some("reasoning")
        || item
            .get("encrypted_content")
            .is_some_and(|c| c.as_str().is_some_and(|c| !c.is_empty()))
}

impl Service<'_> {
    /// Reads a Responses request's conversation: with `previous_response_id`, the kept one's
    /// items go before the request's input and the body is written again without the id.
    /// Returns the body to serve and, when the answer is to be kept, its conversation. A body
    /// that is not a JSON object goes on as it is, for the request's own checks to refuse.
    pub(super) async fn conversation(
        &self,
        key: &CachedKey,
        body: Bytes,
    ) -> Result<(Bytes, Option<Conversation>), Refused> {
        let settings = self.responses;
        let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(&body) else {
            return Ok((body, None));
        };
        let keep = settings.enabled && request.get("store") != Some(&Value::Bool(false));
        let model = match request.get("model") {
            Some(Value::String(model)) => model.clone(),
            _ => return Ok((body, None)),
        };
        // A key that may not use the model is refused by the call's own scope check, before
        // anything kept is read for it.
        if !may_read(key, &model) {
            return Ok((body, None));
        }
        let previous = match request.get("previous_response_id") {
            Some(Value::String(id)) => Some(id.clone()),
            _ => None,
        };
        let Some(previous) = previous else {
            let conversation = keep.then(|| Conversation {
                input: items(request.get("input").cloned()),
                model,
            });
            return Ok((body, conversation));
        };
        if !settings.enabled {
            return Err(Refused::Conversation(ConversationRefusal::NotStored));
        }
        let stored = self
            .kept(&project_of(key), &previous)
            .await?
            .filter(|stored| may_read(key, &stored.model))
            .ok_or(Refused::Conversation(ConversationRefusal::NotFound(
                previous,
            )))?;
        let mut input: Vec<Value> = serde_json::from_str(&stored.conversation).unwrap_or_default();
        let answered: Value = serde_json::from_str(&stored.response).unwrap_or_default();
        if let Some(output) = answered.get("output").and_then(Value::as_array) {
            input.extend(output.iter().cloned());
        }
        input.extend(items(request.remove("input")));
        input.retain(portable);
        request.remove("previous_response_id");
        request.insert("input".into(), Value::Array(input.clone()));
        let body = Bytes::from(Value::Object(request).to_string());
        Ok((body, keep.then_some(Conversation { input, model })))
    }

    /// Keeps a whole answer of the Responses API with its conversation, before the client
    /// has it (so its next turn finds it on any node): best effort, a failure is logged.
    pub(super) async fn keep_answer(
        &self,
        key: &CachedKey,
        conversation: Conversation,
        answer: &[u8],
    ) {
        let settings = self.responses;
        let stored = std::str::from_utf8(answer)
            .ok()
            .and_then(|answer| Keeping::new(self, key).stored(conversation, answer));
        let Some(stored) = stored else {
            return;
        };
        if let Err(err) = self
            .keygate
            .store()
            .put_response(&stored, settings.max_per_project)
            .await
        {
            tracing::warn!(error = %err, "a response could not be kept");
        }
    }
}

impl Service<'_> {
    /// A kept answer of `project`, waiting to be written or written.
    async fn kept(&self, project: &str, id: &str) -> Result<Option<StoredResponse>, Refused> {
        if let Some(waiting) = self.keygate.kept_responses().waiting(project, id) {
            return Ok(Some(waiting));
        }
        let now = self.keygate.clock().now();
        self.keygate
            .store()
            .response(project, id, now)
            .await
            .map_err(|_| Refused::Conversation(ConversationRefusal::Unavailable))
    }

    /// A kept answer of the key's project.
    pub async fn stored_response(&self, key: &CachedKey, id: &str) -> Result<Value, Refused> {
        let stored = self
            .kept(&project_of(key), id)
            .await?
            .filter(|stored| may_read(key, &stored.model))
            .ok_or_else(|| Refused::Conversation(ConversationRefusal::Unknown(id.to_owned())))?;
        serde_json::from_str(&stored.response)
            .map_err(|_| Refused::Conversation(ConversationRefusal::Unknown(id.to_owned())))
    }

    /// The input items of a kept answer of the key's project, one page of them.
    pub async fn stored_input_items(
        &self,
        key: &CachedKey,
        id: &str,
        query: &super::InputItemsQuery,
    ) -> Result<Value, Refused> {
        let stored = self
            .kept(&project_of(key), id)
            .await?
            .filter(|stored| may_read(key, &stored.model))
            .ok_or_else(|| Refused::Conversation(ConversationRefusal::Unknown(id.to_owned())))?;
        super::input_items::page(id, &stored.conversation, query)
    }

    /// Deletes a kept answer of the key's project, in OpenAI's answer shape.
    pub async fn delete_stored_response(
        &self,
        key: &CachedKey,
        id: &str,
    ) -> Result<Value, Refused> {
        let project = project_of(key);
        let readable = self
            .kept(&project, id)
            .await?
            .is_some_and(|stored| may_read(key, &stored.model));
        if !readable {
            return Err(Refused::Conversation(ConversationRefusal::Unknown(
                id.to_owned(),
            )));
        }
        let waited = self.keygate.kept_responses().forget(&project, id);
        let deleted = self
            .keygate
            .store()
            .delete_response(&project, id)
            .await
            .map_err(|_| Refused::Conversation(ConversationRefusal::Unavailable))?
            || waited;
        if !deleted {
            return Err(Refused::Conversation(ConversationRefusal::Unknown(
                id.to_owned(),
            )));
        }
        Ok(serde_json::json!({"id": id, "object": "response", "deleted": true}))
    }
}

/// What an answer is kept under, taken from the request before its stream is relayed.
struct Keeping {
    keygate: std::sync::Arc<crate::service::Keygate>,
    settings: ResponseStoreSettings,
    key_id: String,
    project_id: String,
}

impl Keeping {
    fn new(service: &Service<'_>, key: &CachedKey) -> Self {
        Self {
            keygate: service.keygate.clone(),
            settings: *service.responses,
            key_id: key.record.id.to_string(),
            project_id: project_of(key),
        }
    }

    /// What `answer` (a `response` object) is kept as, unless it is larger than the store
    /// takes.
    fn stored(self, conversation: Conversation, answer: &str) -> Option<StoredResponse> {
        let response = serde_json::from_str::<Value>(answer).ok()?;
        let id = response.get("id").and_then(Value::as_str)?.to_owned();
        let model = conversation.model;
        let conversation = Value::Array(conversation.input).to_string();
        if answer.len() + conversation.len() > self.settings.max_bytes {
            tracing::info!(
                bytes = answer.len() + conversation.len(),
                "a response is larger than [response_store] max_bytes: not kept"
            );
            return None;
        }
        let now = self.keygate.clock().now();
        Some(StoredResponse {
            project_id: self.project_id,
            id,
            key_id: self.key_id,
            model,
            created_at: now,
            expires_at: now.saturating_add(self.settings.max_age),
            response: answer.to_owned(),
            conversation,
        })
    }
}

/// What keeps a streamed answer when its stream ends: the stream ends inside the relay, off
/// any task that could wait for the store, so the answer goes to the writer task of
/// [`crate::service::KeptResponses`] (and is read from there until written).
pub(super) struct StreamKeeper {
    keeping: Keeping,
    conversation: Conversation,
}

impl StreamKeeper {
    pub(super) fn new(service: &Service<'_>, key: &CachedKey, conversation: Conversation) -> Self {
        Self {
            keeping: Keeping::new(service, key),
            conversation,
        }
    }

    /// Keeps the finished response object a completed stream ended with.
    pub(super) fn keep(self, answer: &str) {
        let kept = self.keeping.keygate.kept_responses().clone();
        let per_project = self.keeping.settings.max_per_project;
        if let Some(stored) = self.keeping.stored(self.conversation, answer) {
            kept.keep(stored, per_project);
        }
    }
}

/// Whether `key` may read what was asked of `model`: the scope it needs to ask it.
fn may_read(key: &CachedKey, model: &str) -> bool {
    keygate_core::scope::any_grants(&key.record.scopes, &super::model_permission(model))
}

/// The project answers are kept under: the key's, or its organisation's for a key of none.
fn project_of(key: &CachedKey) -> String {
    match &key.record.project_id {
        Some(project) => project.to_string(),
        None => key.record.org_id.to_string(),
    }
}
