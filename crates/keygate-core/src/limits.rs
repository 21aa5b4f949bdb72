//! The limits a key carries: requests per period (any number of periods at once) and a cap on
//! requests in flight. Checked on the hot path by `keygate-limits`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

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

/// At most `limit` requests per `per`, in bursts of up to `limit`.
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

/// A key's limits. Empty means none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    /// Request rates, each counted on its own (`100/minute` and `5000/day` together).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestRate>,
    /// Most requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// Most request rates on one key.
pub const MAX_RATES: usize = 4;
/// Largest request limit: far beyond any real rate, far from overflow.
pub const MAX_RATE_LIMIT: u64 = 1_000_000_000;
/// Largest concurrency cap.
pub const MAX_CONCURRENCY: u32 = 100_000;

impl KeyLimits {
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.concurrency.is_none()
    }

    /// Checks the bounds: at most 4 rates, one per period, each 1 to 10⁹; a concurrency cap
    /// of 1 to 100 000.
    pub fn validate(self) -> Result<Self, ValidationError> {
        if self.requests.len() > MAX_RATES {
            return Err(ValidationError::new(
                "limits.requests",
                "at most 4 rates, one per period",
            ));
        }
        for (i, rate) in self.requests.iter().enumerate() {
            if rate.limit == 0 || rate.limit > MAX_RATE_LIMIT {
                return Err(ValidationError::new(
                    "limits.requests",
                    "a limit of 1 to 1000000000 requests",
                ));
            }
            if self.requests[..i].iter().any(|other| other.per == rate.per) {
                return Err(ValidationError::new(
                    "limits.requests",
                    "at most one rate per period",
                ));
            }
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
        };
        assert!(ok.clone().validate().is_ok());
        let twice = KeyLimits {
            requests: vec![
                RequestRate::parse("10/s").unwrap(),
                RequestRate::parse("20/s").unwrap(),
            ],
            concurrency: None,
        };
        assert_eq!(twice.validate().unwrap_err().field, "limits.requests");
        let zero = KeyLimits {
            requests: vec![RequestRate {
                limit: 0,
                per: Per::Day,
            }],
            concurrency: None,
        };
        assert!(zero.validate().is_err());
        let cap = KeyLimits {
            requests: vec![],
            concurrency: Some(0),
        };
        assert_eq!(cap.validate().unwrap_err().field, "limits.concurrency");
        let text = serde_json::to_string(&ok).unwrap();
        assert_eq!(
            text,
            r#"{"requests":[{"limit":10,"per":"second"},{"limit":1000,"per":"day"}],"concurrency":4}"#
        );
        assert!(
            serde_json::from_str::<KeyLimits>(r#"{"tokens":[]}"#).is_err(),
            "unknown kinds are refused"
        );
    }
}
