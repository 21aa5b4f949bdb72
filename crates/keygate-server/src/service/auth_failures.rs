//! Failed admin authentications in the audit log, throttled per source so that a flood of bad
//! tokens does not become a flood of database writes.
//!
//! A source is a client's IPv4 address or its IPv6 /64 (one host commonly holds a whole /64).
//! Its first failure is recorded as before and opens a one-minute window; further failures in
//! the window are only counted. The count is written with the source's first failure after the
//! window, or, when none comes, as a summary row once the window has ended (and at shutdown),
//! so under a steady flood a source costs one row a minute and no failure goes uncounted.
//! A counted failure keeps only its count, not its code. A real token that was refused
//! (revoked, expired) has a window of its own wherever it is tried from, so another
//! failure from the same address cannot hide it. At most [`MAX_SOURCES`] windows are kept;
//! failures from further sources share one window (and say so in the log).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keygate_core::{AuditAction, AuditDraft, KeyRejection, Outcome, Timestamp};
use tokio_util::sync::CancellationToken;

use super::Keygate;
use crate::ServiceError;
use crate::cache::CachedKey;

/// How long a source's failures after its first are only counted.
const WINDOW: Duration = Duration::from_secs(60);
/// How many sources are told apart; the rest share one window.
const MAX_SOURCES: usize = 4096;
/// How often ended windows are summarised.
const SUMMARISE_EVERY: Duration = Duration::from_secs(10);

/// Where failures come from, as far as throttling tells them apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    /// A real token that was refused (revoked, expired, rotated out): its own window whatever
    /// the address, so that a stolen token's first use each minute is always on record.
    Token(keygate_core::KeyId),
    V4(std::net::Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
    /// A request without a client address.
    Unknown,
    /// Any source once [`MAX_SOURCES`] are tracked.
    Others,
}

impl Source {
    fn of(client_ip: Option<&str>) -> Self {
        match client_ip.and_then(|text| text.parse::<IpAddr>().ok()) {
            Some(ip) => match ip.to_canonical() {
                IpAddr::V4(v4) => Self::V4(v4),
                IpAddr::V6(v6) => Self::V6((v6.to_bits() >> 64) as u64),
            },
            None => Self::Unknown,
        }
    }

    /// The source as the audit log names it: an address, a network, or a word.
    fn name(&self) -> String {
        match self {
            Self::Token(id) => format!("token {id}"),
            Self::V4(v4) => v4.to_string(),
            Self::V6(prefix) => {
                format!(
                    "{}/64",
                    std::net::Ipv6Addr::from_bits(u128::from(*prefix) << 64)
                )
            }
            Self::Unknown => "unknown".to_owned(),
            Self::Others => "other sources".to_owned(),
        }
    }
}

#[derive(Debug)]
struct Window {
    opened: Timestamp,
    suppressed: u64,
}

impl Window {
    fn ended(&self, now: Timestamp) -> bool {
        now >= self.opened.saturating_add(WINDOW)
    }
}

/// Whether a failure is written, and how many of its source's were not since the last row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Record { suppressed: u64 },
    Suppress,
}

/// The open windows, by source.
#[derive(Debug, Default)]
pub(crate) struct AuthFailureThrottle {
    windows: Mutex<HashMap<Source, Window>>,
}

impl AuthFailureThrottle {
    fn admit(&self, source: Source, now: Timestamp) -> Verdict {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut source = source;
        if windows.len() >= MAX_SOURCES && !windows.contains_key(&source) {
            // Windows that ended with nothing to report can go at once; those with a count wait
            // for the summary.
            windows.retain(|_, window| !(window.ended(now) && window.suppressed == 0));
            if windows.len() >= MAX_SOURCES {
                if !windows.contains_key(&Source::Others) {
                    tracing::warn!(
                        sources = MAX_SOURCES,
                        "failed admin logins come from more sources than are told apart: \
                         further ones share one window"
                    );
                }
                source = Source::Others;
            }
        }
        match windows.get_mut(&source) {
            Some(window) if !window.ended(now) => {
                window.suppressed = window.suppressed.saturating_add(1);
                Verdict::Suppress
            }
            Some(window) => {
                let suppressed = window.suppressed;
                *window = Window {
                    opened: now,
                    suppressed: 0,
                };
                Verdict::Record { suppressed }
            }
            None => {
                windows.insert(
                    source,
                    Window {
                        opened: now,
                        suppressed: 0,
                    },
                );
                Verdict::Record { suppressed: 0 }
            }
        }
    }

