//! `POST /v1/keys/verify`: for services that check keys themselves.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;

use crate::http::dto::{LimitStateView, VerifyBody, VerifyResponse};
use crate::http::error::ErrorBody;
use crate::http::extract::{ApiJson, PUBLISHABLE_FORBIDDEN};
use crate::http::{ApiError, AppState};
use crate::limits::{Counted, Demand, Refusal};
use crate::service::{VerifyOutcome, VerifyQuery};

/// Verify an API key, optionally for a permission and a client address. Answers 200 with
/// `valid: false` and a stable code for a refused key.
#[utoipa::path(post, path = "/v1/keys/verify", tag = "verify",
    request_body = VerifyBody,
    responses((status = 200, body = VerifyResponse), (status = 400, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let ip = body
        .ip
        .as_deref()
        .map(str::parse::<IpAddr>)
        .transpose()
        .map_err(|_| ApiError::validation("ip: an IPv4 or IPv6 address"))?;
    let outcome = state
        .keygate
        .verify(VerifyQuery {
            key: &body.key,
            permission: body.permission.as_deref(),
            ip,
        })
        .await?;
    Ok(Json(match outcome {
        // A verification is a use: it counts against the request rates and quotas of the key
        // and its project. Token rates and budgets are shown as they stand.
        // A publishable key is public: valid only for a caller that says it expects one.
        VerifyOutcome::Valid(key) if key.record.is_publishable() && !body.allow_publishable => {
            VerifyResponse::refused(PUBLISHABLE_FORBIDDEN, Some(&key.record.id))
        }
        VerifyOutcome::Valid(key) => {
            let clock = state.keygate.clock();
            match state.limiter.admit(&key, clock, Demand::default()).await {
                Ok(admission) => {
                    let mut limits = admission.limits.clone();
                    let metered = [&key.record.limits, &key.project_limits]
                        .iter()
                        .any(|l| !l.tokens.is_empty() || !l.budgets.is_empty());
                    if metered {
                        limits.extend(
                            state
                                .limiter
                                .peek(&key, clock.as_ref())
                                .await
                                .into_iter()
                                .filter(|l| {
                                    matches!(l.counted, Counted::Tokens(_) | Counted::Budget(_))
                                }),
                        );
                    }
                    VerifyResponse {
                        ratelimit: admission.requests().map(|rate| ratelimit(&rate)),
                        limits: Some(limits.iter().map(LimitStateView::from).collect()),
                        ..VerifyResponse::valid(&key.record)
                    }
                }
                Err(refusal) => {
                    let (rate, limits) = match &refusal {
                        Refusal::Limit { limit, .. } => (
                            matches!(limit.counted, Counted::Requests(_))
                                .then(|| ratelimit(&limit.state)),
                            Some(vec![LimitStateView::from(limit)]),
                        ),
                        _ => (None, None),
                    };
                    VerifyResponse {
                        ratelimit: rate,
                        limits,
                        ..VerifyResponse::refused(refusal.code(), Some(&key.record.id))
                    }
                }
            }
        }
        // A refused key's details stay private: whoever holds a revoked key learns only
        // which key it was, to find it in the admin API.
        VerifyOutcome::Invalid(rejection, key) => {
            VerifyResponse::refused(rejection.code(), key.as_ref().map(|k| &k.record.id))
        }
    }))
}

/// A rate's state as the verify API shows it.
fn ratelimit(state: &keygate_limits::State) -> serde_json::Value {
    serde_json::json!({
        "limit": state.limit,
        "remaining": state.remaining,
        "reset_ms": u64::try_from(state.reset_after.as_millis()).unwrap_or(u64::MAX),
    })
}
