//! Allow-lists, as gitleaks writes them: a finding is let go when its commit, its path, a
//! regex over its secret (or match, or line) or a stop-word in its secret says so — any of
//! them (`condition = "OR"`, the default), or all of those given (`"AND"`).

use regex::bytes::Regex;
use serde::Deserialize;

use super::{RulesError, compile_regex};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Condition {
    #[default]
    Or,
    And,
}

/// What an allow-list's `regexes` are matched against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegexTarget {
    #[default]
    Secret,
    Match,
    Line,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawAllowlist {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    condition: Condition,
    #[serde(default)]
    regex_target: RegexTarget,
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    commits: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    /// On a global allow-list: only these rules (by id).
    #[serde(default)]
    target_rules: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Allowlist {
    pub description: Option<String>,
    pub condition: Condition,
    pub regex_target: RegexTarget,
    pub regexes: Vec<Regex>,
    pub paths: Vec<Regex>,
    pub commits: Vec<String>,
    /// Lower-cased.
    pub stopwords: Vec<String>,
    pub target_rules: Vec<String>,
}

/// What an allow-list is asked about.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub rule: &'a str,
    pub path: &'a str,
    pub commit: Option<&'a str>,
    pub secret: &'a [u8],
    pub matched: &'a [u8],
    pub line: &'a [u8],
}

impl RawAllowlist {
    pub(super) fn compile(self, origin: &str, rule: &str) -> Result<Allowlist, RulesError> {
        let regexes = self
            .regexes
            .iter()
            .map(|text| compile_regex(text, origin, rule, "allowlist regexes"))
            .collect::<Result<_, _>>()?;
        let paths = self
            .paths
            .iter()
            .map(|text| compile_regex(text, origin, rule, "allowlist paths"))
            .collect::<Result<_, _>>()?;
        Ok(Allowlist {
            description: self.description,
            condition: self.condition,
            regex_target: self.regex_target,
            regexes,
            paths,
            commits: self.commits,
            stopwords: self.stopwords.iter().map(|w| w.to_lowercase()).collect(),
            target_rules: self.target_rules,
        })
    }
}

impl Allowlist {
    /// Whether this list lets `candidate` go.
    pub fn allows(&self, candidate: &Candidate<'_>) -> bool {
        if !self.target_rules.is_empty() && !self.target_rules.iter().any(|r| r == candidate.rule) {
            return false;
        }
        let commit = (!self.commits.is_empty()).then(|| {
            candidate
                .commit
                .is_some_and(|commit| self.commits.iter().any(|c| c == commit))
        });
        let path = (!self.paths.is_empty()).then(|| {
            self.paths
                .iter()
                .any(|re| re.is_match(candidate.path.as_bytes()))
        });
        let regex = (!self.regexes.is_empty()).then(|| {
            let target = match self.regex_target {
                RegexTarget::Secret => candidate.secret,
                RegexTarget::Match => candidate.matched,
                RegexTarget::Line => candidate.line,
            };
            self.regexes.iter().any(|re| re.is_match(target))
        });
        let stopword = (!self.stopwords.is_empty()).then(|| {
            let secret = String::from_utf8_lossy(candidate.secret).to_lowercase();
            self.stopwords
                .iter()
                .any(|word| secret.contains(word.as_str()))
        });
        let checks = [commit, path, regex, stopword];
        let mut given = checks.iter().flatten().peekable();
        if given.peek().is_none() {
            return false;
        }
        match self.condition {
            Condition::Or => given.any(|passed| *passed),
            Condition::And => given.all(|passed| *passed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(toml_text: &str) -> Allowlist {
        let raw: RawAllowlist = toml::from_str(toml_text).unwrap();
        raw.compile("test", "r").unwrap()
    }

    fn candidate<'a>(path: &'a str, secret: &'a [u8], line: &'a [u8]) -> Candidate<'a> {
        Candidate {
            rule: "r",
            path,
            commit: Some("abc123"),
            secret,
            matched: secret,
            line,
        }
    }

    #[test]
    fn any_or_all_of_the_checks() {
        let either = list("paths = ['''^test/''']\nstopwords = [\"EXAMPLE\"]");
        assert!(either.allows(&candidate("test/a.py", b"s3cr3t", b"")));
        assert!(either.allows(&candidate("src/a.py", b"akiaexample1", b"")));
        assert!(!either.allows(&candidate("src/a.py", b"s3cr3t", b"")));
        let both = list("condition = \"AND\"\npaths = ['''^test/''']\ncommits = [\"abc123\"]");
        assert!(both.allows(&candidate("test/a.py", b"x", b"")));
        assert!(!both.allows(&candidate("src/a.py", b"x", b"")));
        let on_line = list("regexTarget = \"line\"\nregexes = ['''(?i)dummy''']");
        assert!(on_line.allows(&candidate("a", b"x", b"key = x # Dummy")));
        assert!(!on_line.allows(&candidate("a", b"dummy", b"key = real")));
        assert!(!list("description = \"nothing\"").allows(&candidate("a", b"x", b"")));
    }

    #[test]
    fn a_targeted_list_applies_to_its_rules_only() {
        let targeted = list("targetRules = [\"other\"]\npaths = ['''.*''']");
        assert!(!targeted.allows(&candidate("a", b"x", b"")));
    }
}
