//! SARIF 2.1.0, as GitHub code scanning and other tools read it: one run, the rules that ran
//! as the driver's rules, one result per finding with its place, the masked secret in the
//! message and the fingerprint as a partial fingerprint (so a tool follows a finding across
//! commits).

use serde_json::{Value, json};

use crate::rules::Rule;
use crate::source::Report;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
const INFORMATION_URI: &str = "https://github.com/keygate/keygate";

/// The SARIF log of `report`.
pub fn log(report: &Report, rules: &[Rule]) -> Value {
    let driver_rules: Vec<Value> = rules
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "name": rule.id,
                "shortDescription": { "text": rule.description },
                "fullDescription": { "text": rule.description },
                "defaultConfiguration": { "level": "error" },
                "properties": { "tags": rule.tags, "security-severity": "8.0" },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|finding| {
            let mut location = json!({
                "physicalLocation": {
                    "artifactLocation": { "uri": finding.path },
                }
            });
            if finding.line > 0 {
                location["physicalLocation"]["region"] = json!({
                    "startLine": finding.line,
                    "startColumn": finding.column,
                    "endColumn": finding.end_column.max(finding.column),
                });
            }
            let mut result = json!({
                "ruleId": finding.rule_id,
                "level": "error",
                "message": { "text": message(finding) },
                "locations": [location],
                "partialFingerprints": { "keygateFingerprint/v1": finding.fingerprint },
            });
            if let Some(index) = rules.iter().position(|rule| rule.id == finding.rule_id) {
                result["ruleIndex"] = json!(index);
            }
            let mut properties = serde_json::Map::new();
            if let Some(commit) = &finding.commit {
                properties.insert("commit".to_owned(), json!(commit));
            }
            if let Some(verification) = &finding.verification {
                properties.insert("verification".to_owned(), json!(verification));
            }
            if !properties.is_empty() {
                result["properties"] = Value::Object(properties);
            }
            result
        })
        .collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "keygate scan",
                    "informationUri": INFORMATION_URI,
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": driver_rules,
                }
            },
            "results": results,
        }]
    })
}

fn message(finding: &crate::Finding) -> String {
    if finding.masked.is_empty() {
        format!(
            "{}: a file that holds secrets by its kind",
            finding.description
        )
    } else {
        format!("{}: {}", finding.description, finding.masked)
    }
}
