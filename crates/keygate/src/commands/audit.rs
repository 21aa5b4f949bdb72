//! `keygate audit …`: list through the API; verify offline on the store.

use std::path::Path;

use serde_json::json;

use super::{local_settings, open_store};
use crate::CliError;
use crate::cli::{AuditCommand, AuditExportArgs, AuditListArgs, AuditVerifyArgs};
use crate::client::AdminClient;
use crate::output::{self, out};

pub async fn run(config: Option<&Path>, command: AuditCommand) -> Result<(), CliError> {
    match command {
        AuditCommand::List(args) => list(args).await,
        AuditCommand::Verify(args) => verify(config, args).await,
        AuditCommand::Export(args) => export(args).await,
    }
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
    let settings = local_settings(config, &args.store)?;
    let store = open_store(&settings).await?;
    let report = keygate_server::service::verify_audit_chain(store.as_ref(), anchor)
        .await
        .map_err(|e| CliError::StoreUnavailable(e.to_string()))?;
    if args.json {
        output::json(&json!(report));
    } else if report.ok {
        out(&format!(
            "audit log intact: {} entries; anchor to keep elsewhere: {}",
            report.entries, report.head
        ));
    }
    match report.error {
        None => Ok(()),
        Some(err) => Err(CliError::Tampered(err.to_string())),
    }
}
