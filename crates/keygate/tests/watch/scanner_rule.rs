//! `deploy/scanners/gitleaks.toml`: its rule finds every issued key, whatever it is next to,
//! and nothing else in a corpus of near misses and other vendors' keys.

use keygate_core::{ApiKey, KeyEnv};

fn rule() -> regex::Regex {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/scanners/gitleaks.toml"
    );
    let config: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let rule = &config["rules"][0];
    assert_eq!(rule["id"].as_str(), Some("keygate-key"));
    assert_eq!(rule["secretGroup"].as_integer(), Some(1));
    regex::Regex::new(rule["regex"].as_str().unwrap()).unwrap()
}

#[test]
fn the_scanner_rule_matches_issued_keys_and_nothing_else() {
    let rule = rule();
    for env in [KeyEnv::Live, KeyEnv::Test] {
        for _ in 0..500 {
            let key = ApiKey::generate(env).unwrap();
            let key = key.expose();
            for text in [
                key.to_owned(),
                format!("KEYGATE_KEY={key}\n"),
                format!("\"authorization\": \"Bearer {key}\","),
                format!("curl -H 'x-api-key: {key}' https://…"),
            ] {
                let found = rule.captures(&text).map(|c| c[1].to_owned());
                assert_eq!(found.as_deref(), Some(key), "{text}");
            }
        }
    }
    let key = ApiKey::generate(KeyEnv::Live).unwrap();
    let key = key.expose();
    let corpus = [
        format!("{key}x"),
        format!("x{key}"),
        format!("{key}_"),
        key[..key.len() - 1].to_owned(),
        key.replace("kg_live_", "kg_prod_"),
        key.replace("kg_live_", "KG_LIVE_"),
        key.replacen('_', "-", 2),
        "kg_live_".to_owned(),
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKl".to_owned(),
        "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789".to_owned(),
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx".to_owned(),
        "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
    ];
    for text in corpus {
        assert!(!rule.is_match(&text), "matched {text}");
    }
}
