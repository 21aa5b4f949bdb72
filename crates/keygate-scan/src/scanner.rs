//! The matching engine. One Aho-Corasick pass over a fragment finds which rules' keywords it
//! holds; only those rules (and the few without keywords) run their regex. A match is kept
//! when its secret has the rule's entropy, no allow-list lets it go, its line carries no
//! `keygate:allow` (or `gitleaks:allow`), and — for keygate's own keys — its checksum holds.

use std::io::Read;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use secrecy::SecretString;

use crate::finding::{Finding, entropy, fingerprint, mask};
use crate::rules::{Candidate, Rule, RuleSet};

/// Markers that let a line's finding go, keygate's and gitleaks's.
const ALLOW_MARKERS: [&[u8]; 2] = [b"keygate:allow", b"gitleaks:allow"];

/// How a large input is read: in windows of `size` bytes, so memory stays bounded whatever
/// the file. Windows overlap by `overlap`, longer than the longest secret a rule accepts (a
/// PEM private key, 16 KiB), so a secret across an edge is whole in one of them; each also
/// sees `context` bytes before the first match it answers for.
#[derive(Debug, Clone, Copy)]
struct Windows {
    size: usize,
    overlap: usize,
    context: usize,
}

impl Windows {
    const DEFAULT: Self = Self {
        size: 4 * 1024 * 1024,
        overlap: 64 * 1024,
        context: 1024,
    };
}

#[derive(Debug, thiserror::Error)]
pub enum ScannerError {
    #[error("the rules' keywords could not be compiled: {0}")]
    Keywords(#[from] aho_corasick::BuildError),
}

/// Compiled rules, shared by every thread of a scan.
#[derive(Debug)]
pub struct Scanner {
    rules: Vec<Rule>,
    global: Vec<crate::rules::Allowlist>,
    keywords: AhoCorasick,
    /// For each keyword pattern, the rules it wakes.
    woken: Vec<Vec<usize>>,
    /// Rules with a regex and no keywords: they run on everything.
    always: Vec<usize>,
}

/// Where a fragment of text comes from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub path: &'a str,
    pub commit: Option<&'a str>,
}

