//! The `limits` object that keys and projects carry, and its OpenAPI schema.
//!
//! The schema types mirror `keygate_core::KeyLimits` field for field: the core types stay free
//! of `utoipa`, and a test below checks that both serialise alike, so the two cannot drift.

use keygate_core::{KeyLimits, Per, Window};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::http::ApiError;
use crate::http::extract::redact_serde;

/// Limits of a key, or of a project (then counted for all its keys together); `{}` means
/// none. Kinds of limit not listed here are refused, never ignored.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct LimitsParam {
    /// Request rates, each counted on its own (`100/minute` and `5000/day` together): at most
    /// 4, one per period.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RateParam>,
    /// LLM token rates (prompt and completion together): at most 4, one per period. An
    /// estimate is reserved before the upstream call and the real count settled after.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenRateParam>,
    /// Most requests in flight at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100_000)]
    pub concurrency: Option<u32>,
    /// Uses per window, whole again when the next window starts (UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaParam>,
    /// Money per UTC day or calendar month, at most one per window: the highest cost of a
    /// request is reserved before it is sent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetParam>,
    /// Prepaid credits: the dollars granted in all (a decimal string), never reset; LLM spend
    /// draws them down. Add to them with `POST …/credits`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "50.00", pattern = r"^[0-9]+(\.[0-9]{1,6})?$")]
    pub credits: Option<String>,
}

/// At most `limit` requests per `per`, in bursts of up to `limit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateParam {
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub limit: u64,
    pub per: PerParam,
}

/// At most `limit` LLM tokens per `per`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenRateParam {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub limit: u64,
    pub per: PerParam,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PerParam {
    Second,
    Minute,
    Hour,
    Day,
}

/// `amount` uses per window.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaParam {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub amount: u64,
    pub per: WindowParam,
}

/// At most `usd` dollars per `per` (`day` or `month`), graded: soft thresholds that alert,
/// and an optional throttle point past which requests are slowed instead of stopped.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetParam {
    /// Dollars as a decimal string with at most six decimals (money is never a float), above
    /// zero and at most 1000000000.
    #[schema(example = "25.00", pattern = r"^[0-9]+(\.[0-9]{1,6})?$")]
    pub usd: String,
    pub per: WindowParam,
    /// Percentages (1 to 100) of the budget announced once per window as `budget.threshold`
    /// events; `[50, 80, 100]` when absent, `[]` for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = json!([50, 80, 100]))]
    pub alert_at: Option<Vec<u8>>,
    /// Past this percentage (1 to 99), the owner's LLM requests are held to `throttle` until
    /// the window ends; with `throttle`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 99)]
    pub throttle_at: Option<u8>,
    /// The request rate past `throttle_at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle: Option<RateParam>,
}

/// Dollars to add to prepaid credits.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddCreditsBody {
    /// Dollars as a decimal string with at most six decimals, above zero.
    #[schema(value_type = String, example = "10.00")]
    pub usd: keygate_core::MicroUsd,
}

/// An anomaly's throttle on a key: until `until`, its requests are held to `requests` (its own
/// request rates cut) instead of them. It lapses on its own; `resume` lifts it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThrottleView {
    pub until: String,
    pub requests: Vec<RateParam>,
    pub reason: String,
}

impl From<&keygate_core::KeyThrottle> for ThrottleView {
    fn from(throttle: &keygate_core::KeyThrottle) -> Self {
        Self {
            until: throttle.until.to_rfc3339(),
            requests: throttle.requests.iter().map(rate_param).collect(),
            reason: throttle.reason.clone(),
        }
    }
}

/// A window in UTC. Budgets take `day` or `month` only.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WindowParam {
    Minute,
    Hour,
    Day,
    Month,
}

fn per_param(per: Per) -> PerParam {
    match per {
        Per::Second => PerParam::Second,
        Per::Minute => PerParam::Minute,
        Per::Hour => PerParam::Hour,
        Per::Day => PerParam::Day,
    }
}

fn rate_param(rate: &keygate_core::RequestRate) -> RateParam {
    RateParam {
        limit: rate.limit,
        per: per_param(rate.per),
    }
}

fn window_param(window: Window) -> WindowParam {
    match window {
        Window::Minute => WindowParam::Minute,
        Window::Hour => WindowParam::Hour,
        Window::Day => WindowParam::Day,
        Window::Month => WindowParam::Month,
    }
}

