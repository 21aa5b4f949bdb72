//! What a scan reads: a working tree ([`tree`]), or a git repository's staged changes or
//! whole history ([`git`]). Every source feeds the same [`Scanner`] from several threads and
//! returns one [`Report`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::finding::Finding;
use crate::scanner::Scanner;

pub mod git;
pub mod tree;

/// What to scan.
#[derive(Debug, Clone)]
pub enum Target {
    /// Files under a directory; `.gitignore` (and `.ignore`, and git's excludes) respected
    /// unless `ignore_files` is false.
    Tree { root: PathBuf, ignore_files: bool },
    /// What `git commit` would record now: the blobs of the index that differ from `HEAD`.
    Staged { repository: PathBuf },
    /// Every blob reachable from any reference (branches, tags, remotes), each once, with the
    /// commit that brought it.
    History { repository: PathBuf },
}

/// Told how a long scan is going, from any thread.
pub trait Progress: Sync {
    /// `bytes` more were scanned, of one more file or blob.
    fn scanned(&self, bytes: u64);
    /// The number of files or blobs to scan, once a source knows it.
    fn total(&self, _items: u64) {}
}

/// A progress that nobody watches.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn scanned(&self, _bytes: u64) {}
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Threads that scan (at least one).
    pub threads: usize,
    /// Blobs of history larger than this are skipped (and counted): git hands a blob over
    /// whole. Files of a tree are read in windows, whatever their size.
    pub max_blob_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            max_blob_bytes: 100 * 1024 * 1024,
        }
    }
}

/// What a scan found and what it read.
#[derive(Debug, Default)]
pub struct Report {
    /// Sorted by path, line and column (and commit, in history).
    pub findings: Vec<Finding>,
    /// Files or blobs read.
    pub scanned: u64,
    pub bytes: u64,
    /// Binary files, and blobs over the size bound, not scanned.
    pub skipped: u64,
    /// Files that could not be read, with why (the scan goes on without them).
    pub unreadable: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not in a git repository: {message}")]
    NotARepository { path: PathBuf, message: String },
    #[error("reading the git repository failed: {0}")]
    Git(String),
}

/// Scans `target` with `scanner`.
pub fn scan(
    scanner: &Scanner,
    target: &Target,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Report, ScanError> {
    let mut report = match target {
        Target::Tree { root, ignore_files } => {
            tree::scan(scanner, root, *ignore_files, options, progress)?
        }
        Target::Staged { repository } => git::staged(scanner, repository, options, progress)?,
        Target::History { repository } => git::history(scanner, repository, options, progress)?,
    };
    report.findings.sort_by(|a, b| {
        (&a.path, a.line, a.column, &a.rule_id, &a.commit)
            .cmp(&(&b.path, b.line, b.column, &b.rule_id, &b.commit))
    });
    Ok(report)
}

/// Counters the scanning threads share.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub scanned: AtomicU64,
    pub bytes: AtomicU64,
    pub skipped: AtomicU64,
}

impl Tally {
    pub(crate) fn into_report(self, findings: Vec<Finding>, unreadable: Vec<String>) -> Report {
        Report {
            findings,
            scanned: self.scanned.into_inner(),
            bytes: self.bytes.into_inner(),
            skipped: self.skipped.into_inner(),
            unreadable,
        }
    }

    pub(crate) fn read(&self, bytes: u64, progress: &dyn Progress) {
        self.scanned.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        progress.scanned(bytes);
    }

    pub(crate) fn skip(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether bytes look binary: a NUL in the first 8 KiB, as git decides.
pub(crate) fn looks_binary(head: &[u8]) -> bool {
    memchr::memchr(0, &head[..head.len().min(8192)]).is_some()
}