impl Scanner {
    pub fn new(rules: &RuleSet) -> Result<Self, ScannerError> {
        let enabled: Vec<Rule> = rules.enabled().cloned().collect();
        let mut patterns: Vec<String> = Vec::new();
        let mut woken: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for (index, rule) in enabled.iter().enumerate() {
            if rule.regex.is_none() {
                continue;
            }
            if rule.keywords.is_empty() {
                always.push(index);
            }
            for keyword in &rule.keywords {
                match patterns.iter().position(|p| p == keyword) {
                    Some(at) => woken[at].push(index),
                    None => {
                        patterns.push(keyword.clone());
                        woken.push(vec![index]);
                    }
                }
            }
        }
        let keywords = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&patterns)?;
        Ok(Self {
            rules: enabled,
            global: rules.allowlists.clone(),
            keywords,
            woken,
            always,
        })
    }

    /// The rules this scanner runs.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Findings of the rules that judge a file by its path alone (a `.pem`, a keystore).
    pub fn scan_path(&self, origin: Origin<'_>) -> Vec<Finding> {
        let mut found = Vec::new();
        for rule in &self.rules {
            let (None, Some(path)) = (&rule.regex, &rule.path) else {
                continue;
            };
            if path.is_match(origin.path.as_bytes()) && !self.allowed(rule, origin, b"", b"", b"") {
                found.push(Finding {
                    rule_id: rule.id.clone(),
                    description: rule.description.clone(),
                    path: origin.path.to_owned(),
                    commit: origin.commit.map(str::to_owned),
                    line: 0,
                    column: 0,
                    end_column: 0,
                    masked: String::new(),
                    entropy: 0.0,
                    fingerprint: fingerprint(&rule.id, origin.path, ""),
                    verification: None,
                    secret: SecretString::from(String::new()),
                });
            }
        }
        found
    }

    /// Scans a whole input held in memory.
    pub fn scan_bytes(&self, origin: Origin<'_>, bytes: &[u8]) -> Vec<Finding> {
        let mut found = Vec::new();
        self.scan_window(origin, bytes, 1, 0..usize::MAX, &mut found);
        found
    }

    /// Scans a reader of any size in overlapping windows; memory stays near two windows.
    pub fn scan_reader(
        &self,
        origin: Origin<'_>,
        reader: impl Read,
    ) -> std::io::Result<Vec<Finding>> {
        self.scan_windows(origin, reader, Windows::DEFAULT)
    }

    fn scan_windows(
        &self,
        origin: Origin<'_>,
        mut reader: impl Read,
        windows: Windows,
    ) -> std::io::Result<Vec<Finding>> {
        let Windows {
            size,
            overlap,
            context,
        } = windows;
        let mut found = Vec::new();
        let mut buffer: Vec<u8> = Vec::with_capacity(size.min(64 * 1024));
        // The line number of the buffer's first byte, and where the matches this window
        // answers for begin: the bytes before are context another window has scanned.
        let mut first_line = 1u32;
        let mut keep_from = 0;
        loop {
            let wanted = size - buffer.len();
            let read = (&mut reader).take(wanted as u64).read_to_end(&mut buffer)?;
            let last = read < wanted;
            // In a window that is not the last, matches starting in the overlap are left to
            // the next window, which holds them whole.
            let keep_before = if last { usize::MAX } else { size - overlap };
            let keep = keep_from..keep_before;
            self.scan_window(origin, &buffer, first_line, keep, &mut found);
            if last {
                return Ok(found);
            }
            // The next window starts `context` bytes before the first match it answers for,
            // so that what precedes a match (a word boundary, a prefix) is seen as it is.
            let consumed = size - overlap - context;
            let lines = memchr::memchr_iter(b'\n', &buffer[..consumed]).count();
            first_line = first_line.saturating_add(u32::try_from(lines).unwrap_or(u32::MAX));
            buffer.drain(..consumed);
            keep_from = context;
        }
    }

    fn scan_window(
        &self,
        origin: Origin<'_>,
        bytes: &[u8],
        first_line: u32,
        keep: std::ops::Range<usize>,
        found: &mut Vec<Finding>,
    ) {
        let mut run = vec![false; self.rules.len()];
        for index in &self.always {
            run[*index] = true;
        }
        for hit in self.keywords.find_overlapping_iter(bytes) {
            for index in &self.woken[hit.pattern().as_usize()] {
                run[*index] = true;
            }
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if !run[index] {
                continue;
            }
            let Some(regex) = &rule.regex else { continue };
            if let Some(path) = &rule.path
                && !path.is_match(origin.path.as_bytes())
            {
                continue;
            }
            let mut lines = LineCursor::new(bytes, first_line);
            for captures in regex.captures_iter(bytes) {
                let Some(whole) = captures.get(0) else {
                    continue;
                };
                let secret = match rule.secret_group {
                    Some(group) => captures.get(group),
                    None => captures.iter().skip(1).flatten().find(|m| !m.is_empty()),
                }
                .unwrap_or(whole);
                if !keep.contains(&secret.start()) {
                    continue;
                }
                let secret_bytes = secret.as_bytes();
                let bits = entropy(secret_bytes);
                if rule.entropy.is_some_and(|floor| bits <= floor) {
                    continue;
                }
                let place = lines.locate(secret.start());
                let (line_start, line_end) = (place.start, place.end);
                let line = &bytes[line_start..line_end];
                if place.marked {
                    continue;
                }
                if self.allowed(rule, origin, secret_bytes, whole.as_bytes(), line) {
                    continue;
                }
                let Ok(text) = std::str::from_utf8(secret_bytes) else {
                    continue;
                };
                if rule.id == "keygate-key" && keygate_core::ApiKey::parse(text).is_err() {
                    continue;
                }
                let line_number = place.number;
                let column = u32::try_from(secret.start() - line_start + 1).unwrap_or(u32::MAX);
                let end_column =
                    u32::try_from(secret.end().min(line_end) - line_start + 1).unwrap_or(u32::MAX);
                found.push(Finding {
                    rule_id: rule.id.clone(),
                    description: rule.description.clone(),
                    path: origin.path.to_owned(),
                    commit: origin.commit.map(str::to_owned),
                    line: line_number,
                    column,
                    end_column,
                    masked: mask(text),
                    entropy: bits,
                    fingerprint: fingerprint(&rule.id, origin.path, text),
                    verification: None,
                    secret: SecretString::from(text.to_owned()),
                });
            }
        }
    }

    fn allowed(
        &self,
        rule: &Rule,
        origin: Origin<'_>,
        secret: &[u8],
        matched: &[u8],
        line: &[u8],
    ) -> bool {
        let asked = Candidate {
            rule: &rule.id,
            path: origin.path,
            commit: origin.commit,
            secret,
            matched,
            line,
        };
        rule.allowlists
            .iter()
            .chain(&self.global)
            .any(|list| list.allows(&asked))
    }
}

