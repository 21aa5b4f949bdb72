//! Rules in the gitleaks format (also read by Betterleaks and others), so that an existing
//! configuration loads as it is: `[[rules]]` with `id`, `regex`, `secretGroup`, `entropy`,
//! `keywords`, `path` and allow-lists, a global allow-list, and `[extend]` to build on the
//! default rules. A field keygate does not know is refused by name rather than ignored: a rule
//! that silently matched less would be worse than one that does not load.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use regex::bytes::Regex;
use serde::Deserialize;

mod allowlist;

use allowlist::RawAllowlist;
pub use allowlist::{Allowlist, Candidate, Condition, RegexTarget};

/// The default rules, compiled into the binary.
pub const DEFAULT_RULES: &str = include_str!("rules/default.toml");

/// How deep `[extend] path` may chain before the configuration is refused as a loop.
const MAX_EXTEND_DEPTH: usize = 4;
/// A compiled regex may use at most this much memory: a rule cannot exhaust the scanner.
const REGEX_SIZE_LIMIT: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{origin}: not a valid rules file: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: rule `{rule}`: {field} is not a valid regular expression: {message}")]
    Regex {
        origin: String,
        rule: String,
        field: &'static str,
        message: String,
    },
    #[error("{origin}: rule `{rule}` has neither `regex` nor `path`")]
    Empty { origin: String, rule: String },
    #[error("{origin}: rule `{rule}`: secretGroup {group} is past the regex's {groups} groups")]
    SecretGroup {
        origin: String,
        rule: String,
        group: usize,
        groups: usize,
    },
    #[error("{origin}: rule id `{rule}` is defined twice")]
    Duplicate { origin: String, rule: String },
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: `[extend]` chains deeper than {MAX_EXTEND_DEPTH} files")]
    ExtendDepth { origin: String },
    #[error(
        "{origin}: `[extend] url` is not supported: download the rules and name the file \
         with `[extend] path`"
    )]
    ExtendUrl { origin: String },
    #[error("{origin}: rule `{rule}` is a composite rule (`required`), which keygate does not run")]
    Composite { origin: String, rule: String },
}

/// A rules file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    /// The gitleaks release a configuration was written for: keygate reads the format, not
    /// a release, so it is accepted and not checked.
    #[serde(default)]
    #[expect(dead_code, reason = "read so that configurations naming it load")]
    min_version: Option<String>,
    #[serde(default)]
    extend: Option<RawExtend>,
    #[serde(default)]
    rules: Vec<RawRule>,
    /// The older, single global allow-list.
    #[serde(default)]
    allowlist: Option<RawAllowlist>,
    /// The newer list of global allow-lists.
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawExtend {
    #[serde(default)]
    use_default: bool,
    #[serde(default)]
    path: Option<PathBuf>,
    /// Refused: a scanner that fetches its rules from the network at each run would find
    /// what someone else decides.
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    disabled_rules: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    secret_group: Option<usize>,
    #[serde(default)]
    entropy: Option<f64>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    /// keygate's own extension: off unless asked for (`--rule-set all` or `enabled = true`),
    /// for rules whose false positives outnumber their finds in ordinary code.
    #[serde(default)]
    enabled: Option<bool>,
    /// A rule that only feeds another one in gitleaks; alone it reports nothing, so it does
    /// not run.
    #[serde(default)]
    skip_report: bool,
    /// gitleaks's composite rules; refused by name rather than run without their parts.
    #[serde(default)]
    required: Option<toml::Value>,
    #[serde(default)]
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub regex: Option<Regex>,
    pub secret_group: Option<usize>,
    pub entropy: Option<f64>,
    pub path: Option<Regex>,
    /// Lower-cased; a rule with keywords runs only on text holding one of them.
    pub keywords: Vec<String>,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub allowlists: Vec<Allowlist>,
}

/// A set of rules with its global allow-lists, ready to scan with.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub title: Option<String>,
    pub rules: Vec<Rule>,
    pub allowlists: Vec<Allowlist>,
}

impl RuleSet {
    /// The default rules.
    pub fn default_rules() -> Result<Self, RulesError> {
        Self::parse(DEFAULT_RULES, "default rules", None)
    }

