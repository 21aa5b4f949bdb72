//! `[tokens]`: keygate's access tokens — their issuer, audience and lifetime, and how often
//! the keys that sign them turn over; and `[federation.<name>]`, the external issuers whose
//! tokens keygate trusts, with the rules that say what each identity may do.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use keygate_core::{Budget, KeyLimits, Quota, RequestRate, Scope};
use keygate_identity::federation::{ClaimMatch, Rule, TrustedIssuer};
use keygate_server::service::{FederatedIssuer, IdentitySettings, JwksSource};
use serde::Deserialize;

use super::ConfigError;

/// `[federation.<name>]`: a trusted issuer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IssuerFile {
    /// `iss` of its tokens, exactly.
    issuer: String,
    /// The audience its tokens must name for keygate.
    audience: String,
    /// Where its JWKS is; without it (and without `jwks_file`), the `jwks_uri` of its
    /// discovery document.
    jwks_url: Option<String>,
    /// A JWKS document on disk, read again when it changes.
    jwks_file: Option<PathBuf>,
    /// Claims every token must carry: name (or JSON pointer) → pattern.
    #[serde(default)]
    required: BTreeMap<String, String>,
    /// `[[federation.<name>.rules]]`, the first that matches deciding.
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
struct RuleFile {
    name: String,
    /// Claims the token must carry for this rule: name (or JSON pointer) → pattern.
    #[serde(default, rename = "match")]
    matches: BTreeMap<String, String>,
    #[serde(flatten)]
    grant: GrantFile,
    /// Whatever else the table holds: refused (serde cannot deny unknown fields beside a
    /// flattened table).
    #[serde(flatten)]
    unknown: Unknown,
}

/// The fields of a table no one reads.
pub(super) type Unknown = BTreeMap<String, serde::de::IgnoredAny>;

/// Refuses a table with fields no one reads, naming the first.
pub(super) fn no_unknown(
    unknown: &Unknown,
    what: &dyn Fn(&str) -> ConfigError,
) -> Result<(), ConfigError> {
    match unknown.keys().next() {
        Some(field) => Err(what(&format!("unknown field `{field}`"))),
        None => Ok(()),
    }
}

fn matches(map: BTreeMap<String, String>) -> Vec<ClaimMatch> {
    map.into_iter()
        .map(|(claim, pattern)| ClaimMatch { claim, pattern })
        .collect()
}

/// What a rule gives its principals: a project, scopes, and limits as `keygate keys
/// create` takes them.
#[derive(Debug, Deserialize)]
pub(super) struct GrantFile {
    /// The project (name or id) the principal acts in.
    pub project: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub rates: Vec<String>,
    #[serde(default)]
    pub tokens: Vec<String>,
    pub concurrency: Option<u32>,
    pub quota: Option<String>,
    #[serde(default)]
    pub budgets: Vec<String>,
}

/// The scopes and limits of a grant; `what` names the rule in errors.
pub(super) fn grant(
    file: &GrantFile,
    what: &dyn Fn(&str) -> ConfigError,
) -> Result<(Vec<Scope>, KeyLimits), ConfigError> {
    let scopes = Scope::parse_list(&file.scopes).map_err(|e| what(&e.to_string()))?;
    if scopes.is_empty() {
        return Err(what("scopes: at least one"));
    }
    if file.project.is_empty() {
        return Err(what("project: a project's name or id"));
    }
    let rates = |items: &[String]| -> Result<Vec<RequestRate>, ConfigError> {
        items
            .iter()
            .map(|t| RequestRate::parse(t).map_err(|e| what(e.expected)))
            .collect()
    };
    let limits = KeyLimits {
        requests: rates(&file.rates)?,
        tokens: rates(&file.tokens)?,
        concurrency: file.concurrency,
        quota: file
            .quota
            .as_deref()
            .map(Quota::parse)
            .transpose()
            .map_err(|e| what(e.expected))?,
        budgets: file
            .budgets
            .iter()
            .map(|t| Budget::parse(t).map_err(|e| what(e.expected)))
            .collect::<Result<_, _>>()?,
        credits: None,
    };
    Ok((scopes, limits))
}

