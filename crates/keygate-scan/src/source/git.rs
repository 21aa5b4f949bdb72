//! A git repository's staged changes and history, read with gitoxide. Both come down to a list
//! of blobs — an id and the path (and commit) each is shown under — that several threads then
//! load one at a time from the object database and scan: memory holds the list, never the
//! contents of more than one blob per thread.

mod history;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::index::entry::{Mode, Stage};
use gix::prelude::FindExt;

use super::{Options, Progress, Report, ScanError, Tally, looks_binary};
use crate::finding::Finding;
use crate::scanner::{Origin, Scanner};

/// A thread's read buffer is given back once it grew past this, so a huge blob does not keep
/// its memory for the rest of the scan.
const KEPT_BUFFER: usize = 16 * 1024 * 1024;

/// A blob to scan, and where it is shown.
#[derive(Debug)]
struct Blob {
    id: ObjectId,
    /// Relative to the work tree, with `/`.
    path: String,
    /// The commit that brought it, as an index into the commits of the walk (history only).
    commit: Option<usize>,
}

/// What `git commit` would record now: each blob of the index that `HEAD` does not hold at the
/// same path. Before the first commit, every blob is new.
pub(super) fn staged(
    scanner: &Scanner,
    repository: &Path,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Report, ScanError> {
    let repo = open(repository)?;
    let index = repo
        .index_or_empty()
        .map_err(git_error("reading the index"))?;
    let head = head_index(&repo)?;
    let mut blobs = Vec::new();
    for entry in index.entries() {
        // Conflicted entries cannot be committed; submodules and symbolic links hold no text
        // of this repository.
        let is_file = entry.mode == Mode::FILE || entry.mode == Mode::FILE_EXECUTABLE;
        if entry.stage() != Stage::Unconflicted || !is_file {
            continue;
        }
        let path = entry.path(&index);
        let unchanged = head
            .as_ref()
            .and_then(|head| head.entry_by_path(path))
            .is_some_and(|committed| committed.id == entry.id);
        if !unchanged {
            blobs.push(Blob {
                id: entry.id,
                path: path.to_str_lossy().into_owned(),
                commit: None,
            });
        }
    }
    scan_blobs(scanner, repo, &blobs, &[], options, progress)
}

/// Every blob reachable from any reference, each scanned once, under the path and commit that
/// first brought it.
pub(super) fn history(
    scanner: &Scanner,
    repository: &Path,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Report, ScanError> {
    let repo = open(repository)?;
    let walk = history::walk(&repo)?;
    scan_blobs(scanner, repo, &walk.blobs, &walk.commits, options, progress)
}

/// The repository at or above `path`.
fn open(path: &Path) -> Result<gix::Repository, ScanError> {
    // A path that does not exist is the caller's mistake, not a missing repository.
    std::fs::metadata(path).map_err(|source| ScanError::Io {
        path: path.to_owned(),
        source,
    })?;
    gix::discover(path).map_err(|err| {
        match err.downcast_any_ref::<gix::discover::upwards::Error>() {
            Some(upwards) => ScanError::NotARepository {
                path: path.to_owned(),
                message: upwards.to_string(),
            },
            None => git_error("opening the repository")(err),
        }
    })
}

/// `HEAD`'s tree as an index, to look paths up in; `None` before the first commit.
fn head_index(repo: &gix::Repository) -> Result<Option<gix::index::File>, ScanError> {
    let head = repo.head().map_err(git_error("reading HEAD"))?;
    let Some(commit) = head
        .try_into_peeled_id()
        .map_err(git_error("resolving HEAD"))?
    else {
        return Ok(None);
    };
    let tree = repo
        .find_commit(commit)
        .and_then(|commit| commit.tree_id())
        .map_err(git_error("reading HEAD's commit"))?;
    repo.index_from_tree(&tree)
        .map(Some)
        .map_err(git_error("reading HEAD's tree"))
}

/// Turns a gitoxide error into ours, saying what was being done and every cause.
fn git_error(doing: &'static str) -> impl Fn(gix::Error) -> ScanError {
    move |err| ScanError::Git(format!("{doing}: {}", causes(&err)))
}

fn causes(err: &gix::Error) -> String {
    let mut text = String::new();
    for cause in err.iter_errors() {
        let cause = cause.to_string();
        // A message may already hold its cause's; say it once.
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

/// Scans `blobs` on `options.threads` threads, each loading the blobs it takes one at a time.
fn scan_blobs(
    scanner: &Scanner,
    repo: gix::Repository,
    blobs: &[Blob],
    commits: &[ObjectId],
    options: &Options,
    progress: &dyn Progress,
) -> Result<Report, ScanError> {
    progress.total(u64::try_from(blobs.len()).unwrap_or(u64::MAX));
    let tally = Tally::default();
    let mut findings = Vec::new();
    let mut unreadable = Vec::new();
    if blobs.is_empty() {
        return Ok(tally.into_report(findings, unreadable));
    }
    let shared = repo.into_sync();
    let next = AtomicUsize::new(0);
    let work = Work {
        scanner,
        blobs,
        commits,
        max_blob_bytes: options.max_blob_bytes,
        tally: &tally,
        progress,
        next: &next,
    };
    let threads = options.threads.max(1).min(blobs.len());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let repo = shared.to_thread_local();
                scope.spawn(|| work.run(repo))
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok((found, failed)) => {
                    findings.extend(found);
                    unreadable.extend(failed);
                }
                // A scanning thread that panicked is a bug: it goes on to the caller as one.
                Err(payload) => std::panic::resume_unwind(payload),
            }
        }
    });
    unreadable.sort();
    Ok(tally.into_report(findings, unreadable))
}