    /// Reads a rules file; `[extend] path` is read relative to it, `useDefault` adds the
    /// default rules under it (a rule of the file replaces a default of the same id).
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        load_file(path, 0)
    }

    /// Parses rules text. `base` is where an `[extend] path` is read from.
    pub fn parse(text: &str, origin: &str, base: Option<&Path>) -> Result<Self, RulesError> {
        parse_at(text, origin, base, 0)
    }

    /// Turns on the rules that are off by default (keygate's `enabled = false` rules).
    pub fn enable_all(&mut self) {
        for rule in &mut self.rules {
            rule.enabled = true;
        }
    }

    /// The rules that run.
    pub fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|rule| rule.enabled)
    }
}

fn load_file(path: &Path, depth: usize) -> Result<RuleSet, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_at(&text, &path.display().to_string(), path.parent(), depth)
}

fn parse_at(
    text: &str,
    origin: &str,
    base: Option<&Path>,
    depth: usize,
) -> Result<RuleSet, RulesError> {
    let raw: RawConfig = toml::from_str(text).map_err(|err| RulesError::Syntax {
        origin: origin.to_owned(),
        message: err.message().to_owned(),
    })?;
    let mut own = Vec::with_capacity(raw.rules.len());
    let mut ids = HashSet::new();
    for rule in raw.rules {
        if !ids.insert(rule.id.clone()) {
            return Err(RulesError::Duplicate {
                origin: origin.to_owned(),
                rule: rule.id,
            });
        }
        own.push(compile_rule(rule, origin)?);
    }
    let mut allowlists: Vec<Allowlist> = Vec::new();
    for raw_list in raw.allowlist.into_iter().chain(raw.allowlists) {
        allowlists.push(raw_list.compile(origin, "(global)")?);
    }

    let mut rules = Vec::new();
    if let Some(extend) = raw.extend {
        if extend.url.is_some() {
            return Err(RulesError::ExtendUrl {
                origin: origin.to_owned(),
            });
        }
        if depth >= MAX_EXTEND_DEPTH {
            return Err(RulesError::ExtendDepth {
                origin: origin.to_owned(),
            });
        }
        let mut parent = match (&extend.path, extend.use_default) {
            (Some(path), _) => {
                let path = base.map_or_else(|| path.clone(), |base| base.join(path));
                Some(load_file(&path, depth + 1)?)
            }
            (None, true) => Some(RuleSet::default_rules()?),
            (None, false) => None,
        };
        if extend.path.is_some()
            && extend.use_default
            && let Some(parent) = parent.as_mut()
        {
            let defaults = RuleSet::default_rules()?;
            merge(&mut parent.rules, defaults.rules);
            parent.allowlists.extend(defaults.allowlists);
        }
        if let Some(parent) = parent {
            rules = parent.rules;
            allowlists.extend(parent.allowlists);
        }
        rules.retain(|rule| !extend.disabled_rules.contains(&rule.id));
    }
    merge(&mut rules, own);
    Ok(RuleSet {
        title: raw.title.or(raw.description),
        rules,
        allowlists,
    })
}

/// Adds `over` to `rules`, each replacing a rule of the same id.
fn merge(rules: &mut Vec<Rule>, over: Vec<Rule>) {
    for rule in over {
        match rules.iter_mut().find(|existing| existing.id == rule.id) {
            Some(existing) => *existing = rule,
            None => rules.push(rule),
        }
    }
}

pub(crate) fn compile_regex(
    text: &str,
    origin: &str,
    rule: &str,
    field: &'static str,
) -> Result<Regex, RulesError> {
    regex::bytes::RegexBuilder::new(text)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|err| RulesError::Regex {
            origin: origin.to_owned(),
            rule: rule.to_owned(),
            field,
            message: err.to_string(),
        })
}

