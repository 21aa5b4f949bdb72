//! The `[console]` table: how long the web console's sessions last, and their cookies.

use std::time::Duration;

use keygate_server::http::ConsoleSettings;
use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsoleFile {
    /// Without a request for this long a session ends, e.g. `"30m"`.
    session_idle: Option<String>,
    /// Whatever the activity, a session ends this long after sign-in, e.g. `"12h"`.
    session_lifetime: Option<String>,
    /// Session cookies marked `Secure` whatever the request (they are anyway when a trusted
    /// proxy says the request came over HTTPS).
    secure_cookies: Option<bool>,
}

pub(super) fn console_settings(file: Option<ConsoleFile>) -> Result<ConsoleSettings, ConfigError> {
    let mut settings = ConsoleSettings::default();
    let Some(file) = file else {
        return Ok(settings);
    };
    let span = |text: Option<String>, default: Duration, what: &'static str| match text {
        None => Ok(default),
        Some(text) => humantime::parse_duration(&text)
            .ok()
            .filter(|d| (Duration::from_secs(60)..=Duration::from_secs(30 * 86_400)).contains(d))
            .ok_or(ConfigError::BadConsole(what)),
    };
    let sessions = &mut settings.sessions;
    sessions.idle = span(
        file.session_idle,
        sessions.idle,
        "session_idle is a span from 1m to 30d, such as \"30m\"",
    )?;
    sessions.absolute = span(
        file.session_lifetime,
        sessions.absolute,
        "session_lifetime is a span from 1m to 30d, such as \"12h\"",
    )?;
    if sessions.idle > sessions.absolute {
        return Err(ConfigError::BadConsole(
            "session_idle is at most session_lifetime",
        ));
    }
    settings.secure_cookies = file.secure_cookies.unwrap_or(false);
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConsoleSettings, ConfigError> {
        console_settings(Some(toml::from_str(text).unwrap()))
    }

    #[test]
    fn sessions_are_bounded_and_defaults_kept() {
        let set = parse("session_idle = \"15m\"\nsecure_cookies = true").unwrap();
        assert_eq!(set.sessions.idle, Duration::from_secs(900));
        assert_eq!(set.sessions.absolute, Duration::from_secs(12 * 3600));
        assert!(set.secure_cookies);
        for bad in [
            "session_idle = \"1s\"",
            "session_lifetime = \"90d\"",
            "session_idle = \"2h\"\nsession_lifetime = \"1h\"",
            "session_idle = \"soon\"",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
