//! `keygate keys …`: the key lifecycle through the admin API.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::CliError;
use crate::cli::{
    ApiArgs, CreateKeyArgs, DueArgs, EnvArg, KeysCommand, ListKeysArgs, RevokeArgs, RotateArgs,
    StatusArg, UpdateKeyArgs, VerifyArgs,
};
use crate::client::{AdminClient, segment};
use crate::output::{self, KEY_COLUMNS, note, out};

pub async fn run(command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::Create(args) => create(args).await,
        KeysCommand::List(args) => list(args).await,
        KeysCommand::Show(args) => {
            let client = AdminClient::new(&args.api)?;
            let key = client
                .get(&format!("/admin/v1/keys/{}", segment(&args.id)), &[])
                .await?;
            show_key(&args.api, &key);
            Ok(())
        }
        KeysCommand::Update(args) => update(args).await,
        KeysCommand::Rotate(args) => rotate(args).await,
        KeysCommand::Revoke(args) => change_state(args, "revoke").await,
        KeysCommand::Suspend(args) => change_state(args, "suspend").await,
        KeysCommand::Resume(args) => change_state(args, "resume").await,
        KeysCommand::AddCredits(args) => {
            let client = AdminClient::new(&args.api)?;
            let reply = client
                .call(
                    Method::POST,
                    &format!("/admin/v1/keys/{}/credits", segment(&args.target)),
                    Some(&json!({ "usd": args.usd.to_string() })),
                    &[],
                )
                .await?;
            show_key(&args.api, &reply.body);
            Ok(())
        }
        KeysCommand::Delete(args) => {
            let client = AdminClient::new(&args.api)?;
            client
                .call(
                    Method::DELETE,
                    &format!("/admin/v1/keys/{}", segment(&args.id)),
                    None,
                    &[],
                )
                .await?;
            if args.api.json {
                output::json(&json!({ "id": args.id, "deleted": true }));
            } else {
                out(&format!("deleted {}", args.id));
            }
            Ok(())
        }
        KeysCommand::Due(args) => due(args).await,
        KeysCommand::Verify(args) => verify(args).await,
    }
}

async fn verify(args: VerifyArgs) -> Result<(), CliError> {
    let mut key = String::new();
    std::io::stdin()
        .read_line(&mut key)
        .map_err(|e| CliError::Other(e.into()))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(CliError::Invalid(
            "pass the key on standard input, e.g. `keygate keys verify < key.txt`".into(),
        ));
    }
    let client = AdminClient::public(&args.api)?;
    let reply = client
        .call(
            Method::POST,
            "/v1/keys/verify",
            Some(&json!({ "key": key, "permission": args.permission, "ip": args.ip })),
            &[],
        )
        .await?;
    let body = reply.body;
    let valid = body["valid"].as_bool().unwrap_or(false);
    let code = body["code"].as_str().unwrap_or("unknown").to_owned();
    if args.api.json {
        output::json(&body);
    } else if valid {
        out(&format!(
            "valid: {} ({}, project {})",
            body["key_id"].as_str().unwrap_or("-"),
            body["name"].as_str().unwrap_or("-"),
            body["project"].as_str().unwrap_or("-"),
        ));
    } else {
        out(&format!("refused: {code}"));
    }
    if valid {
        Ok(())
    } else {
        Err(CliError::Api {
            status: 401,
            code,
            message: "the key was refused".into(),
        })
    }
}

fn env_text(env: EnvArg) -> &'static str {
    match env {
        EnvArg::Live => "live",
        EnvArg::Test => "test",
    }
}

/// Revokes, suspends or resumes a key, with a reason.
async fn change_state(args: RevokeArgs, action: &str) -> Result<(), CliError> {
    let client = AdminClient::new(&args.api)?;
    let reply = client
        .call(
            Method::POST,
            &format!("/admin/v1/keys/{}/{action}", segment(&args.id)),
            Some(&json!({ "reason": args.reason })),
            &[],
        )
        .await?;
    show_key(&args.api, &reply.body);
    Ok(())
}

fn status_text(status: StatusArg) -> &'static str {
    match status {
        StatusArg::Active => "active",
        StatusArg::Expired => "expired",
        StatusArg::Suspended => "suspended",
        StatusArg::Revoked => "revoked",
        StatusArg::Deleted => "deleted",
    }
}

fn parse_metadata(text: &str) -> Result<Value, CliError> {
    let value: Value = serde_json::from_str(text).map_err(|_| {
        CliError::Invalid("--metadata: a JSON object, e.g. '{\"team\":\"x\"}'".into())
    })?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(CliError::Invalid("--metadata: a JSON object".into()))
    }
}

fn expiry_from_now(duration: std::time::Duration) -> Result<String, CliError> {
    let at = keygate_core::SystemClock;
    let now = keygate_core::Clock::now(&at);
    Ok(now.saturating_add(duration).to_rfc3339())
}

fn show_key(api: &ApiArgs, key: &Value) {
    if api.json {
        output::json(key);
    } else {
        output::key(key);
    }
}

/// Prints a key with its secret: the secret alone with `quiet`, else the key and the secret.
fn show_secret(api: &ApiArgs, quiet: bool, reply: &Value) {
    if api.json {
        output::json(reply);
    } else if quiet {
        out(reply["secret"].as_str().unwrap_or_default());
    } else {
        output::key(&reply["key"]);
        note("The secret is shown only this once; store it now:");
        out(reply["secret"].as_str().unwrap_or_default());
    }
}

