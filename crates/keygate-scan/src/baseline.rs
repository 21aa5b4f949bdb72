//! A baseline: findings already known (and accepted, or being dealt with), left out of later
//! scans. It holds fingerprints — a hash of the rule, the path and the secret — never a
//! secret, so it can be committed; a finding that moves within its file stays known.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::finding::Finding;

const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("could not read the baseline {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a keygate scan baseline: {message}")]
    Format { path: PathBuf, message: String },
    #[error("could not write the baseline {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    keygate_scan_baseline: u32,
    findings: Vec<Entry>,
}

/// One known finding: the fingerprint decides; the rest is for the people reading the file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    fingerprint: String,
    rule_id: String,
    path: String,
    line: u32,
}

#[derive(Debug, Default)]
pub struct Baseline {
    known: BTreeSet<String>,
}

impl Baseline {
    pub fn load(path: &Path) -> Result<Self, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: File = serde_json::from_str(&text).map_err(|err| BaselineError::Format {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        if file.keygate_scan_baseline != VERSION {
            return Err(BaselineError::Format {
                path: path.to_owned(),
                message: format!(
                    "version {} (this keygate reads {VERSION})",
                    file.keygate_scan_baseline
                ),
            });
        }
        Ok(Self {
            known: file
                .findings
                .into_iter()
                .map(|entry| entry.fingerprint)
                .collect(),
        })
    }

    /// Removes the known findings from `findings`; returns how many went.
    pub fn filter(&self, findings: &mut Vec<Finding>) -> usize {
        let before = findings.len();
        findings.retain(|finding| !self.known.contains(&finding.fingerprint));
        before - findings.len()
    }

    /// Writes `findings` as a baseline at `path` (replacing it), in a stable order so that
    /// its changes read well in review.
    pub fn write(path: &Path, findings: &[Finding]) -> Result<(), BaselineError> {
        let entries: BTreeSet<Entry> = findings
            .iter()
            .map(|finding| Entry {
                fingerprint: finding.fingerprint.clone(),
                rule_id: finding.rule_id.clone(),
                path: finding.path.clone(),
                line: finding.line,
            })
            .collect();
        let file = File {
            keygate_scan_baseline: VERSION,
            findings: entries.into_iter().collect(),
        };
        let mut text = serde_json::to_string_pretty(&file).map_err(|err| BaselineError::Write {
            path: path.to_owned(),
            source: std::io::Error::other(err),
        })?;
        text.push('\n');
        std::fs::write(path, text).map_err(|source| BaselineError::Write {
            path: path.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Origin, RuleSet, Scanner};

    #[test]
    fn a_known_finding_stays_known_when_it_moves() {
        let scanner = Scanner::new(&RuleSet::default_rules().unwrap()).unwrap();
        let origin = Origin {
            path: "app.env",
            commit: None,
        };
        let old = "GITHUB_TOKEN=ghp_Zq8vK2mLx9Tn4Rb7Wc1Yd6Fh3Jp0Ss5Ga2Ue\n"; // keygate:allow (made up for the test)
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baseline.json");
        Baseline::write(&path, &scanner.scan_bytes(origin, old.as_bytes())).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(!written.contains("ghp_Zq8v"), "{written}");

        let baseline = Baseline::load(&path).unwrap();
        let moved =
            format!("# moved down\n\n{old}OTHER=ghp_Aa1Bb2Cc3Dd4Ee5Ff6Gg7Hh8Ii9Jj0Kk1Ll2\n"); // keygate:allow (made up for the test)
        let mut found = scanner.scan_bytes(origin, moved.as_bytes());
        assert_eq!(found.len(), 2);
        assert_eq!(baseline.filter(&mut found), 1);
        assert_eq!(found[0].line, 4);

        std::fs::write(&path, "{\"findings\": []}").unwrap();
        assert!(matches!(
            Baseline::load(&path),
            Err(BaselineError::Format { .. })
        ));
    }
}
