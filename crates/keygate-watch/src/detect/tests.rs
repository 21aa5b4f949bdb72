use super::*;

const T0: i64 = 1_800_000_000_000;

struct Feed {
    detectors: Detectors,
    org: OrgId,
    key: KeyId,
}

impl Feed {
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
    let traffic = Feed::new();
    assert!(traffic.steady().is_empty());
    // Twice the usual is no spike; another address in the same /24 is no new network.
    assert!(traffic.minute(120, 20, "203.0.113.99", None).is_empty());
}

#[test]
fn a_spike_after_learning_fires_once_per_cooldown() {
    let traffic = Feed::new();
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
    let traffic = Feed::new();
    assert!(traffic.minute(0, 10, "203.0.113.7", None).is_empty());
    assert!(traffic.minute(1, 500, "198.51.100.1", None).is_empty());
}

#[test]
fn a_new_network_after_learning_fires() {
    let traffic = Feed::new();
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
    let traffic = Feed::new();
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
    let traffic = Feed::new();
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
    let traffic = Feed::new();
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
    let traffic = Feed::new();
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
    let traffic = Feed::new();
    traffic.steady();
    // A day without traffic: the baseline decays, but the floor keeps a trickle quiet.
    assert!(traffic.minute(24 * 60, 10, "203.0.113.7", None).is_empty());
}
