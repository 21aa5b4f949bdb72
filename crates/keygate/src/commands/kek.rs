//! `keygate kek rotate`: re-wraps every data key and the digest key under a new local master
//! key, in batches, resumable, while servers keep serving (their keyring follows the files).

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use keygate_core::SystemClock;
use keygate_crypto::{Kek, KekRing, KeyringPaths, LocalKeyring, MasterKey};
use keygate_server::service::{Pace, RewrapReport, references_other_keks, rewrap_all};
use serde_json::json;

use super::{local_settings, open_store};
use crate::CliError;
use crate::cli::{KekCommand, KekRotateArgs};
use crate::config::{KekProvider, Settings};
use crate::output::{self, note, out};

pub async fn run(config: Option<&Path>, command: KekCommand) -> Result<(), CliError> {
    match command {
        KekCommand::Rotate(args) => rotate(config, args).await,
    }
}

fn crypto(err: keygate_crypto::CryptoError) -> CliError {
    CliError::Invalid(err.to_string())
}

/// Re-wraps with a progress spinner (hidden for `--json`).
async fn run_rewrap(
    store: &dyn keygate_store::Store,
    from: &dyn Kek,
    to: &dyn Kek,
    args: &KekRotateArgs,
) -> Result<RewrapReport, CliError> {
    let progress = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    progress.set_style(
        ProgressStyle::with_template("{spinner} re-wrapped {pos} data keys ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let pace = Pace {
        batch_size: args.batch_size,
        max_batches: args.max_batches,
        pause: args.pause.map(Into::into).unwrap_or_default(),
    };
    let report = rewrap_all(store, from, to, &SystemClock, pace, |moved| {
        progress.inc(moved);
    })
    .await
    .map_err(|e| CliError::Invalid(e.to_string()))?;
    progress.finish_and_clear();
    Ok(report)
}

/// Moves everything wrapped by the local key file under the token's key (`kek = "pkcs11"`).
/// Servers already run with the token as current KEK and the file as a companion.
async fn move_into_token(settings: &Settings, args: &KekRotateArgs) -> Result<(), CliError> {
    // The token key must already be the servers' current KEK: a mistyped label must not
    // move everything to a key nobody uses.
    let token = super::pkcs11_kek(settings, super::KeyFile::MustExist)?;
    let from = KekRing::new(token.clone(), super::local_companions(settings)?);
    let store = open_store(settings).await?;
    let report = run_rewrap(store.as_ref(), &from, token.as_ref(), args).await?;
    let finished = !report.remaining
        && !references_other_keks(store.as_ref(), &token.id())
            .await
            .map_err(|e| CliError::Invalid(e.to_string()))?;
    store.close().await;
    if args.json {
        output::json(&json!({ "finished": finished, "to": token.id().as_str(), "report": report }));
    } else if finished {
        out(&format!(
            "everything is wrapped by the token key {} ({} data keys moved); the local key file \
             {} is no longer used: keep it offline until older backups expire, then delete it",
            token.id(),
            report.versions_rewrapped,
            settings.master_key_file.display()
        ));
    } else {
        out(&format!(
            "moved {} data keys; more remain: run `keygate kek rotate` again to continue",
            report.versions_rewrapped
        ));
    }
    Ok(())
}

async fn rotate(config: Option<&Path>, args: KekRotateArgs) -> Result<(), CliError> {
    let settings = local_settings(config, &args.store)?;
    let env_set = std::env::var_os("KEYGATE_MASTER_KEY").is_some();
    let provider = settings.kek.unwrap_or(if env_set {
        KekProvider::Env
    } else {
        KekProvider::Local
    });
    match provider {
        KekProvider::Local => {}
        KekProvider::Pkcs11 => return move_into_token(&settings, &args).await,
        KekProvider::Env => {
            return Err(CliError::Invalid(
                "kek rotate works on the local key file and on a PKCS#11 token; to change an \
                 env master key, move the store into a token or a local keyring first"
                    .into(),
            ));
        }
    }
    let paths = KeyringPaths::new(&settings.master_key_file);
    if !paths.current.exists() && !paths.next.exists() {
        return Err(CliError::Invalid(format!(
            "no master key at {}: point --data-dir or --master-key-file at the server's",
            paths.current.display()
        )));
    }
    // One rotation at a time; the lock is released when the process ends, however it ends.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.lock)
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot open the rotation lock: {e}")))?;
    lock.try_lock().map_err(|_| {
        CliError::Invalid("another `keygate kek rotate` is running on this key".into())
    })?;
    let old = if paths.current.exists() {
        Some(MasterKey::load(&paths.current).map_err(crypto)?)
    } else {
        None
    };
    let resumed = paths.next.exists();
    // Created exclusively with mode 0600; an existing one means a rotation to resume. From
    // the moment it exists, servers wrap new data keys with it.
    let next = MasterKey::load_or_create(&paths.next).map_err(crypto)?;
    let keyring = LocalKeyring::open(&paths.current, false).map_err(crypto)?;
    let from_id = old.as_ref().map(|k| k.id().clone());
    let store = open_store(&settings).await?;
    if !args.json {
        note(&format!(
            "{} rotation {} → {}",
            if resumed { "resuming" } else { "starting" },
            from_id.as_ref().map_or("(none)", |id| id.as_str()),
            next.id()
        ));
    }

    let report = run_rewrap(store.as_ref(), &keyring, &next, &args).await?;

    if report.remaining {
        if args.json {
            output::json(&json!({ "finished": false, "report": report }));
        } else {
            out(&format!(
                "re-wrapped {} data keys; more remain: run `keygate kek rotate` again to continue",
                report.versions_rewrapped
            ));
        }
        return Ok(());
    }
    if references_other_keks(store.as_ref(), next.id())
        .await
        .map_err(|e| CliError::Invalid(e.to_string()))?
    {
        return Err(CliError::Invalid(
            "something is still wrapped by an older key; run `keygate kek rotate` again".into(),
        ));
    }
    // Everything is under the new key: it becomes current. The old key is archived, never
    // overwritten: backups taken before today need it. A link first, then one atomic rename,
    // so that a crash at any point leaves a key file that opens the store.
    let archive = from_id.as_ref().map(|id| paths.archive(id));
    if let Some(archive) = &archive
        && !archive.exists()
    {
        std::fs::hard_link(&paths.current, archive)
            .map_err(|e| CliError::Other(anyhow::anyhow!("cannot archive the old key: {e}")))?;
    }
    std::fs::rename(&paths.next, &paths.current)
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot install the new key: {e}")))?;
    if let Some(dir) = paths.current.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| CliError::Other(anyhow::anyhow!("cannot sync the key directory: {e}")))?;
    }
    store.close().await;
    if args.json {
        output::json(&json!({
            "finished": true,
            "from": from_id.as_ref().map(|id| id.as_str().to_owned()),
            "to": next.id().as_str(),
            "archived": archive.as_ref().map(|p| p.display().to_string()),
            "report": report,
        }));
    } else {
        out(&format!(
            "KEK rotated: {} → {} ({} data keys re-wrapped{}); the old key is archived as {}",
            from_id.as_ref().map_or("(none)", |id| id.as_str()),
            next.id(),
            report.versions_rewrapped,
            match (report.digest_key_rewrapped, report.audit_key_rewrapped) {
                (true, true) => ", and the digest and audit signing keys",
                (true, false) => ", and the digest key",
                (false, true) => ", and the audit signing key",
                (false, false) => "",
            },
            archive
                .as_ref()
                .map_or_else(|| "-".to_owned(), |p| p.display().to_string())
        ));
    }
    Ok(())
}
