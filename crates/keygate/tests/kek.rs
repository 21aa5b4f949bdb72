//! `keygate kek rotate` on a live server: batches, an interruption (a real kill), resumption,
//! and keys and secrets that keep working throughout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;

use std::process::{Command, Stdio};
use std::time::Duration;

use process::{ServerProcess, binary, run_cli, text};
use serde_json::Value;

fn json(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {} {}",
            text(&output.stdout),
            text(&output.stderr)
        )
    })
}

/// Every secret's value and the KEK ids wrapping its versions.
fn secrets(server: &ServerProcess, owner: &str) -> Vec<(String, String, Vec<String>)> {
    let listed = json(&server.cli(&["secrets", "list", "--json"], Some(owner), None));
    listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap().to_owned();
            let value = server.cli(&["secrets", "reveal", &name], Some(owner), None);
            assert!(value.status.success(), "{name}: {}", text(&value.stderr));
            let shown = json(&server.cli(&["secrets", "show", &name, "--json"], Some(owner), None));
            let keks = shown["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["kek_id"].as_str().unwrap().to_owned())
                .collect();
            (name, text(&value.stdout).trim().to_owned(), keks)
        })
        .collect()
}

#[test]
fn rotation_survives_a_kill_and_never_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let owner = server.owner_token();
    let key = server.cli(
        &["keys", "create", "--name", "app", "--quiet"],
        Some(&owner),
        None,
    );
    let key = text(&key.stdout).trim().to_owned();
    for i in 0..6 {
        let name = format!("upstream-{i}");
        for round in 0..2 {
            let put = server.cli(
                &["secrets", "put", &name],
                Some(&owner),
                Some(&format!("value-{i}-{round}")),
            );
            assert!(put.status.success(), "{}", text(&put.stderr));
        }
    }
    let before = secrets(&server, &owner);
    let old_kek = before[0].2[0].clone();
    // An idempotent rotation whose reply a retry may ask for again after the KEK rotation.
    let listed = json(&server.cli(&["keys", "list", "--json"], Some(&owner), None));
    let key_id = listed["data"][0]["id"].as_str().unwrap().to_owned();
    let rotate = [
        "keys",
        "rotate",
        key_id.as_str(),
        "--grace",
        "1h",
        "--idempotency-key",
        "deploy-7",
        "--quiet",
    ];
    let first = server.cli(&rotate, Some(&owner), None);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let rotated_key = text(&first.stdout).trim().to_owned();

    // One batch, then stop: part of the store is under the new key, part under the old.
    let partial = run_cli(
        dir.path(),
        &["kek", "rotate", "--batch-size", "3", "--max-batches", "1"],
        &[],
        None,
        None,
    );
    assert!(partial.status.success(), "{}", text(&partial.stderr));
    assert!(text(&partial.stdout).contains("more remain"));
    let data = dir.path().join("keygate-data");
    assert!(data.join("master.key.next").exists());
    let mixed = secrets(&server, &owner);
    let values = |list: &[(String, String, Vec<String>)]| {
        list.iter()
            .map(|(n, v, _)| (n.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        values(&mixed),
        values(&before),
        "every value still decrypts"
    );
    assert!(mixed.iter().flat_map(|s| s.2.iter()).any(|k| *k != old_kek));
    assert!(
        server
            .cli(&["keys", "verify"], None, Some(&key))
            .status
            .success()
    );

    // A slow run, killed mid-way.
    let mut slow = Command::new(binary())
        .args(["kek", "rotate", "--batch-size", "1", "--pause", "300ms"])
        .current_dir(dir.path())
        .env_remove("KEYGATE_MASTER_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    slow.kill().unwrap();
    slow.wait().unwrap();
    assert!(
        data.join("master.key.next").exists(),
        "killed before the end"
    );
    assert_eq!(values(&secrets(&server, &owner)), values(&before));

    // Resumed to the end.
    let done = run_cli(dir.path(), &["kek", "rotate", "--json"], &[], None, None);
    assert!(done.status.success(), "{}", text(&done.stderr));
    let report = json(&done);
    assert_eq!(report["finished"], true);
    assert_eq!(report["report"]["replies_rewrapped"], 1);
    let retry = server.cli(&rotate, Some(&owner), None);
    assert_eq!(
        text(&retry.stdout).trim(),
        rotated_key,
        "a retry after the KEK rotation gets the same key: {}",
        text(&retry.stderr)
    );
    assert_eq!(report["from"], old_kek.as_str());
    let new_kek = report["to"].as_str().unwrap().to_owned();
    assert!(!data.join("master.key.next").exists());
    let archived = dir.path().join(report["archived"].as_str().unwrap());
    assert!(archived.exists(), "the old key is archived");
    assert!(
        archived
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("master.key.previous-")
    );

    // The running server follows: old values decrypt, new writes use the new key, keys verify.
    let after = secrets(&server, &owner);
    assert_eq!(values(&after), values(&before));
    assert!(after.iter().flat_map(|s| s.2.iter()).all(|k| *k == new_kek));
    let put = server.cli(
        &["secrets", "put", "fresh"],
        Some(&owner),
        Some("new-value"),
    );
    assert!(put.status.success());
    let fresh = json(&server.cli(&["secrets", "show", "fresh", "--json"], Some(&owner), None));
    assert_eq!(fresh["versions"][0]["kek_id"], new_kek.as_str());
    assert!(
        server
            .cli(&["keys", "verify"], None, Some(&key))
            .status
            .success()
    );
    let audit = run_cli(dir.path(), &["audit", "verify"], &[], None, None);
    assert!(audit.status.success(), "{}", text(&audit.stderr));
    drop(server);

    // A restart on the rotated files: everything opens with the new key alone.
    std::fs::remove_file(&archived).unwrap();
    let restarted = ServerProcess::start(dir.path(), &[]);
    let reopened: Vec<(String, String)> = values(&secrets(&restarted, &owner))
        .into_iter()
        .filter(|(name, _)| name != "fresh")
        .collect();
    assert_eq!(reopened, values(&before));
    assert!(
        restarted
            .cli(&["keys", "verify"], None, Some(&key))
            .status
            .success()
    );
}