    /// Forgets the windows that ended (every window, with `Ending::All`) and returns the
    /// counts among them still to be written.
    fn take_ended(&self, now: Timestamp, ending: Ending) -> Vec<(Source, u64)> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut counts = Vec::new();
        windows.retain(|source, window| {
            if ending == Ending::Ended && !window.ended(now) {
                return true;
            }
            if window.suppressed > 0 {
                counts.push((source.clone(), window.suppressed));
            }
            false
        });
        counts
    }

    /// Puts counts that could not be written back, to be written with the next summary.
    fn restore(&self, counts: Vec<(Source, u64)>, now: Timestamp) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        for (source, suppressed) in counts {
            let window = windows.entry(source).or_insert(Window {
                opened: now,
                suppressed: 0,
            });
            window.suppressed = window.suppressed.saturating_add(suppressed);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Windows whose minute is over.
    Ended,
    /// All of them: the server is stopping.
    All,
}

impl Keygate {
    /// Records a failed admin authentication in the audit log, unless its source already had
    /// one recorded in the last minute (then it is only counted). Only the outcome and, for a
    /// known token, its id are kept: never the presented text.
    pub async fn record_auth_failure(
        &self,
        rejection: Option<KeyRejection>,
        known: Option<&CachedKey>,
        client_ip: Option<String>,
        request_id: Option<String>,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let source = match known {
            Some(known) => Source::Token(known.record.id.clone()),
            None => Source::of(client_ip.as_deref()),
        };
        let Verdict::Record { suppressed } = self.auth_failures.admit(source.clone(), now) else {
            return Ok(());
        };
        let mut draft = AuditDraft::new("anonymous", AuditAction::AdminAuthFailed);
        draft.outcome = Outcome::Denied;
        draft.client_ip = client_ip;
        draft.request_id = request_id;
        if let Some(known) = known {
            draft.org_id = Some(known.record.org_id.to_string());
            draft.target = Some(known.record.id.to_string());
        }
        draft.details = serde_json::json!({
            "code": rejection.map_or("missing_credentials", KeyRejection::code),
        });
        if suppressed > 0 {
            draft.details["suppressed"] = suppressed.into();
            draft.details["source"] = source.name().into();
        }
        self.store.append_audit(&draft, now).await?;
        Ok(())
    }

