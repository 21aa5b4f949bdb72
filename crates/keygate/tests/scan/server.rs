//! keygate keys found by a scan, asked about and reported to a running server: a live key is
//! `valid`, a well-formed key the server never issued is `unknown`, and a reported key is
//! quarantined at once — the server refuses it from then on.

use crate::process::{ServerProcess, text, verify};
use crate::{keygate_key, scan_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_found_key_is_verified_then_reported_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let owner = server.owner_token();
    let made = server.cli(
        &["keys", "create", "--name", "leaky", "--quiet"],
        Some(&owner),
        None,
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    let key = text(&made.stdout).trim().to_owned();
    let stranger = keygate_key();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("client.js"),
        format!("const key = \"{key}\";\nconst other = \"{stranger}\";\n"),
    )
    .unwrap();

    let url = ["--url", server.url.as_str()];
    let (code, verified) = scan_json(work.path(), &[&["--verify"][..], &url].concat());
    assert_eq!(code, 1);
    let states: Vec<&str> = verified["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["verification"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["valid", "unknown"], "{verified}");

    let (_, reported) = scan_json(work.path(), &[&["--report"][..], &url].concat());
    let states: Vec<&str> = reported["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["verification"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["reported", "unknown"], "{reported}");
    let http = reqwest::Client::new();
    let answer = verify(&http, &server.url, &key).await;
    assert_eq!(answer["valid"], false, "{answer}");
    assert_eq!(answer["code"], "key_suspended", "{answer}");
    let (_, again) = scan_json(work.path(), &[&["--verify"][..], &url].concat());
    assert_eq!(again["findings"][0]["verification"], "suspended", "{again}");
    let log = server.log();
    assert!(
        !log.contains(&key) && !log.contains(&stranger),
        "a key is in the log"
    );

    // No server to ask: a clear failure, not a silent pass.
    let (code, _) = {
        let out = crate::scan(work.path(), &["--verify", "--url", "http://127.0.0.1:9"]);
        (out.status.code(), out)
    };
    assert_eq!(code, Some(6));
}
