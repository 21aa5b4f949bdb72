//! Anomaly detectors over each key's traffic, in memory. Every request's facts (as its usage
//! record has them) go through [`Detectors::observe`], which returns what looks wrong:
//!
//! - a request, token or spend rate far above the key's own baseline: an exponentially
//!   weighted average of its per-minute figures (half-life an hour), learnt for a while
//!   before it judges;
//! - the first request from a network (IPv4 /24, IPv6 /48) the key was not seen on, after
//!   its learning period; the same for a country, when a GeoIP database names them;
//! - a burst of `scope_denied` refusals (a key probing routes or models it does not have);
//! - a burst of `origin_not_allowed` refusals (a publishable key used from a site it does not
//!   list — copied onto another page — in volume).
//!
//! Time comes from the observations themselves, so tests replay traffic on any clock. Each
//! detector speaks at most once per key in a cooldown, so a sustained spike is one finding.
//!
//! The figures live in this node's memory here; with Redis, the server keeps them there for
//! every node (same [`Traffic`] in, same [`Tally`] out, same [`judge`]), so that a cluster
//! judges a key's whole traffic, not each node's share.

mod traffic;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use keygate_core::{KeyId, OrgId, ProjectId, Timestamp};

pub use traffic::{Figures, Tally, Traffic, country_code, gather, judge, network};

/// What a detector watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DetectorKind {
    RequestSpike,
    TokenSpike,
    SpendSpike,
    NewNetwork,
    ScopeProbing,
    /// The secret a rotation replaced, still used in the last quarter of its grace period.
    LateOldSecret,
    /// A publishable key presented from origins it does not list, in volume.
    ForeignOrigin,
    /// The first request from a country the key was not seen in (with a GeoIP database).
    NewCountry,
}

impl DetectorKind {
    pub const ALL: [DetectorKind; 8] = [
        Self::RequestSpike,
        Self::TokenSpike,
        Self::SpendSpike,
        Self::NewNetwork,
        Self::ScopeProbing,
        Self::LateOldSecret,
        Self::ForeignOrigin,
        Self::NewCountry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestSpike => "request_spike",
            Self::TokenSpike => "token_spike",
            Self::SpendSpike => "spend_spike",
            Self::NewNetwork => "new_network",
            Self::ScopeProbing => "scope_probing",
            Self::LateOldSecret => "old_secret_late",
            Self::ForeignOrigin => "foreign_origin",
            Self::NewCountry => "new_country",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// When the detectors speak.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// How long a key is watched before its baseline and networks are trusted.
    pub learning: Duration,
    /// A minute's figure above this many times the baseline is a spike…
    pub spike_factor: f64,
    /// …if it is also at least this many requests,
    pub min_requests: u64,
    /// this many tokens,
    pub min_tokens: u64,
    /// or this much spend (micro-dollars) in the minute.
    pub min_spend_micros: i64,
    /// `scope_denied` refusals of one key in a minute that make a burst.
    pub scope_denials: u64,
    /// `origin_not_allowed` refusals of one publishable key in a minute that make a burst.
    pub foreign_origins: u64,
    /// Quiet time after a detector spoke about a key.
    pub cooldown: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            learning: Duration::from_secs(24 * 3600),
            spike_factor: 5.0,
            min_requests: 60,
            min_tokens: 100_000,
            min_spend_micros: 1_000_000,
            scope_denials: 20,
            foreign_origins: 20,
            cooldown: Duration::from_secs(15 * 60),
        }
    }
}

/// One request, as the detectors see it.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub at: Timestamp,
    pub org_id: &'a OrgId,
    pub project_id: Option<&'a ProjectId>,
    pub key_id: &'a KeyId,
    pub tokens: u64,
    pub cost_micros: i64,
    pub client_ip: Option<IpAddr>,
    /// The client's country (ISO 3166-1 alpha-2), when a GeoIP database names it.
    pub country: Option<&'a str>,
    pub error_code: Option<&'a str>,
}

