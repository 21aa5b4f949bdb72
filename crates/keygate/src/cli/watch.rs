//! The command line of being watched: webhook endpoints and their deliveries, anomalies.

use clap::{Args, Subcommand, ValueEnum};

use super::ApiArgs;

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Add an endpoint. Its signing secret (`whsec_…`) is printed once.
    Create(CreateWebhookArgs),
    /// List endpoints.
    List(ApiOnlyArgs),
    /// Show one endpoint.
    Show(WebhookIdArgs),
    /// Change an endpoint's URL, description or events, or pause and resume it.
    Update(UpdateWebhookArgs),
    /// Delete an endpoint; its pending deliveries become dead.
    Delete(WebhookIdArgs),
    /// Send a `webhook.test` event to one endpoint.
    Test(WebhookIdArgs),
    /// An endpoint's deliveries, newest first (`--state dead`: the dead-letter list).
    Deliveries(DeliveriesArgs),
    /// Send a delivery again from its first attempt.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ApiOnlyArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct CreateWebhookArgs {
    /// Where deliveries are POSTed (`--url` is keygate's own address).
    #[arg(long, value_name = "URL")]
    pub endpoint: String,
    /// An event type to receive (repeatable; see docs/events.md). None: every event.
    #[arg(long = "event")]
    pub events: Vec<String>,
    /// Only this project's events (id or name).
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Print only the signing secret.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct WebhookIdArgs {
    pub id: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct UpdateWebhookArgs {
    pub id: String,
    /// A new address for deliveries.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Replaces the event types (repeatable).
    #[arg(long = "event", conflicts_with = "all_events")]
    pub events: Vec<String>,
    /// Receive every event.
    #[arg(long)]
    pub all_events: bool,
    /// Stop deliveries (they wait until `--enable`).
    #[arg(long, conflicts_with = "enable")]
    pub disable: bool,
    #[arg(long)]
    pub enable: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeliveryStateArg {
    Pending,
    Delivered,
    Dead,
}

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    pub id: String,
    #[arg(long, value_enum)]
    pub state: Option<DeliveryStateArg>,
    #[arg(long)]
    pub limit: Option<u32>,
    #[arg(long)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The endpoint's id.
    pub id: String,
    /// The delivery's id.
    pub delivery: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Subcommand)]
pub enum AnomaliesCommand {
    /// What the anomaly detectors found, newest first.
    List(ListAnomaliesArgs),
    /// Mark an anomaly seen.
    Ack(AckArgs),
}

#[derive(Debug, Args)]
pub struct ListAnomaliesArgs {
    /// Only those not yet acknowledged.
    #[arg(long, conflicts_with = "acknowledged")]
    pub open: bool,
    /// Only acknowledged ones.
    #[arg(long)]
    pub acknowledged: bool,
    /// Only this project's (id or name).
    #[arg(long)]
    pub project: Option<String>,
    /// Only this key's (id).
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long)]
    pub limit: Option<u32>,
    #[arg(long)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct AckArgs {
    pub id: String,
    /// What was found, for the next reader.
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Keys and admin tokens unused this many days are findings.
    #[arg(long, default_value_t = 90)]
    pub unused_days: u32,
    #[command(flatten)]
    pub api: ApiArgs,
}
