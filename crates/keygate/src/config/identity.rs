//! `[tokens]`: keygate's access tokens — their issuer, audience and lifetime, and how often
//! the keys that sign them turn over.

use std::time::Duration;

use keygate_server::service::TokenSettings;
use serde::Deserialize;

use super::ConfigError;

/// `[tokens]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokensFile {
    /// The URL clients reach keygate at: `iss` of every token and the base of the discovery
    /// document. By default `http://<listen>`.
    issuer: Option<String>,
    /// The audience keygate's own routes accept; by default the issuer.
    audience: Option<String>,
    /// The longest (and default) lifetime of a token, such as "15m".
    lifetime: Option<String>,
    /// How long one signing key signs, such as "1d".
    rotate_every: Option<String>,
    /// How long before it signs the next key is published, such as "1h".
    publish_ahead: Option<String>,
}

pub(super) fn token_settings(file: Option<TokensFile>) -> Result<TokenSettings, ConfigError> {
    let defaults = TokenSettings::default();
    let Some(file) = file else {
        return Ok(defaults);
    };
    let bad = ConfigError::BadTokens;
    let span =
        |text: Option<String>, default: Duration, range: std::ops::RangeInclusive<u64>, what| {
            match text {
                None => Ok(default),
                Some(text) => humantime::parse_duration(&text)
                    .ok()
                    .filter(|d| range.contains(&d.as_secs()))
                    .ok_or(bad(what)),
            }
        };
    let lifetime = span(
        file.lifetime,
        defaults.lifetime,
        60..=24 * 3600,
        "lifetime is a span from 1m to 24h, such as \"15m\"",
    )?;
    let rotate_every = span(
        file.rotate_every,
        defaults.rotate_every,
        3600..=90 * 86_400,
        "rotate_every is a span from 1h to 90d, such as \"1d\"",
    )?;
    let publish_ahead = span(
        file.publish_ahead,
        defaults.publish_ahead,
        5 * 60..=7 * 86_400,
        "publish_ahead is a span from 5m to 7d, such as \"1h\"",
    )?;
    if publish_ahead >= rotate_every {
        return Err(bad("publish_ahead is shorter than rotate_every"));
    }
    let issuer = file
        .issuer
        .map(|text| {
            url::Url::parse(&text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .filter(|u| u.username().is_empty() && u.password().is_none())
                .filter(|u| u.query().is_none() && u.fragment().is_none())
                .map(|_| text.trim_end_matches('/').to_owned())
                .ok_or(bad(
                    "issuer is the http(s) URL clients reach keygate at, without a query",
                ))
        })
        .transpose()?;
    let audience = file
        .audience
        .map(|text| {
            (!text.is_empty() && text.len() <= 256 && !text.chars().any(char::is_control))
                .then_some(text)
                .ok_or(bad("audience is 1 to 256 printable characters"))
        })
        .transpose()?;
    Ok(TokenSettings {
        issuer,
        audience,
        lifetime,
        rotate_every,
        publish_ahead,
        ..defaults
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(toml: &str) -> Result<TokenSettings, ConfigError> {
        token_settings(Some(toml::from_str(toml).unwrap()))
    }

    #[test]
    fn defaults_and_spans() {
        assert_eq!(token_settings(None).unwrap(), TokenSettings::default());
        let settings = read(
            "issuer = \"https://keygate.example.com/\"\nlifetime = \"5m\"\nrotate_every = \"7d\"",
        )
        .unwrap();
        assert_eq!(
            settings.issuer.as_deref(),
            Some("https://keygate.example.com")
        );
        assert_eq!(settings.lifetime, Duration::from_secs(300));
        assert_eq!(settings.rotate_every, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn refuses_what_cannot_work() {
        for bad in [
            "lifetime = \"2d\"",
            "lifetime = \"soon\"",
            "issuer = \"ftp://x\"",
            "issuer = \"https://u:p@x\"",
            "rotate_every = \"2h\"\npublish_ahead = \"3h\"",
            "audience = \"\"",
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
