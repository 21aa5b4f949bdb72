//! `keygate serve` with its KEK inside a PKCS#11 token (SoftHSM2, prepared by
//! `scripts/softhsm`, which `scripts/test` runs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "support/process.rs"]
mod process;

use process::{ServerProcess, run_cli, text};

fn setting(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test (it prepares SoftHSM2)")
    })
}

/// One test at a time on the token: SoftHSM2 keeps a token in files that each process reads
/// and rewrites, and a process that looks while another writes may not find the token.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TOKEN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TOKEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn a_store_sealed_by_a_token_key() {
    let _token = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let label = format!("keygate-cli-{}", std::process::id());
    let module = setting("KEYGATE_TEST_PKCS11_MODULE");
    let token = setting("KEYGATE_TEST_PKCS11_TOKEN");
    let pin = setting("KEYGATE_TEST_PKCS11_PIN");
    let env = [
        ("KEYGATE_KEK", "pkcs11"),
        ("KEYGATE_PKCS11_MODULE", module.as_str()),
        ("KEYGATE_PKCS11_TOKEN", token.as_str()),
        ("KEYGATE_PKCS11_KEY_LABEL", label.as_str()),
        ("KEYGATE_PKCS11_PIN", pin.as_str()),
    ];
    let mut server = ServerProcess::start(dir.path(), &env);
    let owner = server.owner_token();
    let put = server.cli(
        &["secrets", "put", "hsm-guarded"],
        Some(&owner),
        Some("sk-in-hsm"),
    );
    assert!(put.status.success(), "{}", text(&put.stderr));
    let shown = server.cli(
        &["secrets", "show", "hsm-guarded", "--json"],
        Some(&owner),
        None,
    );
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let kek = shown["versions"][0]["kek_id"].as_str().unwrap().to_owned();
    assert!(kek.starts_with(&format!("pkcs11:{label}:")), "{kek}");
    assert!(server.stop().success());
    assert!(
        !dir.path().join("keygate-data/master.key").exists(),
        "no key file: the KEK lives in the token"
    );

    // Restarted on the same token, the store opens and values decrypt.
    let mut again = ServerProcess::start(dir.path(), &env);
    let revealed = again.cli(&["secrets", "reveal", "hsm-guarded"], Some(&owner), None);
    assert_eq!(
        text(&revealed.stdout).trim(),
        "sk-in-hsm",
        "{}",
        text(&revealed.stderr)
    );
    assert!(again.stop().success());
    // Local commands need the key to exist; they never create one.
    let token_cmd = run_cli(
        dir.path(),
        &["admin", "token", "create", "--role", "viewer"],
        &env,
        None,
        None,
    );
    assert!(token_cmd.status.success(), "{}", text(&token_cmd.stderr));

    // A wrong PIN is refused without being echoed.
    let mut wrong = env;
    wrong[4] = ("KEYGATE_PKCS11_PIN", "0000-wrong");
    let refused = run_cli(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &wrong,
        None,
        None,
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("log in to the token"));
    assert!(!text(&refused.stderr).contains("0000-wrong"));
}

#[test]
fn a_store_moves_from_the_key_file_into_the_token() {
    let _token = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let label = format!("keygate-move-{}", std::process::id());
    let module = setting("KEYGATE_TEST_PKCS11_MODULE");
    let token = setting("KEYGATE_TEST_PKCS11_TOKEN");
    let pin = setting("KEYGATE_TEST_PKCS11_PIN");
    let hsm = [
        ("KEYGATE_KEK", "pkcs11"),
        ("KEYGATE_PKCS11_MODULE", module.as_str()),
        ("KEYGATE_PKCS11_TOKEN", token.as_str()),
        ("KEYGATE_PKCS11_KEY_LABEL", label.as_str()),
        ("KEYGATE_PKCS11_PIN", pin.as_str()),
    ];

    // A store sealed by the local key file.
    let mut local = ServerProcess::start(dir.path(), &[]);
    let owner = local.owner_token();
    for name in ["a", "b", "c"] {
        let put = local.cli(
            &["secrets", "put", name],
            Some(&owner),
            Some(&format!("v-{name}")),
        );
        assert!(put.status.success(), "{}", text(&put.stderr));
    }
    let key = local.cli(
        &["keys", "create", "--name", "k", "--quiet"],
        Some(&owner),
        None,
    );
    let key = text(&key.stdout).trim().to_owned();
    assert!(local.stop().success());

    // 1. Restart with the token as KEK; the key file still unwraps what it sealed.
    let server = ServerProcess::start(dir.path(), &hsm);
    let reveal = |server: &ServerProcess, name: &str| {
        let out = server.cli(&["secrets", "reveal", name], Some(&owner), None);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    assert_eq!(reveal(&server, "a"), "v-a");
    assert!(
        server
            .cli(&["keys", "verify"], None, Some(&key))
            .status
            .success()
    );

    // 2. Move every data key (and the digest key) into the token, while it serves.
    let moved = run_cli(dir.path(), &["kek", "rotate", "--json"], &hsm, None, None);
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    let report: serde_json::Value = serde_json::from_slice(&moved.stdout).unwrap();
    assert_eq!(report["finished"], true, "{report}");
    assert_eq!(report["report"]["versions_rewrapped"], 3);
    assert_eq!(report["report"]["digest_key_rewrapped"], true);
    assert_eq!(reveal(&server, "b"), "v-b");
    drop(server);

    // 3. Without the key file, the token alone opens everything.
    std::fs::remove_file(dir.path().join("keygate-data/master.key")).unwrap();
    let alone = ServerProcess::start(dir.path(), &hsm);
    for name in ["a", "b", "c"] {
        assert_eq!(reveal(&alone, name), format!("v-{name}"));
    }
    assert!(
        alone
            .cli(&["keys", "verify"], None, Some(&key))
            .status
            .success()
    );
}
