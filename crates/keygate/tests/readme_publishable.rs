//! The README's publishable-key section, run as written against a fresh `keygate serve` whose
//! public route points at a local upstream instead of the README's host.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use process::{ServerProcess, binary, text};

const README: &str = include_str!("../../../README.md");

/// The fenced block between the `name` markers.
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

/// An upstream on a thread that answers every request `200 {"items": []}` and counts them.
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
    let bin_dir = binary().parent().unwrap().to_owned();
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block("publishable")])
        .current_dir(dir.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("KEYGATE_URL", &server.url)
        .env("KEYGATE_CONFIG", &path)
        .env_remove("KEYGATE_TOKEN")
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
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