fn rule(file: RuleFile) -> Result<Rule, ConfigError> {
    let name = file.name;
    let what = |field: &str| ConfigError::BadFederation(format!("rule `{name}`: {field}"));
    no_unknown(&file.unknown, &what)?;
    let (scopes, limits) = grant(&file.grant, &what)?;
    Ok(Rule {
        matches: matches(file.matches),
        project: file.grant.project,
        scopes,
        limits,
        name,
    })
}

fn issuer(name: String, file: IssuerFile) -> Result<FederatedIssuer, ConfigError> {
    let bad = |what: &str| ConfigError::BadFederation(format!("[federation.{name}] {what}"));
    let named = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if !named || name == "tls" {
        return Err(bad(
            "the name is 1 to 64 letters, digits, - or _, and not `tls` (client certificates' own)",
        ));
    }
    if file.issuer.is_empty() || file.issuer.len() > 512 {
        return Err(bad("issuer is its tokens' `iss`, 1 to 512 characters"));
    }
    if file.audience.is_empty() || file.audience.len() > 256 {
        return Err(bad("audience is 1 to 256 characters"));
    }
    // Keys fetched over plain HTTP could be replaced on the way: https, or a loopback address.
    let web_url = |text: &str| {
        url::Url::parse(text)
            .ok()
            .filter(|u| match (u.scheme(), u.host()) {
                ("https", Some(_)) => true,
                ("http", Some(url::Host::Domain(host))) => host == "localhost",
                ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
                ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
                _ => false,
            })
    };
    let jwks = match (file.jwks_url, file.jwks_file) {
        (Some(_), Some(_)) => return Err(bad("give jwks_url or jwks_file, not both")),
        (Some(url), None) => JwksSource::Url(web_url(&url).ok_or(bad(
            "jwks_url is an https URL (http only on a loopback address)",
        ))?),
        (None, Some(path)) => JwksSource::File(path),
        (None, None) => {
            web_url(&file.issuer).ok_or(bad(
                "without jwks_url or jwks_file, issuer is an https URL serving discovery (http only on a loopback address)",
            ))?;
            JwksSource::Discovery
        }
    };
    if file.rules.is_empty() {
        return Err(bad(
            "at least one [[rules]] table says what its identities may do",
        ));
    }
    // An issuer such as GitHub Actions signs tokens for anyone's workflows: with no claim to
    // match, every one of them would pass.
    if file.required.is_empty() && file.rules.iter().any(|r| r.matches.is_empty()) {
        return Err(bad(
            "name the claims its tokens must carry (`required`, or `match` in every rule): \
             without them, any token of the issuer would pass",
        ));
    }
    let rules = file
        .rules
        .into_iter()
        .map(rule)
        .collect::<Result<Vec<_>, _>>()?;
    for (i, r) in rules.iter().enumerate() {
        if rules[..i].iter().any(|earlier| earlier.name == r.name) {
            return Err(bad(&format!("two rules are named `{}`", r.name)));
        }
    }
    Ok(FederatedIssuer {
        trusted: TrustedIssuer {
            name,
            issuer: file.issuer,
            audience: file.audience,
            required: matches(file.required),
            rules,
        },
        jwks,
    })
}

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

