//! The limits a key or a project carries: request and token rates (any number of periods at
//! once), a cap on requests in flight, a quota of uses per window and budgets of money per day
//! or month. A project's limits count all its keys together. Checked on the hot path by
//! `keygate-limits`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{MicroUsd, ValidationError};

/// A period a rate is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    Second,
    Minute,
    Hour,
    Day,
}

impl Per {
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// Reads `second`, `minute`, `hour` or `day` (or `s`, `min`, `h`, `d`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "second" | "s" | "sec" => Some(Self::Second),
            "minute" | "min" | "m" => Some(Self::Minute),
            "hour" | "h" => Some(Self::Hour),
            "day" | "d" => Some(Self::Day),
            _ => None,
        }
    }
}

/// At most `limit` requests (or LLM tokens) per `per`, in bursts of up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestRate {
    pub limit: u64,
    pub per: Per,
}

impl RequestRate {
    /// Reads `100/minute` (or `100/min`, `5/s`, …), as the CLI takes it.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        const EXPECTED: &str = "LIMIT/PERIOD, such as 100/minute (second, minute, hour, day)";
        let (limit, per) = text
            .split_once('/')
            .ok_or_else(|| ValidationError::new("limits.requests", EXPECTED))?;
        let rate = Self {
            limit: limit
                .trim()
                .parse()
                .map_err(|_| ValidationError::new("limits.requests", EXPECTED))?,
            per: Per::parse(per.trim())
                .ok_or_else(|| ValidationError::new("limits.requests", EXPECTED))?,
        };
        Ok(rate)
    }
}

impl std::fmt::Display for RequestRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.limit, self.per.as_str())
    }
}

/// The window a quota or a budget counts over, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Minute,
    Hour,
    Day,
    Month,
}

impl Window {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// Reads `minute`, `hour`, `day` or `month` (or `min`, `h`, `d`, `mo`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "minute" | "min" => Some(Self::Minute),
            "hour" | "h" => Some(Self::Hour),
            "day" | "d" => Some(Self::Day),
            "month" | "mo" => Some(Self::Month),
            _ => None,
        }
    }
}

/// `amount` uses per window, whole again when the next window starts (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub amount: u64,
    pub per: Window,
}

impl Quota {
    /// Reads `1000/day` as the CLI takes it.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        const EXPECTED: &str = "AMOUNT/WINDOW, such as 1000/day (minute, hour, day, month)";
        let invalid = || ValidationError::new("limits.quota", EXPECTED);
        let (amount, per) = text.split_once('/').ok_or_else(invalid)?;
        Ok(Self {
            amount: amount.trim().parse().map_err(|_| invalid())?,
            per: Window::parse(per.trim()).ok_or_else(invalid)?,
        })
    }
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.amount, self.per.as_str())
    }
}

/// At most `usd` dollars of LLM usage per UTC day or calendar month (written as a decimal
/// string, `"25.00"`: money is never a float). A budget is graded: `alert_at` are soft
/// thresholds, percentages of it announced once per window (`budget.threshold`; 50, 80 and
/// 100 unless set); past `throttle_at` percent, its owner's LLM requests are held to the
/// `throttle` rate instead of stopped; at the whole amount they are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub usd: MicroUsd,
    pub per: Window,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_at: Option<Percents>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_at: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<RequestRate>,
}

/// Percentages from 1 to 100, each at most once, written as a list (`[50, 80, 100]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percents(u128);

impl Percents {
    /// 50, 80 and 100: a budget's thresholds unless it says.
    pub const DEFAULT: Self = Self((1 << 50) | (1 << 80) | (1 << 100));

    /// The percentages, `None` if one is outside 1 to 100.
    pub fn new(percents: impl IntoIterator<Item = u8>) -> Option<Self> {
        let mut bits = 0u128;
        for percent in percents {
            if !(1..=100).contains(&percent) {
                return None;
            }
            bits |= 1 << percent;
        }
        Some(Self(bits))
    }