    /// Writes the counts of ended windows every few seconds until `stop`, then all counts.
    pub async fn summarise_auth_failures(self: Arc<Self>, stop: CancellationToken) {
        let mut ticker = tokio::time::interval(SUMMARISE_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.write_summaries(Ending::Ended).await,
                () = stop.cancelled() => break,
            }
        }
        self.write_summaries(Ending::All).await;
    }

    async fn write_summaries(&self, ending: Ending) {
        let now = self.clock.now();
        let mut counts = self.auth_failures.take_ended(now, ending).into_iter();
        while let Some((source, suppressed)) = counts.next() {
            let mut draft = AuditDraft::new("anonymous", AuditAction::AdminAuthFailed);
            draft.outcome = Outcome::Denied;
            if let Source::V4(_) | Source::V6(_) = &source {
                draft.client_ip = Some(source.name());
            }
            draft.details = serde_json::json!({
                "suppressed": suppressed,
                "source": source.name(),
            });
            if let Err(err) = self.store.append_audit(&draft, now).await {
                tracing::warn!(error = %err, "could not record suppressed authentication failures");
                let mut unwritten = vec![(source, suppressed)];
                unwritten.extend(counts);
                self.auth_failures.restore(unwritten, now);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

    fn at(seconds: u64) -> Timestamp {
        T0.saturating_add(Duration::from_secs(seconds))
    }

    #[test]
    fn one_row_a_minute_per_source_and_every_failure_counted() {
        let throttle = AuthFailureThrottle::default();
        let a = Source::of(Some("203.0.113.7"));
        let b = Source::of(Some("203.0.113.8"));
        assert_eq!(
            throttle.admit(a.clone(), at(0)),
            Verdict::Record { suppressed: 0 }
        );
        for s in 1..60 {
            assert_eq!(
                throttle.admit(a.clone(), at(s)),
                Verdict::Suppress,
                "second {s}"
            );
        }
        assert_eq!(
            throttle.admit(b.clone(), at(30)),
            Verdict::Record { suppressed: 0 },
            "another address has its own window"
        );
        assert_eq!(
            throttle.admit(a.clone(), at(60)),
            Verdict::Record { suppressed: 59 }
        );
        assert_eq!(throttle.admit(a.clone(), at(61)), Verdict::Suppress);
        assert!(throttle.take_ended(at(100), Ending::Ended).is_empty());
        assert_eq!(
            throttle.take_ended(at(120), Ending::Ended),
            vec![(a.clone(), 1)],
            "b ended with nothing to say"
        );
        assert_eq!(
            throttle.admit(a.clone(), at(121)),
            Verdict::Record { suppressed: 0 }
        );
        throttle.admit(a.clone(), at(122));
        assert_eq!(
            throttle.take_ended(at(123), Ending::All),
            vec![(a.clone(), 1)]
        );
        assert!(throttle.windows.lock().unwrap().is_empty());
    }

    #[test]
    fn a_real_token_has_a_window_of_its_own() {
        let throttle = AuthFailureThrottle::default();
        let address = Source::of(Some("203.0.113.7"));
        let token = Source::Token(keygate_core::KeyId::generate());
        assert_eq!(
            throttle.admit(address.clone(), at(0)),
            Verdict::Record { suppressed: 0 }
        );
        // A revoked token tried from the same address right after is still on record.
        assert_eq!(
            throttle.admit(token.clone(), at(1)),
            Verdict::Record { suppressed: 0 }
        );
        assert_eq!(throttle.admit(token.clone(), at(2)), Verdict::Suppress);
        assert!(token.name().starts_with("token "));
    }

    #[test]
    fn an_ipv6_host_is_its_slash_64() {
        let one = Source::of(Some("2001:db8:1:2::1"));
        assert_eq!(one, Source::of(Some("2001:db8:1:2:ffff::9")));
        assert_ne!(one, Source::of(Some("2001:db8:1:3::1")));
        assert_eq!(one.name(), "2001:db8:1:2::/64");
        assert_eq!(
            Source::of(Some("::ffff:192.0.2.1")),
            Source::of(Some("192.0.2.1"))
        );
        assert_eq!(Source::of(None), Source::Unknown);
        assert_eq!(Source::of(Some("not an address")), Source::Unknown);
    }

    #[test]
    fn past_the_cap_new_sources_share_one_window() {
        let throttle = AuthFailureThrottle::default();
        for i in 0..MAX_SOURCES {
            let ip = std::net::Ipv4Addr::from_bits(0x0a00_0000 + u32::try_from(i).unwrap());
            throttle.admit(Source::V4(ip), at(0));
        }
        let late = |n: u32| Source::V4(std::net::Ipv4Addr::from_bits(0xc000_0200 + n));
        assert_eq!(
            throttle.admit(late(1), at(1)),
            Verdict::Record { suppressed: 0 }
        );
        assert_eq!(throttle.admit(late(2), at(2)), Verdict::Suppress);
        assert_eq!(throttle.windows.lock().unwrap().len(), MAX_SOURCES + 1);
        // Once the tracked windows ended empty, new sources get their own again.
        assert_eq!(
            throttle.admit(late(3), at(61)),
            Verdict::Record { suppressed: 0 }
        );
        assert!(throttle.windows.lock().unwrap().contains_key(&late(3)));
        assert_eq!(
            throttle.take_ended(at(200), Ending::Ended),
            vec![(Source::Others, 1)]
        );
    }

    #[test]
    fn unwritten_counts_are_kept() {
        let throttle = AuthFailureThrottle::default();
        let a = Source::of(Some("203.0.113.7"));
        throttle.restore(vec![(a.clone(), 5)], at(0));
        throttle.admit(a.clone(), at(1));
        assert_eq!(throttle.take_ended(at(60), Ending::Ended), vec![(a, 6)]);
    }
}
