//! The keygate server, asked about the keygate keys a scan found (`POST /v1/keys/verify`) or
//! told of them (`POST /v1/leaks`, which quarantines them). Only keys of keygate's format go
//! there: another vendor's secret never leaves the machine.

use std::collections::BTreeMap;
use std::time::Duration;

use keygate_scan::Finding;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::CliError;

const RULE: &str = "keygate-key";

pub struct Server {
    http: reqwest::Client,
    base: String,
}

impl Server {
    pub fn new(url: &str) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|err| CliError::Other(err.into()))?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
        })
    }

    /// Sets each keygate key's `verification` to what the server says of it.
    pub async fn verify(&self, findings: &mut [Finding]) -> Result<(), CliError> {
        let mut answers: BTreeMap<String, String> = BTreeMap::new();
        for finding in findings.iter_mut().filter(|f| f.rule_id == RULE) {
            let secret = finding.expose_secret().to_owned();
            if let Some(known) = answers.get(&secret) {
                finding.verification = Some(known.clone());
                continue;
            }
            let body = self
                .post("/v1/keys/verify", &json!({ "key": secret }))
                .await?;
            let state = match body["code"].as_str() {
                Some("valid") => "valid".to_owned(),
                Some("key_invalid" | "key_malformed") => "unknown".to_owned(),
                Some(code) => code.strip_prefix("key_").unwrap_or(code).to_owned(),
                None => "unknown".to_owned(),
            };
            finding.verification = Some(state.clone());
            answers.insert(secret, state);
        }
        Ok(())
    }

    /// Reports every keygate key found, once each, as leaked; a key the server knew is then
    /// `reported` (quarantined by the server's `leak_action`).
    pub async fn report(&self, findings: &mut [Finding]) -> Result<(), CliError> {
        let mut tokens: Vec<String> = findings
            .iter()
            .filter(|f| f.rule_id == RULE)
            .map(|f| f.expose_secret().to_owned())
            .collect();
        tokens.sort();
        tokens.dedup();
        if tokens.is_empty() {
            return Ok(());
        }
        let labels = self
            .post(
                "/v1/leaks",
                &json!({ "tokens": tokens, "source": "keygate scan" }),
            )
            .await?;
        let reported: Vec<&str> = labels
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|item| item["label"] == "true_positive")
                    .filter_map(|item| item["token_hash"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        for finding in findings.iter_mut().filter(|f| f.rule_id == RULE) {
            let hash = hex::encode(Sha256::digest(finding.expose_secret().as_bytes()));
            if reported.contains(&hash.as_str()) {
                finding.verification = Some("reported".to_owned());
            } else if finding.verification.is_none() {
                finding.verification = Some("unknown".to_owned());
            }
        }
        Ok(())
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |err: reqwest::Error| CliError::Unreachable {
            url: self.base.clone(),
            // Without the URL: reqwest's message would repeat it, and never holds the body.
            reason: err.without_url().to_string(),
        };
        let reply = self
            .http
            .post(&url)
            .json(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = reply.status();
        let value: Value = reply.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(CliError::Api {
                status: status.as_u16(),
                code: value["error"]["code"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_owned(),
                message: value["error"]["message"]
                    .as_str()
                    .unwrap_or("the server refused the request")
                    .to_owned(),
            });
        }
        Ok(value)
    }
}
