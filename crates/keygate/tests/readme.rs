//! The README's walkthroughs, run exactly as written against a fresh `keygate serve` (with
//! mock upstreams in place of the providers and hosts the README names), and the deployment
//! files' promises.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;
#[path = "support/python.rs"]
mod python;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use process::{ServerProcess, binary, text};

const README: &str = include_str!("../../../README.md");

/// The shell block between the `name` markers.
fn block(name: &str) -> String {
    let start = README
        .find(&format!("<!-- {name}:start -->"))
        .expect("start marker");
    let end = README
        .find(&format!("<!-- {name}:end -->"))
        .expect("end marker");
    let block = &README[start..end];
    let fence = block.find("```").expect("a fence");
    let body_start = fence + block[fence..].find('\n').expect("fence line") + 1;
    let body_end = block.rfind("```").expect("closing fence");
    block[body_start..body_end].to_owned()
}

/// Runs `script` with bash (`-euo pipefail`) in `dir`, the built `keygate` first on `PATH`,
/// `KEYGATE_URL` pointing at `server` and `KEYGATE_CONFIG` at `config` when given:
/// `(stdout, stderr, success)`.
fn run_script(
    script: &str,
    dir: &std::path::Path,
    server: &ServerProcess,
    config: Option<&std::path::Path>,
) -> (String, String, bool) {
    let bin_dir = binary().parent().unwrap().to_owned();
    let mut command = Command::new("bash");
    command
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("KEYGATE_URL", &server.url)
        .env_remove("KEYGATE_TOKEN");
    if let Some(config) = config {
        command.env("KEYGATE_CONFIG", config);
    }
    let output = command.output().unwrap();
    (
        text(&output.stdout),
        text(&output.stderr),
        output.status.success(),
    )
}

#[test]
fn readme_walkthrough_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let script = format!("{}\n{}", block("walkthrough"), block("secrets"));
    let (stdout, stderr, ok) = run_script(&script, dir.path(), &server, None);
    assert!(
        ok,
        "walkthrough failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{}",
        server.log()
    );
    for expected in [
        "valid: key_",
        "\"valid\":true",
        "billing-backend",
        "refused: key_revoked",
        "refused, as expected",
        "key.revoke",
        "audit log intact",
        "the child has the key",
        "sk-example-upstream-key",
        "secret.reveal",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}\nstderr:\n{stderr}"
        );
    }
    // Both secrets were valid during the grace period: two "valid" lines after the rotation.
    assert_eq!(stdout.matches("valid: key_").count(), 3, "{stdout}");
    assert!(server.stop().success(), "graceful shutdown");
}

/// The gateway section: its `keygate.toml` as written, with the providers' base URLs pointed at
/// mock upstreams, and its shell block run as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_gateway_runs_as_written() {
    let openai = keygate_testkit::MockOpenAi::start("openai", "sk-your-openai-key")
        .await
        .unwrap();
    let groq = keygate_testkit::MockOpenAi::start("groq", "gsk-readme-test")
        .await
        .unwrap();
    let anthropic = keygate_testkit::MockAnthropic::start("anthropic", "sk-ant-readme-test")
        .await
        .unwrap();
    let config = block("gateway-config")
        .replace(
            "kind = \"openai\"\n",
            &format!("kind = \"openai\"\nbase_url = \"{}/v1\"\n", openai.origin()),
        )
        .replace(
            "kind = \"groq\"\n",
            &format!("kind = \"groq\"\nbase_url = \"{}/v1\"\n", groq.origin()),
        )
        .replace(
            "kind = \"anthropic\"\n",
            &format!(
                "kind = \"anthropic\"\nbase_url = \"{}/v1\"\n",
                anthropic.origin()
            ),
        );
    assert_eq!(config.matches("base_url").count(), 3, "{config}");
    let (stdout, stderr, ok, log) = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keygate.toml");
        std::fs::write(&path, config).unwrap();
        let mut server = ServerProcess::start(
            dir.path(),
            &[
                ("KEYGATE_CONFIG", path.to_str().unwrap()),
                ("GROQ_API_KEY", "gsk-readme-test"),
                ("ANTHROPIC_API_KEY", "sk-ant-readme-test"),
            ],
        );
        let (stdout, stderr, ok) = run_script(&block("gateway"), dir.path(), &server, Some(&path));
        let log = server.log();
        assert!(server.stop().success(), "graceful shutdown");
        (stdout, stderr, ok, log)
    })
    .await
    .unwrap();
    assert!(
        ok,
        "gateway walkthrough failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{log}"
    );
    assert_eq!(
        stdout.matches("Hello from openai: Hello!").count(),
        3,
        "once for the OpenAI client, once for the Anthropic one, once for the Responses API: {stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.trim() == "chat"),
        "the key lists only `chat`: {stdout}"
    );
    assert!(!stdout.lines().any(|l| l.trim() == "fast"), "{stdout}");
    assert!(
        stdout.contains("REQUESTS") && stdout.contains("COST (USD)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("200 200 429"),
        "the capped key's third request is refused: {stdout}"
    );
    for line in [
        "key tokens per minute: 100000 left",
        "key budget per day: 2.000000 left",
        "project budget per month: 50.000000 left",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line}: {stdout}");
    }
    let seen = openai.requests();
    assert_eq!(
        seen[0].header("authorization"),
        Some("Bearer sk-your-openai-key"),
        "the vault's key went upstream"
    );
    assert_eq!(groq.request_count(), 0);
    assert_eq!(
        seen[1].json()["messages"][0]["content"],
        "Hello!",
        "the Anthropic request reached OpenAI translated"
    );
    assert_eq!(
        (seen[2].path.as_str(), &seen[2].json()["input"]),
        ("/v1/responses", &serde_json::json!("Hello!")),
        "the Responses request reached OpenAI's own Responses API as sent"
    );
    assert_eq!(anthropic.request_count(), 0);
}

