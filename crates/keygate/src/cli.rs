//! The command line, as clap types. `keygate --help` is generated from these doc comments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod limits;
mod scan;
mod vault;
mod watch;

pub use limits::LimitArgs;
pub use scan::{InstallHookArgs, ScanArgs, ScanCommand, ScanFormat};
pub use watch::{
    AnomaliesCommand, DeliveriesArgs, DeliveryStateArg, ListAnomaliesArgs, ReviewArgs,
    UpdateWebhookArgs, WebhooksCommand,
};

pub use vault::{
    KekCommand, KekRotateArgs, ListSecretsArgs, PromoteArgs, PutSecretArgs, RevealArgs,
    RotateSecretArgs, RunArgs, SecretRefArgs, SecretsCommand, ValueInput,
};

/// keygate: API key management and a secure API gateway, in one binary.
#[derive(Debug, Parser)]
#[command(name = "keygate", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML). Every value can also come from a KEYGATE_* variable.
    #[arg(long, global = true, env = "KEYGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Manage API keys through the admin API.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage projects through the admin API.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Keep upstream secrets (provider keys, payment keys…) in the vault.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Work on the store directly (on the server's machine): admin tokens.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Read and verify the tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage the key-encryption key (on the server's machine).
    #[command(subcommand)]
    Kek(KekCommand),
    /// Run a command with secrets from the vault in its environment (never on disk).
    /// Signals are passed on to it, and its exit code becomes keygate's.
    Run(RunArgs),
    /// Gateway usage and cost, grouped by key, project, model or day.
    Usage(UsageArgs),
    /// Alerts: webhook endpoints (signed per Standard Webhooks) and their deliveries.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// What the anomaly detectors found (spikes, new networks, probing), and acknowledging it.
    #[command(subcommand)]
    Anomalies(AnomaliesCommand),
    /// The access review: unused keys, keys that never expire, scopes wider than their use,
    /// overdue rotations, unused admin tokens, publishable keys without limits — with fixes.
    Review(ReviewArgs),
    /// Find secrets (keygate keys, provider keys, private keys…) in files, staged changes or
    /// the whole git history; gitleaks-format rules, text, JSON or SARIF, and keygate keys
    /// found can be verified or reported to be quarantined.
    Scan(ScanArgs),
}

/// What a usage report is grouped by.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum UsageGroupArg {
    Key,
    Project,
    Model,
    Day,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[arg(long, value_enum, default_value = "model")]
    pub group_by: UsageGroupArg,
    /// Start of the window, RFC 3339 (default: 30 days ago).
    #[arg(long)]
    pub from: Option<String>,
    /// End of the window, exclusive, RFC 3339 (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// Only this project (id).
    #[arg(long)]
    pub project: Option<String>,
    /// Only this key (id).
    #[arg(long)]
    pub key: Option<String>,
    /// Only this model or alias.
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Where the store is, for commands that open it directly.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// Directory for the SQLite file and the local master key.
    #[arg(long, env = "KEYGATE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://…`; defaults to a SQLite file in the data directory.
    #[arg(
        long,
        env = "KEYGATE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// The local master key file (created 0600 on first start).
    #[arg(long, env = "KEYGATE_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEYGATE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// How to reach the admin API.
