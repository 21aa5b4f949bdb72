//! One LLM call, from an authenticated key to its settled usage: the request read, the
//! model's scope, the limits of the key and its project, dispatch to a deployment, and the
//! usage record and settlement — for a stream, when it ends, however it ends.

mod budget;

use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderValue;
use bytes::Bytes;
use keygate_core::scope::any_grants;
use keygate_core::{TokenSource, UsageRecord};
use keygate_limits::State;
use keygate_llm::{
    AttemptError, Endpoint, Failure, GatewayError, Inbound, Relay, Reply, StreamEnd, StreamOutcome,
    Upload,
};

use tracing::Instrument as _;

use super::answer_cache::{self, CacheSlot, CachedAnswer};
use super::conversations::{Conversation, StreamKeeper};
use super::{Refused, Service, UsageDraft, draft::millis, trace};
use crate::cache::CachedKey;
use crate::limits::{Admission, Counted, Demand, Refusal};
use crate::service::ProjectSecrets;
use crate::usage_log::ToCount;
use budget::{demand, meter_budget, settle};

/// The GenAI operation of an endpoint.
fn operation(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses => "chat",
        Endpoint::Completions => "text_completion",
        Endpoint::Embeddings => "embeddings",
        Endpoint::CountTokens => "count_tokens",
        Endpoint::Moderations => "moderation",
        Endpoint::ImageGenerations => "image_generation",
        Endpoint::Speech => "speech",
        Endpoint::Transcriptions => "transcription",
    }
}

/// The scope a key needs for a model or alias.
pub fn model_permission(model: &str) -> String {
    format!("models:{model}")
}

/// What a client sent: a JSON body, or a multipart upload read as far as its model.
#[derive(Debug)]
pub enum Payload {
    Json(Bytes),
    Upload(Box<Upload>),
}

/// An LLM call as the client made it.
#[derive(Debug)]
pub struct LlmCall {
    pub key: Arc<CachedKey>,
    pub endpoint: Endpoint,
    pub payload: Payload,
    /// The client's `anthropic-beta` header.
    pub anthropic_beta: Option<String>,
    /// The client's W3C `traceparent` header.
    pub traceparent: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub started: Instant,
    /// The client's `Cache-Control`.
    pub cache: CacheControl,
}

/// What a client's `Cache-Control` asks of the answer cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-cache`: a kept answer is not used (a fresh one is kept in its place).
    pub no_cache: bool,
    /// `no-store`: nothing is looked up or kept.
    pub no_store: bool,
}

impl CacheControl {
    /// Reads the header's directives (names in any case).
    pub fn parse(header: Option<&str>) -> Self {
        let mut control = Self::default();
        for directive in header.unwrap_or_default().split(',') {
            let directive = directive.trim();
            control.no_cache |= directive.eq_ignore_ascii_case("no-cache");
            control.no_store |= directive.eq_ignore_ascii_case("no-store");
        }
        control
    }
}

/// Whether an answer came from the group's answer cache (`x-keygate-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
        }
    }
}

/// What goes back to the client.
#[derive(Debug)]
pub enum LlmAnswer {
    /// A whole answer: the upstream's (translated) or an upstream error passed through.
    Complete {
        status: u16,
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
    Stream {
        content_type: Option<HeaderValue>,
        relay: Box<Relay>,
    },
    /// An estimate of a Messages request's input tokens, when no deployment counts them.
    Counted { input_tokens: u64 },
}

/// An answer or a refusal, with the request and token rates as they stand after it.
#[derive(Debug)]
pub struct LlmOutcome {
    pub answer: Result<LlmAnswer, Refused>,
    pub requests: Option<State>,
    pub tokens: Option<State>,
    /// For a request its group may answer from its cache.
    pub cache: Option<CacheStatus>,
}

impl From<Refused> for LlmOutcome {
    fn from(refused: Refused) -> Self {
        Self {
            answer: Err(refused),
            requests: None,
            tokens: None,
            cache: None,
        }
    }
}

impl Service<'_> {
    /// Serves one LLM call; every outcome but an unreadable body leaves a usage record.
    pub async fn complete(&self, call: LlmCall) -> LlmOutcome {
        let (mut inbound, conversation) = match call.payload {
            Payload::Upload(upload) => (Inbound::upload(*upload), None),
            Payload::Json(body) => {
                let (body, conversation) = if call.endpoint == Endpoint::Responses {
                    match self.conversation(&call.key, body).await {
                        Ok(read) => read,
                        Err(refused) => return refused.into(),
                    }
                } else {
                    (body, None)
                };
                match Inbound::parse(call.endpoint, body) {
                    Ok(inbound) => (inbound, conversation),
                    Err(err) => return Refused::Request(err).into(),
                }
            }
        };
        inbound.anthropic_beta = call.anthropic_beta;
        let span = trace::request_span(
            operation(call.endpoint),
            &inbound.model,
            call.traceparent.as_deref(),
        );
        inbound.traceparent = call.traceparent;
        let draft = UsageDraft {
            started: call.started,
            key: call.key,
            endpoint: call.endpoint.as_str(),
            model: inbound.model.clone(),
            streamed: inbound.stream,
            client_ip: call.client_ip,
            user_agent: call.user_agent,
            span: span.clone(),
        };
        let (answer, admission, cache) = self
            .serve(&draft, inbound, conversation, call.cache)
            .instrument(span)
            .await;
        let (requests, tokens) = admission
            .map(|a| (a.requests(), a.tokens()))
            .unwrap_or_default();
        LlmOutcome {
            answer,
            requests,
            tokens,
            cache,
        }
    }