async fn create(args: CreateKeyArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.api)?;
    let mut body = Map::new();
    body.insert("project".into(), json!(args.project));
    body.insert("name".into(), json!(args.name));
    body.insert("env".into(), json!(env_text(args.env)));
    body.insert("scopes".into(), json!(args.scopes));
    body.insert("ip_allow".into(), json!(args.ip_allow));
    if args.publishable {
        body.insert("publishable".into(), json!(true));
        body.insert("origins".into(), json!(args.origins));
    }
    if let Some(every) = args.rotate_every {
        body.insert("rotate_every_seconds".into(), json!(every.as_secs()));
    }
    if let Some(text) = &args.metadata {
        body.insert("metadata".into(), parse_metadata(text)?);
    }
    if !args.limits.is_empty() {
        body.insert(
            "limits".into(),
            super::limits::to_json(&args.limits.apply_to(Default::default()))?,
        );
    }
    if let Some(at) = args.expires_at {
        body.insert("expires_at".into(), json!(at));
    } else if let Some(ttl) = args.expires_in {
        body.insert("expires_at".into(), json!(expiry_from_now(ttl.into())?));
    }
    let reply = client
        .call(
            Method::POST,
            "/admin/v1/keys",
            Some(&Value::Object(body)),
            &[],
        )
        .await?;
    show_secret(&args.api, args.quiet, &reply.body);
    Ok(())
}

async fn list(args: ListKeysArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.api)?;
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(project) = &args.project {
        query.push(("project", project.clone()));
    }
    if let Some(env) = args.env {
        query.push(("env", env_text(env).to_owned()));
    }
    if let Some(status) = args.status {
        query.push(("status", status_text(status).to_owned()));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let mut cursor = args.cursor.clone();
    let mut keys = Vec::new();
    let next = loop {
        let mut page_query = query.clone();
        if let Some(c) = &cursor {
            page_query.push(("cursor", c.clone()));
        }
        let page = client.get("/admin/v1/keys", &page_query).await?;
        keys.extend(page["data"].as_array().cloned().unwrap_or_default());
        let next = page["next_cursor"].as_str().map(str::to_owned);
        match next {
            Some(next) if args.all => cursor = Some(next),
            other => break other,
        }
    };
    if args.api.json {
        output::json(&json!({ "data": keys, "next_cursor": next }));
    } else {
        output::rows(&keys, &KEY_COLUMNS);
        if let Some(next) = next {
            note(&format!("more keys: --cursor {next} (or --all)"));
        }
    }
    Ok(())
}

async fn update(args: UpdateKeyArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.api)?;
    let mut body = Map::new();
    if let Some(name) = &args.name {
        body.insert("name".into(), json!(name));
    }
    if !args.scopes.is_empty() || args.clear_scopes {
        body.insert("scopes".into(), json!(args.scopes));
    }
    if args.no_expiry {
        body.insert("expires_at".into(), Value::Null);
    } else if let Some(at) = &args.expires_at {
        body.insert("expires_at".into(), json!(at));
    } else if let Some(ttl) = args.expires_in {
        body.insert("expires_at".into(), json!(expiry_from_now(ttl.into())?));
    }
    if !args.ip_allow.is_empty() || args.clear_ips {
        body.insert("ip_allow".into(), json!(args.ip_allow));
    }
    if let Some(text) = &args.metadata {
        body.insert("metadata".into(), parse_metadata(text)?);
    }
    if args.no_limits {
        body.insert("limits".into(), json!({}));
    } else if !args.limits.is_empty() {
        let path = format!("/admin/v1/keys/{}", segment(&args.id));
        body.insert(
            "limits".into(),
            super::limits::updated(&client, &path, &args.limits).await?,
        );
    }
    if !args.origins.is_empty() {
        body.insert("origins".into(), json!(args.origins));
    }
    if args.no_rotation {
        body.insert("rotate_every_seconds".into(), Value::Null);
    } else if let Some(every) = args.rotate_every {
        body.insert("rotate_every_seconds".into(), json!(every.as_secs()));
    }
    if body.is_empty() {
        return Err(CliError::Invalid(
            "nothing to change: pass at least one of --name, --scope, --expires-in, …".into(),
        ));
    }
    let reply = client
        .call(
            Method::PATCH,
            &format!("/admin/v1/keys/{}", segment(&args.id)),
            Some(&Value::Object(body)),
            &[],
        )
        .await?;
    show_key(&args.api, &reply.body);
    Ok(())
}

async fn rotate(args: RotateArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.api)?;
    let grace = args.grace.map_or(0, |g| g.as_secs());
    let headers: Vec<(&str, &str)> = args
        .idempotency_key
        .as_deref()
        .map(|k| ("idempotency-key", k))
        .into_iter()
        .collect();
    let reply = client
        .call(
            Method::POST,
            &format!("/admin/v1/keys/{}/rotate", segment(&args.id)),
            Some(&json!({ "grace_period_seconds": grace })),
            &headers,
        )
        .await?;
    if reply.headers.contains_key("idempotent-replayed") && !args.quiet {
        note("(an earlier rotation with this idempotency key: same result)");
    }
    show_secret(&args.api, args.quiet, &reply.body);
    Ok(())
}

async fn due(args: DueArgs) -> Result<(), CliError> {
    super::show_due(
        &args,
        "/admin/v1/keys/due",
        &[
            ("ID", "id"),
            ("NAME", "name"),
            ("HINT", "hint"),
            ("LAST ROTATED", "rotated_at"),
            ("DUE", "rotation_due_at"),
        ],
    )
    .await
}
