//! Usage roll-ups: the sums of usage records per minute, hour and UTC day, by organisation,
//! project, key, model and status. A batch of records is summed here and added to the stored
//! sums in the batch's transaction; a report over whole minutes reads the sums, coarsest first:
//! the whole days of its range, then the whole hours at either end, then the minutes.

use std::collections::BTreeMap;

use keygate_core::UsageRecord;

pub(crate) const MINUTE: i64 = 60_000;
pub(crate) const HOUR: i64 = 3_600_000;
pub(crate) const DAY: i64 = 86_400_000;

/// Rows per upsert statement: 13 parameters each stays under both databases' limits.
pub(crate) const ROLLUPS_PER_STATEMENT: usize = 500;

/// Where a sum belongs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RollupKey {
    pub grain: &'static str,
    pub org_id: String,
    pub bucket: i64,
    pub project_id: String,
    pub key_id: String,
    pub model: String,
    pub status: i64,
}

/// What is summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sums {
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub cost_micros: i64,
    pub unpriced: i64,
}

/// The sums of `records` for every grain. In key order, so that two nodes writing the same
/// sums lock their rows in the same order.
pub(crate) fn sum(records: &[UsageRecord]) -> BTreeMap<RollupKey, Sums> {
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut sums: BTreeMap<RollupKey, Sums> = BTreeMap::new();
    for record in records {
        let at = record.at.as_millis();
        for (grain, size) in [("minute", MINUTE), ("hour", HOUR), ("day", DAY)] {
            let key = RollupKey {
                grain,
                org_id: record.org_id.to_string(),
                bucket: at.div_euclid(size) * size,
                project_id: record
                    .project_id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                key_id: record.key_id.to_string(),
                model: record.model.clone(),
                status: i64::from(record.status),
            };
            let entry = sums.entry(key).or_default();
            entry.requests += 1;
            entry.prompt_tokens = entry
                .prompt_tokens
                .saturating_add(int(record.tokens.prompt));
            entry.completion_tokens = entry
                .completion_tokens
                .saturating_add(int(record.tokens.completion));
            entry.cached_tokens = entry
                .cached_tokens
                .saturating_add(int(record.tokens.cached));
            match record.cost {
                Some(cost) => entry.cost_micros = entry.cost_micros.saturating_add(cost.0),
                None => entry.unpriced += 1,
            }
        }
    }
    sums
}

/// The pieces of `[from, to)` in the coarsest sums that cover it exactly: `(grain, start,
/// end)`, five of them (empty ones start where they end). `None` unless both ends fall on a
/// minute: such a report is read from the records.
pub(crate) fn pieces(from: i64, to: i64) -> Option<[(&'static str, i64, i64); 5]> {
    if from % MINUTE != 0 || to % MINUTE != 0 || from >= to {
        return None;
    }
    let up = |t: i64, size: i64| (t + size - 1).div_euclid(size) * size;
    let down = |t: i64, size: i64| t.div_euclid(size) * size;
    let (first_hour, last_hour) = (up(from, HOUR), down(to, HOUR));
    if first_hour >= last_hour {
        return Some([
            ("minute", from, to),
            ("minute", to, to),
            ("hour", to, to),
            ("hour", to, to),
            ("day", to, to),
        ]);
    }
    let (first_day, last_day) = (up(from, DAY), down(to, DAY));
    let (day_start, day_end) = if first_day < last_day {
        (first_day, last_day)
    } else {
        (last_hour, last_hour)
    };
    Some([
        ("minute", from, first_hour),
        ("minute", last_hour, to),
        ("hour", first_hour, day_start),
        ("hour", day_end, last_hour),
        ("day", day_start, day_end),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pieces cover `[from, to)` once, each within its grain's boundaries.
    fn covered(from: i64, to: i64) -> i64 {
        let pieces = pieces(from, to).unwrap();
        let mut total = 0;
        for (grain, start, end) in pieces {
            assert!(start <= end, "{grain} {start} {end}");
            let size = match grain {
                "minute" => MINUTE,
                "hour" => HOUR,
                _ => DAY,
            };
            if start < end {
                assert_eq!(start % size, 0);
                assert_eq!(end % size, 0);
            }
            total += end - start;
        }
        total
    }

    #[test]
    fn pieces_cover_the_range_exactly_and_coarsely() {
        let day = 20_000 * DAY;
        for (from, to) in [
            (day, day + 30 * DAY),
            (day + 5 * MINUTE, day + 30 * DAY + 7 * HOUR + 3 * MINUTE),
            (day + 5 * MINUTE, day + 50 * MINUTE),
            (day + 5 * MINUTE, day + 3 * HOUR),
            (day - 2 * HOUR, day + 2 * HOUR),
            (day + HOUR, day + 2 * HOUR),
        ] {
            assert_eq!(covered(from, to), to - from, "{from}..{to}");
        }
        let month = pieces(day, day + 30 * DAY).unwrap();
        assert_eq!(
            month[4],
            ("day", day, day + 30 * DAY),
            "a month is 30 day rows"
        );
        assert!(
            pieces(day + 1, day + DAY).is_none(),
            "not on a minute: the records"
        );
    }
}