    /// Records the usage of a refusal and passes it on.
    fn refuse<T>(&self, draft: &UsageDraft, refused: Refused) -> Result<T, Refused> {
        self.usage(
            draft,
            draft.record(
                self.keygate.clock().as_ref(),
                refused.status(),
                Some(refused.code()),
            ),
        );
        Err(refused)
    }

    /// Writes a request's usage record, and what it says on the request's span.
    fn usage(&self, draft: &UsageDraft, record: UsageRecord) {
        trace::record_outcome(&draft.span, &record);
        self.keygate.usage().record(record);
    }

    async fn serve(
        &self,
        draft: &UsageDraft,
        inbound: Inbound,
        conversation: Option<Conversation>,
        cache: CacheControl,
    ) -> (
        Result<LlmAnswer, Refused>,
        Option<Admission>,
        Option<CacheStatus>,
    ) {
        let key = &draft.key;
        // The scope is checked first, so a key learns nothing of models it may not use (nor
        // of answers kept for them). The attempt is recorded: usage shows what keys tried
        // outside their scopes.
        if !any_grants(&key.record.scopes, &model_permission(&inbound.model)) {
            let model = inbound.model.clone();
            return (self.refuse(draft, Refused::Scope { model }), None, None);
        }
        let gateway = self.models.current();
        let kept = conversation.is_some();
        let slot = answer_cache::slot(gateway.cache_policy(&inbound.model), key, &inbound, kept)
            .filter(|_| !cache.no_store);
        let hit = match &slot {
            Some(slot) if !cache.no_cache => {
                let redis = match self.limiter.shares_limits() {
                    true => self.limiter.redis().await,
                    false => None,
                };
                self.models.answers().get(slot, redis).await
            }
            _ => None,
        };
        if let Some(hit) = hit {
            let (answer, admission) = self.replay(draft, &hit).await;
            return (answer, admission, Some(CacheStatus::Hit));
        }
        let (answer, admission) = self
            .dispatch(draft, inbound, conversation, slot, gateway)
            .await;
        (answer, admission, slot.map(|_| CacheStatus::Miss))
    }

    /// Answers from the group's cache: admitted like any request (rates, quotas), but nothing
    /// is reserved or spent; the usage record names the deployment that made the answer, its
    /// tokens, and a cost of nothing.
    async fn replay(
        &self,
        draft: &UsageDraft,
        hit: &CachedAnswer,
    ) -> (Result<LlmAnswer, Refused>, Option<Admission>) {
        let clock = self.keygate.clock();
        let demand = Demand {
            hold: false,
            tokens: None,
            cost: None,
        };
        let admission = match self.limiter.admit(&draft.key, clock, demand).await {
            Ok(admission) => admission,
            Err(refusal) => return (self.refuse(draft, Refused::Limit(refusal)), None),
        };
        let mut record = draft.record(clock.as_ref(), 200, None);
        record.deployment = Some(hit.deployment.clone());
        record.provider = Some(hit.provider.clone());
        record.tokens = hit.tokens.unwrap_or_default();
        record.token_source = TokenSource::Cache;
        record.cost = Some(keygate_core::MicroUsd(0));
        record.saved = hit.cost;
        self.usage(draft, record);
        let answer = LlmAnswer::Complete {
            status: 200,
            content_type: hit.content_type.clone(),
            body: hit.body.clone(),
        };
        (Ok(answer), Some(admission))
    }

