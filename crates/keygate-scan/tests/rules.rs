//! Every default rule against its corpus, `tests/corpus/<rule id>.toml`: each true case must be
//! found by the rule with exactly its secret, and no false case may be found by it. Prints each
//! rule's precision and recall, and holds them both at 1.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]
#![allow(
    clippy::print_stdout,
    reason = "the table of precision and recall is the report"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keygate_scan::{Origin, RuleSet, Scanner};
use serde::Deserialize;

/// Fewer cases than this and a rule is barely tested.
const MIN_CASES: usize = 6;

const ORIGIN: Origin<'static> = Origin {
    path: "corpus.txt",
    commit: None,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    #[serde(rename = "true", default)]
    found: Vec<TrueCase>,
    #[serde(rename = "false", default)]
    not_found: Vec<FalseCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrueCase {
    text: String,
    secret: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FalseCase {
    text: String,
}

/// How one rule did on its corpus.
#[derive(Debug, Default)]
struct Score {
    true_positives: usize,
    false_negatives: usize,
    false_positives: usize,
    /// What went wrong, by case: never the secret itself.
    failures: Vec<String>,
}

impl Score {
    fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        return 1.0;
    }
    #[expect(clippy::cast_precision_loss, reason = "a few cases, far below 2^52")]
    let value = part as f64 / whole as f64;
    value
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Every corpus file, by rule id.
fn corpora() -> BTreeMap<String, Corpus> {
    let mut corpora = BTreeMap::new();
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(
            path.extension().and_then(|ext| ext.to_str()),
            Some("toml"),
            "{} is not a corpus file",
            path.display()
        );
        let id = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let corpus: Corpus =
            toml::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        corpora.insert(id, corpus);
    }
    corpora
}

/// The default rules, those off by default included.
fn all_default_rules() -> RuleSet {
    let mut rules = RuleSet::default_rules().unwrap();
    rules.enable_all();
    rules
}

/// The secrets `rule` finds in `text`.
fn found_by(scanner: &Scanner, rule: &str, text: &str) -> Vec<String> {
    scanner
        .scan_bytes(ORIGIN, text.as_bytes())
        .iter()
        .filter(|finding| finding.rule_id == rule)
        .map(|finding| finding.expose_secret().to_owned())
        .collect()
}

fn score(scanner: &Scanner, rule: &str, corpus: &Corpus) -> Score {
    let mut score = Score::default();
    for (index, case) in corpus.found.iter().enumerate() {
        let found = found_by(scanner, rule, &case.text);
        if found.contains(&case.secret) {
            score.true_positives += 1;
        } else {
            score.false_negatives += 1;
            score.failures.push(format!(
                "true case {index}: not found ({} other finding(s) of the rule)",
                found.len()
            ));
        }
        // Anything else the rule reports in a true case is a false positive too.
        let others = found
            .iter()
            .filter(|secret| **secret != case.secret)
            .count();
        if others > 0 {
            score.false_positives += others;
            score.failures.push(format!(
                "true case {index}: {others} finding(s) besides the secret"
            ));
        }
    }
    for (index, case) in corpus.not_found.iter().enumerate() {
        let found = found_by(scanner, rule, &case.text);
        if !found.is_empty() {
            score.false_positives += found.len();
            let shown: Vec<String> = found
                .iter()
                .map(|secret| keygate_scan::finding::mask(secret))
                .collect();
            score
                .failures
                .push(format!("false case {index}: found {}", shown.join(", ")));
        }
    }
    score
}

#[test]
fn every_default_rule_has_a_corpus_and_every_corpus_a_rule() {
    let rules = all_default_rules();
    let ids: Vec<&str> = rules.rules.iter().map(|rule| rule.id.as_str()).collect();
    let corpora = corpora();
    for id in &ids {
        assert!(
            corpora.contains_key(*id),
            "rule `{id}` has no tests/corpus/{id}.toml"
        );
    }
    for id in corpora.keys() {
        assert!(
            ids.contains(&id.as_str()),
            "tests/corpus/{id}.toml names no default rule"
        );
    }
}

#[test]
fn every_corpus_is_large_enough_and_holds_its_secrets() {
    for (id, corpus) in corpora() {
        assert!(
            corpus.found.len() >= MIN_CASES,
            "{id}: fewer than {MIN_CASES} true cases"
        );
        assert!(
            corpus.not_found.len() >= MIN_CASES,
            "{id}: fewer than {MIN_CASES} false cases"
        );
        for (index, case) in corpus.found.iter().enumerate() {
            assert!(
                case.text.contains(&case.secret),
                "{id}: the secret of true case {index} is not in its text"
            );
        }
    }
}

#[test]
fn every_default_rule_finds_its_secrets_and_nothing_else() {
    let scanner = Scanner::new(&all_default_rules()).unwrap();
    let mut failures = Vec::new();
    // One print, so that the other tests' output does not cut through the table.
    let mut table = format!(
        "\n{:<26} {:>4} {:>4} {:>4} {:>9} {:>7}\n",
        "rule", "tp", "fn", "fp", "precision", "recall"
    );
    for (id, corpus) in corpora() {
        let score = score(&scanner, &id, &corpus);
        table.push_str(&format!(
            "{:<26} {:>4} {:>4} {:>4} {:>9.3} {:>7.3}\n",
            id,
            score.true_positives,
            score.false_negatives,
            score.false_positives,
            score.precision(),
            score.recall()
        ));
        failures.extend(
            score
                .failures
                .iter()
                .map(|failure| format!("{id}: {failure}")),
        );
    }
    println!("{table}");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// `deploy/scanners/gitleaks.toml` gives gitleaks keygate's rule: its regex must match what the
/// default rule's does on the keygate corpus, and keygate must load the file as it is.
#[test]
fn the_gitleaks_rule_for_keygate_keys_agrees_with_the_default_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/scanners/gitleaks.toml");
    let theirs = RuleSet::load(&path).unwrap();
    let ours = all_default_rules();
    let regex_of = |rules: &RuleSet| {
        let rule = rules
            .rules
            .iter()
            .find(|rule| rule.id == "keygate-key")
            .unwrap();
        assert_eq!(rule.secret_group, Some(1));
        rule.regex.clone().unwrap()
    };
    let (their_regex, our_regex) = (regex_of(&theirs), regex_of(&ours));
    let matches = |regex: &regex::bytes::Regex, text: &str| -> Vec<Vec<u8>> {
        regex
            .captures_iter(text.as_bytes())
            .filter_map(|captures| captures.get(1))
            .map(|secret| secret.as_bytes().to_vec())
            .collect()
    };
    let corpus = corpora().remove("keygate-key").unwrap();
    let texts = corpus
        .found
        .iter()
        .map(|case| case.text.as_str())
        .chain(corpus.not_found.iter().map(|case| case.text.as_str()));
    for (index, text) in texts.enumerate() {
        assert_eq!(
            matches(&their_regex, text),
            matches(&our_regex, text),
            "case {index} of the keygate corpus"
        );
    }
    // And with the file's rule in place of the default one, the scanner's results stay whole.
    let scanner = Scanner::new(&theirs).unwrap();
    let score = score(&scanner, "keygate-key", &corpus);
    assert!(score.failures.is_empty(), "{:?}", score.failures);
    assert_eq!(score.true_positives, corpus.found.len());
}
