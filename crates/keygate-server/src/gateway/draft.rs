//! The one usage draft of a gateway request: what its usage record says whatever the
//! outcome, filled in once the outcome is known.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate_core::{Clock, TokenCounts, TokenSource, UsageRecord};
use keygate_llm::Served;

use crate::cache::CachedKey;

/// Who asked for what, from where: the parts of a usage record known before the answer.
#[derive(Debug, Clone)]
pub struct UsageDraft {
    pub started: Instant,
    pub key: Arc<CachedKey>,
    /// `chat.completions`, `messages`, `proxy`…
    pub endpoint: &'static str,
    /// The model alias, or the proxy route's name.
    pub model: String,
    pub streamed: bool,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The request's trace span (disabled when traces are not exported).
    pub span: tracing::Span,
}

/// Longest user agent kept in a usage record.
const USER_AGENT_CHARS: usize = 200;

impl UsageDraft {
    /// The client's `User-Agent`, bounded.
    pub fn user_agent(value: Option<&str>) -> Option<String> {
        value.map(|v| v.chars().take(USER_AGENT_CHARS).collect())
    }

    /// The record of an answer with `status` (and keygate's `code` when it is an error).
    pub fn record(&self, clock: &dyn Clock, status: u16, code: Option<&str>) -> UsageRecord {
        let record = &self.key.record;
        UsageRecord {
            id: uuid::Uuid::now_v7().to_string(),
            at: clock.now(),
            org_id: record.org_id.clone(),
            project_id: record.project_id.clone(),
            key_id: record.id.clone(),
            endpoint: self.endpoint.to_owned(),
            model: self.model.clone(),
            deployment: None,
            provider: None,
            status,
            error_code: code.map(str::to_owned),
            streamed: self.streamed,
            attempts: 0,
            latency_ms: millis(self.started.elapsed()),
            ttft_ms: None,
            tokens: TokenCounts::default(),
            token_source: TokenSource::None,
            cost: None,
            saved: None,
            client_ip: self.client_ip.clone(),
            user_agent: self.user_agent.clone(),
        }
    }

    /// The record of an answer that a deployment served.
    pub fn served(
        &self,
        clock: &dyn Clock,
        served: &Served,
        status: u16,
        code: Option<&str>,
    ) -> UsageRecord {
        UsageRecord {
            deployment: Some(served.deployment.clone()),
            provider: Some(served.provider.clone()),
            attempts: served.attempts,
            ttft_ms: Some(millis(served.first_byte)),
            ..self.record(clock, status, code)
        }
    }
}

/// Whole milliseconds, saturating.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
