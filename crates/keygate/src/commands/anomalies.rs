//! `keygate anomalies …`: what the anomaly detectors found, through the admin API.

use reqwest::Method;
use serde_json::{Value, json};

use crate::CliError;
use crate::cli::{AnomaliesCommand, ListAnomaliesArgs};
use crate::client::{AdminClient, segment};
use crate::output::{self, out};

pub async fn run(command: AnomaliesCommand) -> Result<(), CliError> {
    match command {
        AnomaliesCommand::List(args) => list(args).await,
        AnomaliesCommand::Ack(args) => {
            let client = AdminClient::new(&args.api)?;
            let reply = client
                .call(
                    Method::POST,
                    &format!("/admin/v1/anomalies/{}/ack", segment(&args.id)),
                    Some(&json!({ "note": args.note })),
                    &[],
                )
                .await?;
            if args.api.json {
                output::json(&reply.body);
            } else {
                out(&format!("acknowledged {}", args.id));
            }
            Ok(())
        }
    }
}

async fn list(args: ListAnomaliesArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.api)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    if args.open {
        query.push(("state", "open".to_owned()));
    }
    if args.acknowledged {
        query.push(("state", "acknowledged".to_owned()));
    }
    for (name, value) in [
        ("project", args.project),
        ("key", args.key),
        ("cursor", args.cursor),
        ("limit", args.limit.map(|l| l.to_string())),
    ] {
        if let Some(value) = value {
            query.push((name, value));
        }
    }
    let page = client.get("/admin/v1/anomalies", &query).await?;
    if args.api.json {
        output::json(&page);
    } else {
        let items: Vec<Value> = page["data"].as_array().cloned().unwrap_or_default();
        output::rows(
            &items,
            &[
                ("ID", "id"),
                ("DETECTOR", "detector"),
                ("KEY", "key_id"),
                ("ACTION", "action"),
                ("OUTCOME", "outcome"),
                ("DETECTED", "detected_at"),
                ("ACKNOWLEDGED", "acknowledged_at"),
            ],
        );
    }
    Ok(())
}
