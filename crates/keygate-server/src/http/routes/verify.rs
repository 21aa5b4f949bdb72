//! `POST /v1/keys/verify`: for services that check keys themselves.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;

use crate::http::dto::{AccessTokenView, LimitStateView, VerifyBody, VerifyResponse};
use crate::http::error::ErrorBody;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState};
use crate::limits::Counted;
use crate::service::{Publishable, Verdict, VerifyQuery};

/// Verify an API key or a keygate access token, optionally for a permission and a client address. Answers 200 with
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
    let query = VerifyQuery {
        key: &body.key,
        permission: body.permission.as_deref(),
        ip,
        audience: body.audience.as_deref(),
        certificate: None,
    };
    let publishable = if body.allow_publishable {
        Publishable::Allowed
    } else {
        Publishable::Refused
    };
    let verdict = state
        .keygate
        .verify_use(&state.limiter, query, publishable)
        .await?;
    Ok(Json(match verdict {
        Verdict::Valid {
            key,
            requests,
            limits,
        } => VerifyResponse {
            ratelimit: requests.map(|rate| ratelimit(&rate)),
            limits: Some(limits.iter().map(LimitStateView::from).collect()),
            token: key.token.as_ref().map(|token| AccessTokenView {
                id: token.jti.clone(),
                expires_at: token.expires_at.to_rfc3339(),
            }),
            ..VerifyResponse::valid(&key.record)
        },
        Verdict::Refused { key, code, limit } => VerifyResponse {
            ratelimit: limit
                .filter(|l| matches!(l.counted, Counted::Requests(_)))
                .map(|l| ratelimit(&l.state)),
            limits: limit.map(|l| vec![LimitStateView::from(&l)]),
            ..VerifyResponse::refused(code, Some(&key.record.id))
        },
        // A refused key's details stay private: whoever holds a revoked key learns only
        // which key it was, to find it in the admin API.
        Verdict::Invalid(rejection, key) => {
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
