//! What the detectors judge, in the shape both of their homes share: a node's requests
//! gathered per key and minute ([`Traffic`]), added to the key's figures — in this node's
//! memory, or in Redis for all nodes at once — which answer with the key's [`Tally`], judged by
//! [`judge`]. One judgement for both, so a cluster finds what one node would.

use std::net::IpAddr;

use keygate_core::{KeyId, OrgId, ProjectId};

use super::{DetectorKind, MINUTE_MS, Observation, Thresholds};

/// Requests, tokens, spend and refusals counted over some traffic.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Figures {
    pub requests: u64,
    pub tokens: u64,
    /// Micro-dollars.
    pub spend: i64,
    /// `scope_denied` refusals.
    pub denied: u64,
    /// `origin_not_allowed` refusals.
    pub foreign: u64,
}

impl Figures {
    pub fn add(&mut self, other: &Figures) {
        self.requests += other.requests;
        self.tokens += other.tokens;
        self.spend += other.spend;
        self.denied += other.denied;
        self.foreign += other.foreign;
    }
}

/// One key's requests within one minute, as one node saw them in one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    pub org_id: OrgId,
    pub project_id: Option<ProjectId>,
    pub key_id: KeyId,
    /// Minutes since the epoch.
    pub minute: i64,
    /// The first and last request's times, in milliseconds.
    pub first_at: i64,
    pub last_at: i64,
    pub figures: Figures,
    /// Networks the requests came from, each once, in the order first seen.
    pub networks: Vec<IpAddr>,
    /// Countries, the same way.
    pub countries: Vec<[u8; 2]>,
}

/// Networks or countries one batch brings per key, at most (the rest wait for the next).
const MAX_PLACES: usize = 64;

/// Gathers observations per key and minute, in the order first seen.
pub fn gather(seen: &[Observation<'_>]) -> Vec<Traffic> {
    let mut gathered: Vec<Traffic> = Vec::new();
    for one in seen {
        let at = one.at.as_millis();
        let minute = at.div_euclid(MINUTE_MS);
        let index = match gathered
            .iter()
            .rposition(|t| t.minute == minute && &t.key_id == one.key_id)
        {
            Some(index) => index,
            None => {
                gathered.push(Traffic {
                    org_id: one.org_id.clone(),
                    project_id: one.project_id.cloned(),
                    key_id: one.key_id.clone(),
                    minute,
                    first_at: at,
                    last_at: at,
                    figures: Figures::default(),
                    networks: Vec::new(),
                    countries: Vec::new(),
                });
                gathered.len() - 1
            }
        };
        let traffic = &mut gathered[index];
        traffic.first_at = traffic.first_at.min(at);
        traffic.last_at = traffic.last_at.max(at);
        let figures = &mut traffic.figures;
        figures.requests += 1;
        figures.tokens += one.tokens;
        figures.spend += one.cost_micros.max(0);
        match one.error_code {
            Some("scope_denied") => figures.denied += 1,
            Some("origin_not_allowed") => figures.foreign += 1,
            _ => {}
        }
        if let Some(net) = one.client_ip.map(network)
            && !traffic.networks.contains(&net)
            && traffic.networks.len() < MAX_PLACES
        {
            traffic.networks.push(net);
        }
        if let Some(code) = one.country.and_then(country_code)
            && !traffic.countries.contains(&code)
            && traffic.countries.len() < MAX_PLACES
        {
            traffic.countries.push(code);
        }
    }
    gathered
}

/// A key's figures once some traffic is added: what the detectors judge.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    /// When the key was first seen (milliseconds).
    pub first_seen: i64,
    /// The current minute's figures, all traffic so far.
    pub current: Figures,
    /// Averages per minute of requests, tokens and spend.
    pub baseline: [f64; 3],
    /// Networks the key was seen on before this traffic…
    pub known_networks: usize,
    /// …and the ones it brought.
    pub new_networks: Vec<IpAddr>,
    pub known_countries: Vec<[u8; 2]>,
    pub new_countries: Vec<[u8; 2]>,
}

/// What looks wrong once `traffic` made `tally`: each detector that speaks, with its evidence.
/// Cooldowns are the caller's.
pub fn judge(
    thresholds: &Thresholds,
    traffic: &Traffic,
    tally: &Tally,
) -> Vec<(DetectorKind, serde_json::Value)> {
    let t = thresholds;
    let learning = i64::try_from(t.learning.as_millis()).unwrap_or(i64::MAX);
    let learnt = traffic.last_at - tally.first_seen >= learning;
    let mut found = Vec::new();
    if learnt {
        let now = &tally.current;
        let spikes = [
            (
                DetectorKind::RequestSpike,
                now.requests as f64,
                tally.baseline[0],
                t.min_requests as f64,
            ),
            (
                DetectorKind::TokenSpike,
                now.tokens as f64,
                tally.baseline[1],
                t.min_tokens as f64,
            ),
            (
                DetectorKind::SpendSpike,
                now.spend as f64,
                tally.baseline[2],
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
        for (i, net) in tally.new_networks.iter().enumerate() {
            let known = tally.known_networks + i;
            if known > 0 {
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
        let mut known: Vec<String> = tally.known_countries.iter().map(text).collect();
        for code in &tally.new_countries {
            if !known.is_empty() {
                found.push((
                    DetectorKind::NewCountry,
                    serde_json::json!({ "country": text(code), "known_countries": known }),
                ));
            }
            known.push(text(code));
        }
    }
    if tally.current.denied >= t.scope_denials && traffic.figures.denied > 0 {
        found.push((
            DetectorKind::ScopeProbing,
            serde_json::json!({ "scope_denied_this_minute": tally.current.denied }),
        ));
    }
    if tally.current.foreign >= t.foreign_origins && traffic.figures.foreign > 0 {
        found.push((
            DetectorKind::ForeignOrigin,
            serde_json::json!({ "origin_not_allowed_this_minute": tally.current.foreign }),
        ));
    }
    found
}

fn text(code: &[u8; 2]) -> String {
    String::from_utf8_lossy(code).into_owned()
}

/// A two-letter country code, as kept per key.
pub fn country_code(text: &str) -> Option<[u8; 2]> {
    match text.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// The network a client address belongs to, for "first use from a new network".
pub fn network(ip: IpAddr) -> IpAddr {
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
