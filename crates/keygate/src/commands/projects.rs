//! `keygate projects …`.

use reqwest::Method;
use serde_json::json;

use crate::CliError;
use crate::cli::ProjectsCommand;
use crate::client::AdminClient;
use crate::output;

pub async fn run(command: ProjectsCommand) -> Result<(), CliError> {
    match command {
        ProjectsCommand::List(args) => {
            let client = AdminClient::new(&args.api)?;
            let page = client.get("/admin/v1/projects", &[]).await?;
            if args.api.json {
                output::json(&page);
            } else {
                let items = page["data"].as_array().cloned().unwrap_or_default();
                output::rows(
                    &items,
                    &[("ID", "id"), ("NAME", "name"), ("CREATED", "created_at")],
                );
            }
        }
        ProjectsCommand::Create(args) => {
            let client = AdminClient::new(&args.api)?;
            let reply = client
                .call(
                    Method::POST,
                    "/admin/v1/projects",
                    Some(&json!({ "name": args.name })),
                    &[],
                )
                .await?;
            if args.api.json {
                output::json(&reply.body);
            } else {
                output::record(&reply.body, &["id", "name", "created_at"]);
            }
        }
    }
    Ok(())
}
