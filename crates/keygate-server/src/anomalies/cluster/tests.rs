//! The cluster's figures against Redis (the one at `KEYGATE_TEST_REDIS_URL`, else
//! 127.0.0.1:6379): traffic spread over two nodes is judged as one node judges all of it.

use std::net::IpAddr;
use std::time::Duration;

use keygate_core::{KeyId, OrgId, Timestamp};
use keygate_watch::detect::{DetectorKind, Detectors, Observation, Thresholds, gather, judge};

use super::{Claim, Cluster};

fn redis_url() -> String {
    std::env::var("KEYGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

const T0: i64 = 1_800_000_000_000;
const MINUTE: i64 = 60_000;

fn thresholds() -> Thresholds {
    Thresholds {
        learning: Duration::from_secs(3600),
        min_requests: 20,
        scope_denials: 10,
        ..Thresholds::default()
    }
}

/// Two hours of 10 requests a minute from one network, then a minute of 200 from another
/// country and network, then scope probing.
fn requests() -> Vec<(i64, &'static str, &'static str, Option<&'static str>)> {
    let mut all = Vec::new();
    for minute in 0..120 {
        for i in 0..10 {
            all.push((minute * MINUTE + i * 6000, "203.0.113.7", "NL", None));
        }
    }
    for i in 0..200 {
        all.push((120 * MINUTE + i * 300, "198.51.100.9", "US", None));
    }
    for i in 0..12 {
        all.push((
            121 * MINUTE + i * 1000,
            "203.0.113.8",
            "NL",
            Some("scope_denied"),
        ));
    }
    all
}

#[tokio::test]
async fn two_nodes_judge_a_key_as_one_node_judges_all_its_traffic() {
    let (org, key) = (OrgId::generate(), KeyId::generate());
    let ips: Vec<IpAddr> = requests()
        .iter()
        .map(|(_, ip, _, _)| ip.parse().unwrap())
        .collect();
    let seen: Vec<Observation<'_>> = requests()
        .iter()
        .zip(&ips)
        .map(|((ms, _, country, code), ip)| Observation {
            at: Timestamp::from_millis(T0 + ms),
            org_id: &org,
            project_id: None,
            key_id: &key,
            tokens: 300,
            cost_micros: 50,
            client_ip: Some(*ip),
            country: Some(country),
            error_code: *code,
        })
        .collect();

    // One node with all of it, in batches of 7 requests.
    let alone = Detectors::new(thresholds());
    let mut expected = Vec::new();
    for batch in seen.chunks(7) {
        for traffic in gather(batch) {
            expected.extend(alone.observe_traffic(&traffic).into_iter().map(|f| f.kind));
        }
    }
    assert_eq!(
        expected,
        [
            DetectorKind::NewNetwork,
            DetectorKind::NewCountry,
            DetectorKind::RequestSpike,
            DetectorKind::ScopeProbing,
        ]
    );

    // Two nodes, the batches dealt to each in turn, sharing Redis; cooldowns left to claims.
    let nodes = [
        Cluster::new(&redis_url()).unwrap(),
        Cluster::new(&redis_url()).unwrap(),
    ];
    let mut found = Vec::new();
    for (n, batch) in seen.chunks(7).enumerate() {
        let traffic = gather(batch);
        let node = &nodes[n % 2];
        let tallies = node.tally(&traffic).await.expect("Redis answers");
        for (one, tally) in traffic.iter().zip(&tallies) {
            for (kind, evidence) in judge(&thresholds(), one, tally) {
                let claim = Claim::Finding {
                    detector: kind.as_str(),
                    key: key.as_str(),
                };
                if node.claim(&claim, Duration::from_secs(60)).await.unwrap() {
                    found.push((kind, evidence));
                }
            }
        }
    }
    let kinds: Vec<DetectorKind> = found.iter().map(|(kind, _)| *kind).collect();
    assert_eq!(kinds, expected);
    // The figures are the whole cluster's: the baseline of 10 a minute, one network known.
    assert_eq!(found[0].1["known_networks"], 1);
    assert_eq!(found[1].1["known_countries"], serde_json::json!(["NL"]));
    let spike = &found[2].1;
    let baseline = spike["baseline_per_minute"].as_f64().unwrap();
    assert!((5.0..=10.0).contains(&baseline), "{spike}");
    // Judged per batch: the batch that brought the tenth refusal brought two more.
    assert_eq!(found[3].1["scope_denied_this_minute"], 12);
}

#[tokio::test]
async fn a_claim_is_won_once_per_cooldown() {
    let (a, b) = (
        Cluster::new(&redis_url()).unwrap(),
        Cluster::new(&redis_url()).unwrap(),
    );
    let key = KeyId::generate();
    let claim = Claim::Finding {
        detector: "request_spike",
        key: key.as_str(),
    };
    assert!(a.claim(&claim, Duration::from_millis(300)).await.unwrap());
    assert!(!b.claim(&claim, Duration::from_millis(300)).await.unwrap());
    assert!(!a.claim(&claim, Duration::from_millis(300)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b.claim(&claim, Duration::from_millis(300)).await.unwrap());
}

#[tokio::test]
async fn failures_are_summed_and_blocks_are_shared() {
    let (a, b) = (
        Cluster::new(&redis_url()).unwrap(),
        Cluster::new(&redis_url()).unwrap(),
    );
    let hint = format!("kg_live_{}…wXyZ", KeyId::generate());
    let minute = T0 / MINUTE;
    let counted = a
        .count_failures(&[("hint", hint.clone(), minute, 3)])
        .await
        .unwrap();
    assert_eq!(counted, [3]);
    let counted = b
        .count_failures(&[
            ("hint", hint.clone(), minute, 4),
            ("hint", hint, minute + 1, 1),
        ])
        .await
        .unwrap();
    assert_eq!(
        counted,
        [7, 1],
        "the minute's sum, and the next minute apart"
    );

    // A block published by one node is read by the other until it ends.
    let source: IpAddr = "198.18.7.9".parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    a.publish_block(source, now + 60_000).await.unwrap();
    // An earlier end never shortens it.
    b.publish_block(source, now + 1000).await.unwrap();
    let blocks = b.blocks(now).await.unwrap();
    assert!(blocks.contains(&(source, now + 60_000)), "{blocks:?}");
    assert!(
        !a.blocks(now + 60_001)
            .await
            .unwrap()
            .iter()
            .any(|(ip, _)| *ip == source),
        "an ended block is forgotten"
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_wait() {
    // Nothing listens on port 1.
    let cluster = Cluster::new("redis://127.0.0.1:1").unwrap();
    let started = std::time::Instant::now();
    assert!(cluster.tally(&[]).await.unwrap().is_empty());
    let key = KeyId::generate();
    let claim = Claim::Finding {
        detector: "request_spike",
        key: key.as_str(),
    };
    assert!(cluster.claim(&claim, Duration::from_secs(1)).await.is_err());
    // Resting after the failure: answered at once.
    assert!(matches!(
        cluster.claim(&claim, Duration::from_secs(1)).await,
        Err(super::ClusterError::Resting)
    ));
    assert!(started.elapsed() < Duration::from_secs(3));
}
