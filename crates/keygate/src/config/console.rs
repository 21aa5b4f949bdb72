//! The `[console]` table: how long the web console's sessions last, their cookies, and
//! `[console.sso]`, single sign-on through an OpenID Connect provider.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use keygate_core::{OrgId, Role};
use keygate_server::http::ConsoleSettings;
use keygate_server::service::{SsoRule, SsoSettings};
use secrecy::SecretString;
use serde::Deserialize;

use super::ConfigError;

/// `[console.sso]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SsoFile {
    issuer: String,
    client_id: String,
    /// `env::NAME`: the client secret is read from the environment, never written in the file.
    client_secret: Option<String>,
    /// keygate's public URL followed by `/ui/sso/callback`.
    redirect_url: String,
    #[serde(default)]
    scopes: Vec<String>,
    /// The organisation users sign in to (`org_…`); without it, the only one.
    org: Option<String>,
    /// `[[console.sso.roles]]`, checked in order.
    #[serde(default)]
    roles: Vec<RoleRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleRule {
    /// The claim to read, such as `groups`.
    claim: String,
    /// What it must be, or hold when it is a list.
    value: String,
    role: String,
    /// A project's name or id, for a role over that project only.
    project: Option<String>,
}

fn sso_settings(file: SsoFile, env: &BTreeMap<String, String>) -> Result<SsoSettings, ConfigError> {
    let bad = ConfigError::BadConsole;
    let web_url = |text: &str| {
        url::Url::parse(text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .filter(|u| u.username().is_empty() && u.password().is_none())
    };
    if web_url(&file.issuer).is_none() {
        return Err(bad(
            "sso.issuer is the provider's http(s) URL, as its tokens name it",
        ));
    }
    let redirect = web_url(&file.redirect_url)
        .filter(|u| u.path().ends_with("/ui/sso/callback"))
        .ok_or(bad(
            "sso.redirect_url is keygate's public URL followed by /ui/sso/callback",
        ))?;
    if file.client_id.is_empty() || file.client_id.len() > 256 {
        return Err(bad("sso.client_id is 1 to 256 characters"));
    }
    let client_secret = match file.client_secret {
        None => None,
        Some(reference) => {
            let name = reference.strip_prefix("env::").ok_or(bad(
                "sso.client_secret is env::NAME: a variable holds the secret",
            ))?;
            let value = env
                .get(name)
                .filter(|v| !v.is_empty())
                .ok_or(bad("sso.client_secret names a variable that is not set"))?;
            Some(SecretString::from(value.clone()))
        }
    };
    if file.roles.is_empty() || file.roles.len() > 100 {
        return Err(bad(
            "sso.roles: 1 to 100 [[console.sso.roles]] rules (claim, value, role)",
        ));
    }
    let rules =
        file.roles
            .into_iter()
            .map(|rule| {
                let role = rule.role.parse::<Role>().map_err(|_| {
                    bad("sso.roles: role is owner, admin, operator, auditor or viewer")
                })?;
                if rule.claim.is_empty() || rule.value.is_empty() {
                    return Err(bad("sso.roles: claim and value are not empty"));
                }
                Ok(SsoRule {
                    claim: rule.claim,
                    value: rule.value,
                    role,
                    project: rule.project,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
    let org = file
        .org
        .map(|org| OrgId::parse(&org).map_err(|_| bad("sso.org is an organisation id (org_…)")))
        .transpose()?;
    Ok(SsoSettings {
        issuer: file.issuer,
        client_id: file.client_id,
        client_secret,
        redirect_url: redirect.to_string(),
        scopes: file.scopes,
        rules,
        org,
    })
}

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
    sso: Option<SsoFile>,
}

pub(super) fn console_settings(
    file: Option<ConsoleFile>,
    env: &BTreeMap<String, String>,
) -> Result<ConsoleSettings, ConfigError> {
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
    settings.sso = file
        .sso
        .map(|sso| sso_settings(sso, env))
        .transpose()?
        .map(Arc::new);
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConsoleSettings, ConfigError> {
        let env = BTreeMap::from([("SSO_SECRET".to_owned(), "s3cr3t".to_owned())]);
        console_settings(Some(toml::from_str(text).unwrap()), &env)
    }

    const SSO: &str = r#"
[sso]
issuer = "https://id.example.com"
client_id = "keygate"
client_secret = "env::SSO_SECRET"
redirect_url = "https://keygate.example.com/ui/sso/callback"
[[sso.roles]]
claim = "groups"
value = "keygate-admins"
role = "admin"
[[sso.roles]]
claim = "groups"
value = "payments"
role = "operator"
project = "payments"
"#;

    #[test]
    fn single_sign_on_is_read_with_its_rules_and_its_secret_from_the_environment() {
        let sso = parse(SSO).unwrap().sso.unwrap();
        assert_eq!(sso.rules.len(), 2);
        assert_eq!(sso.rules[1].role, Role::Operator);
        assert_eq!(sso.rules[1].project.as_deref(), Some("payments"));
        assert!(!format!("{sso:?}").contains("s3cr3t"));
        for (from, to) in [
            ("env::SSO_SECRET", "s3cr3t"),
            ("env::SSO_SECRET", "env::MISSING"),
            ("role = \"admin\"", "role = \"root\""),
            (
                "https://keygate.example.com/ui/sso/callback",
                "https://keygate.example.com/",
            ),
            ("https://id.example.com", "id.example.com"),
        ] {
            assert!(parse(&SSO.replace(from, to)).is_err(), "{to}");
        }
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
