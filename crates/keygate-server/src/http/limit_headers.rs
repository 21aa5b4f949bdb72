//! The one writer of limit headers: `Retry-After`, `x-should-retry` (which the OpenAI and
//! Anthropic SDKs read to give up at once) and the rates' states — under OpenAI's names
//! (`x-ratelimit-remaining-requests`, `…-tokens`) on the LLM routes, whose SDKs read them, and
//! as plain `x-ratelimit-limit`, `-remaining`, `-reset` (seconds) elsewhere.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use keygate_limits::State;

use crate::limits::{Counted, Refusal};

/// Which names the rates' states go under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// OpenAI's, per kind of limit, on the LLM routes.
    OpenAi,
    /// `x-ratelimit-limit`, `-remaining`, `-reset`, on every other route.
    Plain,
}

/// The headers of a request refused by a limit.
pub fn refused(headers: &mut HeaderMap, refusal: &Refusal, names: Names) {
    if let Some(after) = refusal.retry_after() {
        set(headers, header::RETRY_AFTER, seconds_up(after).to_string());
    }
    if !refusal.worth_retrying() {
        headers.insert("x-should-retry", HeaderValue::from_static("false"));
    }
    let Refusal::Limit { limit, .. } = refusal else {
        return;
    };
    match names {
        Names::Plain => {
            let state = &limit.state;
            set_static(headers, "x-ratelimit-limit", state.limit.to_string());
            set_static(
                headers,
                "x-ratelimit-remaining",
                state.remaining.to_string(),
            );
            let reset = seconds_up(state.reset_after).to_string();
            set_static(headers, "x-ratelimit-reset", reset);
        }
        Names::OpenAi => match limit.counted {
            Counted::Requests(_) | Counted::Throttle(..) => {
                openai(headers, "requests", &limit.state)
            }
            Counted::Tokens(_) => openai(headers, "tokens", &limit.state),
            Counted::Quota(_) | Counted::Budget(_) | Counted::Credits => {}
        },
    }
}

/// The tightest request and token rates of an admitted LLM call, under OpenAI's names.
pub fn admitted(headers: &mut HeaderMap, requests: Option<State>, tokens: Option<State>) {
    if let Some(rate) = requests {
        openai(headers, "requests", &rate);
    }
    if let Some(rate) = tokens {
        openai(headers, "tokens", &rate);
    }
}

/// A limit's state under OpenAI's header names: `x-ratelimit-limit-requests`,
/// `…-remaining-tokens`, `…-reset-requests`.
fn openai(headers: &mut HeaderMap, what: &str, rate: &State) {
    let pairs = [
        (format!("x-ratelimit-limit-{what}"), rate.limit.to_string()),
        (
            format!("x-ratelimit-remaining-{what}"),
            rate.remaining.to_string(),
        ),
        (
            format!("x-ratelimit-reset-{what}"),
            openai_duration(rate.reset_after),
        ),
    ];
    for (name, value) in pairs {
        if let Ok(name) = HeaderName::try_from(name) {
            set(headers, name, value);
        }
    }
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(name, value);
    }
}

fn set_static(headers: &mut HeaderMap, name: &'static str, value: String) {
    set(headers, HeaderName::from_static(name), value);
}

/// `Retry-After` in whole seconds, rounded up.
pub fn retry_after(headers: &mut HeaderMap, wait: Duration) {
    if let Ok(value) = axum::http::HeaderValue::from_str(&seconds_up(wait).to_string()) {
        headers.insert(axum::http::header::RETRY_AFTER, value);
    }
}

/// Whole seconds, rounded up.
pub fn seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// A reset as OpenAI writes it in `x-ratelimit-reset-requests`: `1s`, `6m0s`, `20ms`.
fn openai_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1_000 {
        return format!("{millis}ms");
    }
    let seconds = seconds_up(duration);
    match (seconds / 3_600, seconds / 60 % 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_openai_style() {
        assert_eq!(openai_duration(Duration::from_millis(20)), "20ms");
        assert_eq!(openai_duration(Duration::from_millis(1_500)), "2s");
        assert_eq!(openai_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(openai_duration(Duration::from_secs(3_700)), "1h1m40s");
    }
}
