//! `keygate usage`: gateway usage and cost through the admin API.

use crate::CliError;
use crate::cli::{UsageArgs, UsageGroupArg};
use crate::client::AdminClient;
use crate::output::{self, out};

pub async fn run(args: UsageArgs) -> Result<(), CliError> {
    let client = AdminClient::new(&args.api)?;
    let group_by = match args.group_by {
        UsageGroupArg::Key => "key",
        UsageGroupArg::Project => "project",
        UsageGroupArg::Model => "model",
        UsageGroupArg::Day => "day",
    };
    let mut query = vec![("group_by", group_by.to_owned())];
    for (name, value) in [
        ("from", &args.from),
        ("to", &args.to),
        ("project", &args.project),
        ("key", &args.key),
        ("model", &args.model),
    ] {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    }
    let report = client.get("/admin/v1/usage", &query).await?;
    if args.api.json {
        output::json(&report);
        return Ok(());
    }
    let rows = report["data"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        out("no gateway requests in this window");
        return Ok(());
    }
    output::rows(
        &rows,
        &[
            (group_by.to_uppercase().as_str(), "group"),
            ("REQUESTS", "requests"),
            ("ERRORS", "errors"),
            ("PROMPT", "prompt_tokens"),
            ("COMPLETION", "completion_tokens"),
            ("CACHED", "cached_tokens"),
            ("COST (USD)", "cost_usd"),
            ("CACHE HITS", "cache_hits"),
            ("SAVED (USD)", "saved_usd"),
        ],
    );
    Ok(())
}