#[derive(Clone, Args)]
pub struct ApiArgs {
    /// Base URL of the keygate server.
    #[arg(
        long,
        global = true,
        env = "KEYGATE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// Admin token. Prefer the KEYGATE_TOKEN variable: arguments show up in process lists.
    #[arg(long, global = true, env = "KEYGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EnvArg {
    Live,
    Test,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Active,
    Expired,
    Suspended,
    Revoked,
    Deleted,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Owner,
    Admin,
    Operator,
    Auditor,
    Viewer,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key. Its secret is printed once.
    Create(CreateKeyArgs),
    /// List keys.
    List(ListKeysArgs),
    /// Show one key.
    Show(KeyIdArgs),
    /// Change a key's settings.
    Update(UpdateKeyArgs),
    /// Issue a new secret for a key; the old one keeps working for the grace period.
    Rotate(RotateArgs),
    /// Revoke a key at once. Final: a revoked key never works again.
    Revoke(RevokeArgs),
    /// Suspend a key: refused (`key_suspended`) on every node until it is resumed.
    Suspend(RevokeArgs),
    /// Resume a suspended key, or lift an anomaly's throttle.
    Resume(RevokeArgs),
    /// Add dollars to a key's prepaid credits (never reset; its LLM spend draws them down).
    AddCredits(AddCreditsArgs),
    /// Delete a key; it can never verify again.
    Delete(KeyIdArgs),
    /// Keys whose rotation policy says they are due.
    Due(DueArgs),
    /// Verify a key read from standard input, as a service would (no admin token needed).
    /// Exits 0 for a valid key and 4 for a refused one.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct CreateKeyArgs {
    /// Project id or name.
    #[arg(long, default_value = "default")]
    pub project: String,
    #[arg(long)]
    pub name: String,
    #[arg(long, value_enum, default_value = "live")]
    pub env: EnvArg,
    /// A permission pattern such as `chat:write`; repeat for more.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Lifetime, e.g. `30d` or `12h`.
    #[arg(long, value_name = "DURATION", conflicts_with = "expires_at")]
    pub expires_in: Option<humantime::Duration>,
    /// Expiry as an RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub expires_at: Option<String>,
    /// An allowed client network (CIDR or address); repeat for more.
    #[arg(long = "ip", value_name = "CIDR")]
    pub ip_allow: Vec<String>,
    /// Metadata as a JSON object.
    #[arg(long, value_name = "JSON")]
    pub metadata: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Rotation policy, e.g. `90d`.
    #[arg(long, value_name = "DURATION")]
    pub rotate_every: Option<humantime::Duration>,
    /// A publishable key, to embed in a web page or a mobile app: it may only read public proxy
    /// routes, from its `--origin`s, and each scope must be `GET /…` or `HEAD /…`.
    #[arg(long, requires = "origins")]
    pub publishable: bool,
    /// An origin the publishable key may be used from, such as `https://app.example.com` or
    /// `https://*.example.com` (its subdomains); repeat for more.
    #[arg(long = "origin", value_name = "ORIGIN", requires = "publishable")]
    pub origins: Vec<String>,
    /// Print only the secret (for scripts).
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct ListKeysArgs {
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long, value_enum)]
    pub env: Option<EnvArg>,
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Page size (1-200).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Continue after a previous page.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Follow cursors and print every page.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct KeyIdArgs {
    /// Key id (`key_…`).
    pub id: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct UpdateKeyArgs {
    pub id: String,
    #[arg(long)]
    pub name: Option<String>,
    /// Replace the scopes; repeat for more.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Remove every scope.
    #[arg(long, conflicts_with = "scopes")]
    pub clear_scopes: bool,
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["expires_at", "no_expiry"])]
    pub expires_in: Option<humantime::Duration>,
    #[arg(long, value_name = "TIME", conflicts_with = "no_expiry")]
    pub expires_at: Option<String>,
    /// Remove the expiry.
    #[arg(long)]
    pub no_expiry: bool,
    /// Replace the IP allow-list; repeat for more.
    #[arg(long = "ip", value_name = "CIDR")]
    pub ip_allow: Vec<String>,
    /// Remove the IP allow-list.
    #[arg(long, conflicts_with = "ip_allow")]
    pub clear_ips: bool,
    #[arg(long, value_name = "JSON")]
    pub metadata: Option<String>,
    /// Each limit flag replaces its own kind of limit; the key's other kinds stay.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Remove every limit.
    #[arg(long, conflicts_with_all = limits::LIMIT_FLAGS)]
    pub no_limits: bool,
    #[arg(long, value_name = "DURATION", conflicts_with = "no_rotation")]
    pub rotate_every: Option<humantime::Duration>,
    /// Remove the rotation policy.
    #[arg(long)]
    pub no_rotation: bool,
    /// Replace a publishable key's origins; repeat for more.
    #[arg(long = "origin", value_name = "ORIGIN")]
    pub origins: Vec<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    pub id: String,
    /// How long the current secret keeps working, e.g. `1h` (default: none).
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<humantime::Duration>,
    /// Makes a retried rotation return the first result instead of rotating again.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Print only the new secret (for scripts).
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    pub id: String,
    /// Why: kept in the audit log (and with the key while revoked or suspended).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Lists what a rotation policy says is due; shared by keys and secrets.
#[derive(Debug, Args)]
pub struct DueArgs {
    #[arg(long)]
    pub project: Option<String>,
    /// Also list keys due within this long, e.g. `7d`.
    #[arg(long, value_name = "DURATION")]
    pub within: Option<humantime::Duration>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A permission the key must grant, e.g. `invoices:read`.
    #[arg(long)]
    pub permission: Option<String>,
    /// The end client's address, checked against the key's IP allow-list.
    #[arg(long)]
    pub ip: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// List projects.
    List(ApiOnly),
    /// Create a project, optionally with limits counted for all its keys together.
    Create(CreateProjectArgs),
    /// Show one project and its limits.
    Show(ProjectRefArgs),
    /// Change a project's limits, counted for all its keys together (beside each key's own).
    /// Needs an organisation-wide owner or admin token.
    Update(UpdateProjectArgs),
    /// Add dollars to a project's prepaid credits, shared by all its keys. Needs an
    /// organisation-wide owner or admin token.
    AddCredits(AddCreditsArgs),
}

