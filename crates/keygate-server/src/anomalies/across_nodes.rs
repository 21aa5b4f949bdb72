//! What the anomaly task does with Redis (`cluster.rs`), when it is configured: judges each
//! usage batch on the cluster's figures, adds this node's failed authentications to the
//! cluster's counts (blocking a source, or announcing a key's burst, when the sum crosses the
//! threshold), takes in the blocks other nodes started, and claims every announcement once for
//! the cluster. Whatever Redis cannot serve is judged on this node alone, as without it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use keygate_core::{KeyRecord, Timestamp};
use keygate_watch::detect::{Finding, Traffic, judge};
use keygate_watch::sources::{Block, source_of};

use super::Anomalies;
use super::cluster::{Claim, ClusterError};
use super::failures::DeadKeyBurst;

/// How often failure counts go to Redis and blocks are read back.
pub(super) const EXCHANGE_EVERY: Duration = Duration::from_millis(500);
/// Sources and presented keys waiting to be counted; past it, failures are counted on this
/// node only (and the drop is logged).
const MAX_PENDING: usize = 4096;
const MINUTE_MS: i64 = 60_000;

#[derive(Debug)]
struct HintFailures {
    failures: u32,
    code: &'static str,
    key: Option<KeyRecord>,
    source: Option<IpAddr>,
}

#[derive(Debug, Default)]
struct Pending {
    sources: HashMap<(IpAddr, i64), u32>,
    hints: HashMap<(String, i64), HintFailures>,
    dropped: u64,
}

/// Failed authentications of this node not yet added to the cluster's counts.
#[derive(Debug, Default)]
pub(super) struct PendingFailures(Mutex<Pending>);