/// Something that looks wrong, with the figures that show it (never a secret).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: DetectorKind,
    pub at: Timestamp,
    pub org_id: OrgId,
    pub project_id: Option<ProjectId>,
    pub key_id: KeyId,
    pub evidence: serde_json::Value,
}

pub const MINUTE_MS: i64 = 60_000;
/// Per-minute weight of the average: a half-life of an hour.
pub const BASELINE_WEIGHT: f64 = 0.011_486_0;
/// Networks remembered per key; past that, a new one is no longer news.
pub const MAX_NETWORKS: usize = 256;
/// Countries remembered per key.
pub const MAX_COUNTRIES: usize = 64;
/// Quiet minutes folded into a baseline at most (it is zero well before).
pub const MAX_QUIET_MINUTES: i64 = 10_000;
/// Keys watched per shard; the least recently seen is forgotten past it.
const SHARD_KEYS: usize = 4096;
const SHARDS: usize = 16;

#[derive(Debug)]
struct KeyState {
    first_seen: i64,
    last_seen: i64,
    minute: i64,
    current: Figures,
    /// Averages per minute of requests, tokens and spend.
    baseline: [f64; 3],
    networks: Vec<IpAddr>,
    countries: Vec<[u8; 2]>,
    spoke: HashMap<DetectorKind, i64>,
}

impl KeyState {
    fn new(at: i64) -> Self {
        Self {
            first_seen: at,
            last_seen: at,
            minute: at.div_euclid(MINUTE_MS),
            current: Figures::default(),
            baseline: [0.0; 3],
            networks: Vec::new(),
            countries: Vec::new(),
            spoke: HashMap::new(),
        }
    }

    /// Folds finished minutes (the current one, then the quiet ones since) into the baseline.
    /// Traffic of a minute already folded counts in the current one.
    fn advance(&mut self, minute: i64) {
        if minute <= self.minute {
            return;
        }
        let done = [
            self.current.requests as f64,
            self.current.tokens as f64,
            self.current.spend as f64,
        ];
        for (average, value) in self.baseline.iter_mut().zip(done) {
            *average += BASELINE_WEIGHT * (value - *average);
        }
        let quiet = (minute - self.minute - 1).min(MAX_QUIET_MINUTES) as i32;
        let decay = (1.0 - BASELINE_WEIGHT).powi(quiet);
        self.baseline
            .iter_mut()
            .for_each(|average| *average *= decay);
        self.minute = minute;
        self.current = Figures::default();
    }

    /// Adds `traffic`; the same arithmetic as the Redis script of the server's cluster mode.
    fn add(&mut self, traffic: &Traffic) -> Tally {
        self.advance(traffic.minute);
        self.last_seen = self.last_seen.max(traffic.last_at);
        self.current.add(&traffic.figures);
        let known_networks = self.networks.len();
        let mut new_networks = Vec::new();
        for net in &traffic.networks {
            if !self.networks.contains(net) && self.networks.len() < MAX_NETWORKS {
                self.networks.push(*net);
                new_networks.push(*net);
            }
        }
        let known_countries = self.countries.clone();
        let mut new_countries = Vec::new();
        for code in &traffic.countries {
            if !self.countries.contains(code) && self.countries.len() < MAX_COUNTRIES {
                self.countries.push(*code);
                new_countries.push(*code);
            }
        }
        Tally {
            first_seen: self.first_seen,
            current: self.current,
            baseline: self.baseline,
            known_networks,
            new_networks,
            known_countries,
            new_countries,
        }
    }

    /// Whether `kind` may speak at `at`: not within its cooldown (and it then has).
    fn quiet(&mut self, kind: DetectorKind, at: i64, cooldown: i64) -> bool {
        let quiet = self
            .spoke
            .get(&kind)
            .is_none_or(|last| at - *last >= cooldown);
        if quiet {
            self.spoke.insert(kind, at);
        }
        quiet
    }
}