/// The line around `at`: from after the previous newline to before the next.
fn line_bounds(bytes: &[u8], at: usize) -> (usize, usize) {
    let start = memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i);
    (start, end)
}

/// A line a finding is on: its bounds, its number, and whether it carries an allow marker.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    number: u32,
    marked: bool,
}

/// Places one rule's matches on their lines, walking forward: a rule's matches come in order,
/// so each line is found, counted and searched for a marker once, however many matches it
/// holds — a minified file of one long line stays linear.
struct LineCursor<'a> {
    bytes: &'a [u8],
    /// Newlines before `counted_to` are counted in `number_at`.
    counted_to: usize,
    number_at: u32,
    first_line: u32,
    current: Option<Line>,
}

impl<'a> LineCursor<'a> {
    fn new(bytes: &'a [u8], first_line: u32) -> Self {
        Self {
            bytes,
            counted_to: 0,
            number_at: first_line,
            first_line,
            current: None,
        }
    }

    fn locate(&mut self, at: usize) -> Line {
        if let Some(line) = self.current
            && (line.start..=line.end).contains(&at)
        {
            return line;
        }
        let (start, end) = line_bounds(self.bytes, at);
        if start < self.counted_to {
            // Out of order (not expected of one rule's matches): count from the top.
            self.counted_to = 0;
            self.number_at = self.first_line;
        }
        let newlines = memchr::memchr_iter(b'\n', &self.bytes[self.counted_to..start]).count();
        self.number_at = self
            .number_at
            .saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX));
        self.counted_to = start;
        let text = &self.bytes[start..end];
        let line = Line {
            start,
            end,
            number: self.number_at,
            marked: ALLOW_MARKERS
                .iter()
                .any(|marker| memchr::memmem::find(text, marker).is_some()),
        };
        self.current = Some(line);
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Findings are placed on their lines however many share one, and a marked line lets
    /// all of its findings go.
    #[test]
    fn findings_are_numbered_by_line_and_marked_lines_let_go() {
        let scanner = Scanner::new(&RuleSet::default_rules().unwrap()).unwrap();
        let a = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d"; // keygate:allow (made up for the test)
        let b = "ghp_Zq8vK2mLx9Tn4Rb7Wc1Yd6Fh3Jp0Ss5Ga2Ue"; // keygate:allow (made up for the test)
        let text = format!("first\n{a} {b}\n\nx = '{a}' {b} # keygate:allow\n  {b}\n");
        let origin = Origin {
            path: "a.txt",
            commit: None,
        };
        let places: Vec<(u32, u32)> = scanner
            .scan_bytes(origin, text.as_bytes())
            .iter()
            .map(|f| (f.line, f.column))
            .collect();
        assert_eq!(places, [(2, 1), (2, 42), (5, 3)]);
    }

    /// A long input read in small windows finds exactly what it finds read whole: every
    /// secret once, on its line, none cut in two at an edge, and no tail of a longer word
    /// taken for a secret because a window began inside it.
    #[test]
    fn windows_find_what_the_whole_input_holds() {
        let scanner = Scanner::new(&RuleSet::default_rules().unwrap()).unwrap();
        let token = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d"; // keygate:allow (made up for the test)
        let mut text = String::new();
        let mut line = 0;
        while text.len() < 60_000 {
            line += 1;
            match line % 7 {
                0 => text.push_str(&format!("token{line} = {token}\n")),
                // A secret's shape inside a longer word is no secret.
                3 => text.push_str(&format!("x{}{token}\n", "a".repeat(line % 97))),
                _ => text.push_str(&format!("filler line {line} {}\n", "z".repeat(line % 53))),
            }
        }
        let origin = Origin {
            path: "big.txt",
            commit: None,
        };
        let whole = scanner.scan_bytes(origin, text.as_bytes());
        assert!(whole.len() > 100, "{}", whole.len());
        let place = |found: &[Finding]| -> Vec<(u32, u32)> {
            found.iter().map(|f| (f.line, f.column)).collect()
        };
        for (size, overlap, context) in [(4096, 1024, 64), (1000, 300, 40), (777, 200, 100)] {
            let windows = Windows {
                size,
                overlap,
                context,
            };
            let read = scanner
                .scan_windows(origin, std::io::Cursor::new(text.as_bytes()), windows)
                .unwrap();
            assert_eq!(place(&read), place(&whole), "windows of {size}");
        }
    }
}
