//! The command line of the vault: secrets, the KEK, and `keygate run`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{ApiArgs, DueArgs, StoreArgs};

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Store a value as the secret's new current version, read from standard input or a
    /// file (never from the command line).
    Put(PutSecretArgs),
    /// List secrets (names and times, never values).
    List(ListSecretsArgs),
    /// Secrets whose rotation policy says they are due.
    Due(DueArgs),
    /// Show a secret and its versions (never values).
    Show(SecretRefArgs),
    /// A secret's versions: numbers, stages, times and KEKs (never values).
    Versions(SecretRefArgs),
    /// Rotate a secret: the new value (from standard input or a file) waits as a pending
    /// version, is checked against the upstream if `--check-url` is given, and is promoted
    /// when the check passes. Exits 5 when the check fails (the value stays pending).
    Rotate(RotateSecretArgs),
    /// Promote a pending version to current.
    #[command(disable_version_flag = true)]
    Promote(PromoteArgs),
    /// Delete a secret and erase its stored versions.
    Delete(SecretRefArgs),
    /// Print a secret's value (owners only; audited).
    #[command(disable_version_flag = true)]
    Reveal(RevealArgs),
}

#[derive(Debug, Args)]
pub struct PutSecretArgs {
    /// Name within the project, e.g. `openai-prod`.
    pub name: String,
    #[arg(long, default_value = "default")]
    pub project: String,
    #[command(flatten)]
    pub input: ValueInput,
    #[arg(long)]
    pub description: Option<String>,
    /// How long the version that was current keeps working, e.g. `1h`.
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<humantime::Duration>,
    /// Rotation policy, e.g. `90d`: the secret is listed as due this long after each new
    /// version (and announced once in the audit log).
    #[arg(long, value_name = "DURATION")]
    pub rotate_every: Option<humantime::Duration>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct RotateSecretArgs {
    #[command(flatten)]
    pub target: SecretRefArgs,
    #[command(flatten)]
    pub input: ValueInput,
    /// How long the version that was current keeps working, e.g. `1h`.
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<humantime::Duration>,
    /// `GET` this URL with the new value before promoting it; any 2xx passes.
    #[arg(long, value_name = "URL")]
    pub check_url: Option<String>,
    /// The header that carries the value in the check.
    #[arg(long, default_value = "authorization", requires = "check_url")]
    pub check_header: String,
    /// Text before the value in that header (default `Bearer ` for `authorization`).
    #[arg(long, requires = "check_url")]
    pub check_prefix: Option<String>,
}

/// Where a secret value comes from: standard input, or a file.
#[derive(Debug, Args)]
pub struct ValueInput {
    /// Read the value from this file instead of standard input.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Refused: a value on the command line ends up in shell history and process lists.
    #[arg(long, hide = true)]
    pub value: Option<String>,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub target: SecretRefArgs,
    /// The pending version to make current.
    #[arg(long)]
    pub version: i64,
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<humantime::Duration>,
}

#[derive(Debug, Args)]
pub struct ListSecretsArgs {
    #[arg(long)]
    pub project: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct SecretRefArgs {
    /// Secret id (`sec_…`) or name.
    pub secret: String,
    /// The project of a secret given by name.
    #[arg(long, default_value = "default")]
    pub project: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct RevealArgs {
    #[command(flatten)]
    pub target: SecretRefArgs,
    /// A version number; the current version by default.
    #[arg(long)]
    pub version: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum KekCommand {
    /// Rotate the local master key: a new key is created as `<master key>.next`, every data
    /// key and the digest key are re-wrapped under it in batches (values are not touched, API
    /// keys keep verifying, the server keeps serving), then the new key becomes current and
    /// the old one `<master key>.previous`. Run it again to resume an interrupted rotation.
    Rotate(KekRotateArgs),
}

#[derive(Debug, Args)]
pub struct KekRotateArgs {
    /// Data keys re-wrapped per batch.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// Stop after this many batches; run again to continue.
    #[arg(long)]
    pub max_batches: Option<u32>,
    /// Pause between batches, e.g. `50ms`, to spare a busy database.
    #[arg(long, value_name = "DURATION")]
    pub pause: Option<humantime::Duration>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args)]
pub struct RunArgs {
    /// `SECRET=ENV_VAR`: put the secret named SECRET (in the API key's project) in the
    /// variable ENV_VAR. Repeat for more.
    #[arg(long = "secret", value_name = "SECRET=ENV_VAR", required = true)]
    pub secrets: Vec<String>,
    /// Base URL of the keygate server.
    #[arg(long, env = "KEYGATE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key with a `secrets:read` scope. Prefer the variable: arguments show up in
    /// process lists.
    #[arg(long, env = "KEYGATE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// A file holding a JWT from an issuer keygate trusts (`[federation.*]`): a CI job's OIDC
    /// token, a Kubernetes service-account token. It is exchanged for a short-lived keygate
    /// token that reads only the secrets named, so no keygate key is needed.
    #[arg(
        long,
        env = "KEYGATE_ID_TOKEN_FILE",
        value_name = "PATH",
        conflicts_with = "api_key"
    )]
    pub id_token_file: Option<std::path::PathBuf>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl std::fmt::Debug for RunArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunArgs")
            .field("secrets", &self.secrets)
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("id_token_file", &self.id_token_file)
            .field("command", &self.command)
            .finish()
    }
}
