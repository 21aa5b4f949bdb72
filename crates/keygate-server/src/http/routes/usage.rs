//! `/admin/v1/usage`: gateway usage and cost, grouped by key, project, model or day.

use axum::Json;
use axum::extract::State;
use keygate_core::{KeyId, ProjectId, Timestamp, ValidationError};
use keygate_store::UsageGroup;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::error::ErrorBody;
use crate::http::extract::{AdminCaller, ApiQuery};
use crate::http::{ApiError, AppState};
use crate::service::UsageReportQuery;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// `key`, `project`, `model` (the default) or `day`.
    pub group_by: Option<String>,
    /// Start of the window, RFC 3339 (default: 30 days before `to`).
    pub from: Option<String>,
    /// End of the window, exclusive, RFC 3339 (default: now).
    pub to: Option<String>,
    pub project: Option<String>,
    pub key: Option<String>,
    pub model: Option<String>,
}

/// The totals of one group.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageRowView {
    /// The key id, project id, model, or day (`YYYY-MM-DD`).
    pub group: String,
    pub requests: u64,
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    /// Cost in US dollars, as a decimal string (exact).
    pub cost_usd: String,
    /// Cost in millionths of a dollar.
    pub cost_micros: i64,
    /// Requests of models without a known price (not in the cost).
    pub unpriced_requests: u64,
    /// The average latency in milliseconds, over the requests whose latency is kept; absent
    /// when there is none.
    pub avg_latency_ms: Option<u64>,
    /// Requests answered from keygate's answer cache (nothing spent; counted in `requests`).
    pub cache_hits: u64,
    /// What those answers cost when they were made: the money the cache saved, in US dollars.
    pub saved_usd: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub group_by: String,
    /// The window's start, RFC 3339.
    pub from: String,
    /// The window's end (exclusive), RFC 3339.
    pub to: String,
    pub data: Vec<UsageRowView>,
    /// Whether there were more groups than a report returns (1000): narrow the window or
    /// filter.
    pub truncated: bool,
}

fn parse_time(field: &'static str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|text| {
        Timestamp::parse_rfc3339(text).ok_or_else(|| {
            ValidationError::new(field, "an RFC 3339 time, e.g. 2030-01-31T00:00:00Z").into()
        })
    })
    .transpose()
}

/// Usage and cost of gateway requests, largest cost first (days in order).
#[utoipa::path(get, path = "/admin/v1/usage", tag = "usage", params(UsageParams),
    responses((status = 200, body = UsageReport), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn report(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> Result<Json<UsageReport>, ApiError> {
    let group_by = match params.group_by.as_deref() {
        None => UsageGroup::Model,
        Some(text) => UsageGroup::parse(text).ok_or_else(|| {
            ApiError::from(ValidationError::new(
                "group_by",
                "one of key, project, model, day",
            ))
        })?,
    };
    let query = UsageReportQuery {
        group_by,
        project: params
            .project
            .as_deref()
            .map(ProjectId::parse)
            .transpose()?,
        key: params.key.as_deref().map(KeyId::parse).transpose()?,
        model: params.model,
        from: parse_time("from", params.from.as_deref())?,
        to: parse_time("to", params.to.as_deref())?,
    };
    let (from, to, rows) = state.keygate.usage_report(&caller, query).await?;
    let truncated =
        i64::try_from(rows.len()).unwrap_or(i64::MAX) >= keygate_store::MAX_USAGE_GROUPS;
    Ok(Json(UsageReport {
        truncated,
        group_by: group_by.as_str().to_owned(),
        from: from.to_rfc3339(),
        to: to.to_rfc3339(),
        data: rows
            .into_iter()
            .map(|row| UsageRowView {
                group: row.group,
                requests: row.requests,
                errors: row.errors,
                prompt_tokens: row.prompt_tokens,
                completion_tokens: row.completion_tokens,
                cached_tokens: row.cached_tokens,
                cost_usd: row.cost.to_string(),
                cost_micros: row.cost.0,
                unpriced_requests: row.unpriced,
                avg_latency_ms: row.latency_ms,
                cache_hits: row.cache_hits,
                saved_usd: row.saved.to_string(),
            })
            .collect(),
    }))
}
