//! The limit flags that keys and projects share.

use clap::Args;
use keygate_core::{Budget, KeyLimits, MicroUsd, Quota, RequestRate};

/// `--rate`, `--tokens`, `--concurrency`, `--quota` and `--budget`. On `update`, each kind
/// given replaces that kind and the others stay as they are.
#[derive(Debug, Clone, Default, Args)]
pub struct LimitArgs {
    /// A request rate such as `100/minute` (per second, minute, hour or day); repeat for more,
    /// one per period.
    #[arg(long = "rate", value_name = "LIMIT/PERIOD", value_parser = parse_rate)]
    pub rates: Vec<RequestRate>,
    /// An LLM token rate such as `100000/minute` (prompt and completion tokens together);
    /// repeat for more, one per period.
    #[arg(long = "tokens", value_name = "LIMIT/PERIOD", value_parser = parse_rate)]
    pub tokens: Vec<RequestRate>,
    /// Most requests in flight at once.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<u32>,
    /// Uses per window, such as `1000/day` (minute, hour, day or month, in UTC).
    #[arg(long, value_name = "AMOUNT/WINDOW", value_parser = parse_quota)]
    pub quota: Option<Quota>,
    /// Dollars of LLM usage per UTC day or calendar month, such as `25/month` or `2.50/day`;
    /// repeat for both windows. Graded: `100/month;alert=50,90;throttle=80:10/minute` alerts
    /// at 50 and 90 % and, past 80 %, allows 10 requests a minute instead of stopping.
    #[arg(long = "budget", value_name = "DOLLARS/WINDOW", value_parser = parse_budget)]
    pub budgets: Vec<Budget>,
    /// Prepaid credits: the dollars granted in all, never reset, drawn down by LLM spend (add
    /// to them with `credits add`).
    #[arg(long, value_name = "DOLLARS", value_parser = parse_dollars)]
    pub credits: Option<MicroUsd>,
}

/// The ids of the flags above, for `conflicts_with_all`.
pub(crate) const LIMIT_FLAGS: [&str; 6] = [
    "rates",
    "tokens",
    "concurrency",
    "quota",
    "budgets",
    "credits",
];

impl LimitArgs {
    /// Whether no limit flag was given.
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
            && self.tokens.is_empty()
            && self.concurrency.is_none()
            && self.quota.is_none()
            && self.budgets.is_empty()
            && self.credits.is_none()
    }

    /// Whether every kind of limit is given, so that nothing of the current limits is kept.
    pub fn is_complete(&self) -> bool {
        !self.rates.is_empty()
            && !self.tokens.is_empty()
            && self.concurrency.is_some()
            && self.quota.is_some()
            && !self.budgets.is_empty()
            && self.credits.is_some()
    }

    /// `current` with each kind of limit given on the command line replaced.
    pub fn apply_to(&self, current: KeyLimits) -> KeyLimits {
        fn or_current<T: Clone>(given: &[T], current: Vec<T>) -> Vec<T> {
            if given.is_empty() {
                current
            } else {
                given.to_vec()
            }
        }
        KeyLimits {
            requests: or_current(&self.rates, current.requests),
            tokens: or_current(&self.tokens, current.tokens),
            concurrency: self.concurrency.or(current.concurrency),
            quota: self.quota.or(current.quota),
            budgets: or_current(&self.budgets, current.budgets),
            credits: self.credits.or(current.credits),
        }
    }
}

/// Reads `--rate 100/minute`; clap reports a failure as a usage error.
fn parse_rate(text: &str) -> Result<RequestRate, &'static str> {
    RequestRate::parse(text).map_err(|err| err.expected)
}

fn parse_quota(text: &str) -> Result<Quota, &'static str> {
    Quota::parse(text).map_err(|err| err.expected)
}

fn parse_budget(text: &str) -> Result<Budget, &'static str> {
    Budget::parse(text).map_err(|err| err.expected)
}

/// Reads dollars such as `25` or `2.50`.
pub(crate) fn parse_dollars(text: &str) -> Result<MicroUsd, &'static str> {
    text.trim_start_matches('$')
        .parse()
        .map_err(|_| "dollars such as 25 or 2.50, six decimals at most")
}

#[cfg(test)]
mod tests {
    use keygate_core::{Per, Window};

    use super::*;

    #[test]
    fn given_kinds_replace_and_the_others_stay() {
        let current = KeyLimits {
            requests: vec![RequestRate::parse("5/s").unwrap()],
            tokens: vec![RequestRate::parse("9/day").unwrap()],
            concurrency: Some(3),
            quota: Some(Quota::parse("10/h").unwrap()),
            budgets: vec![Budget::parse("1/day").unwrap()],
            credits: Some(MicroUsd(5_000_000)),
        };
        let args = LimitArgs {
            tokens: vec![RequestRate::parse("100000/min").unwrap()],
            budgets: vec![Budget::parse("$25/month").unwrap()],
            ..LimitArgs::default()
        };
        let merged = args.apply_to(current.clone());
        assert_eq!(merged.requests, current.requests);
        assert_eq!(merged.concurrency, Some(3));
        assert_eq!(merged.quota, current.quota);
        assert_eq!(
            merged.tokens,
            [RequestRate {
                limit: 100_000,
                per: Per::Minute
            }]
        );
        assert_eq!(
            merged.budgets,
            [Budget::new(MicroUsd(25_000_000), Window::Month)]
        );
        assert!(!args.is_empty() && !args.is_complete());
        assert!(LimitArgs::default().is_empty());
        assert_eq!(LimitArgs::default().apply_to(current.clone()), current);
    }
}
