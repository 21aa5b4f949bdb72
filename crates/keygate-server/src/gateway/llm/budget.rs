//! What an LLM call asks of the limits (its tokens and highest cost, estimated before the
//! call), how it settles after, and the meter that ends a stream whose budget ran out.

use std::sync::Arc;

use keygate_core::TokenCounts;
use keygate_llm::price::Units;
use keygate_llm::{Endpoint, Inbound};

use crate::cache::CachedKey;
use crate::gateway::Refused;
use crate::limits::{BudgetMeter, Reservation};

/// What a request asks of the limits, worked out only when a token rate or a budget applies.
pub(crate) struct Asked {
    pub(crate) tokens: Option<u64>,
    pub(crate) cost: Option<u64>,
    /// The prompt, estimated, and its highest cost (when a budget applies).
    pub(crate) prompt: u64,
    pub(crate) prompt_cost: Option<u64>,
    /// Whether the most output was assumed (the request named no maximum): a stream is then
    /// metered against its budget.
    pub(crate) output_assumed: bool,
    /// With the output assumed, the cost of the prompt and one token of output: what a
    /// metered stream needs to start.
    pub(crate) least_cost: Option<u64>,
}

/// Estimates the tokens and the highest cost of a request for the limits that need them:
/// the prompt with the tokenizer, the output at the request's own maximum (or the gateway's
/// default), priced at the dearest deployment that may serve it. With a budget and no known
/// price the request is refused: a budget that cannot be enforced is not skipped.
pub(crate) fn demand(
    key: &CachedKey,
    inbound: &Inbound,
    gateway: &keygate_llm::Gateway,
) -> Result<Asked, Refused> {
    let limits = [&key.record.limits, &key.project_limits];
    let wants_tokens = limits.iter().any(|l| !l.tokens.is_empty());
    let wants_cost = limits
        .iter()
        .any(|l| !l.budgets.is_empty() || l.credits.is_some());
    if !wants_tokens && !wants_cost || inbound.endpoint == Endpoint::CountTokens {
        return Ok(Asked {
            tokens: None,
            cost: None,
            prompt: 0,
            prompt_cost: None,
            output_assumed: false,
            least_cost: None,
        });
    }
    let prompt = inbound.prompt().count(&inbound.model);
    let (output, output_assumed) = match inbound.endpoint {
        Endpoint::Embeddings | Endpoint::Moderations => (0, false),
        _ => match inbound.max_output {
            Some(max) => (max, false),
            None => (gateway.tuning().default_max_tokens, true),
        },
    };
    let price = |completion| {
        let tokens = TokenCounts {
            prompt,
            completion,
            cached: 0,
        };
        gateway
            .highest_cost(&inbound.model, tokens, inbound.units)
            .map(|cost| u64::try_from(cost.0).unwrap_or(0))
    };
    let cost = if wants_cost {
        let Some(cost) = price(output) else {
            return Err(Refused::PriceUnknown {
                model: inbound.model.clone(),
            });
        };
        Some(cost)
    } else {
        None
    };
    Ok(Asked {
        // Without a most output of its own, a request reserves only its prompt against
        // token rates (the gateway's default would outweigh small rates): its output is
        // counted when it settles.
        tokens: wants_tokens.then_some(if output_assumed {
            prompt
        } else {
            prompt.saturating_add(output)
        }),
        cost,
        prompt,
        prompt_cost: if wants_cost { price(0) } else { None },
        output_assumed,
        // Only a stream whose output the relay reads can be metered; images, audio and
        // transcripts reserve their whole highest cost.
        least_cost: (wants_cost && output_assumed && inbound.stream && metered(inbound.endpoint))
            .then(|| price(1))
            .flatten(),
    })
}

/// Whether a stream of `endpoint` can be metered as it goes (its text is read).
fn metered(endpoint: Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::ChatCompletions
            | Endpoint::Messages
            | Endpoint::Responses
            | Endpoint::Completions
    )
}

/// Settles a reservation once the upstream answered: what it reported, or (for a success
/// without a count) what was reserved; a refusal used nothing.
pub(crate) fn settle(
    reservation: Option<Reservation>,
    tokens: Option<TokenCounts>,
    cost: Option<keygate_core::MicroUsd>,
    status: u16,
) {
    let Some(reservation) = reservation else {
        return;
    };
    if status >= 400 {
        reservation.release();
        return;
    }
    reservation.settle(
        tokens.map(|t| t.prompt.saturating_add(t.completion)),
        cost.map(|c| u64::try_from(c.0).unwrap_or(0)),
    );
}

/// Ends a stream whose output would cost more than its budget holds. The reservation
/// assumed only the prompt and a token of output; as the output nears what is reserved,
/// [`BudgetMeter`] asks the budgets for more — 1 024 tokens' worth at a time, less after a
/// refusal, down to 16 — and the stream ends with a `budget_exceeded` error event only when
/// not even that can be paid for. Output is estimated at three bytes a token, which errs
/// towards more tokens.
pub(crate) fn meter_budget(
    relay: &mut keygate_llm::Relay,
    reservation: &Reservation,
    gateway: &Arc<keygate_llm::Gateway>,
    alias: &str,
    asked: &Asked,
) {
    let gateway = gateway.clone();
    let alias = alias.to_owned();
    let cost_of = move |prompt: u64, completion: u64| {
        let tokens = TokenCounts {
            prompt,
            completion,
            cached: 0,
        };
        gateway
            .highest_cost(&alias, tokens, Units::default())
            .map_or(u64::MAX, |c| u64::try_from(c.0).unwrap_or(u64::MAX))
    };
    let prompt = asked.prompt;
    let mut meter = BudgetMeter::new(reservation, cost_of(0, 1_024), cost_of(0, 16));
    relay.meter(
        "budget_exceeded",
        "the budget of this key or its project ran out during the stream".to_owned(),
        move |bytes| meter.allow(cost_of(prompt, bytes / 3 + 1)),
    );
}
