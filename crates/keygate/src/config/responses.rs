//! The `[response_store]` table: whether and how long the Responses API's answers are kept
//! for `previous_response_id`.

use std::time::Duration;

use keygate_server::gateway::ResponseStoreSettings;
use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResponseStoreFile {
    enabled: Option<bool>,
    max_age_days: Option<u64>,
    max_per_project: Option<u64>,
    max_bytes: Option<usize>,
}

pub(super) fn response_store_settings(
    file: Option<ResponseStoreFile>,
) -> Result<ResponseStoreSettings, ConfigError> {
    let file = file.unwrap_or_default();
    let default = ResponseStoreSettings::default();
    let days = file.max_age_days.unwrap_or(30);
    if !(1..=3650).contains(&days) {
        return Err(ConfigError::BadResponseStore("max_age_days is 1 to 3650"));
    }
    let per_project = file.max_per_project.unwrap_or(default.max_per_project);
    if !(1..=10_000_000).contains(&per_project) {
        return Err(ConfigError::BadResponseStore(
            "max_per_project is 1 to 10000000",
        ));
    }
    let max_bytes = file.max_bytes.unwrap_or(default.max_bytes);
    if !(1024..=64 * 1024 * 1024).contains(&max_bytes) {
        return Err(ConfigError::BadResponseStore(
            "max_bytes is 1024 to 67108864 (64 MiB)",
        ));
    }
    Ok(ResponseStoreSettings {
        enabled: file.enabled.unwrap_or(default.enabled),
        max_age: Duration::from_secs(days * 86_400),
        max_per_project: per_project,
        max_bytes,
    })
}