fn compile_rule(raw: RawRule, origin: &str) -> Result<Rule, RulesError> {
    if raw.required.is_some() {
        return Err(RulesError::Composite {
            origin: origin.to_owned(),
            rule: raw.id,
        });
    }
    if raw.regex.is_none() && raw.path.is_none() {
        return Err(RulesError::Empty {
            origin: origin.to_owned(),
            rule: raw.id,
        });
    }
    let regex = raw
        .regex
        .as_deref()
        .map(|text| compile_regex(text, origin, &raw.id, "regex"))
        .transpose()?;
    if let (Some(regex), Some(group)) = (&regex, raw.secret_group) {
        let groups = regex.captures_len() - 1;
        if group > groups {
            return Err(RulesError::SecretGroup {
                origin: origin.to_owned(),
                rule: raw.id,
                group,
                groups,
            });
        }
    }
    let path = raw
        .path
        .as_deref()
        .map(|text| compile_regex(text, origin, &raw.id, "path"))
        .transpose()?;
    let mut allowlists = Vec::new();
    for list in raw.allowlist.into_iter().chain(raw.allowlists) {
        allowlists.push(list.compile(origin, &raw.id)?);
    }
    Ok(Rule {
        description: raw.description.unwrap_or_else(|| raw.id.clone()),
        regex,
        secret_group: raw.secret_group.filter(|group| *group > 0),
        entropy: raw.entropy.filter(|entropy| *entropy > 0.0),
        path,
        keywords: raw
            .keywords
            .iter()
            .map(|keyword| keyword.to_lowercase())
            .filter(|keyword| !keyword.is_empty())
            .collect(),
        tags: raw.tags,
        enabled: raw.enabled.unwrap_or(true) && !raw.skip_report,
        allowlists,
        id: raw.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rules_compile() {
        let rules = RuleSet::default_rules().unwrap();
        assert!(rules.rules.iter().any(|rule| rule.id == "keygate-key"));
        assert!(
            rules.rules.iter().any(|rule| !rule.enabled),
            "generic rules are off"
        );
    }

    #[test]
    fn a_gitleaks_config_extends_the_defaults() {
        let text = r#"
            title = "ours"
            [extend]
            useDefault = true
            disabledRules = ["jwt"]

            [[rules]]
            id = "internal-token"
            description = "Internal token"
            regex = '''itk_[a-z0-9]{32}'''
            keywords = ["ITK_"]
            tags = ["internal"]
            [[rules.allowlists]]
            regexTarget = "line"
            regexes = ['''example''']

            [allowlist]
            paths = ['''(^|/)testdata/''']
        "#;
        let rules = RuleSet::parse(text, "test", None).unwrap();
        assert!(rules.rules.iter().any(|rule| rule.id == "keygate-key"));
        assert!(!rules.rules.iter().any(|rule| rule.id == "jwt"));
        let ours = rules
            .rules
            .iter()
            .find(|r| r.id == "internal-token")
            .unwrap();
        assert_eq!(ours.keywords, ["itk_"]);
        assert_eq!(ours.allowlists.len(), 1);
        assert_eq!(rules.allowlists.len(), 1);
    }

    #[test]
    fn newer_gitleaks_fields_load_or_are_refused_by_name() {
        let text = "title = \"t\"\nminVersion = \"v8.25.0\"\n\
                    [[rules]]\nid = \"part\"\nregex = 'abc'\nskipReport = true\n";
        let rules = RuleSet::parse(text, "f", None).unwrap();
        assert_eq!(rules.enabled().count(), 0);
        let composite = "[[rules]]\nid = \"c\"\nregex = 'a'\n[[rules.required]]\nid = \"part\"\n";
        let refused = RuleSet::parse(composite, "f", None).unwrap_err();
        assert!(matches!(refused, RulesError::Composite { .. }), "{refused}");
        let fetched = RuleSet::parse(
            "[extend]\nurl = \"https://example.com/r.toml\"\n",
            "f",
            None,
        );
        assert!(matches!(fetched, Err(RulesError::ExtendUrl { .. })));
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = RuleSet::parse(
            "[[rules]]\nid = \"x\"\nregex = 'a'\nvalidate = 1\n",
            "f",
            None,
        );
        assert!(unknown.unwrap_err().to_string().contains("validate"));
        let bad = RuleSet::parse("[[rules]]\nid = \"x\"\nregex = '(a'\n", "f", None);
        assert!(matches!(bad, Err(RulesError::Regex { .. })));
        let empty = RuleSet::parse("[[rules]]\nid = \"x\"\n", "f", None);
        assert!(matches!(empty, Err(RulesError::Empty { .. })));
        let group = RuleSet::parse(
            "[[rules]]\nid = \"x\"\nregex = '(a)'\nsecretGroup = 2\n",
            "f",
            None,
        );
        assert!(matches!(group, Err(RulesError::SecretGroup { .. })));
        let twice = RuleSet::parse(
            "[[rules]]\nid = \"x\"\nregex = 'a'\n[[rules]]\nid = \"x\"\nregex = 'b'\n",
            "f",
            None,
        );
        assert!(matches!(twice, Err(RulesError::Duplicate { .. })));
    }
}
