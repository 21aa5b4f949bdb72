//! Usage records: one per proxied request, with tokens and cost. Never the key or the payload.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{KeyId, OrgId, ProjectId, Timestamp, ValidationError};

/// An amount of money in millionths of a US dollar. Money is never a float.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MicroUsd(pub i64);

impl MicroUsd {
    pub const ZERO: Self = Self(0);

    pub fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for MicroUsd {
    /// Dollars with six decimals: `0.000125`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
    }
}

impl FromStr for MicroUsd {
    type Err = ValidationError;

    /// Parses a decimal dollar amount such as `2.50` or `0.000125` exactly (at most six
    /// decimals), without passing through a float.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ValidationError::new(
                "price",
                "a dollar amount such as 2.50, six decimals at most",
            )
        };
        let text = text.trim();
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
            Some(_) => return Err(bad()),
            None => (text, ""),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        if !digits(whole) || (!fraction.is_empty() && !digits(fraction)) || fraction.len() > 6 {
            return Err(bad());
        }
        let whole: i64 = whole.parse().map_err(|_| bad())?;
        let mut micros: i64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| bad())?
        };
        for _ in fraction.len()..6 {
            micros *= 10;
        }
        whole
            .checked_mul(1_000_000)
            .and_then(|w| w.checked_add(micros))
            .map(Self)
            .ok_or_else(bad)
    }
}

impl Serialize for MicroUsd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for MicroUsd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Token counts of one request, as the provider reported them (or as counted when it did not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    pub prompt: u64,
    pub completion: u64,
    /// Prompt tokens served from the provider's cache (a part of `prompt`).
    pub cached: u64,
}

/// Where the token counts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenSource {
    /// The provider's own usage report.
    Provider,
    /// Counted by keygate with the model's tokenizer, because the provider sent none.
    Counted,
    /// Not known (the request failed before any output).
    None,
    /// The answer came from keygate's answer cache: the tokens are those of the answer it
    /// reused, and nothing was spent.
    Cache,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Counted => "counted",
            Self::None => "none",
            Self::Cache => "cache",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "provider" => Self::Provider,
            "counted" => Self::Counted,
            "cache" => Self::Cache,
            _ => Self::None,
        }
    }
}

/// One proxied request, as recorded for usage and cost reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub id: String,
    pub at: Timestamp,
    pub org_id: OrgId,
    pub project_id: Option<ProjectId>,
    pub key_id: KeyId,
    /// The API endpoint, such as `chat.completions`.
    pub endpoint: String,
    /// The model or alias the client asked for.
    pub model: String,
    /// The deployment that answered (or was tried last), `provider/model`.
    pub deployment: Option<String>,
    pub provider: Option<String>,
    /// The HTTP status returned to the client.
    pub status: u16,
    /// The stable error code, when the request failed.
    pub error_code: Option<String>,
    pub streamed: bool,
    pub attempts: u32,
    pub latency_ms: u64,
    /// Time to the first streamed token (or to the whole answer when not streamed).
    pub ttft_ms: Option<u64>,
    pub tokens: TokenCounts,
    pub token_source: TokenSource,
    /// `None` when the price of the model is not known.
    pub cost: Option<MicroUsd>,
    /// For an answer from keygate's answer cache (`token_source` `cache`, `cost` 0), what the
    /// answer cost when it was made: the money the hit saved.
    pub saved: Option<MicroUsd>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_parse_exactly() {
        assert_eq!("2.50".parse::<MicroUsd>().unwrap(), MicroUsd(2_500_000));
        assert_eq!("0.000125".parse::<MicroUsd>().unwrap(), MicroUsd(125));
        assert_eq!("15".parse::<MicroUsd>().unwrap(), MicroUsd(15_000_000));
        for bad in [
            "",
            "1.",
            ".5",
            "1.0000001",
            "-1",
            "1e3",
            "abc",
            "99999999999999",
        ] {
            assert!(bad.parse::<MicroUsd>().is_err(), "{bad}");
        }
        assert_eq!(MicroUsd(2_500_000).to_string(), "2.500000");
        assert_eq!(MicroUsd(125).to_string(), "0.000125");
        assert_eq!(MicroUsd(-5).to_string(), "-0.000005");
    }
}