pub(super) fn identity_settings(
    file: Option<TokensFile>,
    federation: BTreeMap<String, IssuerFile>,
) -> Result<IdentitySettings, ConfigError> {
    let federation = federation
        .into_iter()
        .map(|(name, file)| issuer(name, file))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, one) in federation.iter().enumerate() {
        if federation[..i]
            .iter()
            .any(|other| other.trusted.issuer == one.trusted.issuer)
        {
            return Err(ConfigError::BadFederation(format!(
                "two [federation.*] tables trust the issuer {}",
                one.trusted.issuer
            )));
        }
    }
    let defaults = IdentitySettings {
        federation,
        ..IdentitySettings::default()
    };
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
    Ok(IdentitySettings {
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

    fn read(toml: &str) -> Result<IdentitySettings, ConfigError> {
        identity_settings(Some(toml::from_str(toml).unwrap()), BTreeMap::new())
    }

    /// Unknown fields are refused as the file is read; the rest by the settings.
    fn federation(toml: &str) -> Result<IdentitySettings, ConfigError> {
        let tables = toml::from_str(toml).map_err(|e| ConfigError::BadFederation(e.to_string()))?;
        identity_settings(None, tables)
    }

    #[test]
    fn trusted_issuers_and_their_rules() {
        let settings = federation(
            r#"
            [github]
            issuer = "https://token.actions.githubusercontent.com"
            audience = "https://keygate.example.com"
            required = { repository_owner = "acme" }
            [[github.rules]]
            name = "deploy"
            match = { repository = "acme/payments", ref = "refs/heads/main" }
            project = "payments"
            scopes = ["secrets:read:stripe-*"]
            rates = ["60/minute"]
            budgets = ["5/day"]

            [cluster]
            issuer = "https://kubernetes.default.svc"
            audience = "keygate"
            jwks_file = "/etc/keygate/cluster-jwks.json"
            [[cluster.rules]]
            name = "prod"
            match = { "/kubernetes.io/namespace" = "prod" }
            project = "ops"
            scopes = ["models:*"]
            "#,
        )
        .unwrap();
        let [cluster, github] = settings.federation.as_slice() else {
            panic!("two issuers")
        };
        assert_eq!(github.jwks, JwksSource::Discovery);
        assert_eq!(
            cluster.jwks,
            JwksSource::File("/etc/keygate/cluster-jwks.json".into())
        );
        let deploy = &github.trusted.rules[0];
        assert_eq!(deploy.matches.len(), 2);
        assert_eq!(deploy.limits.requests.len(), 1);
        assert_eq!(deploy.limits.budgets.len(), 1);
        assert_eq!(
            cluster.trusted.rules[0].matches[0].claim,
            "/kubernetes.io/namespace"
        );
    }

    #[test]
    fn federation_refuses_what_cannot_work() {
        let base = |extra: &str, rule: &str| {
            format!("[ci]\nissuer = \"https://ci.example\"\naudience = \"kg\"\n{extra}\n{rule}")
        };
        let rule = "[[ci.rules]]\nname = \"r\"\nproject = \"p\"\nscopes = [\"models:*\"]\n\
                    match = { ref = \"refs/heads/main\" }";
        assert!(federation(&base("", rule)).is_ok());
        for (extra, rule) in [
            ("", ""),
            ("jwks_url = \"ftp://x\"", rule),
            ("jwks_url = \"https://x/jwks\"\njwks_file = \"/x\"", rule),
            (
                "",
                "[[ci.rules]]\nname = \"r\"\nproject = \"p\"\nscopes = []",
            ),
            (
                "",
                "[[ci.rules]]\nname = \"r\"\nproject = \"p\"\nscopes = [\"a\"]\nrates = [\"fast\"]",
            ),
            ("", &format!("{rule}\n{rule}")),
            ("", &format!("{rule}\nbudget = \"5/day\"")),
            // Nothing to match: any token of the issuer would pass.
            (
                "",
                "[[ci.rules]]\nname = \"r\"\nproject = \"p\"\nscopes = [\"a\"]",
            ),
            ("jwks_url = \"http://keys.example/jwks\"", rule),
        ] {
            assert!(federation(&base(extra, rule)).is_err(), "{extra} {rule}");
        }
    }

    #[test]
    fn defaults_and_spans() {
        assert_eq!(
            identity_settings(None, BTreeMap::new()).unwrap(),
            IdentitySettings::default()
        );
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
