//! First use from a new country, with a GeoLite2-format database built for the test by
//! MaxMind's format writer: a key learnt in one country and then used from another is an
//! anomaly, listed with the countries.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::anomalies::Spiking;
use crate::process::text;

/// Builds a country database placing 198.51.100.0/24 in the Netherlands and 203.0.113.0/24
/// in the United States.
fn country_database(path: &std::path::Path) {
    let script = r#"
import sys
from mmdb_writer import MMDBWriter
from netaddr import IPSet
writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
writer.insert_network(IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "NL"}})
writer.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "US"}})
writer.to_db_file(sys.argv[1])
"#;
    let out = std::process::Command::new(crate::python::python())
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_used_from_a_new_country_is_an_anomaly() {
    let geo = tempfile::tempdir().unwrap();
    let database = geo.path().join("countries.mmdb");
    country_database(&database);
    let Spiking {
        dir: _dir,
        _upstream,
        server,
    } = Spiking::start(
        "trusted_proxies = [\"127.0.0.1/32\"]",
        &format!("geoip_database = {:?}", database.display().to_string()),
    )
    .await;
    let owner = server.owner_token();
    let made = server.cli(
        &[
            "keys",
            "create",
            "--name",
            "roaming",
            "--scope",
            "models:chat",
            "--quiet",
        ],
        Some(&owner),
        None,
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    let key = text(&made.stdout).trim().to_owned();
    let http = reqwest::Client::new();
    let chat_from = |ip: &'static str| {
        http.post(format!("{}/v1/chat/completions", server.url))
            .bearer_auth(&key)
            .header("x-forwarded-for", ip)
            .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    assert_eq!(chat_from("198.51.100.7").await.unwrap().status(), 200);
    // Seen in the Netherlands before the next request is judged.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(chat_from("198.51.100.8").await.unwrap().status(), 200);
    assert_eq!(chat_from("203.0.113.9").await.unwrap().status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let out = server.cli(&["anomalies", "list", "--json"], Some(&owner), None);
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        let country = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["detector"] == "new_country")
            .cloned();
        if let Some(found) = country {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no new_country: {listed}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(found["evidence"]["country"], "US");
    assert_eq!(found["evidence"]["known_countries"], json!(["NL"]));
    assert_eq!(found["action"], "alert", "the default action");
}
