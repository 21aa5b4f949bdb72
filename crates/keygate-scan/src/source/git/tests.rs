//! Real repositories, made with the `git` command line in a temporary directory.

use std::path::Path;
use std::process::Command;

use crate::rules::RuleSet;
use crate::scanner::Scanner;
use crate::source::{Options, Quiet, Report, ScanError, Target, scan};

/// Deterministic text that looks random, so that no rule's allow-list lets it go.
fn random_text(seed: u64, alphabet: &[u8], len: usize) -> String {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(alphabet[(state % alphabet.len() as u64) as usize])
        })
        .collect()
}

/// A GitHub token, built at run time so that a scan of this file finds none.
fn github_token(seed: u64) -> String {
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    format!("ghp_{}", random_text(seed, alphabet, 36))
}

/// An AWS access key id, built at run time like [`github_token`].
fn aws_key_id(seed: u64) -> String {
    format!(
        "AKIA{}",
        random_text(seed, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    )
}

struct Repo {
    dir: tempfile::TempDir,
    /// Commits get increasing dates, so their order never hangs on the clock.
    clock: std::cell::Cell<u64>,
}

impl Repo {
    fn new() -> Self {
        let repo = Self {
            dir: tempfile::tempdir().unwrap(),
            clock: std::cell::Cell::new(1_700_000_000),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `git`, away from the user's configuration and any repository of the environment.
    fn git(&self, args: &[&str]) -> String {
        let date = format!("{} +0000", self.clock.get());
        let output = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(self.path())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_OBJECT_DIRECTORY")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn write(&self, path: &str, text: &str) {
        let path = self.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Commits everything in the work tree; returns the commit's id.
    fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.commit_staged(message)
    }

    fn commit_staged(&self, message: &str) -> String {
        self.clock.set(self.clock.get() + 60);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

fn run(target: &Target) -> Result<Report, ScanError> {
    let scanner = Scanner::new(&RuleSet::default_rules().unwrap()).unwrap();
    let options = Options {
        threads: 2,
        ..Options::default()
    };
    scan(&scanner, target, &options, &Quiet)
}

fn history(repo: &Repo) -> Report {
    run(&Target::History {
        repository: repo.path().to_owned(),
    })
    .unwrap()
}

fn staged(path: &Path) -> Report {
    run(&Target::Staged {
        repository: path.to_owned(),
    })
    .unwrap()
}

/// Each finding as (path, commit, secret).
fn found(report: &Report) -> Vec<(String, Option<String>, String)> {
    report
        .findings
        .iter()
        .map(|finding| {
            (
                finding.path.clone(),
                finding.commit.clone(),
                finding.expose_secret().to_owned(),
            )
        })
        .collect()
}

#[test]
fn history_finds_secrets_on_every_reference_under_the_commit_that_brought_them() {
    let repo = Repo::new();
    let (removed, side, tagged, detached) = (
        github_token(1),
        github_token(2),
        aws_key_id(3),
        github_token(4),
    );
    repo.write("README.md", "nothing to see\n");
    repo.commit("first");
    repo.write("config.env", &format!("GITHUB_TOKEN={removed}\n"));
    let added = repo.commit("add a token");
    repo.git(&["rm", "-q", "config.env"]);
    repo.commit_staged("remove it again");

    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("side.txt", &format!("token: {side}\n"));
    let on_side = repo.commit("only on a branch");
    repo.git(&["checkout", "-q", "main"]);

    repo.git(&["checkout", "-q", "--detach"]);
    repo.write(
        "deploy/keys.txt",
        &format!("aws_access_key_id = {tagged}\n"),
    );
    let in_tag = repo.commit("only in a tag");
    repo.git(&["tag", "-a", "v1", "-m", "an annotated tag, to be peeled"]);
    repo.git(&["checkout", "-q", "main"]);

    // A tag may name a blob itself, in no commit.
    let loose = aws_key_id(5);
    repo.write("loose.txt", &format!("{loose}\n"));
    let blob = repo.git(&["hash-object", "-w", "loose.txt"]);
    std::fs::remove_file(repo.path().join("loose.txt")).unwrap();
    repo.git(&["tag", "loose-key", &blob]);

    repo.write("README.md", "still nothing\n");
    repo.commit("main moves on");
    repo.git(&["checkout", "-q", "--detach"]);
    repo.write("head.txt", &format!("{detached}\n"));
    let on_head = repo.commit("only on a detached HEAD");

    let report = history(&repo);
    assert_eq!(
        found(&report),
        [
            ("config.env".to_owned(), Some(added), removed),
            ("deploy/keys.txt".to_owned(), Some(in_tag), tagged),
            ("head.txt".to_owned(), Some(on_head), detached),
            ("refs/tags/loose-key".to_owned(), None, loose),
            ("side.txt".to_owned(), Some(on_side), side),
        ]
    );
    assert!(report.unreadable.is_empty(), "{:?}", report.unreadable);
}

#[test]
fn history_scans_each_blob_once_under_its_oldest_commit() {
    let repo = Repo::new();
    let token = github_token(10);
    let text = format!("token = {token}\n");
    repo.write("a.txt", &text);
    let first = repo.commit("add a token");
    // The same content again, elsewhere: the same blob.
    repo.write("copy/b.txt", &text);
    repo.write("notes.txt", "hello\n");
    repo.commit("copy it");
    repo.git(&["mv", "a.txt", "moved.txt"]);
    repo.commit_staged("move it");

    // A merged branch: its blob is the side commit's, not the merge's.
    let merged = github_token(11);
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("feature.txt", &format!("{merged}\n"));
    let on_side = repo.commit("on a branch");
    repo.git(&["checkout", "-q", "main"]);
    repo.write("notes.txt", "hello again\n");
    repo.commit("main moves on");
    repo.git(&["merge", "-q", "--no-ff", "-m", "merge", "feature"]);

    let report = history(&repo);
    assert_eq!(
        found(&report),
        [
            ("a.txt".to_owned(), Some(first), token),
            ("feature.txt".to_owned(), Some(on_side), merged),
        ]
    );
    // The token's blob, two versions of the notes, the merged file.
    assert_eq!(report.scanned, 4);
}

#[test]
fn history_names_the_older_of_two_unrelated_commits() {
    let repo = Repo::new();
    let token = github_token(20);
    repo.write("main.txt", &format!("{token}\n"));
    let older = repo.commit("on main");
    // An unrelated history, committed later on a branch listed first, with the same file
    // under another name.
    repo.git(&["checkout", "-q", "--orphan", "another"]);
    repo.git(&["rm", "-q", "-r", "--cached", "."]);
    std::fs::remove_file(repo.path().join("main.txt")).unwrap();
    repo.write("other.txt", &format!("{token}\n"));
    repo.commit("on another root");

    let report = history(&repo);
    assert_eq!(
        found(&report),
        [("main.txt".to_owned(), Some(older), token)]
    );
}

#[test]
fn staged_scans_the_index_not_the_work_tree() {
    let repo = Repo::new();
    let (staged_token, unstaged_token) = (github_token(30), github_token(31));
    // Before the first commit, every staged file is new.
    repo.write("app.env", &format!("TOKEN={staged_token}\n"));
    repo.git(&["add", "app.env"]);
    repo.write("untracked.txt", &format!("{unstaged_token}\n"));
    let report = staged(repo.path());
    assert_eq!(
        found(&report),
        [("app.env".to_owned(), None, staged_token.clone())]
    );
    assert_eq!(report.scanned, 1);

    repo.commit("first");
    // Committed and unchanged: nothing to report.
    assert!(staged(repo.path()).findings.is_empty());

    // A change only in the work tree is not staged; one added to the index is.
    let (changed, staged_key) = (github_token(32), aws_key_id(33));
    repo.write(
        "app.env",
        &format!("TOKEN={staged_token}\nOTHER={changed}\n"),
    );
    repo.write("src/settings.py", &format!("KEY = \"{staged_key}\"\n"));
    repo.git(&["add", "src/settings.py"]);
    let report = staged(&repo.path().join("src"));
    assert_eq!(
        found(&report),
        [("src/settings.py".to_owned(), None, staged_key)]
    );

    // Staged, the changed file is scanned whole.
    repo.git(&["add", "app.env"]);
    let secrets: Vec<String> = found(&staged(repo.path()))
        .into_iter()
        .filter(|(path, _, _)| path == "app.env")
        .map(|(_, _, secret)| secret)
        .collect();
    assert_eq!(secrets, [staged_token, changed]);
}

#[test]
fn a_directory_outside_any_repository_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for target in [
        Target::Staged {
            repository: dir.path().to_owned(),
        },
        Target::History {
            repository: dir.path().to_owned(),
        },
    ] {
        let err = run(&target).unwrap_err();
        assert!(matches!(err, ScanError::NotARepository { .. }), "{err}");
    }
    let missing = run(&Target::History {
        repository: dir.path().join("missing"),
    });
    assert!(matches!(missing, Err(ScanError::Io { .. })));
}

#[test]
fn a_work_tree_scan_honours_gitignore_reads_hidden_files_and_skips_git() {
    let repo = Repo::new();
    repo.write(".gitignore", "ignored.txt\n");
    repo.write("ignored.txt", &format!("token = {}\n", github_token(40)));
    repo.write(".env", &format!("GITHUB_TOKEN={}\n", github_token(41)));
    repo.write(".git/notes-of-mine", &format!("{}\n", github_token(42)));
    let paths = |ignore_files| -> Vec<String> {
        let report = run(&Target::Tree {
            root: repo.path().to_owned(),
            ignore_files,
        })
        .unwrap();
        report.findings.into_iter().map(|f| f.path).collect()
    };
    assert_eq!(paths(true), [".env"]);
    assert_eq!(paths(false), [".env", "ignored.txt"]);
}
