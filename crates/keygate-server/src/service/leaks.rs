//! Leak reports: tokens found where they should not be — by GitHub's secret scanning (its
//! partner format, signed), a scanner or a person (a plain form) — checked against keygate's
//! keys. Every keygate key found is quarantined at once (suspended or revoked, as configured),
//! the report is audited (`key.leak_reported`, which announces `key.leaked`) and the answer
//! labels each token `true_positive` or `false_positive`, as GitHub expects. A report needs no
//! credentials: the leaked token is its own proof, and quarantining it is what its owner wants.

use keygate_core::{ApiKey, AuditAction, AuditDraft, ValidationError};
use keygate_crypto::ReportKeys;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Keygate;
use super::quarantine::Quarantine;
use crate::ServiceError;

/// Most tokens one report may carry.
pub const MAX_REPORTED_TOKENS: usize = 100;
const MAX_TOKEN_CHARS: usize = 512;
const MAX_URL_CHARS: usize = 2048;
const MAX_LABEL_CHARS: usize = 100;

/// What a key found in a report becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeakAction {
    /// Refused until an admin resumes it (after rotating it, say).
    #[default]
    Suspend,
    /// Refused for good.
    Revoke,
}

/// How leak reports are received.
#[derive(Debug, Clone, Default)]
pub struct LeakSettings {
    pub action: LeakAction,
    /// Signers whose reports are trusted as GitHub's (`Github-Public-Key-*` headers).
    pub report_keys: ReportKeys,
    /// Refuse reports that are not signed by one of `report_keys`.
    pub require_signature: bool,
}

/// One token of GitHub's partner format: `[{"token", "type", "url", "source"}]`. Fields GitHub
/// may add later are ignored.
#[derive(Debug, Deserialize)]
struct GithubMatch {
    token: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    source: String,
}

/// The plain form: `{"tokens": [...], "url", "source"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainReport {
    tokens: Vec<String>,
    #[serde(default)]
    url: String,
    #[serde(default)]
    source: String,
}

/// A token as reported, with where it was found.
#[derive(Debug)]
pub struct ReportedToken {
    token: zeroize::Zeroizing<String>,
    kind: String,
    url: String,
    source: String,
}

/// A report's signature headers: `Github-Public-Key-Identifier` and `…-Signature`.
#[derive(Debug, Clone, Copy)]
pub struct ReportSignature<'a> {
    pub key_id: &'a str,
    pub signature: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakLabel {
    TruePositive,
    FalsePositive,
}

/// The answer for one token, in GitHub's feedback shape. The token itself is never echoed:
/// `token_hash` is its SHA-256 in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeakVerdict {
    pub token_hash: String,
    pub token_type: String,
    pub label: LeakLabel,
}

/// Why a report was refused before any token was looked at.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the report's signature does not verify against a configured report key")]
    BadSignature,
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

fn bounded(field: &'static str, text: String, max: usize) -> Result<String, ValidationError> {
    if text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "text without control characters, within the length limit",
        ));
    }
    Ok(text)
}

/// Reads either form. Bounds every field; a report of no tokens is refused.
fn parse_report(body: &[u8]) -> Result<Vec<ReportedToken>, ValidationError> {
    let malformed = || {
        ValidationError::new(
            "body",
            "GitHub's [{\"token\", \"type\", \"url\", \"source\"}] or {\"tokens\": [...]}",
        )
    };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| malformed())?;
    let matches: Vec<GithubMatch> = if value.is_array() {
        serde_json::from_value(value).map_err(|_| malformed())?
    } else {
        let plain: PlainReport = serde_json::from_value(value).map_err(|_| malformed())?;
        plain
            .tokens
            .into_iter()
            .map(|token| GithubMatch {
                token,
                kind: "keygate_key".to_owned(),
                url: plain.url.clone(),
                source: plain.source.clone(),
            })
            .collect()
    };
    if matches.is_empty() || matches.len() > MAX_REPORTED_TOKENS {
        return Err(ValidationError::new("tokens", "1 to 100 tokens"));
    }
    matches
        .into_iter()
        .map(|m| {
            let token = zeroize::Zeroizing::new(m.token);
            if token.is_empty() || token.chars().count() > MAX_TOKEN_CHARS {
                return Err(ValidationError::new("token", "1 to 512 characters"));
            }
            Ok(ReportedToken {
                token,
                kind: bounded("type", m.kind, MAX_LABEL_CHARS)?,
                url: bounded("url", m.url, MAX_URL_CHARS)?,
                source: bounded("source", m.source, MAX_LABEL_CHARS)?,
            })
        })
        .collect()
}

