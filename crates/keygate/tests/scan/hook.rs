//! The pre-commit hook in a real repository: `git commit` runs it, a commit adding a secret is
//! refused and nothing is recorded, a clean commit (or a marked line) goes through, and a hook
//! keygate did not write is left alone unless forced.

use crate::process::text;
use crate::{git, git_output, scan};

const GITHUB: &str = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d";

#[test]
fn the_hook_refuses_a_commit_that_adds_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    let installed = scan(repo, &["install-hook"]);
    assert!(installed.status.success(), "{}", text(&installed.stderr));
    assert!(repo.join(".git/hooks/pre-commit").exists());

    // Before the first commit, and with a secret only in the staged copy.
    std::fs::write(repo.join("settings.py"), format!("TOKEN = '{GITHUB}'\n")).unwrap();
    git(repo, &["add", "settings.py"]);
    std::fs::write(repo.join("settings.py"), "TOKEN = None\n").unwrap();
    let refused = git_output(repo, &["commit", "-qm", "settings"]);
    assert!(!refused.status.success(), "the commit went through");
    let said = format!("{}{}", text(&refused.stdout), text(&refused.stderr));
    assert!(
        said.contains("settings.py:1:10  github-pat  ghp_…"),
        "{said}"
    );
    assert!(!said.contains(GITHUB), "the hook printed the secret");
    assert!(
        git_output(repo, &["rev-parse", "HEAD"]).status.code() != Some(0),
        "a commit exists"
    );

    // The fixed file commits.
    git(repo, &["add", "settings.py"]);
    git(repo, &["commit", "-qm", "settings"]);
    // A secret only in the working tree, not staged, does not stop a commit.
    std::fs::write(repo.join("notes.txt"), format!("{GITHUB}\n")).unwrap();
    std::fs::write(repo.join("README.md"), "hello\n").unwrap();
    git(repo, &["add", "README.md"]);
    git(repo, &["commit", "-qm", "readme"]);
    // A line marked as known goes through.
    std::fs::write(
        repo.join("fixture.py"),
        format!("T = '{GITHUB}'  # keygate:allow\n"),
    )
    .unwrap();
    git(repo, &["add", "fixture.py"]);
    git(repo, &["commit", "-qm", "fixture"]);

    // Someone else's hook is kept unless forced.
    std::fs::write(repo.join(".git/hooks/pre-commit"), "#!/bin/sh\nexit 0\n").unwrap();
    let kept = scan(repo, &["install-hook"]);
    assert_eq!(kept.status.code(), Some(2));
    assert!(
        text(&kept.stderr).contains("--force"),
        "{}",
        text(&kept.stderr)
    );
    assert!(scan(repo, &["install-hook", "--force"]).status.success());
    assert!(
        std::fs::read_to_string(repo.join(".git/hooks/pre-commit"))
            .unwrap()
            .contains("scan --staged")
    );
}
