//! The usage page — requests, errors, tokens and spend by day, model, key or project over a
//! chosen span, as a chart and a table — and the overview, the console's home: the last two
//! weeks by day, the top keys and models, the deployments' health and the open anomalies.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keygate_core::{MicroUsd, Timestamp};
use keygate_store::{UsageGroup, UsageRow};
use serde::Deserialize;

use super::chart::Chart;
use super::pages::{self, AnomalyLine, Chrome, DeploymentLine, StatusOption, UsageLine};
use super::session::Signed;
use crate::anomalies::AnomalyQuery;
use crate::http::AppState;
use crate::service::UsageReportQuery;

const DAY: Duration = Duration::from_secs(86_400);
/// Most groups drawn in a chart (the table lists them all).
const DRAWN: usize = 20;

fn dollars(cost: MicroUsd) -> String {
    format!(
        "{}.{:02}",
        cost.0 / 1_000_000,
        (cost.0 % 1_000_000) / 10_000
    )
}

/// What a chart shows of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    Requests,
    Errors,
    Tokens,
    Spend,
    Latency,
}

impl Measure {
    const ALL: [(Self, &'static str, &'static str); 5] = [
        (Self::Requests, "requests", "Requests"),
        (Self::Errors, "errors", "Errors"),
        (Self::Tokens, "tokens", "Tokens"),
        (Self::Spend, "spend", "Spend (USD)"),
        (Self::Latency, "latency", "Average latency (ms)"),
    ];

    fn parse(text: &str) -> Self {
        Self::ALL
            .iter()
            .find(|(_, name, _)| *name == text)
            .map_or(Self::Requests, |(m, _, _)| *m)
    }

    fn of(self, row: &UsageRow) -> (f64, String) {
        match self {
            Self::Requests => (row.requests as f64, row.requests.to_string()),
            Self::Errors => (row.errors as f64, row.errors.to_string()),
            Self::Tokens => {
                let tokens = row.prompt_tokens + row.completion_tokens;
                (tokens as f64, tokens.to_string())
            }
            Self::Spend => (row.cost.0 as f64, format!("${}", dollars(row.cost))),
            Self::Latency => row.latency_ms.map_or((0.0, "—".to_owned()), |ms| {
                (ms as f64, format!("{ms} ms"))
            }),
        }
    }

    fn label(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(m, _, _)| *m == self)
            .map_or("", |(_, _, label)| label)
    }
}

fn points(rows: &[UsageRow], measure: Measure) -> Vec<(String, f64, String)> {
    rows.iter()
        .map(|row| {
            let (value, text) = measure.of(row);
            (row.group.clone(), value, text)
        })
        .collect()
}

