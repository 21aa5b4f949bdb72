//! Waiting between attempts: jittered exponential backoff, and the upstream's `Retry-After`.

use std::time::Duration;

/// The wait before retry number `retry` (1-based) on a deployment already tried: full
/// jitter over an exponential ceiling (`base * 2^(retry-1)`, at most `max`), but never less
/// than the upstream asked for with `Retry-After`.
pub fn delay(retry: u32, base: Duration, max: Duration, retry_after: Option<Duration>) -> Duration {
    let exponent = retry.saturating_sub(1).min(20);
    let ceiling = base.saturating_mul(1 << exponent).min(max);
    let ceiling_micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    // Half fixed, half random: retries spread out without ever collapsing to zero.
    let jittered =
        Duration::from_micros(ceiling_micros / 2 + fastrand::u64(0..=ceiling_micros / 2));
    retry_after.map_or(jittered, |asked| jittered.max(asked))
}

/// Parses a `Retry-After` value in seconds (an HTTP date is not worth waiting for here), or
/// the `retry-after-ms` / `x-ratelimit-reset-requests` style milliseconds some providers send.
pub fn parse_retry_after(headers: &http::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms.min(86_400_000.0) / 1000.0));
    }
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(86_400)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_honours_retry_after() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for _ in 0..100 {
            let first = delay(1, base, max, None);
            assert!(
                first >= Duration::from_millis(50) && first <= base,
                "{first:?}"
            );
            let third = delay(3, base, max, None);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = delay(30, base, max, None);
            assert!(late <= max);
            let asked = delay(1, base, max, Some(Duration::from_secs(2)));
            assert!(asked >= Duration::from_secs(2));
        }
    }

    #[test]
    fn reads_retry_after_headers() {
        let mut headers = http::header::HeaderMap::new();
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(
            parse_retry_after(&headers),
            Some(Duration::from_millis(1500))
        );
        headers.insert("retry-after-ms", "-1".parse().unwrap());
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(parse_retry_after(&headers), None);
    }
}