    /// The percentages, lowest first.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (1..=100u8).filter(move |p| self.0 & (1 << p) != 0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Serialize for Percents {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Percents {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let list = Vec::<u8>::deserialize(deserializer)?;
        if list.len() > 100 {
            return Err(serde::de::Error::custom("at most 100 percentages"));
        }
        Self::new(list)
            .ok_or_else(|| serde::de::Error::custom("percentages are whole numbers from 1 to 100"))
    }
}

impl Budget {
    /// A budget of `usd` per `per`, with the default thresholds and no throttle.
    pub fn new(usd: MicroUsd, per: Window) -> Self {
        Self {
            usd,
            per,
            alert_at: None,
            throttle_at: None,
            throttle: None,
        }
    }

    /// The thresholds announced: `alert_at`, or 50, 80 and 100 %.
    pub fn alerts(&self) -> Percents {
        self.alert_at.unwrap_or(Percents::DEFAULT)
    }

    /// The throttle point (percent) and the rate past it, when set.
    pub fn throttled(&self) -> Option<(u8, RequestRate)> {
        self.throttle_at.zip(self.throttle)
    }

    /// Reads `25/month` or `2.50/day` (dollars) as the CLI takes it, optionally graded:
    /// `100/month;alert=50,90;throttle=80:10/minute` (alerts at 50 and 90 %, and past 80 %
    /// at most 10 requests a minute).
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        const EXPECTED: &str = "DOLLARS/WINDOW[;alert=P,P…][;throttle=P:LIMIT/PERIOD], such as \
                                25/month or 100/month;alert=50,90;throttle=80:10/minute";
        let invalid = || ValidationError::new("limits.budgets", EXPECTED);
        let mut parts = text.split(';');
        let (usd, per) = parts
            .next()
            .unwrap_or("")
            .split_once('/')
            .ok_or_else(invalid)?;
        let mut budget = Self::new(
            usd.trim()
                .trim_start_matches('$')
                .parse()
                .map_err(|_| invalid())?,
            Window::parse(per.trim()).ok_or_else(invalid)?,
        );
        for option in parts {
            let (name, value) = option.split_once('=').ok_or_else(invalid)?;
            match name.trim() {
                "alert" => {
                    let percents = value
                        .split(',')
                        .filter(|p| !p.trim().is_empty())
                        .map(|p| p.trim().trim_end_matches('%').parse::<u8>())
                        .collect::<Result<Vec<u8>, _>>()
                        .map_err(|_| invalid())?;
                    budget.alert_at = Some(Percents::new(percents).ok_or_else(invalid)?);
                }
                "throttle" => {
                    let (at, rate) = value.split_once(':').ok_or_else(invalid)?;
                    budget.throttle_at = Some(
                        at.trim()
                            .trim_end_matches('%')
                            .parse()
                            .map_err(|_| invalid())?,
                    );
                    budget.throttle = Some(RequestRate::parse(rate).map_err(|_| invalid())?);
                }
                _ => return Err(invalid()),
            }
        }
        Ok(budget)
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "${}/{}", self.usd, self.per.as_str())?;
        if let Some(alerts) = self.alert_at {
            let list: Vec<String> = alerts.iter().map(|p| p.to_string()).collect();
            write!(f, ";alert={}", list.join(","))?;
        }
        if let Some((at, rate)) = self.throttled() {
            write!(f, ";throttle={at}:{rate}")?;
        }
        Ok(())
    }
}

/// The limits of a key, or of a project (then counted for all its keys together). Empty
/// means none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    /// Request rates, each counted on its own (`100/minute` and `5000/day` together).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestRate>,
    /// LLM token rates (prompt and completion together): an estimate is reserved before the
    /// upstream call and the real count settled after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<RequestRate>,
    /// Most requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Uses per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// Money per day or month, at most one per window: the highest cost of a request is
    /// reserved before it is sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<Budget>,
    /// Prepaid credits: the dollars granted so far (topped up through the API), never reset.
    /// LLM spend draws them down like a budget; at zero, requests are refused
    /// (`credits_exhausted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<MicroUsd>,
}

