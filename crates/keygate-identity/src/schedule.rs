//! The signing keys' schedule. One key signs at a time; the next is made and published
//! `publish_ahead` before it starts signing (so verifiers that cache the JWKS already hold it),
//! and a key that stopped signing stays published until every token it signed has expired.

use std::time::Duration;

use keygate_core::Timestamp;

/// When a stored key starts signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTimes {
    pub kid: String,
    pub signs_from: Timestamp,
}

/// How keys turn over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// How long a key signs.
    pub rotate_every: Duration,
    /// How long before it signs a key is published.
    pub publish_ahead: Duration,
    /// The longest lifetime of a token: how long a key stays published after it stops
    /// signing.
    pub max_lifetime: Duration,
}

/// Clock skew between nodes allowed for, on top of the longest lifetime.
const SLACK: Duration = Duration::from_secs(60);

/// A change to the stored keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Make a key that starts signing at this instant.
    Create { signs_from: Timestamp },
    /// No token this key signed can still be live.
    Delete { kid: String },
}

/// The key that signs at `now`: the newest that has started; none before the first.
pub fn signer(keys: &[KeyTimes], now: Timestamp) -> Option<&KeyTimes> {
    keys.iter()
        .filter(|k| k.signs_from <= now)
        .max_by_key(|k| k.signs_from)
}

/// What to change at `now`, given the stored keys.
pub fn plan(keys: &[KeyTimes], now: Timestamp, schedule: Schedule) -> Vec<Step> {
    let mut sorted: Vec<&KeyTimes> = keys.iter().collect();
    sorted.sort_by_key(|k| k.signs_from);
    let mut steps = Vec::new();
    let Some(current) = signer(keys, now) else {
        steps.push(Step::Create { signs_from: now });
        return steps;
    };
    let next = sorted.iter().find(|k| k.signs_from > now);
    let due = current
        .signs_from
        .saturating_add(schedule.rotate_every.saturating_sub(schedule.publish_ahead));
    if next.is_none() && now >= due {
        let signs_from = current
            .signs_from
            .saturating_add(schedule.rotate_every)
            .max(now.saturating_add(schedule.publish_ahead));
        steps.push(Step::Create { signs_from });
    }
    // A key whose successor has started signing is kept until its tokens have expired.
    for pair in sorted.windows(2) {
        let (key, successor) = (pair[0], pair[1]);
        let kept_until = successor
            .signs_from
            .saturating_add(schedule.max_lifetime)
            .saturating_add(SLACK);
        if successor.signs_from <= now && kept_until <= now {
            steps.push(Step::Delete {
                kid: key.kid.clone(),
            });
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_millis(minutes * MIN)
    }

    fn key(kid: &str, minutes: i64) -> KeyTimes {
        KeyTimes {
            kid: kid.into(),
            signs_from: at(minutes),
        }
    }

    fn schedule() -> Schedule {
        Schedule {
            rotate_every: Duration::from_secs(24 * 3600),
            publish_ahead: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(15 * 60),
        }
    }

    #[test]
    fn the_first_key_signs_at_once() {
        assert_eq!(
            plan(&[], at(5), schedule()),
            [Step::Create { signs_from: at(5) }]
        );
    }

    #[test]
    fn the_next_key_is_published_ahead_and_the_old_one_kept_past_its_tokens() {
        let day = 24 * 60;
        let a = key("a", 0);
        // Nothing to do while the key is young.
        assert!(plan(std::slice::from_ref(&a), at(day - 61), schedule()).is_empty());
        // An hour before the day is up, the next key is made for the end of the day.
        assert_eq!(
            plan(std::slice::from_ref(&a), at(day - 60), schedule()),
            [Step::Create {
                signs_from: at(day)
            }]
        );
        let b = key("b", day);
        let both = [a.clone(), b.clone()];
        // Published but not signing yet: `a` still signs.
        assert!(plan(&both, at(day - 30), schedule()).is_empty());
        assert_eq!(signer(&both, at(day - 1)).unwrap().kid, "a");
        assert_eq!(signer(&both, at(day)).unwrap().kid, "b");
        // `a` stays until its last token (15 minutes, plus a minute of skew) has expired.
        assert!(plan(&both, at(day + 15), schedule()).is_empty());
        assert_eq!(
            plan(&both, at(day + 16), schedule()),
            [Step::Delete { kid: "a".into() }]
        );
    }

    #[test]
    fn a_late_rotation_still_publishes_ahead() {
        // The node was down through the rotation time: the next key still waits an hour.
        let a = key("a", 0);
        assert_eq!(
            plan(&[a], at(3 * 24 * 60), schedule()),
            [Step::Create {
                signs_from: at(3 * 24 * 60 + 60)
            }]
        );
    }
}
