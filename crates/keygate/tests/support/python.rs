//! What the official-SDK tests share: the interpreter of `scripts/pyenv`, the gateway set-up
//! steps they take through the CLI, one run of a Python suite with a deadline, and the check
//! that no keygate key ever reached an upstream. Needs `mod process` beside it.
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using a part of it"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use keygate_testkit::SeenRequest;

use crate::process::{ServerProcess, text};

/// Long enough for a suite on a slow machine; each SDK call also times out after 30 s.
pub const SUITE_DEADLINE: Duration = Duration::from_secs(300);

/// The interpreter of `scripts/pyenv`'s virtual environment. The test fails without it: a
/// skipped compatibility test would look like a passing one.
pub fn python() -> PathBuf {
    let Some(python) = std::env::var_os("KEYGATE_TEST_PYTHON") else {
        panic!(
            "KEYGATE_TEST_PYTHON is not set: run ./scripts/test, or eval \"$(scripts/pyenv)\" \
             before cargo test"
        );
    };
    let python = PathBuf::from(python);
    assert!(
        python.exists(),
        "KEYGATE_TEST_PYTHON={} does not exist: run eval \"$(scripts/pyenv)\" again",
        python.display()
    );
    python
}

/// Stores `value` in the vault of the `default` project as secret `name`.
pub fn put_secret(server: &ServerProcess, owner: &str, name: &str, value: &str) {
    let put = server.cli(
        &["secrets", "put", name, "--project", "default"],
        Some(owner),
        Some(value),
    );
    assert!(put.status.success(), "{}", text(&put.stderr));
}

pub fn create_key(server: &ServerProcess, owner: &str, name: &str, scope: &str) -> String {
    let created = server.cli(
        &[
            "keys", "create", "--name", name, "--scope", scope, "--quiet",
        ],
        Some(owner),
        None,
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_owned();
    assert!(key.starts_with("kg_live_"), "{key}");
    key
}

/// What a Python suite left: its exit status (`None` when it overran the deadline), its
/// output and how long it took.
pub struct SuiteRun {
    pub status: Option<ExitStatus>,
    pub output: String,
    pub elapsed: Duration,
}

/// Runs `tests/python/<suite>` with `env`, its output in a file in `dir` (no pipe to fill
/// up), killed at the deadline.
pub fn run_suite(python: &Path, suite: &str, dir: &Path, env: &[(&str, String)]) -> SuiteRun {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(suite);
    let args = ["-m", "unittest", "-v", suite.to_str().unwrap()];
    run_python(python, &args, suite.parent().unwrap(), dir, env)
}

/// Runs `python` with `args` in `cwd` and `env`, its output in a file in `dir`, killed at the
/// deadline.
pub fn run_python(
    python: &Path,
    args: &[&str],
    cwd: &Path,
    dir: &Path,
    env: &[(&str, String)],
) -> SuiteRun {
    let log_path = dir.join("python.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = Command::new(python);
    command
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // The SDKs read their settings (credentials, base URL, extra headers, profiles) and
    // proxies from the environment; the suite sees only what this test sets.
    for (name, _) in std::env::vars() {
        if ["OPENAI_", "ANTHROPIC_", "KEYGATE_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name);
        }
    }
    command.env("NO_PROXY", "127.0.0.1,localhost");
    // No `__pycache__` beside the suite in the source tree.
    command.env("PYTHONDONTWRITEBYTECODE", "1");
    for (name, value) in env {
        command.env(name, value);
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("start the Python suite");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > SUITE_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    SuiteRun {
        status,
        output: std::fs::read_to_string(&log_path).unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// Fails with the suite's output and the end of keygate's log unless the suite passed;
/// prints the output when it did.
#[allow(
    clippy::print_stdout,
    reason = "the suite's own report, shown with --nocapture"
)]
pub fn assert_passed(run: &SuiteRun, server: &ServerProcess) {
    let report = format!(
        "--- Python suite ({:.1} s) ---\n{}\n--- keygate log (last 200 lines) ---\n{}",
        run.elapsed.as_secs_f64(),
        run.output,
        tail(&server.log(), 200)
    );
    match run.status {
        None => panic!("the Python suite overran {SUITE_DEADLINE:?}\n{report}"),
        Some(status) => assert!(status.success(), "the Python suite failed\n{report}"),
    }
    println!(
        "--- Python suite ({:.1} s) ---\n{}",
        run.elapsed.as_secs_f64(),
        run.output
    );
}

/// The last `n` lines of a log.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Fails if any of `secrets` (and any keygate key at all) appears in a header, the query or
/// the body of a request an upstream saw.
pub fn assert_no_keygate_key(seen: &[SeenRequest], secrets: &[&str]) {
    for request in seen {
        let body = String::from_utf8_lossy(&request.body);
        let query = request.query.as_deref().unwrap_or_default();
        for secret in secrets.iter().copied().chain(["kg_live_"]) {
            assert!(
                !request.headers.iter().any(|(_, v)| v.contains(secret))
                    && !query.contains(secret)
                    && !body.contains(secret),
                "a keygate key went upstream: {request:?}"
            );
        }
    }
}

/// Every request `seen` carries `credential` in header `name`, and no other credential
/// header.
pub fn assert_credential(seen: &[SeenRequest], name: &str, credential: &str) {
    assert!(!seen.is_empty(), "no request reached the `{name}` upstream");
    for request in seen {
        assert_eq!(
            request.header(name),
            Some(credential),
            "{} {}",
            request.method,
            request.path
        );
        for other in ["authorization", "x-api-key", "x-goog-api-key", "api-key"] {
            if other != name {
                assert!(
                    request.header(other).is_none(),
                    "`{other}` went upstream beside `{name}`: {request:?}"
                );
            }
        }
    }
}