/// For the publishable-key section: an upstream on a thread that answers every request `200 {"items": []}` and counts them.
fn upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            seen.fetch_add(1, Ordering::SeqCst);
            let body = r#"{"items": []}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, count)
}

#[test]
fn readme_publishable_keys_run_as_written() {
    let (upstream, requests) = upstream();
    let config = block("publishable-config").replace(
        "https://catalog.internal.example/v1",
        &format!("{upstream}/v1"),
    );
    assert!(config.contains(&upstream), "{config}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keygate.toml");
    std::fs::write(&path, config).unwrap();
    let mut server =
        ServerProcess::start(dir.path(), &[("KEYGATE_CONFIG", path.to_str().unwrap())]);
    let (stdout, stderr, ok) = run_script(&block("publishable"), dir.path(), &server, Some(&path));
    assert!(
        ok,
        "walkthrough failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{}",
        server.log()
    );
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "access-control-allow-origin: https://shop.example.com",
            "origin_not_allowed",
            "publishable_key_forbidden",
        ],
        "{stdout}"
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "only the allowed read went upstream"
    );
    assert!(server.stop().success(), "graceful shutdown");
}

/// The tokens section, run as written, on a server started with the federation section's
/// configuration as written (so that it is one keygate accepts).
#[test]
fn readme_tokens_run_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keygate.toml");
    std::fs::write(&path, block("federation-config")).unwrap();
    let mut server =
        ServerProcess::start(dir.path(), &[("KEYGATE_CONFIG", path.to_str().unwrap())]);
    let (stdout, stderr, ok) = run_script(&block("tokens"), dir.path(), &server, Some(&path));
    assert!(
        ok,
        "walkthrough failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{}",
        server.log()
    );
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert!(lines[0].starts_with("valid: key_"), "{stdout}");
    assert_eq!(
        lines[1..4],
        ["invalid_scope", "GET /reports/*", "EdDSA"],
        "{stdout}"
    );
    // The revocation prints the key; then its token is refused.
    assert!(stdout.contains("pipeline retired"), "{stdout}");
    assert_eq!(
        lines[lines.len() - 2..],
        ["refused: key_revoked", "token refused, as expected"],
        "{stdout}"
    );
    assert!(server.stop().success(), "graceful shutdown");
}

/// `deploy/systemd/keygate.service` keeps its sandbox: `systemd-analyze security` rates its
/// exposure 2.0 or lower ("OK"; a network server cannot go lower), and it names only settings
/// keygate reads.
#[test]
fn the_systemd_unit_is_sandboxed() {
    let unit = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/systemd/keygate.service");
    let rated = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian's systemd package) rates the unit");
    assert!(
        rated.status.success(),
        "the unit's exposure is above 2.0:\n{}{}",
        text(&rated.stdout),
        text(&rated.stderr)
    );
    let rating = text(&rated.stdout);
    assert!(rating.contains("Overall exposure level"), "{rating}");
    let source = std::fs::read_to_string(&unit).unwrap();
    assert!(source.contains("ExecStart=/usr/local/bin/keygate serve"));
    for setting in ["KEYGATE_CONFIG", "KEYGATE_DATA_DIR"] {
        assert!(
            source.contains(&format!("Environment={setting}=")),
            "{setting}"
        );
    }
}

