//! `keygate projects …`.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::limits;
use crate::CliError;
use crate::cli::{ApiArgs, ProjectsCommand, UpdateProjectArgs};
use crate::client::{AdminClient, segment};
use crate::output;

pub async fn run(command: ProjectsCommand) -> Result<(), CliError> {
    match command {
        ProjectsCommand::List(args) => {
            let client = AdminClient::new(&args.api)?;
            let page = client.get("/admin/v1/projects", &[]).await?;
            if args.api.json {
                output::json(&page);
            } else {
                let items: Vec<Value> = page["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(output::with_readable_limits)
                    .collect();
                output::rows(
                    &items,
                    &[
                        ("ID", "id"),
                        ("NAME", "name"),
                        ("LIMITS", "limits"),
                        ("CREATED", "created_at"),
                    ],
                );
            }
        }
        ProjectsCommand::Create(args) => {
            let client = AdminClient::new(&args.api)?;
            let mut body = Map::new();
            body.insert("name".into(), json!(args.name));
            if !args.limits.is_empty() {
                let limits = args.limits.apply_to(Default::default());
                body.insert("limits".into(), limits::to_json(&limits)?);
            }
            let reply = client
                .call(
                    Method::POST,
                    "/admin/v1/projects",
                    Some(&Value::Object(body)),
                    &[],
                )
                .await?;
            show(&args.api, &reply.body);
        }
        ProjectsCommand::Show(args) => {
            let client = AdminClient::new(&args.api)?;
            let project = client.get(&path(&args.project), &[]).await?;
            show(&args.api, &project);
        }
        ProjectsCommand::Update(args) => update(args).await?,
        ProjectsCommand::AddCredits(args) => {
            let client = AdminClient::new(&args.api)?;
            let reply = client
                .call(
                    Method::POST,
                    &format!("{}/credits", path(&args.target)),
                    Some(&json!({ "usd": args.usd.to_string() })),
                    &[],
                )
                .await?;
            show(&args.api, &reply.body);
        }
    }
    Ok(())
}

fn path(project: &str) -> String {
    format!("/admin/v1/projects/{}", segment(project))
}

fn show(api: &ApiArgs, project: &Value) {
    if api.json {
        output::json(project);
    } else {
        output::record(
            &output::with_readable_limits(project),
            &["id", "name", "limits", "anomaly_actions", "created_at"],
        );
    }
}

async fn update(args: UpdateProjectArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.api)?;
    let path = path(&args.project);
    let mut body = serde_json::Map::new();
    if args.no_limits {
        body.insert("limits".into(), json!({}));
    } else if !args.limits.is_empty() {
        body.insert(
            "limits".into(),
            limits::updated(&client, &path, &args.limits).await?,
        );
    }
    if args.default_anomaly_actions {
        body.insert("anomaly_actions".into(), json!({}));
    } else if !args.anomaly_actions.is_empty() {
        let actions: serde_json::Map<String, Value> = args
            .anomaly_actions
            .iter()
            .map(|(detector, action)| (detector.clone(), Value::from(action.clone())))
            .collect();
        body.insert("anomaly_actions".into(), Value::Object(actions));
    }
    if body.is_empty() {
        return Err(CliError::Invalid(
            "nothing to change: pass at least one of --rate, --tokens, --concurrency, --quota, \
             --budget, --no-limits, --anomaly-action or --default-anomaly-actions"
                .into(),
        ));
    }
    let reply = client
        .call(Method::PATCH, &path, Some(&Value::Object(body)), &[])
        .await?;
    show(&args.api, &reply.body);
    Ok(())
}