impl Keygate {
    /// Receives a leak report: checks its signature (when it has one, or when one is
    /// required), then quarantines every keygate key in it.
    pub async fn receive_leak_report(
        &self,
        body: &[u8],
        signature: Option<ReportSignature<'_>>,
        settings: &LeakSettings,
    ) -> Result<Vec<LeakVerdict>, ReportError> {
        let reporter = match signature {
            Some(sig) if settings.report_keys.verify(sig.key_id, sig.signature, body) => "github",
            Some(_) => return Err(ReportError::BadSignature),
            None if settings.require_signature => return Err(ReportError::BadSignature),
            None => "anonymous",
        };
        let tokens = parse_report(body)?;
        let mut verdicts = Vec::with_capacity(tokens.len());
        let mut seen = std::collections::HashMap::new();
        for reported in &tokens {
            // A token reported twice in one report is looked at once.
            let label = match seen.get(reported.token.as_str()) {
                Some(label) => *label,
                None => {
                    let label = self.quarantine(reported, reporter, settings.action).await?;
                    seen.insert(reported.token.as_str(), label);
                    label
                }
            };
            verdicts.push(LeakVerdict {
                token_hash: hex::encode(Sha256::digest(reported.token.as_bytes())),
                token_type: reported.kind.clone(),
                label,
            });
        }
        Ok(verdicts)
    }

    /// Looks one token up and, if it is a key of this store, quarantines it.
    async fn quarantine(
        &self,
        reported: &ReportedToken,
        reporter: &str,
        action: LeakAction,
    ) -> Result<LeakLabel, ServiceError> {
        let Ok(key) = ApiKey::parse(&reported.token) else {
            return Ok(LeakLabel::FalsePositive);
        };
        let digest = self.digest_key.digest(key.expose());
        let Some((record, secret)) = self.store.key_by_digest(digest.as_bytes()).await? else {
            return Ok(LeakLabel::FalsePositive);
        };
        let now = self.clock.now();
        // A real token, but nothing to take out of use: a secret rotated out already (its key's
        // current secret is not the one exposed), or a publishable key, whose text is public
        // by design. Reporting either again and again must not stop a key.
        if secret.grace_until.is_some_and(|until| now >= until) || record.is_publishable() {
            return Ok(LeakLabel::TruePositive);
        }
        let how = match action {
            LeakAction::Suspend => Quarantine::Suspend,
            LeakAction::Revoke => Quarantine::Revoke,
        };
        let actor = format!("leak-report:{reporter}");
        let reason = format!("reported leaked by {reporter}");
        let taken = self
            .quarantine_key(&record, how, &actor, &reason, serde_json::json!({}))
            .await?;
        if taken == "none" {
            // Out of use already (an earlier report, an admin): one audit entry and one alert
            // were enough.
            return Ok(LeakLabel::TruePositive);
        }
        let mut report = AuditDraft::new(actor, AuditAction::KeyLeakReported);
        report.org_id = Some(record.org_id.to_string());
        report.project_id = record.project_id.as_ref().map(ToString::to_string);
        report.target = Some(record.id.to_string());
        report.details = serde_json::json!({
            "reporter": reporter,
            "source": reported.source,
            "url": reported.url,
            "hint": record.hint,
            "action": taken,
        });
        self.store.append_audit(&report, now).await?;
        Ok(LeakLabel::TruePositive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_are_read_and_bounded() {
        let github = br#"[{"token":"kg_live_a","type":"keygate_api_key","url":"https://github.com/o/r/blob/1/x","source":"content","extra":1}]"#;
        let read = parse_report(github).unwrap();
        assert_eq!(read[0].kind, "keygate_api_key");
        assert_eq!(read[0].source, "content");
        let plain = br#"{"tokens":["a","b"],"source":"pastebin"}"#;
        let read = parse_report(plain).unwrap();
        assert_eq!((read.len(), read[1].source.as_str()), (2, "pastebin"));
        for bad in [
            &br#"{"tokens":[]}"#[..],
            br#"{"tokens":["a"],"other":1}"#,
            br#"[{"type":"x"}]"#,
            br#"[{"token":"a","url":"line\nbreak"}]"#,
            b"nope",
        ] {
            assert!(
                parse_report(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let many = format!(r#"{{"tokens":[{}]}}"#, vec!["\"a\""; 101].join(","));
        assert!(parse_report(many.as_bytes()).is_err());
    }
}
