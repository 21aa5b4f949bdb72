//! The settings of being watched: webhook deliveries, leak reports and anomaly detection.

use std::collections::BTreeMap;
use std::time::Duration;

use keygate_server::anomalies::{AnomalyAction, AnomalySettings};
use keygate_server::service::{LeakAction, LeakSettings};
use keygate_watch::detect::DetectorKind;
use serde::Deserialize;

use super::ConfigError;

/// A public key that signs leak reports, as GitHub lists them: its identifier and PEM.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportKeyConfig {
    id: String,
    key: String,
}

/// The `[anomalies]` table: thresholds, and `[anomalies.actions]`, each detector's action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnomaliesFile {
    /// How long a key is watched before it is judged, e.g. `"24h"`.
    learning: Option<String>,
    spike_factor: Option<f64>,
    min_requests_per_minute: Option<u64>,
    min_tokens_per_minute: Option<u64>,
    /// Dollars.
    min_spend_per_minute: Option<f64>,
    scope_denials_per_minute: Option<u64>,
    /// `origin_not_allowed` refusals of one publishable key in a minute that make a burst.
    foreign_origins_per_minute: Option<u64>,
    /// Quiet time after a finding, e.g. `"15m"`.
    cooldown: Option<String>,
    /// Failed authentications from one source in a minute that get it blocked.
    auth_failures_per_minute: Option<u32>,
    /// Failed authentications with one refused key in a minute that are announced.
    key_failures_per_minute: Option<u32>,
    /// How long a blocked source is refused, e.g. `"5m"`.
    source_block: Option<String>,
    /// What a `throttle` action leaves of a key's request rates, in percent.
    throttle_percent: Option<u8>,
    /// How long a `throttle` action lasts, e.g. `"1h"`.
    throttle_for: Option<String>,
    /// The rate a `throttle` action gives a key without request rates, e.g. `"60/minute"`.
    throttle_rate: Option<String>,
    /// A GeoLite2-format database naming countries, for `new_country`.
    geoip_database: Option<std::path::PathBuf>,
    #[serde(default)]
    actions: BTreeMap<String, AnomalyAction>,
}

/// How webhooks are delivered: `webhooks_allow_private` and the `webhook_retries` waits
/// (the Standard Webhooks schedule by default).
pub(super) fn alert_settings(
    allow_private: Option<bool>,
    retries: Option<&[String]>,
) -> Result<keygate_server::alerts::AlertSettings, ConfigError> {
    let mut settings = keygate_server::alerts::AlertSettings {
        allow_private: allow_private.unwrap_or(false),
        ..Default::default()
    };
    if let Some(waits) = retries {
        let waits = waits
            .iter()
            .map(|text| humantime::parse_duration(text).ok())
            .collect::<Option<Vec<Duration>>>()
            .filter(|waits| waits.len() <= 20)
            .filter(|waits| {
                waits
                    .iter()
                    .all(|w| (100..=7 * 86_400_000).contains(&w.as_millis()))
            })
            .ok_or(ConfigError::BadWebhookRetries)?;
        settings.retries = keygate_watch::RetrySchedule::new(waits);
    }
    Ok(settings)
}

/// Leak reports: what a reported key becomes, and whose signatures are trusted.
pub(super) fn leak_settings(
    action: Option<LeakAction>,
    keys: Option<&[ReportKeyConfig]>,
    require_signature: Option<bool>,
) -> Result<LeakSettings, ConfigError> {
    Ok(LeakSettings {
        action: action.unwrap_or_default(),
        report_keys: keygate_crypto::ReportKeys::parse(
            keys.unwrap_or_default()
                .iter()
                .map(|k| (k.id.as_str(), k.key.as_str())),
        )
        .map_err(ConfigError::BadReportKey)?,
        require_signature: require_signature.unwrap_or(false),
    })
}