/// What the scanning threads share.
#[derive(Clone, Copy)]
struct Work<'a> {
    scanner: &'a Scanner,
    blobs: &'a [Blob],
    commits: &'a [ObjectId],
    max_blob_bytes: u64,
    tally: &'a Tally,
    progress: &'a dyn Progress,
    /// The index of the next blob to take.
    next: &'a AtomicUsize,
}

impl Work<'_> {
    /// Takes blobs until none is left; returns the findings and the blobs that could not be read.
    fn run(self, repo: gix::Repository) -> (Vec<Finding>, Vec<String>) {
        let mut found = Vec::new();
        let mut unreadable = Vec::new();
        let mut buffer = Vec::new();
        while let Some(blob) = self.blobs.get(self.next.fetch_add(1, Ordering::Relaxed)) {
            let commit = blob
                .commit
                .and_then(|at| self.commits.get(at))
                .map(ToString::to_string);
            let origin = Origin {
                path: &blob.path,
                commit: commit.as_deref(),
            };
            found.extend(self.scanner.scan_path(origin));
            if let Err(err) = self.scan(&repo, blob.id, origin, &mut buffer, &mut found) {
                let at = commit
                    .map(|commit| format!(" at {commit}"))
                    .unwrap_or_default();
                unreadable.push(format!("{}{at}: {}", blob.path, causes(&err)));
            }
            if buffer.capacity() > KEPT_BUFFER {
                buffer = Vec::new();
            }
        }
        (found, unreadable)
    }

    fn scan(
        &self,
        repo: &gix::Repository,
        id: ObjectId,
        origin: Origin<'_>,
        buffer: &mut Vec<u8>,
        found: &mut Vec<Finding>,
    ) -> gix::Result<()> {
        // The empty blob may be absent from the object database (`git add -N` stages it).
        if id.is_empty_blob() {
            self.tally.read(0, self.progress);
            return Ok(());
        }
        // The header tells the size without inflating the blob.
        if repo.find_header(id)?.size() > self.max_blob_bytes {
            self.tally.skip();
            return Ok(());
        }
        let data = repo.objects.find(&id, buffer)?.data;
        if looks_binary(data) {
            self.tally.skip();
            return Ok(());
        }
        found.extend(self.scanner.scan_bytes(origin, data));
        self.tally
            .read(u64::try_from(data.len()).unwrap_or(u64::MAX), self.progress);
        Ok(())
    }
}
