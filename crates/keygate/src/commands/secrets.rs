//! `keygate secrets …`: the vault through the admin API. Values are read from standard input
//! or a file, never from the command line.

use std::io::{IsTerminal, Read};

use reqwest::Method;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::CliError;
use crate::cli::{
    ApiArgs, PromoteArgs, PutSecretArgs, RotateSecretArgs, SecretRefArgs, SecretsCommand,
    ValueInput,
};
use crate::client::{AdminClient, segment};
use crate::output::{self, note, out};

/// Largest value accepted, as the server does.
const MAX_VALUE_BYTES: u64 = 32 * 1024;

pub async fn run(command: SecretsCommand) -> Result<(), CliError> {
    match command {
        SecretsCommand::Put(args) => put(args).await,
        SecretsCommand::Rotate(args) => rotate(args).await,
        SecretsCommand::Due(args) => {
            super::show_due(
                &args,
                "/admin/v1/secrets/due",
                &[
                    ("NAME", "name"),
                    ("VERSION", "version"),
                    ("CURRENT SINCE", "current_since"),
                    ("DUE", "due_at"),
                ],
            )
            .await
        }
        SecretsCommand::Promote(args) => promote(args).await,
        SecretsCommand::List(args) => {
            let client = AdminClient::new(&args.api)?;
            let query: Vec<(&str, String)> = args
                .project
                .iter()
                .map(|p| ("project", p.clone()))
                .collect();
            let page = client.get("/admin/v1/secrets", &query).await?;
            if args.api.json {
                output::json(&page);
            } else {
                let items = page["data"].as_array().cloned().unwrap_or_default();
                output::rows(
                    &items,
                    &[
                        ("ID", "id"),
                        ("NAME", "name"),
                        ("PROJECT", "project_id"),
                        ("UPDATED", "updated_at"),
                    ],
                );
            }
            Ok(())
        }
        SecretsCommand::Versions(args) => {
            let client = AdminClient::new(&args.api)?;
            let id = resolve(&client, &args).await?;
            let secret = client
                .get(&format!("/admin/v1/secrets/{}", segment(&id)), &[])
                .await?;
            if args.api.json {
                output::json(&secret["versions"]);
            } else {
                versions_table(&secret);
            }
            Ok(())
        }
        SecretsCommand::Show(args) => {
            let client = AdminClient::new(&args.api)?;
            let id = resolve(&client, &args).await?;
            let secret = client
                .get(&format!("/admin/v1/secrets/{}", segment(&id)), &[])
                .await?;
            show(&args.api, &secret);
            Ok(())
        }
        SecretsCommand::Delete(args) => {
            let client = AdminClient::new(&args.api)?;
            let id = resolve(&client, &args).await?;
            client
                .call(
                    Method::DELETE,
                    &format!("/admin/v1/secrets/{}", segment(&id)),
                    None,
                    &[],
                )
                .await?;
            out(&format!("deleted {id}"));
            Ok(())
        }
        SecretsCommand::Reveal(args) => {
            let client = AdminClient::new(&args.target.api)?;
            let id = resolve(&client, &args.target).await?;
            let reply = client
                .call(
                    Method::POST,
                    &format!("/admin/v1/secrets/{}/reveal", segment(&id)),
                    Some(&json!({ "version": args.version })),
                    &[],
                )
                .await?;
            if args.target.api.json {
                output::json(&reply.body);
            } else {
                out(reply.body["value"].as_str().unwrap_or_default());
            }
            Ok(())
        }
    }
}

/// The id of a secret given by id or by name within a project.
async fn resolve(client: &AdminClient, args: &SecretRefArgs) -> Result<String, CliError> {
    if args.secret.starts_with("sec_") {
        return Ok(args.secret.clone());
    }
    let page = client
        .get("/admin/v1/secrets", &[("project", args.project.clone())])
        .await?;
    page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == args.secret.as_str())
        .and_then(|s| s["id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| CliError::Api {
            status: 404,
            code: "not_found".into(),
            message: format!(
                "no secret named {} in project {}",
                args.secret, args.project
            ),
        })
}