/// The detectors' thresholds and actions, over their defaults.
pub(super) fn anomaly_settings(
    file: Option<AnomaliesFile>,
) -> Result<AnomalySettings, ConfigError> {
    let mut settings = AnomalySettings::default();
    let Some(file) = file else {
        return Ok(settings);
    };
    let duration = |text: &str, what: &'static str| -> Result<Duration, ConfigError> {
        humantime::parse_duration(text).map_err(|_| ConfigError::BadAnomalies(what))
    };
    let t = &mut settings.thresholds;
    if let Some(learning) = &file.learning {
        t.learning = duration(learning, "learning is a duration such as \"24h\"")?;
    }
    if let Some(cooldown) = &file.cooldown {
        t.cooldown = duration(cooldown, "cooldown is a duration such as \"15m\"")?;
    }
    if let Some(factor) = file.spike_factor {
        if !(1.5..=1000.0).contains(&factor) {
            return Err(ConfigError::BadAnomalies("spike_factor is 1.5 to 1000"));
        }
        t.spike_factor = factor;
    }
    t.min_requests = file
        .min_requests_per_minute
        .unwrap_or(t.min_requests)
        .max(1);
    t.min_tokens = file.min_tokens_per_minute.unwrap_or(t.min_tokens).max(1);
    if let Some(dollars) = file.min_spend_per_minute {
        if !(0.000_001..=1_000_000.0).contains(&dollars) {
            return Err(ConfigError::BadAnomalies(
                "min_spend_per_minute is in dollars, above 0",
            ));
        }
        t.min_spend_micros = (dollars * 1_000_000.0).round() as i64;
    }
    t.scope_denials = file
        .scope_denials_per_minute
        .unwrap_or(t.scope_denials)
        .max(1);
    t.foreign_origins = file
        .foreign_origins_per_minute
        .unwrap_or(t.foreign_origins)
        .max(1);
    if let Some(failures) = file.auth_failures_per_minute {
        settings.auth_failures_per_minute = failures.max(1);
    }
    if let Some(failures) = file.key_failures_per_minute {
        settings.key_failures_per_minute = failures.max(1);
    }
    if let Some(block) = &file.source_block {
        settings.source_block = duration(block, "source_block is a duration such as \"5m\"")?;
    }
    if let Some(percent) = file.throttle_percent {
        if !(1..=99).contains(&percent) {
            return Err(ConfigError::BadAnomalies("throttle_percent is 1 to 99"));
        }
        settings.throttle_percent = percent;
    }
    if let Some(lasting) = &file.throttle_for {
        settings.throttle_for = duration(lasting, "throttle_for is a duration such as \"1h\"")?;
    }
    if let Some(rate) = &file.throttle_rate {
        settings.throttle_rate = keygate_core::RequestRate::parse(rate)
            .ok()
            .filter(|r| r.limit > 0)
            .ok_or(ConfigError::BadAnomalies(
                "throttle_rate is a rate such as \"60/minute\"",
            ))?;
    }
    if let Some(path) = &file.geoip_database {
        let geoip = keygate_server::anomalies::GeoIp::open(path)
            .map_err(|err| ConfigError::BadGeoIp(format!("{}: {err}", path.display())))?;
        settings.geoip = Some(std::sync::Arc::new(geoip));
    }
    for (name, action) in file.actions {
        let kind = DetectorKind::parse(&name).ok_or(ConfigError::BadAnomalies(
            "actions are keyed by request_spike, token_spike, spend_spike, new_network, \
             scope_probing, old_secret_late, foreign_origin or new_country",
        ))?;
        settings.actions.insert(kind, action);
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<AnomalySettings, ConfigError> {
        anomaly_settings(Some(serde_json::from_str(text).unwrap()))
    }

    #[test]
    fn anomalies_are_read_over_their_defaults_and_checked() {
        let read = settings(
            r#"{"throttle_percent": 25, "throttle_rate": "6/minute",
                "foreign_origins_per_minute": 5, "actions": {"new_country": "suspend"}}"#,
        )
        .unwrap();
        assert_eq!(read.throttle_percent, 25);
        assert_eq!(read.throttle_rate.to_string(), "6/minute");
        assert_eq!(read.thresholds.foreign_origins, 5);
        assert_eq!(
            read.actions[&DetectorKind::NewCountry],
            AnomalyAction::Suspend
        );
        assert!(read.geoip.is_none());
        for bad in [
            r#"{"throttle_percent": 100}"#,
            r#"{"throttle_rate": "fast"}"#,
            r#"{"actions": {"moon_phase": "alert"}}"#,
        ] {
            assert!(settings(bad).is_err(), "{bad}");
        }
        let missing = settings(r#"{"geoip_database": "/nowhere/countries.mmdb"}"#).unwrap_err();
        assert!(
            missing.to_string().contains("/nowhere/countries.mmdb"),
            "{missing}"
        );
    }
}