    async fn dispatch(
        &self,
        draft: &UsageDraft,
        inbound: Inbound,
        conversation: Option<Conversation>,
        slot: Option<CacheSlot>,
        gateway: Arc<keygate_llm::Gateway>,
    ) -> (Result<LlmAnswer, Refused>, Option<Admission>) {
        let key = &draft.key;
        let content = gateway.traces_content(&inbound.model) && !draft.span.is_disabled();
        if content && let Some(messages) = inbound.messages_text() {
            trace::record_content(&draft.span, "gen_ai.input.messages", messages);
        }
        let asked = match demand(key, &inbound, &gateway) {
            Ok(asked) => asked,
            Err(refused) => return (self.refuse(draft, refused), None),
        };
        let mut admission = match self.admit(key, &asked).await {
            Ok(admission) => admission,
            Err(refusal) => return (self.refuse(draft, Refused::Limit(refusal)), None),
        };
        // The slots and the reservation go with the answer; the limits' states stay for
        // the response's headers.
        let hold = std::mem::take(&mut admission.hold);
        let reservation = admission.reservation.take();
        let secrets = ProjectSecrets {
            keygate: self.keygate,
            project: key.record.project_id.as_ref(),
        };
        let scopes = &key.record.scopes;
        let allowed = |alias: &str| any_grants(scopes, &model_permission(alias));
        let clock = self.keygate.clock().clone();
        let dispatched = gateway.dispatch(&inbound, &secrets, &allowed).await;
        if let Ok(Reply::Complete { served, .. } | Reply::Stream { served, .. }) = &dispatched
            && served.group != inbound.model
        {
            self.keygate
                .metrics()
                .gateway
                .fell_back(&inbound.model, &served.group);
        }
        let answer = match dispatched {
            Ok(Reply::Complete {
                status,
                content_type,
                body,
                tokens,
                units,
                served,
            }) => {
                let code = (status >= 400).then_some("upstream_error");
                let mut record = draft.served(clock.as_ref(), &served, status, code);
                if let Some(tokens) = tokens {
                    record.tokens = tokens;
                    record.token_source = TokenSource::Provider;
                }
                // Models priced by the unit have a cost without tokens (an image, a minute).
                record.cost = gateway.answer_cost(&served.model, tokens, units);
                settle(reservation, tokens, record.cost, status);
                drop(hold);
                if content && let Ok(answer) = std::str::from_utf8(&body) {
                    trace::record_content(&draft.span, "gen_ai.output.messages", answer);
                }
                if status == 200
                    && let Some(slot) = &slot
                {
                    let cached = CachedAnswer::new(
                        content_type.clone(),
                        body.clone(),
                        tokens,
                        record.cost,
                        &served,
                        slot.policy.ttl,
                    );
                    self.models.answers().put(slot, cached, self.limiter);
                }
                self.usage(draft, record);
                if status == 200
                    && let Some(conversation) = conversation
                {
                    self.keep_answer(key, conversation, &body).await;
                }
                Ok(LlmAnswer::Complete {
                    status,
                    content_type,
                    body,
                })
            }
            Ok(Reply::Stream {
                content_type,
                mut relay,
                served,
            }) => {
                if let Some(reservation) = &reservation
                    && reservation.has_budget()
                    && asked.output_assumed
                {
                    meter_budget(&mut relay, reservation, &gateway, &inbound.model, &asked);
                }
                let usage = self.keygate.usage().clone();
                let keeper = conversation.map(|c| StreamKeeper::new(self, key, c));
                let answers = slot.map(|slot| {
                    relay.capture(slot.policy.max_entry_bytes);
                    (
                        slot,
                        self.models.answers().clone(),
                        content_type.clone(),
                        self.limiter.clone(),
                    )
                });
                let draft = draft.clone();
                let (prompt, prompt_cost, request, units) = (
                    asked.prompt,
                    asked.prompt_cost,
                    inbound.prompt(),
                    inbound.units,
                );
                relay.on_end(move |end: StreamEnd| {
                    // The request's slots in flight free with the stream.
                    drop(hold);
                    if let (Some(keeper), Some(answer), StreamOutcome::Completed) =
                        (keeper, &end.response, &end.outcome)
                    {
                        keeper.keep(answer);
                    }
                    let (status, code) = match &end.outcome {
                        StreamOutcome::Completed => (200, None),
                        StreamOutcome::Failed(_) => (200, Some("upstream_stream_interrupted")),
                        StreamOutcome::ClientGone => (499, Some("client_closed_request")),
                        StreamOutcome::Stopped { code } => (200, Some(*code)),
                    };
                    let mut record = draft.served(clock.as_ref(), &served, status, code);
                    record.ttft_ms = end.first_token.map(millis);
                    record.latency_ms = millis(end.elapsed.max(draft.started.elapsed()));
                    if let (Some((slot, answers, content_type, limiter)), Some(sent)) =
                        (answers, end.sent)
                    {
                        let tokens = end.reported;
                        let cost =
                            tokens.and_then(|t| gateway.answer_cost(&served.model, Some(t), units));
                        let cached = CachedAnswer::new(
                            content_type,
                            sent,
                            tokens,
                            cost,
                            &served,
                            slot.policy.ttl,
                        );
                        answers.put(&slot, cached, &limiter);
                    }
                    match end.reported {
                        Some(tokens) => {
                            record.tokens = tokens;
                            record.token_source = TokenSource::Provider;
                            record.cost = gateway.answer_cost(&served.model, Some(tokens), units);
                            settle(reservation, Some(tokens), record.cost, 200);
                            trace::record_outcome(&draft.span, &record);
                            usage.record(record);
                        }
                        None if end.text.is_empty() && status != 200 => {
                            // Nothing was generated, but the upstream read the prompt.
                            if let Some(reservation) = reservation {
                                reservation.settle(Some(prompt), prompt_cost);
                            }
                            trace::record_outcome(&draft.span, &record);
                            usage.record(record);
                        }
                        None => {
                            trace::record_outcome(&draft.span, &record);
                            usage.record_uncounted(ToCount {
                                record,
                                model: served.model.clone(),
                                prompt: request,
                                text: end.text,
                                units,
                                gateway,
                                reservation,
                            });
                        }
                    }
                });
                Ok(LlmAnswer::Stream {
                    content_type,
                    relay,
                })
            }
            Err(Failure {
                error:
                    GatewayError::Exhausted {
                        last: AttemptError::Untranslatable(_),
                        ..
                    },
                ..
            }) if inbound.endpoint == Endpoint::CountTokens => {
                // No deployment of the group is Anthropic's, which alone counts exactly: an
                // estimate with OpenAI's tokenizer. Nothing went upstream.
                if let Some(reservation) = reservation {
                    reservation.release();
                }
                match inbound.read() {
                    Ok(_) => {
                        let input_tokens = inbound.prompt().count(&inbound.model);
                        self.usage(draft, draft.record(clock.as_ref(), 200, None));
                        Ok(LlmAnswer::Counted { input_tokens })
                    }
                    Err(err) => Err(Refused::Untranslatable(err)),
                }
            }
            Err(Failure {
                error,
                attempts,
                deployment,
            }) => {
                // Every attempt failed or was refused: nothing is charged.
                if let Some(reservation) = reservation {
                    reservation.release();
                }
                let refused = Refused::Gateway(error);
                let mut record =
                    draft.record(clock.as_ref(), refused.status(), Some(refused.code()));
                record.attempts = attempts;
                record.deployment = deployment;
                self.usage(draft, record);
                Err(refused)
            }
        };
        (answer, Some(admission))
    }

    /// Admits the call under the limits of its key and project. A call that names no most
    /// output may still start on what is left of a budget: it is metered, and ended when the
    /// budget runs out.
    async fn admit(&self, key: &CachedKey, asked: &budget::Asked) -> Result<Admission, Refusal> {
        let clock = self.keygate.clock();
        let ask = |cost| Demand {
            hold: true,
            tokens: asked.tokens,
            cost,
        };
        if asked.least_cost.is_none() {
            return self.limiter.admit(key, clock, ask(asked.cost)).await;
        }
        match self
            .limiter
            .admit_uncounted(key, clock, ask(asked.cost))
            .await
        {
            Err(Refusal::Limit { limit, .. })
                if matches!(limit.counted, Counted::Budget(_) | Counted::Credits) =>
            {
                self.limiter.admit(key, clock, ask(asked.least_cost)).await
            }
            Err(refusal) => {
                self.limiter.count_refusal(&refusal);
                self.limiter.tell_exhausted(key, &refusal);
                Err(refusal)
            }
            admission => admission,
        }
    }
}
