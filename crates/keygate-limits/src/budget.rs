//! Budgets: money (micro-dollars) per UTC day or month. A request reserves its highest cost
//! before it reaches the upstream and settles the real cost after; one that would go over is
//! refused before it is sent.

use time::{Date, Month, OffsetDateTime, Time};

/// The period a budget covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Day,
    Month,
}

/// The start and end (µs since the epoch) of the window holding `now`.
pub fn bounds(window: Window, now: u64) -> (u64, u64) {
    const DAY: u64 = 86_400_000_000;
    match window {
        Window::Day => {
            let start = now - now % DAY;
            (start, start + DAY)
        }
        Window::Month => {
            let seconds = i64::try_from(now / 1_000_000).unwrap_or(i64::MAX);
            let Ok(at) = OffsetDateTime::from_unix_timestamp(seconds) else {
                return (now - now % DAY, now - now % DAY + DAY);
            };
            let first = |year: i32, month: Month| {
                Date::from_calendar_date(year, month, 1)
                    .map(|date| date.with_time(Time::MIDNIGHT).assume_utc())
                    .map(|start| u64::try_from(start.unix_timestamp()).unwrap_or(0) * 1_000_000)
            };
            let (next_year, next_month) = match at.month() {
                Month::December => (at.year() + 1, Month::January),
                month => (at.year(), month.next()),
            };
            match (first(at.year(), at.month()), first(next_year, next_month)) {
                (Ok(start), Ok(end)) => (start, end),
                _ => (now - now % DAY, now - now % DAY + DAY),
            }
        }
    }
}

/// A budget's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BudgetState {
    /// The start of the window the amounts belong to.
    pub window: u64,
    /// Settled costs.
    pub spent: u64,
    /// Costs reserved by requests still running.
    pub reserved: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub allowed: bool,
    pub state: BudgetState,
    pub remaining: u64,
    pub reset_after: u64,
    pub retry_after: Option<u64>,
}

fn current(window: Window, state: Option<BudgetState>, now: u64) -> (BudgetState, u64) {
    let (start, end) = bounds(window, now);
    let state = match state {
        Some(state) if state.window == start => state,
        _ => BudgetState {
            window: start,
            spent: 0,
            reserved: 0,
        },
    };
    (state, end)
}

/// Reserves `cost` micro-dollars of a budget of `limit` per `window` at `now`.
pub fn reserve(
    limit: u64,
    window: Window,
    state: Option<BudgetState>,
    now: u64,
    cost: u64,
) -> Checked {
    let (state, end) = current(window, state, now);
    let committed = state.spent.saturating_add(state.reserved);
    let remaining = limit.saturating_sub(committed);
    let reset_after = end.saturating_sub(now);
    if cost > remaining {
        return Checked {
            allowed: false,
            state,
            remaining,
            reset_after,
            retry_after: (cost <= limit).then_some(reset_after),
        };
    }
    let state = BudgetState {
        reserved: state.reserved + cost,
        ..state
    };
    Checked {
        allowed: true,
        state,
        remaining: remaining - cost,
        reset_after,
        retry_after: None,
    }
}

/// Settles a reservation of `reserved` made in the window starting at `made_in`: the real
/// `actual` cost is spent. When the window has turned since, the cost counts in the new one.
pub fn settle(
    window: Window,
    state: Option<BudgetState>,
    now: u64,
    made_in: u64,
    reserved: u64,
    actual: u64,
) -> BudgetState {
    let (mut state, _) = current(window, state, now);
    if state.window == made_in {
        state.reserved = state.reserved.saturating_sub(reserved);
    }
    state.spent = state.spent.saturating_add(actual);
    state
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn windows_are_utc_days_and_calendar_months() {
        // 2026-02-14T10:00:00Z
        let now = 1_771_063_200 * 1_000_000;
        let (start, end) = bounds(Window::Month, now);
        assert_eq!(start, 1_769_904_000 * 1_000_000, "2026-02-01");
        assert_eq!(end, 1_772_323_200 * 1_000_000, "2026-03-01");
        let (start, end) = bounds(Window::Day, now);
        assert_eq!(end - start, 86_400_000_000);
        assert!(start <= now && now < end);
        // December rolls into the next year.
        let december = 1_796_126_400 * 1_000_000; // 2026-12-01T12:00Z
        assert_eq!(bounds(Window::Month, december).1, 1_798_761_600 * 1_000_000);
    }

    #[test]
    fn a_request_that_would_go_over_is_refused_before_it_runs() {
        let now = 1_771_063_200 * 1_000_000;
        let first = reserve(1_000, Window::Day, None, now, 600);
        assert!(first.allowed);
        assert_eq!(first.remaining, 400);
        let second = reserve(1_000, Window::Day, Some(first.state), now, 600);
        assert!(!second.allowed, "600 reserved, 600 more would exceed");
        let settled = settle(
            Window::Day,
            Some(first.state),
            now,
            first.state.window,
            600,
            100,
        );
        assert_eq!(settled.spent, 100);
        assert_eq!(settled.reserved, 0);
        assert!(reserve(1_000, Window::Day, Some(settled), now, 600).allowed);
    }

    proptest! {
        /// Reservations never commit more than the limit, and settling keeps the amounts
        /// consistent: reserved returns to zero once every request has settled.
        #[test]
        fn reservations_never_go_over(
            limit in 0u64..10_000,
            requests in proptest::collection::vec((1u64..3_000, 0u64..3_000), 1..50),
        ) {
            let now = 1_771_063_200 * 1_000_000;
            let mut state = None;
            let mut open = Vec::new();
            for (max, actual) in &requests {
                let checked = reserve(limit, Window::Month, state, now, *max);
                let committed = checked.state.spent + checked.state.reserved;
                if checked.allowed {
                    prop_assert!(committed <= limit);
                    open.push((*max, (*actual).min(*max)));
                    state = Some(checked.state);
                }
            }
            for (max, actual) in open {
                let s = state.unwrap();
                state = Some(settle(Window::Month, state, now, s.window, max, actual));
            }
            if let Some(s) = state {
                prop_assert_eq!(s.reserved, 0);
                prop_assert!(s.spent <= limit);
            }
        }
    }
}