impl From<&KeyLimits> for LimitsParam {
    fn from(limits: &KeyLimits) -> Self {
        Self {
            requests: limits.requests.iter().map(rate_param).collect(),
            tokens: limits
                .tokens
                .iter()
                .map(|rate| TokenRateParam {
                    limit: rate.limit,
                    per: per_param(rate.per),
                })
                .collect(),
            concurrency: limits.concurrency,
            quota: limits.quota.map(|quota| QuotaParam {
                amount: quota.amount,
                per: window_param(quota.per),
            }),
            budgets: limits
                .budgets
                .iter()
                .map(|budget| BudgetParam {
                    usd: budget.usd.to_string(),
                    per: window_param(budget.per),
                    alert_at: budget.alert_at.map(|p| p.iter().collect()),
                    throttle_at: budget.throttle_at,
                    throttle: budget.throttle.as_ref().map(rate_param),
                })
                .collect(),
            credits: limits.credits.map(|usd| usd.to_string()),
        }
    }
}

/// The kinds of limit a key or a project can carry.
const LIMIT_KINDS: [&str; 6] = [
    "requests",
    "tokens",
    "concurrency",
    "quota",
    "budgets",
    "credits",
];

/// Reads a `limits` object, naming the part that is wrong. It is read kind by kind rather than
/// in one go so that a message says `limits.tokens` or `limits.budgets`, and a kind keygate
/// does not know is refused by name. The bounds are checked later, by the service, on every
/// path that sets limits.
pub(crate) fn parse_limits(value: serde_json::Value) -> Result<KeyLimits, ApiError> {
    let serde_json::Value::Object(mut map) = value else {
        return Err(ApiError::validation(
            "limits: an object such as {\"requests\": [{\"limit\": 100, \"per\": \"minute\"}], \
             \"concurrency\": 5}",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !LIMIT_KINDS.contains(&k.as_str())) {
        return Err(ApiError::validation(format!(
            "limits: `{unknown}` is not a kind of limit keygate supports; the kinds are \
             `requests` and `tokens` (rates per second, minute, hour or day), `concurrency`, \
             `quota` (uses per minute, hour, day or month), `budgets` (dollars per day or \
             month) and `credits` (prepaid dollars)"
        )));
    }
    Ok(KeyLimits {
        requests: limit_part(&mut map, "requests")?.unwrap_or_default(),
        tokens: limit_part(&mut map, "tokens")?.unwrap_or_default(),
        concurrency: limit_part(&mut map, "concurrency")?,
        quota: limit_part(&mut map, "quota")?,
        budgets: limit_part(&mut map, "budgets")?.unwrap_or_default(),
        credits: limit_part(&mut map, "credits")?,
    })
}

/// One kind of limit out of a `limits` object; absent or `null` is `None`.
fn limit_part<T: DeserializeOwned>(
    map: &mut serde_json::Map<String, serde_json::Value>,
    kind: &str,
) -> Result<Option<T>, ApiError> {
    let Some(value) = map.remove(kind) else {
        return Ok(None);
    };
    serde_json::from_value(value).map_err(|err| {
        ApiError::validation(format!("limits.{kind}: {}", redact_serde(&err.to_string())))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn every_kind() -> serde_json::Value {
        json!({
            "requests": [{"limit": 100, "per": "minute"}],
            "tokens": [{"limit": 100000, "per": "minute"}, {"limit": 5000000, "per": "day"}],
            "concurrency": 5,
            "quota": {"amount": 1000, "per": "day"},
            "budgets": [{"usd": "2.50", "per": "day", "alert_at": []},
                        {"usd": "25", "per": "month", "alert_at": [50, 90], "throttle_at": 80,
                         "throttle": {"limit": 10, "per": "minute"}}],
            "credits": "50.00",
        })
    }

    #[test]
    fn the_schema_type_serialises_as_the_core_type() {
        let limits = parse_limits(every_kind()).unwrap().validate().unwrap();
        assert_eq!(limits.tokens.len(), 2);
        assert_eq!(limits.budgets[1].usd, keygate_core::MicroUsd(25_000_000));
        assert_eq!(
            serde_json::to_value(LimitsParam::from(&limits)).unwrap(),
            serde_json::to_value(&limits).unwrap()
        );
        assert_eq!(
            serde_json::to_value(LimitsParam::from(&KeyLimits::default())).unwrap(),
            json!({})
        );
        let shown = serde_json::to_value(LimitsParam::from(&limits)).unwrap();
        for kind in LIMIT_KINDS {
            assert!(shown.get(kind).is_some(), "{kind} is shown");
        }
    }

    #[test]
    fn a_wrong_part_is_named() {
        let message = |value| parse_limits(value).unwrap_err().message;
        assert!(message(json!({"tokens": [{"limit": "x"}]})).starts_with("limits.tokens:"));
        assert!(
            message(json!({"quota": {"amount": 1, "per": "week"}})).starts_with("limits.quota:")
        );
        let hidden = message(json!({"budgets": [{"usd": "sk-secret", "per": "day"}]}));
        assert!(hidden.starts_with("limits.budgets:"), "{hidden}");
        assert!(!hidden.contains("sk-secret"), "{hidden}");
        assert!(message(json!({"seats": 3})).contains("`seats` is not a kind"));
        assert!(message(json!([1])).starts_with("limits:"));
    }
}
