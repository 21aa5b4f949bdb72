//! `keygate audit …`: list through the API; verify offline on the store.

use std::path::Path;

use serde_json::json;

use super::{local_settings, open_store};
use crate::CliError;
use crate::cli::{
    ApiOnlyArgs, AuditCheckpointsArgs, AuditCommand, AuditExportArgs, AuditListArgs,
    AuditVerifyArgs,
};
use crate::client::AdminClient;
use crate::output::{self, out};

pub async fn run(config: Option<&Path>, command: AuditCommand) -> Result<(), CliError> {
    match command {
        AuditCommand::List(args) => list(args).await,
        AuditCommand::Verify(args) => verify(config, args).await,
        AuditCommand::Export(args) => export(args).await,
        AuditCommand::PublicKey(args) => public_key(args).await,
        AuditCommand::Checkpoints(args) => checkpoints(args).await,
        AuditCommand::Checkpoint(args) => checkpoint(args).await,
    }
}

async fn public_key(args: ApiOnlyArgs) -> Result<(), CliError> {
    let key = AdminClient::new(&args.api)?
        .get("/admin/v1/audit/public-key", &[])
        .await?;
    if args.api.json {
        output::json(&key);
    } else {
        out(&format!(
            "{} {} (key id {})",
            key["algorithm"].as_str().unwrap_or_default(),
            key["public_key"].as_str().unwrap_or_default(),
            key["key_id"].as_str().unwrap_or_default()
        ));
    }
    Ok(())
}

/// Prints the checkpoint file as JSON (always: it is meant to be kept as it is).
async fn checkpoints(args: AuditCheckpointsArgs) -> Result<(), CliError> {
    let file = AdminClient::new(&args.api)?
        .get(
            "/admin/v1/audit/checkpoints",
            &[("after", args.after.to_string())],
        )
        .await?;
    output::json(&file);
    Ok(())
}

async fn checkpoint(args: ApiOnlyArgs) -> Result<(), CliError> {
    let reply = AdminClient::new(&args.api)?
        .call(
            reqwest::Method::POST,
            "/admin/v1/audit/checkpoints",
            None,
            &[],
        )
        .await?;
    if args.api.json {
        output::json(&reply.body);
    } else if reply.body.is_null() {
        out("the chain's head is signed already");
    } else {
        out(&format!(
            "checkpoint signed at entry {}",
            reply.body["seq"].as_i64().unwrap_or_default()
        ));
    }
    Ok(())
}

/// Prints events as the server exports them, resuming each time from the last one printed.
async fn export(args: AuditExportArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.api)?;
    let mut after = args.after;
    loop {
        client
            .lines(
                "/admin/v1/audit/export",
                &[("after", after.to_string())],
                |line| {
                    out(line);
                    if let Some(seq) = serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|event| event["seq"].as_i64())
                    {
                        after = seq;
                    }
                },
            )
            .await?;
        if !args.follow {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(args.interval)).await;
    }
}

async fn list(args: AuditListArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.api)?;
    let mut query = Vec::new();
    if let Some(action) = &args.action {
        query.push(("action", action.clone()));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(cursor) = args.cursor {
        query.push(("cursor", cursor.to_string()));
    }
    let page = client.get("/admin/v1/audit", &query).await?;
    if args.api.json {
        output::json(&page);
    } else {
        let events = page["data"].as_array().cloned().unwrap_or_default();
        output::rows(
            &events,
            &[
                ("SEQ", "seq"),
                ("TIME", "ts"),
                ("ACTION", "action"),
                ("OUTCOME", "outcome"),
                ("ACTOR", "actor"),
                ("TARGET", "target"),
            ],
        );
    }
    Ok(())
}

async fn verify(config: Option<&Path>, args: AuditVerifyArgs) -> Result<(), CliError> {
    let anchor = args
        .anchor
        .as_deref()
        .map(str::parse::<keygate_core::ChainHead>)
        .transpose()
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    let file = args
        .checkpoints
        .as_deref()
        .map(read_checkpoints)
        .transpose()?;
    let settings = local_settings(config, &args.store)?;
    let store = open_store(&settings).await?;
    let unavailable = |e: keygate_server::ServiceError| CliError::StoreUnavailable(e.to_string());
    let report = keygate_server::service::verify_audit_chain(store.as_ref(), anchor)
        .await
        .map_err(|e| CliError::StoreUnavailable(e.to_string()))?;
    // The checkpoints: from the file given (with the key it pins), else the store's own.
    let (public, checkpoints) = match file {
        Some(file) => file,
        None => {
            let public = keygate_server::service::audit_public_key(store.as_ref())
                .await
                .map_err(unavailable)?;
            let stored = store
                .checkpoints(0, u32::MAX)
                .await
                .map_err(|e| CliError::StoreUnavailable(e.to_string()))?;
            (public, stored)
        }
    };
    let checked = match (&public, report.ok) {
        (Some(public), true) => Some(
            keygate_server::service::verify_checkpoints(store.as_ref(), public, &checkpoints)
                .await
                .map_err(|e| CliError::StoreUnavailable(e.to_string()))?,
        ),
        _ => None,
    };
    if args.json {
        let mut value = json!(report);
        value["checkpoints"] = json!(checked);
        output::json(&value);
    } else if report.ok {
        out(&format!(
            "audit log intact: {} entries; anchor to keep elsewhere: {}",
            report.entries, report.head
        ));
        if let (Some(checked), Some(public)) = (&checked, &public)
            && checked.ok
        {
            out(&format!(
                "{} signed checkpoints hold (key {})",
                checked.checked,
                public.id()
            ));
        }
    }
    if let Some(err) = report.error {
        return Err(CliError::Tampered(err.to_string()));
    }
    match checked.and_then(|c| c.error) {
        None => Ok(()),
        Some(err) => Err(CliError::Tampered(err.to_string())),
    }
}

/// A checkpoint file: its key and its checkpoints.
fn read_checkpoints(
    path: &Path,
) -> Result<
    (
        Option<keygate_crypto::AuditPublicKey>,
        Vec<keygate_store::Checkpoint>,
    ),
    CliError,
> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    let file: keygate_server::service::CheckpointFile =
        serde_json::from_str(&text).map_err(|e| {
            CliError::Invalid(format!("{} is not a checkpoint file: {e}", path.display()))
        })?;
    let public =
        keygate_crypto::AuditPublicKey::from_base64(&file.public_key).ok_or_else(|| {
            CliError::Invalid(format!(
                "{}: public_key is not an Ed25519 key",
                path.display()
            ))
        })?;
    Ok((Some(public), file.checkpoints))
}