/// The deployment files (`deploy/`) that no engine runs here are held to what can be checked:
/// the YAML parses, Prometheus's configuration passes `promtool`, every `.Values` path the
/// Helm templates read is in `values.yaml`, and every `KEYGATE_*` setting they set is one the
/// README documents.
#[test]
fn the_deployment_files_hold_together() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let read = |path: &str| std::fs::read_to_string(deploy.join(path)).unwrap();
    let yaml = [
        "compose.yaml",
        "prometheus/prometheus.yml",
        "helm/keygate/Chart.yaml",
        "helm/keygate/values.yaml",
    ];
    let python = python::python();
    for file in yaml {
        let parsed = Command::new(&python)
            .args(["-c", "import sys, yaml; yaml.safe_load(open(sys.argv[1]))"])
            .arg(deploy.join(file))
            .output()
            .unwrap();
        assert!(parsed.status.success(), "{file}: {}", text(&parsed.stderr));
    }
    let checked = Command::new(
        std::env::var("KEYGATE_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".to_owned()),
    )
    .args(["check", "config"])
    .arg(deploy.join("prometheus/prometheus.yml"))
    .output()
    .expect("promtool (Debian's prometheus package) checks the configuration");
    assert!(checked.status.success(), "{}", text(&checked.stdout));

    // `.Values.a.b` must name `a:` at the left margin of values.yaml and `b:` indented under it.
    let values = read("helm/keygate/values.yaml");
    let defined = |path: &[&str]| {
        let mut depth = 0;
        for line in values.lines() {
            let indent = line.len() - line.trim_start().len();
            if indent / 2 == depth && line.trim_start().starts_with(&format!("{}:", path[depth])) {
                depth += 1;
                if depth == path.len() {
                    return true;
                }
            } else if depth > 0
                && indent / 2 < depth
                && !line.trim().is_empty()
                && !line.trim_start().starts_with('#')
            {
                return false;
            }
        }
        false
    };
    let templates = deploy.join("helm/keygate/templates");
    let mut referenced = 0;
    for entry in std::fs::read_dir(&templates).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for (at, _) in source.match_indices(".Values.") {
            let rest = &source[at + ".Values.".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
                .unwrap_or(rest.len());
            let keys: Vec<&str> = rest[..end].split('.').filter(|k| !k.is_empty()).collect();
            assert!(
                defined(&keys),
                "{}: `.Values.{}` is not in values.yaml",
                path.display(),
                keys.join(".")
            );
            referenced += 1;
        }
    }
    assert!(referenced > 10, "the templates read {referenced} values");

    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    for file in [
        "Dockerfile",
        "compose.yaml",
        "helm/keygate/templates/deployment.yaml",
        "systemd/keygate.service",
    ] {
        let source = read(file);
        for (at, _) in source.match_indices("KEYGATE_") {
            let name: String = source[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            assert!(
                readme.contains(&format!("`{name}`")),
                "{file} sets {name}, which the README does not document"
            );
        }
    }
}

/// `scripts/sbom` writes the release's SBOM: a CycloneDX 1.5 document that CycloneDX's own
/// library accepts against the schema, naming every crate the `keygate` binary is built from
/// (as `cargo tree` resolves it) with its licence and package URL, and none that only the
/// tests use.
#[test]
fn the_release_sbom_names_what_the_binary_is_built_from() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new(root.join("scripts/sbom"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));
    let path = dir.path().join("keygate.cdx.json");
    let validated = Command::new(python::python())
        .args([
            "-c",
            "import sys\n\
             from cyclonedx.schema import SchemaVersion\n\
             from cyclonedx.validation.json import JsonStrictValidator\n\
             error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
             sys.exit(str(error) if error else 0)",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(validated.status.success(), "{}", text(&validated.stderr));

    let bom: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(bom["metadata"]["component"]["name"], "keygate");
    let components = bom["components"].as_array().unwrap();
    let listed: std::collections::BTreeSet<String> = components
        .iter()
        .map(|c| {
            format!(
                "{} v{}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap()
            )
        })
        .collect();
    for component in components {
        assert!(component["purl"].is_string(), "{component}");
        assert!(component["licenses"].is_array(), "{component}");
    }
    let tree = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            "keygate",
            "-e",
            "normal,build",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(tree.status.success(), "{}", text(&tree.stderr));
    let built: std::collections::BTreeSet<String> = text(&tree.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some(format!("{} {}", words.next()?, words.next()?))
        })
        .filter(|crate_| crate_ != "keygate v0.1.0")
        .collect();
    assert!(built.len() > 300, "{built:?}");
    let missing: Vec<&String> = built.difference(&listed).collect();
    assert!(missing.is_empty(), "built but not in the SBOM: {missing:?}");
    for test_only in ["keygate-testkit", "proptest", "insta", "criterion"] {
        assert!(
            !components.iter().any(|c| c["name"] == test_only),
            "{test_only} is only the tests'"
        );
    }
}