fn lines(rows: &[UsageRow], group: UsageGroup) -> Vec<UsageLine> {
    rows.iter()
        .map(|row| UsageLine {
            link: match group {
                UsageGroup::Key => Some(format!("/ui/keys/{}", row.group)),
                _ => None,
            },
            group: row.group.clone(),
            requests: row.requests,
            errors: row.errors,
            prompt: row.prompt_tokens,
            completion: row.completion_tokens,
            spend: dollars(row.cost),
            latency: row
                .latency_ms
                .map_or_else(|| "—".to_owned(), |ms| ms.to_string()),
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct UsageParams {
    #[serde(default)]
    group: String,
    #[serde(default)]
    measure: String,
    days: Option<u32>,
    /// A range of UTC days (`YYYY-MM-DD`, both included), over `days` when given.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// The window of a range of UTC days, both included: `[from 00:00, the day after to 00:00)`.
fn day_range(from: &str, to: &str) -> Result<(Timestamp, Timestamp), crate::http::ApiError> {
    let day = |text: &str| Timestamp::parse_rfc3339(&format!("{}T00:00:00Z", text.trim()));
    let bad = || crate::http::ApiError::validation("from and to are days (YYYY-MM-DD), from first");
    let (Some(start), Some(last)) = (day(from), day(to)) else {
        return Err(bad());
    };
    let end = Timestamp::from_millis(last.as_millis() + 86_400_000);
    if end <= start || end.as_millis() - start.as_millis() > 400 * 86_400_000 {
        return Err(bad());
    }
    Ok((start, end))
}

fn options(choices: &[(&'static str, &'static str)], chosen: &str) -> Vec<StatusOption> {
    choices
        .iter()
        .map(|(value, label)| StatusOption {
            value,
            label,
            selected: *value == chosen,
        })
        .collect()
}

/// Usage over a span, grouped as asked.
pub(super) async fn usage(
    State(state): State<AppState>,
    signed: Signed,
    Query(params): Query<UsageParams>,
) -> Response {
    let group = UsageGroup::parse(&params.group).unwrap_or(UsageGroup::Day);
    let measure = Measure::parse(&params.measure);
    let days = params.days.unwrap_or(30).clamp(1, 365);
    let (from, to) = if params.from.trim().is_empty() && params.to.trim().is_empty() {
        let to = state.keygate.clock().now();
        (
            Timestamp::from_millis(to.as_millis() - i64::from(days) * 86_400_000),
            to,
        )
    } else {
        match day_range(&params.from, &params.to) {
            Ok(range) => range,
            Err(err) => return pages::error(err, Some(signed.who()), "/ui/usage"),
        }
    };
    let query = UsageReportQuery {
        group_by: group,
        project: None,
        key: None,
        model: None,
        from: Some(from),
        to: Some(to),
    };
    let (from, to, mut rows) = match state.keygate.usage_report(&signed.user.caller, query).await {
        Ok(found) => found,
        Err(err) => return pages::error(err, Some(signed.who()), "/ui"),
    };
    let title = format!("{} by {}", measure.label(), group.as_str());
    let chart = if group == UsageGroup::Day {
        rows.sort_by(|a, b| a.group.cmp(&b.group));
        Chart::columns(title, &points(&rows, measure))
    } else {
        let mut drawn: Vec<&UsageRow> = rows.iter().collect();
        drawn.sort_by(|a, b| measure.of(b).0.total_cmp(&measure.of(a).0));
        drawn.truncate(DRAWN);
        let drawn: Vec<UsageRow> = drawn.into_iter().cloned().collect();
        Chart::rows(title, &points(&drawn, measure))
    };
    let page = pages::Usage {
        chrome: Chrome::new("Usage", "usage", Some(signed.who())),
        groups: options(
            &[
                ("day", "day"),
                ("model", "model"),
                ("key", "key"),
                ("project", "project"),
            ],
            group.as_str(),
        ),
        measures: options(
            &Measure::ALL.map(|(_, name, label)| (name, label)),
            Measure::ALL
                .iter()
                .find(|(m, _, _)| *m == measure)
                .map_or("requests", |(_, name, _)| name),
        ),
        spans: options(
            &[
                ("1", "day"),
                ("7", "7 days"),
                ("30", "30 days"),
                ("90", "90 days"),
                ("365", "year"),
            ],
            &days.to_string(),
        ),
        group: group.as_str(),
        first_day: params.from.trim().to_owned(),
        last_day: params.to.trim().to_owned(),
        from: from.to_rfc3339(),
        to: to.to_rfc3339(),
        rows: lines(&rows, group),
        chart,
    };
    pages::render(StatusCode::OK, &page)
}

/// A key's use by day over the last 30 days: a chart of its requests, and the table.
pub(super) async fn key_usage(
    state: &AppState,
    caller: &crate::service::Caller,
    key: &keygate_core::KeyId,
) -> Result<(Chart, Vec<UsageLine>), crate::ServiceError> {
    let now = state.keygate.clock().now();
    let query = UsageReportQuery {
        group_by: UsageGroup::Day,
        project: None,
        key: Some(key.clone()),
        model: None,
        from: Some(Timestamp::from_millis(now.as_millis() - 30 * 86_400_000)),
        to: Some(now),
    };
    let (_, _, mut rows) = state.keygate.usage_report(caller, query).await?;
    rows.sort_by(|a, b| a.group.cmp(&b.group));
    let chart = Chart::columns("Requests per day", &points(&rows, Measure::Requests));
    Ok((chart, lines(&rows, UsageGroup::Day)))
}

/// The console's home.
pub(super) async fn overview(State(state): State<AppState>, signed: Signed) -> Response {
    let caller = &signed.user.caller;
    let now = state.keygate.clock().now();
    let report = |group, days: u32| UsageReportQuery {
        group_by: group,
        project: None,
        key: None,
        model: None,
        from: Some(Timestamp::from_millis(
            now.as_millis() - i64::from(days) * DAY.as_millis() as i64,
        )),
        to: Some(now),
    };
    let keygate = &state.keygate;
    let by_day = keygate
        .usage_report(caller, report(UsageGroup::Day, 14))
        .await;
    let by_key = keygate
        .usage_report(caller, report(UsageGroup::Key, 7))
        .await;
    let by_model = keygate
        .usage_report(caller, report(UsageGroup::Model, 7))
        .await;
    let (by_day, by_key, by_model) = match (by_day, by_key, by_model) {
        (Ok(day), Ok(key), Ok(model)) => (day.2, key.2, model.2),
        (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => {
            return pages::error(err, Some(signed.who()), "/ui/keys");
        }
    };
    let mut by_day = by_day;
    by_day.sort_by(|a, b| a.group.cmp(&b.group));
    let top = |mut rows: Vec<UsageRow>, group| {
        rows.sort_by(|a, b| b.cost.cmp(&a.cost).then(b.requests.cmp(&a.requests)));
        rows.truncate(5);
        lines(&rows, group)
    };
    let open = state
        .anomalies
        .list(
            caller,
            AnomalyQuery {
                acknowledged: Some(false),
                limit: Some(5),
                ..AnomalyQuery::default()
            },
        )
        .await
        .map(|(found, _)| found)
        .unwrap_or_default();
    let deployments = state
        .gateway
        .current()
        .status()
        .into_iter()
        .map(|d| DeploymentLine {
            alias: d.alias,
            deployment: d.deployment,
            in_flight: d.in_flight,
            latency_ms: format!("{:.1}", d.latency_micros as f64 / 1000.0),
            health: if d.breaker_open {
                "breaker open"
            } else {
                "serving"
            },
        })
        .collect();
    let page = pages::Overview {
        chrome: Chrome::new("Overview", "overview", Some(signed.who())),
        requests: Chart::columns(
            "Requests per day, last 14 days",
            &points(&by_day, Measure::Requests),
        ),
        spend: Chart::columns(
            "Spend per day (USD), last 14 days",
            &points(&by_day, Measure::Spend),
        ),
        tokens: Chart::columns(
            "Tokens per day, last 14 days",
            &points(&by_day, Measure::Tokens),
        ),
        latency: Chart::columns(
            "Average latency per day (ms), last 14 days",
            &points(&by_day, Measure::Latency),
        ),
        errors: by_day.iter().map(|r| r.errors).sum(),
        total: by_day.iter().map(|r| r.requests).sum(),
        top_keys: top(by_key, UsageGroup::Key),
        top_models: top(by_model, UsageGroup::Model),
        deployments,
        anomalies: open.iter().map(AnomalyLine::from).collect(),
    };
    pages::render(StatusCode::OK, &page)
}
