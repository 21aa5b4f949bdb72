//! Usage roll-ups: the sums of usage records per hour and per UTC day, by organisation,
//! project, key, model and status. A batch of records is summed here and added to the stored
//! sums in the batch's transaction. A report reads the sums for the whole days of its window,
//! then for the whole hours at either end, and the records only for the parts of an hour at
//! its two ends: a month costs about 30 day rows per group, not millions of records. (Per
//! minute and key, sums would be about as many rows as requests at a few hundred a minute.)

use std::collections::BTreeMap;

use keygate_core::UsageRecord;

pub(crate) const HOUR: i64 = 3_600_000;
pub(crate) const DAY: i64 = 86_400_000;

/// Rows per upsert statement: 17 parameters each stays under both databases' limits.
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
    /// Milliseconds of latency of the requests counted in `timed`.
    pub latency_ms: i64,
    pub timed: i64,
    /// Answers from keygate's answer cache, and what they cost when they were made.
    pub cache_hits: i64,
    pub saved_micros: i64,
}

/// The sums of `records` for every grain. In key order, so that two nodes writing the same
/// sums lock their rows in the same order.
pub(crate) fn sum(records: &[UsageRecord]) -> BTreeMap<RollupKey, Sums> {
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut sums: BTreeMap<RollupKey, Sums> = BTreeMap::new();
    for record in records {
        let at = record.at.as_millis();
        for (grain, size) in [("hour", HOUR), ("day", DAY)] {
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
            entry.latency_ms = entry.latency_ms.saturating_add(int(record.latency_ms));
            entry.timed += 1;
            if record.token_source == keygate_core::TokenSource::Cache {
                entry.cache_hits += 1;
                entry.saved_micros = entry
                    .saved_micros
                    .saturating_add(record.saved.map_or(0, |saved| saved.0));
            }
        }
    }
    sums
}

/// How a report's window `[from, to)` is read: the records for `records` (the parts of an
/// hour at either end; empty ranges start where they end), and the sums for `sums` (`(grain,
/// start, end)`: whole hours at either end, whole days between).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pieces {
    pub records: [(i64, i64); 2],
    pub sums: [(&'static str, i64, i64); 3],
}

pub(crate) fn pieces(from: i64, to: i64) -> Pieces {
    let up = |t: i64, size: i64| (t + size - 1).div_euclid(size) * size;
    let down = |t: i64, size: i64| t.div_euclid(size) * size;
    let (first_hour, last_hour) = (up(from, HOUR), down(to, HOUR));
    if first_hour >= last_hour {
        return Pieces {
            records: [(from, to.max(from)), (to, to)],
            sums: [("hour", to, to), ("hour", to, to), ("day", to, to)],
        };
    }
    let (first_day, last_day) = (up(from, DAY), down(to, DAY));
    let (day_start, day_end) = if first_day < last_day {
        (first_day, last_day)
    } else {
        (last_hour, last_hour)
    };
    Pieces {
        records: [(from, first_hour), (last_hour, to)],
        sums: [
            ("hour", first_hour, day_start),
            ("hour", day_end, last_hour),
            ("day", day_start, day_end),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pieces cover `[from, to)` once, each sum within its grain's boundaries.
    fn covered(from: i64, to: i64) -> i64 {
        let pieces = pieces(from, to);
        let mut total = 0;
        for (start, end) in pieces.records {
            assert!(start <= end);
            total += end - start;
        }
        for (grain, start, end) in pieces.sums {
            assert!(start <= end, "{grain} {start} {end}");
            let size = if grain == "hour" { HOUR } else { DAY };
            if start < end {
                assert_eq!(start % size, 0);
                assert_eq!(end % size, 0);
            }
            total += end - start;
        }
        total
    }

    #[test]
    fn pieces_cover_the_window_exactly_and_coarsely() {
        let day = 20_000 * DAY;
        let minute = 60_000;
        for (from, to) in [
            (day, day + 30 * DAY),
            (day + 5 * minute + 7, day + 30 * DAY + 7 * HOUR + 3 * minute),
            (day + 5 * minute, day + 50 * minute),
            (day + 5 * minute, day + 3 * HOUR),
            (day - 2 * HOUR, day + 2 * HOUR),
            (day + HOUR, day + 2 * HOUR),
            (day + 1, day + 2),
        ] {
            assert_eq!(covered(from, to), to - from, "{from}..{to}");
        }
        let month = pieces(day, day + 30 * DAY);
        assert_eq!(
            month.sums[2],
            ("day", day, day + 30 * DAY),
            "a month is 30 day sums"
        );
        assert_eq!(
            month.records,
            [(day, day), (day + 30 * DAY, day + 30 * DAY)]
        );
    }
}