fn show(api: &ApiArgs, secret: &Value) {
    if api.json {
        output::json(secret);
        return;
    }
    output::record(
        secret,
        &[
            "id",
            "project_id",
            "name",
            "description",
            "created_at",
            "updated_at",
        ],
    );
    versions_table(secret);
}

fn versions_table(secret: &Value) {
    let versions = secret["versions"].as_array().cloned().unwrap_or_default();
    output::rows(
        &versions,
        &[
            ("VERSION", "version"),
            ("STAGE", "stage"),
            ("CREATED", "created_at"),
            ("USABLE UNTIL", "previous_until"),
            ("KEK", "kek_id"),
        ],
    );
}

/// Reads the value: from the file, else from standard input. One trailing newline (as
/// `echo` and editors add) is dropped.
fn read_value(args: &ValueInput) -> Result<Zeroizing<String>, CliError> {
    if args.value.is_some() {
        return Err(CliError::Invalid(
            "never pass a secret value as an argument: it ends up in shell history and \
             process lists. Pipe it in (`keygate secrets put NAME < value.txt`) or use \
             --from-file"
                .into(),
        ));
    }
    let mut value = Zeroizing::new(String::new());
    let read = match &args.from_file {
        Some(path) => std::fs::File::open(path)
            .and_then(|f| f.take(MAX_VALUE_BYTES + 1).read_to_string(&mut value)),
        None => {
            if std::io::stdin().is_terminal() {
                note("type the value, then press Ctrl-D");
            }
            std::io::stdin()
                .take(MAX_VALUE_BYTES + 1)
                .read_to_string(&mut value)
        }
    };
    read.map_err(|e| CliError::Invalid(format!("cannot read the value: {e}")))?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(CliError::Invalid("the value is empty".into()));
    }
    Ok(value)
}

async fn put(args: PutSecretArgs) -> Result<(), CliError> {
    let value = read_value(&args.input)?;
    let client = AdminClient::new(&args.api)?;
    // The request body holds a copy of the value for the moment it takes to send it; this
    // process ends right after.
    let body = json!({
        "project": args.project,
        "name": args.name,
        "value": value.as_str(),
        "description": args.description,
        "grace_period_seconds": args.grace.map_or(0, |g| g.as_secs()),
        "rotate_every_seconds": args.rotate_every.map(|d| d.as_secs()),
    });
    let reply = client
        .call(Method::POST, "/admin/v1/secrets", Some(&body), &[])
        .await?;
    show(&args.api, &reply.body);
    Ok(())
}

async fn rotate(args: RotateSecretArgs) -> Result<(), CliError> {
    let value = read_value(&args.input)?;
    let client = AdminClient::new(&args.target.api)?;
    let id = resolve(&client, &args.target).await?;
    let check = args
        .check_url
        .as_ref()
        .map(|url| json!({ "url": url, "header": args.check_header, "prefix": args.check_prefix }));
    let body = json!({
        "value": value.as_str(),
        "grace_period_seconds": args.grace.map_or(0, |g| g.as_secs()),
        "check": check,
    });
    let reply = client
        .call(
            Method::POST,
            &format!("/admin/v1/secrets/{}/rotate", segment(&id)),
            Some(&body),
            &[],
        )
        .await?;
    let result = reply.body;
    if args.target.api.json {
        output::json(&result);
    }
    match result["check_failed"].as_str() {
        None => {
            if !args.target.api.json {
                out(&format!("version {} is current", result["version"]));
            }
            Ok(())
        }
        Some(reason) => Err(CliError::Api {
            status: 422,
            code: "upstream_check_failed".into(),
            message: format!(
                "version {} stays pending: {reason}; promote it with `keygate secrets promote \
                 --version {}` once it works",
                result["version"], result["version"]
            ),
        }),
    }
}

async fn promote(args: PromoteArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.target.api)?;
    let id = resolve(&client, &args.target).await?;
    let reply = client
        .call(
            Method::POST,
            &format!("/admin/v1/secrets/{}/promote", segment(&id)),
            Some(&json!({
                "version": args.version,
                "grace_period_seconds": args.grace.map_or(0, |g| g.as_secs()),
            })),
            &[],
        )
        .await?;
    show(&args.target.api, &reply.body);
    Ok(())
}
