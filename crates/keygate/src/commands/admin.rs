//! `keygate admin …`: commands that work on the store directly. Having the store and its
//! master key is having full control, so these act as the organisation's owner.

use std::path::Path;

use keygate_core::{Clock, Role, SystemClock};
use keygate_server::service::{Caller, CreateToken};
use serde_json::json;

use super::{local_settings, open_local};
use crate::CliError;
use crate::cli::{AdminCommand, CreateTokenArgs, RoleArg, TokenCommand};
use crate::output::{self, note, out};

pub async fn run(config: Option<&Path>, command: AdminCommand) -> Result<(), CliError> {
    match command {
        AdminCommand::Token(TokenCommand::Create(args)) => create_token(config, args).await,
    }
}

fn role(arg: RoleArg) -> Role {
    match arg {
        RoleArg::Owner => Role::Owner,
        RoleArg::Admin => Role::Admin,
        RoleArg::Operator => Role::Operator,
        RoleArg::Auditor => Role::Auditor,
        RoleArg::Viewer => Role::Viewer,
    }
}

async fn create_token(config: Option<&Path>, args: CreateTokenArgs) -> Result<(), CliError> {
    let settings = local_settings(config, &args.store)?;
    let keygate = open_local(&settings).await?;
    let org = keygate
        .default_org()
        .await
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    let expires_at = args
        .expires_in
        .map(|ttl| SystemClock.now().saturating_add(ttl.into()));
    let (token, record) = keygate
        .create_token(
            &Caller::local(org),
            CreateToken {
                role: role(args.role),
                project: args.project,
                name: args.name,
                expires_at,
            },
        )
        .await
        .map_err(|e| match e {
            keygate_server::ServiceError::NotFound { entity } => CliError::Api {
                status: 404,
                code: "not_found".into(),
                message: format!("{entity} not found"),
            },
            keygate_server::ServiceError::Validation(v) => CliError::Invalid(v.to_string()),
            other => CliError::Other(other.into()),
        })?;
    if args.json {
        output::json(&json!({
            "secret": token.expose(),
            "token": {
                "id": record.id,
                "role": record.role.map(Role::as_str),
                "project_id": record.project_id,
                "name": record.name,
                "hint": record.hint,
                "expires_at": record.expires_at.map(|t| t.to_rfc3339()),
            }
        }));
    } else {
        let reach = record
            .project_id
            .as_ref()
            .map_or_else(|| "the organisation".to_owned(), |p| format!("project {p}"));
        note(&format!(
            "created admin token {} ({} on {reach}); it is shown only once:",
            record.id,
            role(args.role).as_str(),
        ));
        out(token.expose());
    }
    Ok(())
}
