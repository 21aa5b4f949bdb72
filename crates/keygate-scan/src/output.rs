//! A report, written for people (`path:line:column  rule  masked secret`), for scripts (JSON)
//! or for code-scanning tools (SARIF 2.1.0, [`sarif`]). Secrets appear masked in all three.

use std::io::{self, Write};

use serde::Serialize;

use crate::rules::Rule;
use crate::source::Report;

pub mod sarif;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Sarif,
}

/// Writes `report` in `format`. `rules` are the rules that ran (SARIF lists them).
pub fn write(
    format: Format,
    report: &Report,
    rules: &[Rule],
    known: usize,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Human => human(report, known, out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &JsonReport::new(report, known))?;
            writeln!(out)
        }
        Format::Sarif => {
            serde_json::to_writer_pretty(&mut *out, &sarif::log(report, rules))?;
            writeln!(out)
        }
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    findings: &'a [crate::Finding],
    scanned: u64,
    bytes: u64,
    skipped: u64,
    /// Findings left out because the baseline holds them.
    baseline: usize,
    unreadable: &'a [String],
}

impl<'a> JsonReport<'a> {
    fn new(report: &'a Report, known: usize) -> Self {
        Self {
            findings: &report.findings,
            scanned: report.scanned,
            bytes: report.bytes,
            skipped: report.skipped,
            baseline: known,
            unreadable: &report.unreadable,
        }
    }
}

fn human(report: &Report, known: usize, out: &mut dyn Write) -> io::Result<()> {
    for finding in &report.findings {
        let place = if finding.line == 0 {
            finding.path.clone()
        } else {
            format!("{}:{}:{}", finding.path, finding.line, finding.column)
        };
        write!(out, "{place}  {}  {}", finding.rule_id, finding.masked)?;
        if let Some(commit) = &finding.commit {
            write!(out, "  commit {}", &commit[..commit.len().min(12)])?;
        }
        if let Some(verification) = &finding.verification {
            write!(out, "  [{verification}]")?;
        }
        writeln!(out)?;
    }
    for problem in &report.unreadable {
        writeln!(out, "not read: {problem}")?;
    }
    let files = if report.scanned == 1 { "file" } else { "files" };
    let mut summary = match report.findings.len() {
        0 => "no secrets found".to_owned(),
        1 => "1 secret found".to_owned(),
        n => format!("{n} secrets found"),
    };
    summary.push_str(&format!(
        " in {} {files} ({})",
        report.scanned,
        human_bytes(report.bytes)
    ));
    if report.skipped > 0 {
        summary.push_str(&format!("; {} binary or oversized skipped", report.skipped));
    }
    if known > 0 {
        summary.push_str(&format!("; {known} in the baseline not shown"));
    }
    writeln!(out, "{summary}")
}

#[expect(clippy::cast_precision_loss, reason = "a size shown to one decimal")]
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Origin, RuleSet, Scanner};

    #[test]
    fn every_format_masks_the_secret() {
        let scanner = Scanner::new(&RuleSet::default_rules().unwrap()).unwrap();
        let secret = "ghp_Zq8vK2mLx9Tn4Rb7Wc1Yd6Fh3Jp0Ss5Ga2Ue"; // keygate:allow (made up for the test)
        let text = format!("token = \"{secret}\"\n");
        let findings = scanner.scan_bytes(
            Origin {
                path: "src/config.py",
                commit: None,
            },
            text.as_bytes(),
        );
        assert_eq!(findings.len(), 1);
        let report = Report {
            findings,
            scanned: 1,
            bytes: 60,
            ..Report::default()
        };
        for format in [Format::Human, Format::Json, Format::Sarif] {
            let mut out = Vec::new();
            write(format, &report, scanner.rules(), 0, &mut out).unwrap();
            let written = String::from_utf8(out).unwrap();
            assert!(!written.contains(secret), "{format:?}: {written}");
            assert!(written.contains("ghp_…"), "{format:?}: {written}");
            assert!(written.contains("src/config.py"), "{format:?}");
        }
        let mut out = Vec::new();
        write(Format::Human, &report, scanner.rules(), 2, &mut out).unwrap();
        let written = String::from_utf8(out).unwrap();
        assert!(
            written.starts_with("src/config.py:1:10  github-pat  ghp_…\n"),
            "{written}"
        );
        assert!(written.contains("1 secret found in 1 file (60 B); 2 in the baseline not shown"));
    }
}