impl PendingFailures {
    pub(super) fn add(
        &self,
        ip: Option<IpAddr>,
        hint: Option<&str>,
        code: &'static str,
        key: Option<&KeyRecord>,
        at: Timestamp,
    ) {
        let minute = at.as_millis().div_euclid(MINUTE_MS);
        let mut pending = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = &mut *pending;
        if let Some(ip) = ip {
            let slot = (source_of(ip), minute);
            let room = pending.sources.len() < MAX_PENDING;
            match pending.sources.get_mut(&slot) {
                Some(failures) => *failures += 1,
                None if room => {
                    pending.sources.insert(slot, 1);
                }
                None => pending.dropped += 1,
            }
        }
        if let Some(hint) = hint {
            let slot = (hint.to_owned(), minute);
            let room = pending.hints.len() < MAX_PENDING;
            match pending.hints.get_mut(&slot) {
                Some(seen) => {
                    seen.failures += 1;
                    seen.source = ip.or(seen.source);
                }
                None if room => {
                    pending.hints.insert(
                        slot,
                        HintFailures {
                            failures: 1,
                            code,
                            key: key.cloned(),
                            source: ip,
                        },
                    );
                }
                None => pending.dropped += 1,
            }
        }
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Anomalies {
    /// Judges a usage batch on the cluster's figures; on this node's when Redis does not
    /// answer.
    pub(super) async fn judge_together(&self, traffic: Vec<Traffic>) {
        let Some(cluster) = &self.cluster else { return };
        let detectors = &self.watcher.detectors;
        match cluster.tally(&traffic).await {
            Ok(tallies) => {
                for (one, tally) in traffic.iter().zip(&tallies) {
                    for (kind, evidence) in judge(detectors.thresholds(), one, tally) {
                        self.act_once(one.finding(kind, evidence), false).await;
                    }
                }
            }
            Err(err) => {
                self.redis_failed(&err);
                for one in &traffic {
                    for finding in detectors.observe_traffic(one) {
                        self.act_once(finding, true).await;
                    }
                }
            }
        }
    }

    /// Whether this node acts on `finding`: the first node to claim it in its cooldown does.
    /// Without Redis's answer, this node's own cooldown decides (`checked_here` when it
    /// already has).
    pub(super) async fn claimed_finding(&self, finding: &Finding, checked_here: bool) -> bool {
        let Some(cluster) = &self.cluster else {
            return true;
        };
        let claim = Claim::Finding {
            detector: finding.kind.as_str(),
            key: finding.key_id.as_str(),
        };
        match cluster
            .claim(&claim, self.settings.thresholds.cooldown)
            .await
        {
            Ok(first) => first,
            Err(err) => {
                self.redis_failed(&err);
                checked_here
                    || self
                        .watcher
                        .detectors
                        .quiet(&finding.key_id, finding.kind, finding.at)
            }
        }
    }

    /// Whether this node announces a burst of failures with the key of `hint`.
    pub(super) async fn claimed_burst(&self, hint: &str) -> bool {
        let Some(cluster) = &self.cluster else {
            return true;
        };
        match cluster
            .claim(&Claim::Burst { hint }, self.settings.thresholds.cooldown)
            .await
        {
            Ok(first) => first,
            Err(err) => {
                self.redis_failed(&err);
                true
            }
        }
    }

    /// Whether this node audits `block` (the first to claim it does), and tells every node of
    /// it when it does.
    pub(super) async fn announce_block(&self, block: &Block) -> bool {
        let Some(cluster) = &self.cluster else {
            return true;
        };
        let left = block
            .until
            .as_millis()
            .saturating_sub(self.keygate.clock().now().as_millis());
        let quiet = Duration::from_millis(left.max(1).unsigned_abs());
        let claimed = cluster
            .claim(
                &Claim::Block {
                    source: block.source,
                },
                quiet,
            )
            .await;
        match claimed {
            Ok(false) => false,
            Ok(true) => {
                if let Err(err) = cluster
                    .publish_block(block.source, block.until.as_millis())
                    .await
                {
                    self.redis_failed(&err);
                }
                true
            }
            Err(err) => {
                self.redis_failed(&err);
                true
            }
        }
    }

    /// Adds this node's failed authentications to the cluster's counts, acts on the sums,
    /// and takes in the blocks other nodes started.
    pub(super) async fn exchange(&self) {
        let Some(cluster) = &self.cluster else { return };
        let now = self.keygate.clock().now();
        let pending = self.failures.take();
        if pending.dropped > 0 {
            tracing::warn!(
                dropped = pending.dropped,
                "failed authentications were counted on this node only: too many sources at once"
            );
        }
        let sources: Vec<((IpAddr, i64), u32)> = pending.sources.into_iter().collect();
        let hints: Vec<((String, i64), HintFailures)> = pending.hints.into_iter().collect();
        let counts: Vec<(&str, String, i64, u32)> = sources
            .iter()
            .map(|((ip, minute), n)| ("source", ip.to_string(), *minute, *n))
            .chain(
                hints
                    .iter()
                    .map(|((hint, minute), seen)| ("hint", hint.clone(), *minute, seen.failures)),
            )
            .collect();
        match cluster.count_failures(&counts).await {
            Ok(totals) => {
                let (by_source, by_hint) = totals.split_at(sources.len().min(totals.len()));
                let s = &self.settings;
                for (((ip, _), _), total) in sources.iter().zip(by_source) {
                    let total = u32::try_from(*total).unwrap_or(u32::MAX);
                    if total < s.auth_failures_per_minute {
                        continue;
                    }
                    let until = now.saturating_add(s.source_block);
                    if let Some(block) = self.sources.block(*ip, until, total, now) {
                        self.keygate.metrics().watch.source_blocked();
                        tracing::warn!(
                            source = %block.source,
                            failures = total,
                            "a source is blocked after a burst of failed authentications \
                             across nodes"
                        );
                        self.audit_block(block).await;
                    }
                }
                for (((hint, _), seen), total) in hints.into_iter().zip(by_hint) {
                    let total = u32::try_from(*total).unwrap_or(u32::MAX);
                    if total >= s.key_failures_per_minute {
                        self.audit_dead_key(Box::new(DeadKeyBurst {
                            hint,
                            failures: total,
                            code: seen.code,
                            key: seen.key,
                            source: seen.source,
                        }))
                        .await;
                    }
                }
            }
            // Counted on this node meanwhile, as without Redis.
            Err(err) => self.redis_failed(&err),
        }
        match cluster.blocks(now.as_millis()).await {
            Ok(blocks) => {
                for (source, until) in blocks {
                    // Started and audited by the node that decided it.
                    let _ = self
                        .sources
                        .block(source, Timestamp::from_millis(until), 0, now);
                }
            }
            Err(err) => self.redis_failed(&err),
        }
    }

    fn redis_failed(&self, err: &ClusterError) {
        if !matches!(err, ClusterError::Resting) {
            tracing::warn!(
                error = %err,
                "anomaly detection falls back to this node's own figures: Redis did not serve"
            );
        }
    }
}
