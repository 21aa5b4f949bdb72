//! `keygate webhooks …`: alert endpoints and their deliveries, through the admin API.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::CliError;
use crate::cli::{ApiArgs, DeliveriesArgs, DeliveryStateArg, UpdateWebhookArgs, WebhooksCommand};
use crate::client::{AdminClient, segment};
use crate::output::{self, out};

const FIELDS: [&str; 8] = [
    "id",
    "url",
    "events",
    "project_id",
    "description",
    "disabled",
    "created_at",
    "updated_at",
];

pub async fn run(command: WebhooksCommand) -> Result<(), CliError> {
    match command {
        WebhooksCommand::Create(args) => {
            let client = AdminClient::new(&args.api)?;
            let body = json!({
                "url": args.endpoint,
                "events": args.events,
                "project": args.project,
                "description": args.description,
            });
            let reply = client
                .call(Method::POST, "/admin/v1/webhooks", Some(&body), &[])
                .await?;
            let secret = reply.body["secret"].as_str().unwrap_or_default();
            if args.api.json {
                output::json(&reply.body);
            } else if args.quiet {
                out(secret);
            } else {
                show(&args.api, &reply.body["webhook"]);
                out(&format!("signing secret (shown once): {secret}"));
            }
        }
        WebhooksCommand::List(args) => {
            let client = AdminClient::new(&args.api)?;
            let page = client.get("/admin/v1/webhooks", &[]).await?;
            if args.api.json {
                output::json(&page);
            } else {
                let items = page["data"].as_array().cloned().unwrap_or_default();
                output::rows(
                    &items,
                    &[
                        ("ID", "id"),
                        ("URL", "url"),
                        ("EVENTS", "events"),
                        ("DISABLED", "disabled"),
                    ],
                );
            }
        }
        WebhooksCommand::Show(args) => {
            let client = AdminClient::new(&args.api)?;
            let endpoint = client.get(&path(&args.id), &[]).await?;
            show(&args.api, &endpoint);
        }
        WebhooksCommand::Update(args) => update(args).await?,
        WebhooksCommand::Delete(args) => {
            let client = AdminClient::new(&args.api)?;
            client
                .call(Method::DELETE, &path(&args.id), None, &[])
                .await?;
            if args.api.json {
                output::json(&json!({ "id": args.id, "deleted": true }));
            } else {
                out(&format!("deleted {}", args.id));
            }
        }
        WebhooksCommand::Test(args) => {
            let client = AdminClient::new(&args.api)?;
            let reply = client
                .call(Method::POST, &format!("{}/test", path(&args.id)), None, &[])
                .await?;
            if args.api.json {
                output::json(&reply.body);
            } else {
                out(&format!(
                    "queued test event {}",
                    reply.body["event_id"].as_str().unwrap_or_default()
                ));
            }
        }
        WebhooksCommand::Deliveries(args) => deliveries(args).await?,
        WebhooksCommand::Replay(args) => {
            let client = AdminClient::new(&args.api)?;
            let reply = client
                .call(
                    Method::POST,
                    &format!(
                        "{}/deliveries/{}/replay",
                        path(&args.id),
                        segment(&args.delivery)
                    ),
                    None,
                    &[],
                )
                .await?;
            if args.api.json {
                output::json(&reply.body);
            } else {
                out(&format!("queued {} again", args.delivery));
            }
        }
    }
    Ok(())
}

fn path(id: &str) -> String {
    format!("/admin/v1/webhooks/{}", segment(id))
}

fn show(api: &ApiArgs, endpoint: &Value) {
    if api.json {
        output::json(endpoint);
    } else {
        output::record(endpoint, &FIELDS);
    }
}

async fn update(args: UpdateWebhookArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.api)?;
    let mut body = Map::new();
    if let Some(url) = args.endpoint {
        body.insert("url".into(), json!(url));
    }
    if let Some(description) = args.description {
        body.insert("description".into(), json!(description));
    }
    if args.all_events {
        body.insert("events".into(), json!([]));
    } else if !args.events.is_empty() {
        body.insert("events".into(), json!(args.events));
    }
    if args.disable || args.enable {
        body.insert("disabled".into(), json!(args.disable));
    }
    let reply = client
        .call(
            Method::PATCH,
            &path(&args.id),
            Some(&Value::Object(body)),
            &[],
        )
        .await?;
    show(&args.api, &reply.body);
    Ok(())
}

async fn deliveries(args: DeliveriesArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.api)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(state) = args.state {
        let state = match state {
            DeliveryStateArg::Pending => "pending",
            DeliveryStateArg::Delivered => "delivered",
            DeliveryStateArg::Dead => "dead",
        };
        query.push(("state", state.to_owned()));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(cursor) = args.cursor {
        query.push(("cursor", cursor));
    }
    let page = client
        .get(&format!("{}/deliveries", path(&args.id)), &query)
        .await?;
    if args.api.json {
        output::json(&page);
    } else {
        let items = page["data"].as_array().cloned().unwrap_or_default();
        output::rows(
            &items,
            &[
                ("ID", "id"),
                ("EVENT", "event_type"),
                ("STATE", "state"),
                ("ATTEMPTS", "attempts"),
                ("LAST", "last_status"),
                ("ERROR", "last_error"),
                ("CREATED", "created_at"),
            ],
        );
    }
    Ok(())
}