/// A throttle an anomaly put on a key: until `until`, its requests are also held to
/// `requests` (a fraction of its own request rates when it was set). It lapses on its own;
/// resuming the key lifts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyThrottle {
    pub until: crate::Timestamp,
    pub requests: Vec<RequestRate>,
    pub reason: String,
}

impl KeyThrottle {
    /// `limits`' request rates cut to `percent` of themselves (at least one request each), or
    /// `fallback` for a key without any.
    pub fn cut(
        limits: &KeyLimits,
        percent: u8,
        fallback: RequestRate,
        until: crate::Timestamp,
        reason: &str,
    ) -> Self {
        let requests = if limits.requests.is_empty() {
            vec![fallback]
        } else {
            limits
                .requests
                .iter()
                .map(|rate| RequestRate {
                    limit: (rate.limit.saturating_mul(u64::from(percent)) / 100).max(1),
                    per: rate.per,
                })
                .collect()
        };
        Self {
            until,
            requests,
            reason: reason.to_owned(),
        }
    }

    pub fn active(&self, now: crate::Timestamp) -> bool {
        self.until > now
    }
}

/// Most request rates on one key.
pub const MAX_RATES: usize = 4;
/// Largest request limit: far beyond any real rate, far from overflow.
pub const MAX_RATE_LIMIT: u64 = 1_000_000_000;
/// Largest token limit.
pub const MAX_TOKEN_LIMIT: u64 = 1_000_000_000_000;
/// Largest concurrency cap.
pub const MAX_CONCURRENCY: u32 = 100_000;
/// Largest quota.
pub const MAX_QUOTA: u64 = 1_000_000_000_000;
/// Largest budget: a billion dollars, in micro-dollars.
pub const MAX_BUDGET: MicroUsd = MicroUsd(1_000_000_000 * 1_000_000);

/// At most [`MAX_RATES`] rates, one per period, each from 1 to `max`.
fn validate_rates(
    rates: &[RequestRate],
    field: &'static str,
    max: u64,
    bounds: &'static str,
) -> Result<(), ValidationError> {
    if rates.len() > MAX_RATES {
        return Err(ValidationError::new(
            field,
            "at most 4 rates, one per period",
        ));
    }
    for (i, rate) in rates.iter().enumerate() {
        if rate.limit == 0 || rate.limit > max {
            return Err(ValidationError::new(field, bounds));
        }
        if rates[..i].iter().any(|other| other.per == rate.per) {
            return Err(ValidationError::new(field, "at most one rate per period"));
        }
    }
    Ok(())
}