impl Traffic {
    /// The finding `kind` makes of this traffic.
    pub fn finding(&self, kind: DetectorKind, evidence: serde_json::Value) -> Finding {
        Finding {
            kind,
            at: Timestamp::from_millis(self.last_at),
            org_id: self.org_id.clone(),
            project_id: self.project_id.clone(),
            key_id: self.key_id.clone(),
            evidence,
        }
    }
}

/// The detectors of one node.
#[derive(Debug)]
pub struct Detectors {
    thresholds: Thresholds,
    shards: Vec<Mutex<HashMap<KeyId, KeyState>>>,
}

impl Detectors {
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    fn cooldown_ms(&self) -> i64 {
        i64::try_from(self.thresholds.cooldown.as_millis()).unwrap_or(i64::MAX)
    }

    /// Runs `f` on `key`'s state, made at `at` if the key is new (forgetting the key seen
    /// longest ago when the shard is full).
    fn with_state<T>(&self, key: &KeyId, at: i64, f: impl FnOnce(&mut KeyState) -> T) -> T {
        let hash = key.as_str().bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        let mut shard = self.shards[hash % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= SHARD_KEYS && !shard.contains_key(key) {
            let stalest = shard
                .iter()
                .min_by_key(|(_, state)| state.last_seen)
                .map(|(key, _)| key.clone());
            if let Some(stalest) = stalest {
                shard.remove(&stalest);
            }
        }
        f(shard
            .entry(key.clone())
            .or_insert_with(|| KeyState::new(at)))
    }

    /// Whether `kind` may speak about `key` at `at` on this node (and it then has): once per
    /// cooldown.
    pub fn quiet(&self, key: &KeyId, kind: DetectorKind, at: Timestamp) -> bool {
        let at = at.as_millis();
        let cooldown = self.cooldown_ms();
        self.with_state(key, at, |state| state.quiet(kind, at, cooldown))
    }

    /// A key's replaced secret was used at `at`, in a grace period that runs from `rotated_at`
    /// to `grace_until`: a finding in its last quarter (a consumer that was not updated),
    /// once per cooldown.
    pub fn old_secret_used(
        &self,
        seen: &Observation<'_>,
        generation: i64,
        rotated_at: Timestamp,
        grace_until: Timestamp,
    ) -> Option<Finding> {
        let at = seen.at.as_millis();
        let (start, end) = (rotated_at.as_millis(), grace_until.as_millis());
        if end <= start || at < end - (end - start) / 4 {
            return None;
        }
        let kind = DetectorKind::LateOldSecret;
        if !self.quiet(seen.key_id, kind, seen.at) {
            return None;
        }
        Some(Finding {
            kind,
            at: seen.at,
            org_id: seen.org_id.clone(),
            project_id: seen.project_id.cloned(),
            key_id: seen.key_id.clone(),
            evidence: serde_json::json!({
                "generation": generation,
                "grace_until": grace_until.to_rfc3339(),
                "seconds_left": (end - at) / 1000,
                "client_ip": seen.client_ip.map(|ip| ip.to_string()),
            }),
        })
    }

    /// Takes one request into account; returns the findings it completes.
    pub fn observe(&self, seen: &Observation<'_>) -> Vec<Finding> {
        self.observe_all(std::slice::from_ref(seen))
    }

    /// Takes a batch of requests into account, per key and minute; returns the findings.
    pub fn observe_all(&self, seen: &[Observation<'_>]) -> Vec<Finding> {
        gather(seen)
            .iter()
            .flat_map(|traffic| self.observe_traffic(traffic))
            .collect()
    }

    /// Adds one key's traffic to its figures here; returns the findings it completes.
    pub fn observe_traffic(&self, traffic: &Traffic) -> Vec<Finding> {
        let cooldown = self.cooldown_ms();
        self.with_state(&traffic.key_id, traffic.first_at, |state| {
            let tally = state.add(traffic);
            judge(&self.thresholds, traffic, &tally)
                .into_iter()
                .filter(|(kind, _)| state.quiet(*kind, traffic.last_at, cooldown))
                .map(|(kind, evidence)| traffic.finding(kind, evidence))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests;