/// `keys add-credits` and `projects add-credits`.
#[derive(Debug, Args)]
pub struct AddCreditsArgs {
    /// Key id, or project id (`proj_…`) or name.
    pub target: String,
    /// Dollars to add, such as `10` or `2.50`.
    #[arg(long, value_name = "DOLLARS", value_parser = limits::parse_dollars)]
    pub usd: keygate_core::MicroUsd,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct ApiOnly {
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct CreateProjectArgs {
    pub name: String,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct ProjectRefArgs {
    /// Project id (`proj_…`) or name.
    pub project: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct UpdateProjectArgs {
    /// Project id (`proj_…`) or name.
    pub project: String,
    /// Each limit flag replaces its own kind of limit; the project's other kinds stay.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Remove every limit.
    #[arg(long, conflicts_with_all = limits::LIMIT_FLAGS)]
    pub no_limits: bool,
    /// The project's own action for a detector, over the server's, such as
    /// `spend_spike=suspend` (record, alert, throttle or suspend); repeat for more. Replaces the
    /// project's actions.
    #[arg(long = "anomaly-action", value_name = "DETECTOR=ACTION", value_parser = parse_pair)]
    pub anomaly_actions: Vec<(String, String)>,
    /// Remove the project's own anomaly actions: the server's apply.
    #[arg(long, conflicts_with = "anomaly_actions")]
    pub default_anomaly_actions: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Reads `NAME=VALUE`.
fn parse_pair(text: &str) -> Result<(String, String), &'static str> {
    text.split_once('=')
        .filter(|(name, value)| !name.is_empty() && !value.is_empty())
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or("NAME=VALUE, such as spend_spike=suspend")
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Admin tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The keys that sign access tokens.
    #[command(subcommand)]
    SigningKeys(SigningKeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum SigningKeysCommand {
    /// Withdraw every token signing key and make a new one, for a key that may have leaked:
    /// every access token issued so far stops verifying (on running servers within 30 s).
    /// Prints the new key's kid.
    Replace(LocalStoreArgs),
}

#[derive(Debug, Args)]
pub struct LocalStoreArgs {
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue an admin token directly on the store (local access is trust). Prints the token
    /// alone on standard output.
    Create(CreateTokenArgs),
    /// List admin tokens (never their secrets).
    List(LocalListArgs),
    /// Revoke an admin token, e.g. a lost or leaked owner token. A running server honours it
    /// within 30 seconds (at once when revoked through the API).
    Revoke(RevokeTokenArgs),
}

#[derive(Debug, Args)]
pub struct LocalListArgs {
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct RevokeTokenArgs {
    /// Token id (`key_…`).
    pub id: String,
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct CreateTokenArgs {
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Bind the token to one project (id or name); without it, to the organisation.
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long, default_value = "cli token")]
    pub name: String,
    /// Lifetime, e.g. `8h`.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<humantime::Duration>,
    /// Print JSON with the token's details.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first, through the admin API.
    List(AuditListArgs),
    /// Verify the hash chain offline, on the store itself.
    Verify(AuditVerifyArgs),
    /// Export events as NDJSON, one per line, in chain order (for a SIEM); with `--follow`,
    /// keep printing new ones as they are appended.
    Export(AuditExportArgs),
    /// The key that signs the chain's checkpoints.
    PublicKey(ApiOnlyArgs),
    /// The signed checkpoints, with their key, as JSON: keep this file outside the database
    /// and pass it to `keygate audit verify --checkpoints FILE`.
    Checkpoints(AuditCheckpointsArgs),
    /// Sign a checkpoint of the chain's head now.
    Checkpoint(ApiOnlyArgs),
}

#[derive(Debug, Args)]
pub struct ApiOnlyArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct AuditCheckpointsArgs {
    /// Only checkpoints after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// Start after this sequence number (the last one received); default, from the start.
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// Keep going: ask for new events every `--interval` seconds, until interrupted.
    #[arg(long)]
    pub follow: bool,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct AuditListArgs {
    /// Only this action, e.g. `key.revoke`.
    #[arg(long)]
    pub action: Option<String>,
    #[arg(long)]
    pub limit: Option<u32>,
    #[arg(long)]
    pub cursor: Option<i64>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// An earlier head (`SEQ:HASH`, as printed by this command) kept outside the database:
    /// the log must still hold it. This catches a rewrite that recomputed every hash.
    #[arg(long, value_name = "SEQ:HASH")]
    pub anchor: Option<String>,
    /// Signed checkpoints exported earlier (`keygate audit checkpoints`): each must be signed
    /// by the key in the file, and the log must still hold what it signed. Without it, the
    /// checkpoints in the store are checked with the store's key.
    #[arg(long, value_name = "FILE")]
    pub checkpoints: Option<std::path::PathBuf>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

// Hand-written so that the admin token and the API key never reach a debug print.
impl std::fmt::Debug for ApiArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiArgs")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("json", &self.json)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn limits_take_rates_and_a_cap() {
        let cli = Cli::try_parse_from([
            "keygate",
            "keys",
            "update",
            "key_x",
            "--rate",
            "100/min",
            "--rate",
            "5000/day",
            "--concurrency",
            "5",
        ])
        .unwrap();
        let Command::Keys(KeysCommand::Update(args)) = cli.command else {
            panic!("not an update: {cli:?}");
        };
        let rates: Vec<String> = args.limits.rates.iter().map(ToString::to_string).collect();
        assert_eq!(rates, ["100/minute", "5000/day"]);
        assert_eq!(args.limits.concurrency, Some(5));

        for bad in ["100", "x/minute", "5/fortnight", "-1/s", "1/"] {
            let rate = format!("--rate={bad}");
            let err = Cli::try_parse_from(["keygate", "keys", "create", "--name", "n", &rate])
                .unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
            assert!(err.to_string().contains("100/minute"), "{err}");
        }
        for extra in [
            "--rate=1/s",
            "--tokens=1/s",
            "--concurrency=1",
            "--quota=1/day",
            "--budget=1/day",
        ] {
            for command in [["keys", "update", "key_x"], ["projects", "update", "p"]] {
                let mut argv = vec!["keygate"];
                argv.extend(command);
                argv.extend(["--no-limits", extra]);
                let err = Cli::try_parse_from(argv).unwrap_err();
                assert_eq!(
                    err.kind(),
                    clap::error::ErrorKind::ArgumentConflict,
                    "{command:?} {extra}"
                );
            }
        }
    }

    #[test]
    fn limits_take_tokens_quotas_and_budgets() {
        let cli = Cli::try_parse_from([
            "keygate",
            "projects",
            "update",
            "default",
            "--tokens",
            "100000/minute",
            "--tokens",
            "5000000/d",
            "--quota",
            "1000/day",
            "--budget",
            "25/month",
            "--budget",
            "$2.50/day",
        ])
        .unwrap();
        let Command::Projects(ProjectsCommand::Update(args)) = cli.command else {
            panic!("not a project update: {cli:?}");
        };
        let tokens: Vec<String> = args.limits.tokens.iter().map(ToString::to_string).collect();
        assert_eq!(tokens, ["100000/minute", "5000000/day"]);
        assert_eq!(
            args.limits.quota.map(|q| q.to_string()).as_deref(),
            Some("1000/day")
        );
        let budgets: Vec<String> = args
            .limits
            .budgets
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(budgets, ["$25.000000/month", "$2.500000/day"]);
        assert!(args.limits.rates.is_empty() && !args.no_limits);

        for (flag, bad, hint) in [
            ("--tokens", "lots/minute", "100/minute"),
            ("--quota", "1000", "1000/day"),
            ("--quota", "10/s", "1000/day"),
            ("--budget", "25", "25/month"),
            ("--budget", "2.5/week", "25/month"),
            ("--budget", "0.0000001/day", "25/month"),
        ] {
            let flag = format!("{flag}={bad}");
            let err = Cli::try_parse_from(["keygate", "keys", "create", "--name", "n", &flag])
                .unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{flag}"
            );
            assert!(err.to_string().contains(hint), "{err}");
        }
    }

    #[test]
    fn publishable_keys_come_with_origins() {
        let cli = Cli::try_parse_from([
            "keygate",
            "keys",
            "create",
            "--name",
            "web",
            "--publishable",
            "--origin",
            "https://app.example.com",
            "--origin",
            "https://*.example.org",
        ])
        .unwrap();
        let Command::Keys(KeysCommand::Create(args)) = cli.command else {
            panic!("not a create: {cli:?}");
        };
        assert!(args.publishable);
        assert_eq!(
            args.origins,
            ["https://app.example.com", "https://*.example.org"]
        );
        for alone in [
            &["--publishable"][..],
            &["--origin", "https://app.example.com"][..],
        ] {
            let mut argv = vec!["keygate", "keys", "create", "--name", "web"];
            argv.extend_from_slice(alone);
            let err = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{alone:?}"
            );
        }
    }

    #[test]
    fn credentials_never_reach_debug_output() {
        let cli = Cli::parse_from([
            "keygate",
            "keys",
            "list",
            "--token",
            "kg_live_secret_token_value",
        ]);
        assert!(!format!("{cli:?}").contains("secret_token_value"));
        let run = Cli::parse_from([
            "keygate",
            "run",
            "--secret",
            "a=B",
            "--api-key",
            "kg_live_api_key_value",
            "--",
            "true",
        ]);
        assert!(!format!("{run:?}").contains("api_key_value"));
    }
}