impl KeyLimits {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Checks the bounds: at most 4 request and 4 token rates, one per period each (requests
    /// 1 to 10⁹, tokens 1 to 10¹²); a concurrency cap of 1 to 100 000; a quota of 1 to 10¹²
    /// uses; at most one budget per window (day or month), above zero.
    pub fn validate(self) -> Result<Self, ValidationError> {
        validate_rates(
            &self.requests,
            "limits.requests",
            MAX_RATE_LIMIT,
            "a limit of 1 to 1000000000 requests",
        )?;
        validate_rates(
            &self.tokens,
            "limits.tokens",
            MAX_TOKEN_LIMIT,
            "a limit of 1 to 1000000000000 tokens",
        )?;
        if let Some(quota) = self.quota
            && (quota.amount == 0 || quota.amount > MAX_QUOTA)
        {
            return Err(ValidationError::new(
                "limits.quota",
                "an amount of 1 to 1000000000000 uses",
            ));
        }
        for (i, budget) in self.budgets.iter().enumerate() {
            if !matches!(budget.per, Window::Day | Window::Month) {
                return Err(ValidationError::new(
                    "limits.budgets",
                    "a budget is per day or per month",
                ));
            }
            if budget.usd.0 <= 0 || budget.usd > MAX_BUDGET {
                return Err(ValidationError::new(
                    "limits.budgets",
                    "a budget above zero, up to 1000000000 dollars",
                ));
            }
            match (budget.throttle_at, budget.throttle) {
                (None, None) => {}
                (Some(at), Some(rate)) => {
                    if !(1..=99).contains(&at) {
                        return Err(ValidationError::new(
                            "limits.budgets",
                            "throttle_at is a percentage from 1 to 99",
                        ));
                    }
                    validate_rates(
                        &[rate],
                        "limits.budgets",
                        MAX_RATE_LIMIT,
                        "a throttle of 1 to 1000000000 requests",
                    )?;
                }
                _ => {
                    return Err(ValidationError::new(
                        "limits.budgets",
                        "throttle_at and throttle go together",
                    ));
                }
            }
            if self.budgets[..i]
                .iter()
                .any(|other| other.per == budget.per)
            {
                return Err(ValidationError::new(
                    "limits.budgets",
                    "at most one budget per window",
                ));
            }
        }
        if let Some(credits) = self.credits
            && (credits.0 < 0 || credits > MAX_BUDGET)
        {
            return Err(ValidationError::new(
                "limits.credits",
                "credits of 0 to 1000000000 dollars",
            ));
        }
        if let Some(cap) = self.concurrency
            && (cap == 0 || cap > MAX_CONCURRENCY)
        {
            return Err(ValidationError::new(
                "limits.concurrency",
                "1 to 100000 requests in flight",
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        let rate = RequestRate::parse("100/min").unwrap();
        assert_eq!(
            rate,
            RequestRate {
                limit: 100,
                per: Per::Minute
            }
        );
        assert_eq!(rate.to_string(), "100/minute");
        assert!(RequestRate::parse("100").is_err());
        assert!(RequestRate::parse("x/minute").is_err());
        assert!(RequestRate::parse("5/fortnight").is_err());
    }

    #[test]
    fn bounds_are_checked() {
        let ok = KeyLimits {
            requests: vec![
                RequestRate::parse("10/s").unwrap(),
                RequestRate::parse("1000/day").unwrap(),
            ],
            concurrency: Some(4),
            ..KeyLimits::default()
        };
        assert!(ok.clone().validate().is_ok());
        let twice = KeyLimits {
            requests: vec![
                RequestRate::parse("10/s").unwrap(),
                RequestRate::parse("20/s").unwrap(),
            ],
            ..KeyLimits::default()
        };
        assert_eq!(twice.validate().unwrap_err().field, "limits.requests");
        let zero = KeyLimits {
            requests: vec![RequestRate {
                limit: 0,
                per: Per::Day,
            }],
            ..KeyLimits::default()
        };
        assert!(zero.validate().is_err());
        let cap = KeyLimits {
            concurrency: Some(0),
            ..KeyLimits::default()
        };
        assert_eq!(cap.validate().unwrap_err().field, "limits.concurrency");
        let text = serde_json::to_string(&ok).unwrap();
        assert_eq!(
            text,
            r#"{"requests":[{"limit":10,"per":"second"},{"limit":1000,"per":"day"}],"concurrency":4}"#
        );
        assert!(
            serde_json::from_str::<KeyLimits>(r#"{"seats":[]}"#).is_err(),
            "unknown kinds are refused"
        );
    }

    #[test]
    fn tokens_quotas_and_budgets() {
        let limits: KeyLimits = serde_json::from_str(
            r#"{"tokens":[{"limit":100000,"per":"minute"}],"quota":{"amount":1000,"per":"month"},
                "budgets":[{"usd":"2.50","per":"day"},{"usd":"25","per":"month"}]}"#,
        )
        .unwrap();
        let limits = limits.validate().unwrap();
        assert_eq!(limits.budgets[0].usd, MicroUsd(2_500_000));
        assert_eq!(limits.quota.unwrap().to_string(), "1000/month");
        assert_eq!(limits.budgets[1].to_string(), "$25.000000/month");
        assert_eq!(Budget::parse("$2.50/day").unwrap(), limits.budgets[0]);
        assert_eq!(Quota::parse("1000/mo").unwrap(), limits.quota.unwrap());
        assert!(Budget::parse("2.5/week").is_err());
        assert!(
            Budget::parse("0.0000001/day").is_err(),
            "six decimals at most"
        );
        let hourly = KeyLimits {
            budgets: vec![Budget::parse("1/hour").unwrap()],
            ..KeyLimits::default()
        };
        assert_eq!(hourly.validate().unwrap_err().field, "limits.budgets");
        let twice = KeyLimits {
            budgets: vec![
                Budget::parse("1/day").unwrap(),
                Budget::parse("2/day").unwrap(),
            ],
            ..KeyLimits::default()
        };
        assert!(twice.validate().is_err());
        let free = KeyLimits {
            budgets: vec![Budget::parse("0/day").unwrap()],
            ..KeyLimits::default()
        };
        assert!(
            free.validate().is_err(),
            "a zero budget would refuse everything"
        );
        let none = KeyLimits {
            quota: Some(Quota::parse("0/day").unwrap()),
            ..KeyLimits::default()
        };
        assert_eq!(none.validate().unwrap_err().field, "limits.quota");
        let text = serde_json::to_string(&limits).unwrap();
        assert_eq!(serde_json::from_str::<KeyLimits>(&text).unwrap(), limits);
    }

    #[test]
    fn a_throttle_cuts_each_rate_and_keeps_one_request() {
        let at = crate::Timestamp::from_millis(1_000);
        let limits = KeyLimits {
            requests: vec![
                RequestRate::parse("100/minute").unwrap(),
                RequestRate::parse("5/second").unwrap(),
            ],
            ..KeyLimits::default()
        };
        let fallback = RequestRate::parse("60/minute").unwrap();
        let cut = KeyThrottle::cut(&limits, 10, fallback, at, "spike");
        assert_eq!(
            cut.requests,
            [
                RequestRate::parse("10/minute").unwrap(),
                RequestRate::parse("1/second").unwrap()
            ]
        );
        assert!(cut.active(crate::Timestamp::from_millis(999)));
        assert!(!cut.active(at));
        let free = KeyThrottle::cut(&KeyLimits::default(), 10, fallback, at, "spike");
        assert_eq!(free.requests, [fallback]);
    }

    #[test]
    fn graded_budgets_read_write_and_check() {
        let graded = Budget::parse("100/month;alert=50,90%;throttle=80%:10/minute").unwrap();
        assert_eq!(graded.alerts().iter().collect::<Vec<_>>(), [50, 90]);
        assert_eq!(
            graded.throttled(),
            Some((80, RequestRate::parse("10/minute").unwrap()))
        );
        assert_eq!(
            graded.to_string(),
            "$100.000000/month;alert=50,90;throttle=80:10/minute"
        );
        assert_eq!(Budget::parse(&graded.to_string()).unwrap(), graded);
        let plain = Budget::parse("25/day").unwrap();
        assert_eq!(plain.alerts().iter().collect::<Vec<_>>(), [50, 80, 100]);
        assert_eq!(plain.throttled(), None);
        let silent = Budget::parse("25/day;alert=").unwrap();
        assert!(silent.alerts().is_empty(), "an empty list turns alerts off");
        for bad in [
            "25/day;alert=0",
            "25/day;alert=101",
            "25/day;throttle=80",
            "25/day;throttle=80:fast",
            "25/day;cap=3",
        ] {
            assert!(Budget::parse(bad).is_err(), "{bad}");
        }
        let json = serde_json::to_string(&graded).unwrap();
        assert_eq!(
            json,
            r#"{"usd":"100.000000","per":"month","alert_at":[50,90],"throttle_at":80,"throttle":{"limit":10,"per":"minute"}}"#
        );
        assert_eq!(serde_json::from_str::<Budget>(&json).unwrap(), graded);
        assert!(
            serde_json::from_str::<Budget>(r#"{"usd":"1","per":"day","alert_at":[120]}"#).is_err()
        );
        let check = |budget: Budget| {
            KeyLimits {
                budgets: vec![budget],
                ..KeyLimits::default()
            }
            .validate()
        };
        assert!(check(graded).is_ok());
        let whole = Budget {
            throttle_at: Some(100),
            ..graded
        };
        assert!(check(whole).is_err(), "a throttle at 100 % would never act");
        let half = Budget {
            throttle: None,
            ..graded
        };
        assert!(check(half).is_err(), "a throttle point needs its rate");
    }
}
