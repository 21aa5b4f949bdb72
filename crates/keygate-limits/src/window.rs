//! The windows quotas and budgets are counted over: fixed lengths counted from the Unix epoch
//! (so every node agrees where one starts; UTC days start at midnight) and calendar months.

use time::{Date, Month, OffsetDateTime, Time};

const MINUTE: u64 = 60_000_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// A window of a quota or a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Minute,
    Hour,
    /// A UTC day.
    Day,
    /// A calendar month, in UTC.
    Month,
    /// One window that never turns (prepaid credits): it starts at 0 and ends at
    /// [`FOREVER_END`].
    Forever,
}

/// The end of the window that never turns: 2^52 µs (in 2112), below the 2^53 where the Redis
/// script's doubles stop being exact.
pub const FOREVER_END: u64 = 1 << 52;

impl Window {
    /// The start and end (µs since the epoch) of the window holding `now`.
    pub fn bounds(self, now: u64) -> (u64, u64) {
        let fixed = |length: u64| {
            let start = now - now % length;
            (start, start.saturating_add(length))
        };
        match self {
            Self::Minute => fixed(MINUTE),
            Self::Hour => fixed(HOUR),
            Self::Day => fixed(DAY),
            Self::Month => month(now).unwrap_or_else(|| fixed(DAY)),
            Self::Forever => (0, FOREVER_END),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
            Self::Forever => "forever",
        }
    }
}

fn month(now: u64) -> Option<(u64, u64)> {
    let seconds = i64::try_from(now / 1_000_000).ok()?;
    let at = OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    let first = |year: i32, month: Month| {
        let start = Date::from_calendar_date(year, month, 1)
            .ok()?
            .with_time(Time::MIDNIGHT)
            .assume_utc();
        u64::try_from(start.unix_timestamp())
            .ok()
            .map(|s| s * 1_000_000)
    };
    let (next_year, next_month) = match at.month() {
        Month::December => (at.year() + 1, Month::January),
        month => (at.year(), month.next()),
    };
    Some((first(at.year(), at.month())?, first(next_year, next_month)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_utc_days_and_calendar_months() {
        // 2026-02-14T10:00:00Z
        let now = 1_771_063_200 * 1_000_000;
        let (start, end) = Window::Month.bounds(now);
        assert_eq!(start, 1_769_904_000 * 1_000_000, "2026-02-01");
        assert_eq!(end, 1_772_323_200 * 1_000_000, "2026-03-01");
        let (start, end) = Window::Day.bounds(now);
        assert_eq!(start, 1_771_027_200 * 1_000_000, "2026-02-14T00:00Z");
        assert_eq!(end - start, DAY);
        let (start, end) = Window::Hour.bounds(now);
        assert_eq!((start, end - start), (now, HOUR), "10:00 starts an hour");
        // December rolls into the next year.
        let december = 1_796_126_400 * 1_000_000; // 2026-12-01T12:00Z
        assert_eq!(Window::Month.bounds(december).1, 1_798_761_600 * 1_000_000);
    }
}
