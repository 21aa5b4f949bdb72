//! A working tree, walked by ripgrep's `ignore` crate on several threads: `.gitignore`,
//! `.ignore` and git's excludes are respected (unless told not to), hidden files such as
//! `.env` are read, `.git` itself is not. Each file is read in windows, so a huge one costs
//! no more memory than a small one.

use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use ignore::{WalkBuilder, WalkState};

use super::{Options, Progress, Report, ScanError, Tally, looks_binary};
use crate::finding::Finding;
use crate::scanner::{Origin, Scanner};

pub(super) fn scan(
    scanner: &Scanner,
    root: &Path,
    ignore_files: bool,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Report, ScanError> {
    let metadata = std::fs::metadata(root).map_err(|source| ScanError::Io {
        path: root.to_owned(),
        source,
    })?;
    let tally = Tally::default();
    if metadata.is_file() {
        // One file: named by itself.
        let name = root.file_name().map_or_else(
            || root.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let findings =
            scan_file(scanner, root, &name, &tally, progress).map_err(|source| ScanError::Io {
                path: root.to_owned(),
                source,
            })?;
        return Ok(tally.into_report(findings, Vec::new()));
    }
    let findings = Mutex::new(Vec::new());
    let unreadable = Mutex::new(Vec::new());
    let walker = WalkBuilder::new(root)
        .threads(options.threads.max(1))
        .hidden(false)
        .git_ignore(ignore_files)
        .git_exclude(ignore_files)
        .git_global(ignore_files)
        .ignore(ignore_files)
        .parents(ignore_files)
        .require_git(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build_parallel();
    walker.run(|| {
        Box::new(|entry| {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    lock(&unreadable).push(err.to_string());
                    return WalkState::Continue;
                }
            };
            if !entry.file_type().is_some_and(|kind| kind.is_file()) {
                return WalkState::Continue;
            }
            let path = entry.path();
            let relative = relative_name(root, path);
            match scan_file(scanner, path, &relative, &tally, progress) {
                Ok(found) if !found.is_empty() => lock(&findings).extend(found),
                Ok(_) => {}
                Err(err) => lock(&unreadable).push(format!("{relative}: {err}")),
            }
            WalkState::Continue
        })
    });
    let findings = findings
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut unreadable = unreadable
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    unreadable.sort();
    Ok(tally.into_report(findings, unreadable))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `src/app.py` for `<root>/src/app.py`, with `/` whatever the platform.
fn relative_name(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn scan_file(
    scanner: &Scanner,
    path: &Path,
    name: &str,
    tally: &Tally,
    progress: &dyn Progress,
) -> std::io::Result<Vec<Finding>> {
    let origin = Origin {
        path: name,
        commit: None,
    };
    let mut found = scanner.scan_path(origin);
    let mut file = std::fs::File::open(path)?;
    let mut head = Vec::with_capacity(8192);
    (&mut file).take(8192).read_to_end(&mut head)?;
    if looks_binary(&head) {
        tally.skip();
        return Ok(found);
    }
    let size = file.metadata().map_or(0, |m| m.len());
    found.extend(scanner.scan_reader(origin, std::io::Cursor::new(head).chain(file))?);
    tally.read(size, progress);
    Ok(found)
}
