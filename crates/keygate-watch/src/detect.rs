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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use keygate_core::{KeyId, OrgId, ProjectId, Timestamp};

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

const MINUTE_MS: i64 = 60_000;
/// Per-minute weight of the average: a half-life of an hour.
const ALPHA: f64 = 0.011_486_0;
/// Networks remembered per key; past that, a new one is no longer news.
const MAX_NETWORKS: usize = 256;
/// Countries remembered per key.
const MAX_COUNTRIES: usize = 64;
/// Keys watched per shard; the least recently seen is forgotten past it.
const SHARD_KEYS: usize = 4096;
const SHARDS: usize = 16;

#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    requests: u64,
    tokens: u64,
    spend: i64,
    denied: u64,
    foreign: u64,
}

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
            *average += ALPHA * (value - *average);
        }
        let quiet = (minute - self.minute - 1).min(10_000) as i32;
        let decay = (1.0 - ALPHA).powi(quiet);
        self.baseline
            .iter_mut()
            .for_each(|average| *average *= decay);
        self.minute = minute;
        self.current = Figures::default();
    }
}

/// A two-letter country code, as kept per key.
fn country_code(text: &str) -> Option<[u8; 2]> {
    match text.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// The network a client address belongs to, for "first use from a new network".
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0])
            }
        },
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

    fn shard(&self, key: &KeyId) -> &Mutex<HashMap<KeyId, KeyState>> {
        let hash = key.as_str().bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        &self.shards[hash % SHARDS]
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
        let cooldown = i64::try_from(self.thresholds.cooldown.as_millis()).unwrap_or(i64::MAX);
        let mut shard = self
            .shard(seen.key_id)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let state = shard
            .entry(seen.key_id.clone())
            .or_insert_with(|| KeyState::new(at));
        let kind = DetectorKind::LateOldSecret;
        if state
            .spoke
            .get(&kind)
            .is_some_and(|last| at - *last < cooldown)
        {
            return None;
        }
        state.spoke.insert(kind, at);
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
        let at = seen.at.as_millis();
        let t = &self.thresholds;
        let learning = i64::try_from(t.learning.as_millis()).unwrap_or(i64::MAX);
        let cooldown = i64::try_from(t.cooldown.as_millis()).unwrap_or(i64::MAX);
        let mut shard = self
            .shard(seen.key_id)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= SHARD_KEYS && !shard.contains_key(seen.key_id) {
            let stalest = shard
                .iter()
                .min_by_key(|(_, state)| state.last_seen)
                .map(|(key, _)| key.clone());
            if let Some(stalest) = stalest {
                shard.remove(&stalest);
            }
        }
        let state = shard
            .entry(seen.key_id.clone())
            .or_insert_with(|| KeyState::new(at));
        state.advance(at.div_euclid(MINUTE_MS));
        state.last_seen = state.last_seen.max(at);
        state.current.requests += 1;
        state.current.tokens += seen.tokens;
        state.current.spend += seen.cost_micros.max(0);
        match seen.error_code {
            Some("scope_denied") => state.current.denied += 1,
            Some("origin_not_allowed") => state.current.foreign += 1,
            _ => {}
        }
        let learnt = at - state.first_seen >= learning;
        let mut found: Vec<(DetectorKind, serde_json::Value)> = Vec::new();

        if learnt {
            let spikes = [
                (
                    DetectorKind::RequestSpike,
                    state.current.requests as f64,
                    state.baseline[0],
                    t.min_requests as f64,
                ),
                (
                    DetectorKind::TokenSpike,
                    state.current.tokens as f64,
                    state.baseline[1],
                    t.min_tokens as f64,
                ),
                (
                    DetectorKind::SpendSpike,
                    state.current.spend as f64,
                    state.baseline[2],
                    t.min_spend_micros as f64,
                ),
            ];
            for (kind, now, baseline, floor) in spikes {
                if now >= floor && now > t.spike_factor * baseline {
                    found.push((
                        kind,
                        serde_json::json!({
                            "this_minute": now.round(),
                            "baseline_per_minute": (baseline * 100.0).round() / 100.0,
                            "factor": t.spike_factor,
                        }),
                    ));
                }
            }
        }
        if let Some(ip) = seen.client_ip {
            let net = network(ip);
            if !state.networks.contains(&net) && state.networks.len() < MAX_NETWORKS {
                let known = state.networks.len();
                state.networks.push(net);
                if learnt && known > 0 {
                    found.push((
                        DetectorKind::NewNetwork,
                        serde_json::json!({
                            "network": net.to_string(),
                            "prefix": if net.is_ipv4() { 24 } else { 48 },
                            "known_networks": known,
                        }),
                    ));
                }
            }
        }
        if let Some(code) = seen.country.and_then(country_code)
            && !state.countries.contains(&code)
            && state.countries.len() < MAX_COUNTRIES
        {
            let known: Vec<String> = state
                .countries
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            state.countries.push(code);
            if learnt && !known.is_empty() {
                found.push((
                    DetectorKind::NewCountry,
                    serde_json::json!({
                        "country": String::from_utf8_lossy(&code),
                        "known_countries": known,
                    }),
                ));
            }
        }
        if state.current.denied >= t.scope_denials && seen.error_code == Some("scope_denied") {
            found.push((
                DetectorKind::ScopeProbing,
                serde_json::json!({ "scope_denied_this_minute": state.current.denied }),
            ));
        }
        if state.current.foreign >= t.foreign_origins
            && seen.error_code == Some("origin_not_allowed")
        {
            found.push((
                DetectorKind::ForeignOrigin,
                serde_json::json!({ "origin_not_allowed_this_minute": state.current.foreign }),
            ));
        }

        found
            .into_iter()
            .filter(|(kind, _)| {
                let quiet = state
                    .spoke
                    .get(kind)
                    .is_none_or(|last| at - *last >= cooldown);
                if quiet {
                    state.spoke.insert(*kind, at);
                }
                quiet
            })
            .map(|(kind, evidence)| Finding {
                kind,
                at: seen.at,
                org_id: seen.org_id.clone(),
                project_id: seen.project_id.cloned(),
                key_id: seen.key_id.clone(),
                evidence,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    struct Traffic {
        detectors: Detectors,
        org: OrgId,
        key: KeyId,
    }

    impl Traffic {
        fn new() -> Self {
            Self {
                detectors: Detectors::new(Thresholds {
                    learning: Duration::from_secs(3600),
                    min_requests: 20,
                    scope_denials: 10,
                    foreign_origins: 10,
                    ..Thresholds::default()
                }),
                org: OrgId::generate(),
                key: KeyId::generate(),
            }
        }

        /// `n` requests spread over the minute starting at `minute`.
        fn minute(&self, minute: i64, n: i64, ip: &str, code: Option<&str>) -> Vec<Finding> {
            (0..n)
                .flat_map(|i| {
                    self.detectors.observe(&Observation {
                        at: Timestamp::from_millis(T0 + minute * MINUTE_MS + i * MINUTE_MS / n),
                        org_id: &self.org,
                        project_id: None,
                        key_id: &self.key,
                        tokens: 500,
                        cost_micros: 100,
                        client_ip: Some(ip.parse().unwrap()),
                        country: None,
                        error_code: code,
                    })
                })
                .collect()
        }

        /// Two hours of a steady 10 requests a minute from one network.
        fn steady(&self) -> Vec<Finding> {
            (0..120)
                .flat_map(|m| self.minute(m, 10, "203.0.113.7", None))
                .collect()
        }
    }

    fn kinds(found: &[Finding]) -> Vec<DetectorKind> {
        found.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn a_steady_baseline_stays_quiet() {
        let traffic = Traffic::new();
        assert!(traffic.steady().is_empty());
        // Twice the usual is no spike; another address in the same /24 is no new network.
        assert!(traffic.minute(120, 20, "203.0.113.99", None).is_empty());
    }

    #[test]
    fn a_spike_after_learning_fires_once_per_cooldown() {
        let traffic = Traffic::new();
        traffic.steady();
        let found = traffic.minute(121, 200, "203.0.113.7", None);
        assert_eq!(
            kinds(&found),
            [DetectorKind::RequestSpike, DetectorKind::TokenSpike]
        );
        assert!(found[0].evidence["baseline_per_minute"].as_f64().unwrap() > 5.0);
        // Still spiking the next minute: within the cooldown, nothing new.
        assert!(traffic.minute(122, 200, "203.0.113.7", None).is_empty());
        // Spend spikes need their floor: 200 × 100 µ$ is under a dollar.
        assert!(!kinds(&found).contains(&DetectorKind::SpendSpike));
    }

    #[test]
    fn a_spike_while_learning_is_not_judged() {
        let traffic = Traffic::new();
        assert!(traffic.minute(0, 10, "203.0.113.7", None).is_empty());
        assert!(traffic.minute(1, 500, "198.51.100.1", None).is_empty());
    }

    #[test]
    fn a_new_network_after_learning_fires() {
        let traffic = Traffic::new();
        traffic.steady();
        let found = traffic.minute(121, 1, "198.51.100.20", None);
        assert_eq!(kinds(&found), [DetectorKind::NewNetwork]);
        assert_eq!(found[0].evidence["network"], "198.51.100.0");
        // Known now.
        assert!(traffic.minute(200, 1, "198.51.100.21", None).is_empty());
        let v6 = traffic.minute(201, 1, "2001:db8:1:2::5", None);
        assert_eq!(v6[0].evidence["network"], "2001:db8:1::");
    }

    #[test]
    fn a_burst_of_scope_denials_fires() {
        let traffic = Traffic::new();
        assert!(
            traffic
                .minute(0, 9, "203.0.113.7", Some("scope_denied"))
                .is_empty()
        );
        let found = traffic.minute(1, 10, "203.0.113.7", Some("scope_denied"));
        assert_eq!(kinds(&found), [DetectorKind::ScopeProbing]);
    }

    #[test]
    fn a_new_country_after_learning_fires() {
        let traffic = Traffic::new();
        let seen = |minute: i64, ip: &str, country: Option<&'static str>| {
            traffic.detectors.observe(&Observation {
                at: Timestamp::from_millis(T0 + minute * MINUTE_MS),
                org_id: &traffic.org,
                project_id: None,
                key_id: &traffic.key,
                tokens: 0,
                cost_micros: 0,
                client_ip: Some(ip.parse().unwrap()),
                country,
                error_code: None,
            })
        };
        // Learnt in the Netherlands (and once with no country known).
        assert!(seen(0, "198.51.100.1", Some("NL")).is_empty());
        assert!(seen(1, "198.51.100.1", None).is_empty());
        assert!(
            seen(70, "198.51.100.2", Some("nl")).is_empty(),
            "the same country"
        );
        let found = seen(71, "198.51.100.3", Some("US"));
        assert_eq!(kinds(&found), [DetectorKind::NewCountry]);
        assert_eq!(found[0].evidence["country"], "US");
        assert_eq!(
            found[0].evidence["known_countries"],
            serde_json::json!(["NL"])
        );
        assert!(seen(72, "198.51.100.4", Some("US")).is_empty(), "known now");
    }

    #[test]
    fn a_burst_of_foreign_origins_fires_once() {
        let traffic = Traffic::new();
        let refused = Some("origin_not_allowed");
        assert!(traffic.minute(0, 9, "203.0.113.7", refused).is_empty());
        let found = traffic.minute(1, 10, "203.0.113.7", refused);
        assert_eq!(kinds(&found), [DetectorKind::ForeignOrigin]);
        assert_eq!(found[0].evidence["origin_not_allowed_this_minute"], 10);
        assert!(
            traffic.minute(2, 30, "203.0.113.7", refused).is_empty(),
            "within the cooldown"
        );
    }

    #[test]
    fn an_old_secret_late_in_its_grace_is_found_once() {
        let traffic = Traffic::new();
        let seen = |ms: i64| Observation {
            at: Timestamp::from_millis(T0 + ms),
            org_id: &traffic.org,
            project_id: None,
            key_id: &traffic.key,
            tokens: 0,
            cost_micros: 0,
            client_ip: None,
            country: None,
            error_code: None,
        };
        let (rotated, until) = (
            Timestamp::from_millis(T0),
            Timestamp::from_millis(T0 + 4_000_000),
        );
        let detectors = &traffic.detectors;
        // Early in the grace period, using the old secret is expected.
        assert!(
            detectors
                .old_secret_used(&seen(2_000_000), 3, rotated, until)
                .is_none()
        );
        let found = detectors
            .old_secret_used(&seen(3_100_000), 3, rotated, until)
            .unwrap();
        assert_eq!(found.kind, DetectorKind::LateOldSecret);
        assert_eq!(found.evidence["seconds_left"], 900);
        assert!(
            detectors
                .old_secret_used(&seen(3_200_000), 3, rotated, until)
                .is_none()
        );
    }

    #[test]
    fn a_long_quiet_spell_does_not_make_every_request_a_spike() {
        let traffic = Traffic::new();
        traffic.steady();
        // A day without traffic: the baseline decays, but the floor keeps a trickle quiet.
        assert!(traffic.minute(24 * 60, 10, "203.0.113.7", None).is_empty());
    }
}
