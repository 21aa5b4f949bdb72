//! `keygate anomalies …` (what the anomaly detectors found) and `keygate review` (the access
//! review), through the admin API.

use reqwest::Method;
use serde_json::{Value, json};

use crate::CliError;
use crate::cli::{AnomaliesCommand, ListAnomaliesArgs, ReviewArgs};
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

/// Prints the access review: per project, each finding and the command that fixes it.
pub async fn review(args: ReviewArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.api)?;
    let review = client
        .get(
            "/admin/v1/review",
            &[("unused_days", args.unused_days.to_string())],
        )
        .await?;
    if args.api.json {
        output::json(&review);
        return Ok(());
    }
    let projects = review["projects"].as_array().cloned().unwrap_or_default();
    if projects.is_empty() {
        out("nothing to review");
    }
    for project in projects {
        let name = project["project"].as_str().unwrap_or_default();
        out(&format!(
            "{} ({})",
            if name.is_empty() {
                "organisation"
            } else {
                name
            },
            project["project_id"].as_str().unwrap_or_default()
        ));
        for finding in project["findings"].as_array().into_iter().flatten() {
            out(&format!(
                "  {} {} ({}): {}\n    fix: {}",
                finding["kind"].as_str().unwrap_or_default(),
                finding["target"].as_str().unwrap_or_default(),
                finding["name"].as_str().unwrap_or_default(),
                finding["detail"].as_str().unwrap_or_default(),
                finding["fix"].as_str().unwrap_or_default(),
            ));
        }
    }
    Ok(())
}
