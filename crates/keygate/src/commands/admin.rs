//! `keygate admin …`: commands that work on the store directly. Having the store and its
//! master key is having full control, so these act as the organisation's owner.

use std::path::Path;

use keygate_core::{Clock, KeyId, KeyRecord, Role, SystemClock};
use keygate_server::service::{Caller, CreateToken};
use keygate_server::{Keygate, ServiceError};
use serde_json::json;

use super::{local_settings, open_local};
use crate::CliError;
use crate::cli::{
    AdminCommand, CreateTokenArgs, LocalListArgs, RevokeTokenArgs, RoleArg, SigningKeysCommand,
    StoreArgs, TokenCommand,
};
use crate::output::{self, note, out};

pub async fn run(config: Option<&Path>, command: AdminCommand) -> Result<(), CliError> {
    match command {
        AdminCommand::Token(TokenCommand::Create(args)) => create_token(config, args).await,
        AdminCommand::Token(TokenCommand::List(args)) => list_tokens(config, args).await,
        AdminCommand::Token(TokenCommand::Revoke(args)) => revoke_token(config, args).await,
        AdminCommand::SigningKeys(SigningKeysCommand::Replace(args)) => {
            let (keygate, _) = local(config, &args.store).await?;
            let kid = keygate
                .replace_signing_keys()
                .await
                .map_err(service_error)?;
            note("every earlier access token is refused; running servers follow within 30 s");
            out(&kid);
            Ok(())
        }
    }
}

/// The local operator of `keygate`, acting as owner of the default organisation.
async fn local(config: Option<&Path>, store: &StoreArgs) -> Result<(Keygate, Caller), CliError> {
    let settings = local_settings(config, store)?;
    let keygate = open_local(&settings).await?;
    let org = keygate.default_org().await.map_err(service_error)?;
    Ok((keygate, Caller::local(org)))
}

fn service_error(err: ServiceError) -> CliError {
    match err {
        ServiceError::NotFound { entity } => CliError::Api {
            status: 404,
            code: "not_found".into(),
            message: format!("{entity} not found"),
        },
        ServiceError::Conflict(conflict) => CliError::Api {
            status: 409,
            code: "conflict".into(),
            message: conflict.to_string(),
        },
        ServiceError::Validation(v) => CliError::Api {
            status: 400,
            code: "validation_failed".into(),
            message: v.to_string(),
        },
        ServiceError::Store(err) => CliError::StoreUnavailable(err.to_string()),
        other => CliError::Other(other.into()),
    }
}

fn token_json(record: &KeyRecord) -> serde_json::Value {
    let now = SystemClock.now();
    json!({
        "id": record.id,
        "role": record.role.map(Role::as_str),
        "project_id": record.project_id,
        "name": record.name,
        "status": record.status(now).as_str(),
        "hint": record.hint,
        "created_at": record.created_at.to_rfc3339(),
        "expires_at": record.expires_at.map(|t| t.to_rfc3339()),
        "last_used_at": record.last_used_at.map(|t| t.to_rfc3339()),
        "revoked_at": record.revoked_at.map(|t| t.to_rfc3339()),
    })
}

async fn list_tokens(config: Option<&Path>, args: LocalListArgs) -> Result<(), CliError> {
    let (keygate, caller) = local(config, &args.store).await?;
    let tokens = keygate.list_tokens(&caller).await.map_err(service_error)?;
    let items: Vec<serde_json::Value> = tokens.iter().map(token_json).collect();
    if args.json {
        output::json(&json!({ "data": items }));
    } else {
        output::rows(
            &items,
            &[
                ("ID", "id"),
                ("ROLE", "role"),
                ("PROJECT", "project_id"),
                ("NAME", "name"),
                ("STATUS", "status"),
                ("HINT", "hint"),
                ("LAST USED", "last_used_at"),
            ],
        );
    }
    Ok(())
}

async fn revoke_token(config: Option<&Path>, args: RevokeTokenArgs) -> Result<(), CliError> {
    let (keygate, caller) = local(config, &args.store).await?;
    let id = KeyId::parse(&args.id).map_err(|e| CliError::Invalid(e.to_string()))?;
    let token = keygate
        .revoke_token(&caller, &id, &args.reason)
        .await
        .map_err(service_error)?;
    out(&format!("revoked {} ({})", token.id, token.hint));
    Ok(())
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
    let (keygate, caller) = local(config, &args.store).await?;
    let expires_at = args
        .expires_in
        .map(|ttl| SystemClock.now().saturating_add(ttl.into()));
    let (token, record) = keygate
        .create_token(
            &caller,
            CreateToken {
                role: role(args.role),
                project: args.project,
                name: args.name,
                expires_at,
            },
        )
        .await
        .map_err(service_error)?;
    if args.json {
        output::json(&json!({ "secret": token.expose(), "token": token_json(&record) }));
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
