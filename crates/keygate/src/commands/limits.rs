//! The limit flags of `keys` and `projects`, turned into the admin API's `limits` object.

use keygate_core::KeyLimits;
use serde_json::Value;

use crate::CliError;
use crate::cli::LimitArgs;
use crate::client::AdminClient;

/// The `limits` object of the API.
pub(super) fn to_json(limits: &KeyLimits) -> Result<Value, CliError> {
    serde_json::to_value(limits).map_err(|e| CliError::Other(e.into()))
}

/// The `limits` an update sends. The API replaces every limit at once, so the kinds the
/// command line leaves out are read from the key or project at `path` and sent back as they
/// are (a change to them made between the read and the write is lost).
pub(super) async fn updated(
    client: &AdminClient,
    path: &str,
    args: &LimitArgs,
) -> Result<Value, CliError> {
    let current = if args.is_complete() {
        KeyLimits::default()
    } else {
        match client.get(path, &[]).await?.get("limits") {
            None | Some(Value::Null) => KeyLimits::default(),
            // A kind of limit this CLI does not know would be lost by sending the rest back.
            Some(limits) => serde_json::from_value(limits.clone()).map_err(|_| {
                CliError::Invalid(
                    "the current limits include a kind this keygate CLI does not know; change \
                     them with a newer CLI or through the admin API"
                        .into(),
                )
            })?,
        }
    };
    to_json(&args.apply_to(current))
}
