//! Publishable keys: API keys meant to ship inside a web page or a mobile app, where anyone can
//! read them. What keeps one harmless is decided here: the origins it may be used from, and
//! scopes that can only ever read.
//!
//! An origin is `scheme://host[:port]`, as browsers send it in `Origin`. A key's rule is either
//! an exact origin (`https://app.example.com`) or a wildcard over subdomains
//! (`https://*.example.com`, which matches `https://a.example.com` and
//! `https://a.b.example.com` but neither `https://example.com` nor
//! `https://evil-example.com`). Schemes other than `http` and `https` are allowed so that
//! hybrid mobile apps (`capacitor://localhost`) can be named; the default port of `http` (80)
//! and `https` (443) is dropped, as browsers do, so that both spellings compare equal.

use std::fmt;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use crate::{Scope, ValidationError};

/// Most origins one key may allow.
pub const MAX_ORIGINS: usize = 50;
/// Longest origin rule, in bytes.
const MAX_ORIGIN_LEN: usize = 300;
const MAX_SCHEME_LEN: usize = 32;
const MAX_HOST_LEN: usize = 253;

const EXPECTED_ORIGINS: &str = "1-50 origins, each `scheme://host[:port]` with nothing after it, \
     e.g. https://app.example.com or https://*.example.com";

/// The origin a request comes from, normalised: lowercase scheme and host, the scheme's
/// default port dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// Reads an `Origin` header. `null` (sent by sandboxed frames and `file:` pages) and
    /// anything that is not exactly an origin are `None`: they can match no rule.
    pub fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once("://")?;
        let (host, port) = split_host_port(rest)?;
        Self::new(scheme, host, port)
    }

    /// The origin of a `Referer` URL: its scheme and authority, without path, query or
    /// fragment. A URL with credentials in it (`https://user@host/`) is refused, as browsers
    /// never send one.
    pub fn from_referer(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once("://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (host, port) = split_host_port(&rest[..end])?;
        Self::new(scheme, host, port)
    }

    fn new(scheme: &str, host: &str, port: Option<u16>) -> Option<Self> {
        let scheme = scheme.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        if !valid_scheme(&scheme) || !valid_host(&host) {
            return None;
        }
        let port = port.filter(|&p| Some(p) != default_port(&scheme));
        Some(Self { scheme, host, port })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Splits `host[:port]` (the host may be a bracketed IPv6 address). Refuses userinfo, an empty
/// host and a port that is not a number from 1 to 65535.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, after) = authority.split_at(close + 1);
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(text) => {
            let digits =
                !text.is_empty() && text.len() <= 5 && text.bytes().all(|c| c.is_ascii_digit());
            if !digits {
                return None;
            }
            Some(text.parse::<u16>().ok().filter(|&p| p != 0)?)
        }
    };
    Some((host, port))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// A URI scheme (RFC 3986): a letter, then letters, digits, `+`, `-` or `.`; lowercase here.
fn valid_scheme(scheme: &str) -> bool {
    let mut bytes = scheme.bytes();
    scheme.len() <= MAX_SCHEME_LEN
        && bytes.next().is_some_and(|c| c.is_ascii_lowercase())
        && bytes.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(&c))
}

/// A DNS name (lowercase letters, digits and inner hyphens, labels of 1-63 bytes) or an IPv4
/// address, which has the same shape, or a bracketed IPv6 address. Non-ASCII names arrive in
/// their `xn--` form, as browsers send them.
fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    host.len() <= MAX_HOST_LEN && host.split('.').all(valid_label)
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// Which hosts a rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostPattern {
    Exact(String),
    /// Any host strictly below this domain: `*.example.com` holds `example.com`.
    Below(String),
}

/// One allowed origin of a key: exact, or a wildcard over the subdomains of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginRule {
    scheme: String,
    host: HostPattern,
    port: Option<u16>,
}

/// Whether `host` is itself on the public suffix list (where anyone may register a name
/// below it).
fn is_public_suffix(host: &str) -> bool {
    use psl::Psl as _;
    psl::List
        .suffix(host.as_bytes())
        .is_some_and(|suffix| suffix.is_known() && suffix.as_bytes() == host.as_bytes())
}

impl OriginRule {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new("origins", EXPECTED_ORIGINS);
        if text.len() > MAX_ORIGIN_LEN {
            return Err(invalid());
        }
        let (scheme, rest) = text.split_once("://").ok_or_else(invalid)?;
        let (host, port) = split_host_port(rest).ok_or_else(invalid)?;
        match host.strip_prefix("*.") {
            None => {
                let origin = Origin::new(scheme, host, port).ok_or_else(invalid)?;
                Ok(Self {
                    scheme: origin.scheme,
                    host: HostPattern::Exact(origin.host),
                    port: origin.port,
                })
            }
            Some(domain) => {
                let origin = Origin::new(scheme, domain, port).ok_or_else(invalid)?;
                // `*.com` or `*.0.1` would open a key to a whole top-level domain or to
                // addresses: a wildcard needs a registrable-looking domain of two labels or
                // more, whose last label is not a number.
                let labels: Vec<&str> = origin.host.split('.').collect();
                let broad = labels.len() < 2
                    || origin.host.starts_with('[')
                    || labels
                        .last()
                        .is_some_and(|l| l.bytes().all(|c| c.is_ascii_digit()));
                if broad {
                    return Err(ValidationError::new(
                        "origins",
                        "a wildcard origin names a domain of two labels or more below `*.`, \
                         e.g. https://*.example.com",
                    ));
                }
                // `*.github.io` or `*.co.uk` would open a key to every site anyone runs under a
                // public suffix (Mozilla's list, compiled in).
                if is_public_suffix(&origin.host) {
                    return Err(ValidationError::new(
                        "origins",
                        "a wildcard origin names a domain of your own, not a public suffix \
                         such as co.uk or github.io",
                    ));
                }
                Ok(Self {
                    scheme: origin.scheme,
                    host: HostPattern::Below(origin.host),
                    port: origin.port,
                })
            }
        }
    }

    /// Whether a request from `origin` is allowed by this rule.
    pub fn matches(&self, origin: &Origin) -> bool {
        if self.scheme != origin.scheme || self.port != origin.port {
            return false;
        }
        match &self.host {
            HostPattern::Exact(host) => *host == origin.host,
            // A whole label must precede the domain: `evil-example.com` does not end with
            // `.example.com`, and `example.com.evil.com` ends with `evil.com`.
            HostPattern::Below(domain) => origin
                .host
                .strip_suffix(domain.as_str())
                .and_then(|prefix| prefix.strip_suffix('.'))
                .is_some_and(|prefix| !prefix.is_empty()),
        }
    }
}

impl fmt::Display for OriginRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Exact(host) => write!(f, "{}://{host}", self.scheme)?,
            HostPattern::Below(domain) => write!(f, "{}://*.{domain}", self.scheme)?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// The origins a publishable key may be used from: at least one, at most [`MAX_ORIGINS`].
/// A key that has them is publishable; being non-empty is what makes the rule enforceable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<OriginRule>);

impl AllowedOrigins {
    /// Validates a list of origin rules: 1-50 of them, duplicates folded.
    pub fn parse(items: &[String]) -> Result<Self, ValidationError> {
        if items.is_empty() || items.len() > MAX_ORIGINS {
            return Err(ValidationError::new("origins", EXPECTED_ORIGINS));
        }
        let mut rules: Vec<OriginRule> = Vec::with_capacity(items.len());
        for item in items {
            let rule = OriginRule::parse(item)?;
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        Ok(Self(rules))
    }

    /// Whether a request from `origin` is allowed.
    pub fn allows(&self, origin: &Origin) -> bool {
        self.0.iter().any(|rule| rule.matches(origin))
    }

    pub fn rules(&self) -> &[OriginRule] {
        &self.0
    }

    /// The rules as text, in the form they are stored and shown.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl Serialize for AllowedOrigins {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_strings().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AllowedOrigins {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(deserializer)?;
        Self::parse(&items).map_err(serde::de::Error::custom)
    }
}

/// A publishable key's scopes may only read: each names `GET /…` or `HEAD /…` (such as
/// `GET /proxy/catalog/*`). Anything else — `*`, `models:*`, `secrets:read`, `POST /…`,
/// `* /proxy/…` — is refused when the key is created or changed, so a leaked publishable key
/// can never be granted a write, a model or a secret, whatever else goes wrong.
pub fn check_scopes(scopes: &[Scope]) -> Result<(), ValidationError> {
    let read_only = |scope: &Scope| {
        let text = scope.as_str();
        text.starts_with("GET /") || text.starts_with("HEAD /")
    };
    if scopes.iter().all(read_only) {
        Ok(())
    } else {
        Err(ValidationError::new(
            "scopes",
            "a publishable key is read-only: each scope is `GET /…` or `HEAD /…`, \
             e.g. GET /proxy/catalog/*",
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn origins(items: &[&str]) -> AllowedOrigins {
        AllowedOrigins::parse(&items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn origin(text: &str) -> Origin {
        Origin::parse(text).unwrap()
    }

    #[test]
    fn exact_origins_compare_normalised() {
        let allowed = origins(&["https://App.Example.com", "http://localhost:3000"]);
        assert_eq!(
            allowed.to_strings(),
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert!(allowed.allows(&origin("https://app.example.com")));
        assert!(allowed.allows(&origin("https://app.example.com:443")));
        assert!(allowed.allows(&origin("HTTPS://APP.EXAMPLE.COM")));
        assert!(allowed.allows(&origin("http://localhost:3000")));
        assert!(!allowed.allows(&origin("http://app.example.com")), "scheme");
        assert!(
            !allowed.allows(&origin("https://app.example.com:8443")),
            "port"
        );
        assert!(!allowed.allows(&origin("http://localhost")), "port");
        assert!(!allowed.allows(&origin("https://www.app.example.com")));
        assert!(!allowed.allows(&origin("https://example.com")));
    }

    #[test]
    fn wildcards_match_whole_labels_below_the_domain() {
        let allowed = origins(&["https://*.example.com"]);
        for good in [
            "https://a.example.com",
            "https://a.b.example.com",
            "https://xn--bcher-kva.example.com",
        ] {
            assert!(allowed.allows(&origin(good)), "{good}");
        }
        for bad in [
            "https://example.com",
            "https://evil-example.com",
            "https://evilexample.com",
            "https://example.com.evil.com",
            "https://a.example.com.evil.com",
            "https://a.example.co",
            "http://a.example.com",
            "https://a.example.com:8443",
        ] {
            assert!(!allowed.allows(&origin(bad)), "{bad}");
        }
        let ported = origins(&["https://*.example.com:8443"]);
        assert!(ported.allows(&origin("https://a.example.com:8443")));
        assert!(!ported.allows(&origin("https://a.example.com")));
    }

    #[test]
    fn rules_that_are_not_origins_are_refused() {
        for bad in [
            "",
            "app.example.com",
            "https://",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com?q",
            "https://app.example.com#f",
            "https://user@app.example.com",
            "https://app.example.com:0",
            "https://app.example.com:65536",
            "https://app.example.com:",
            "https://app..example.com",
            "https://-app.example.com",
            "https://app_x.example.com",
            "https://*",
            "https://*.com",
            "https://*.co.uk",
            "https://*.github.io",
            "https://*.herokuapp.com",
            "https://*.0.0.1",
            "https://*.[::1]",
            "https://a.*.example.com",
            "https://*example.com",
            "*://app.example.com",
            "1http://app.example.com",
            "https://bücher.example.com",
            "null",
        ] {
            assert!(OriginRule::parse(bad).is_err(), "{bad:?}");
        }
        for good in [
            "https://*.example.co.uk",
            "https://*.myname.github.io",
            "https://*.example.com",
        ] {
            assert!(OriginRule::parse(good).is_ok(), "{good:?}");
        }
        assert!(
            AllowedOrigins::parse(&[]).is_err(),
            "a publishable key needs an origin"
        );
        let many: Vec<String> = (0..51)
            .map(|i| format!("https://a{i}.example.com"))
            .collect();
        assert!(AllowedOrigins::parse(&many).is_err());
        let long = format!("https://{}.example.com", "a".repeat(300));
        assert!(AllowedOrigins::parse(&[long]).is_err());
    }

    #[test]
    fn other_hosts_and_schemes() {
        let allowed = origins(&[
            "capacitor://localhost",
            "http://[::1]:8080",
            "http://127.0.0.1:5173",
        ]);
        assert!(allowed.allows(&origin("capacitor://localhost")));
        assert!(allowed.allows(&origin("http://[::1]:8080")));
        assert!(allowed.allows(&origin("http://127.0.0.1:5173")));
        assert!(!allowed.allows(&origin("http://127.0.0.1:5174")));
        let dup = origins(&["https://a.example.com", "https://A.example.com:443"]);
        assert_eq!(dup.rules().len(), 1);
    }

    #[test]
    fn referers_give_their_origin() {
        assert_eq!(
            Origin::from_referer("https://app.example.com/page?q=1#top"),
            Some(origin("https://app.example.com"))
        );
        assert_eq!(
            Origin::from_referer("https://app.example.com:443?x"),
            Some(origin("https://app.example.com"))
        );
        assert_eq!(
            Origin::from_referer("https://user:pw@app.example.com/"),
            None
        );
        assert_eq!(Origin::from_referer("/relative/path"), None);
        assert_eq!(Origin::parse("null"), None);
        assert_eq!(Origin::parse("https://app.example.com/"), None);
    }

    #[test]
    fn publishable_scopes_only_read() {
        let scopes = |items: &[&str]| {
            Scope::parse_list(&items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
        };
        assert!(check_scopes(&scopes(&["GET /proxy/catalog/*", "HEAD /proxy/catalog/*"])).is_ok());
        assert!(check_scopes(&[]).is_ok());
        for bad in [
            "*",
            "models:*",
            "secrets:read",
            "POST /proxy/catalog/x",
            "* /proxy/catalog/*",
            "GET*",
            "GETX /proxy/x",
            "get /proxy/x",
        ] {
            assert!(check_scopes(&scopes(&[bad])).is_err(), "{bad}");
        }
    }

    #[test]
    fn stored_form_round_trips() {
        let allowed = origins(&["https://*.example.com:8443", "http://localhost:3000"]);
        let text = serde_json::to_string(&allowed).unwrap();
        assert_eq!(
            text,
            r#"["https://*.example.com:8443","http://localhost:3000"]"#
        );
        assert_eq!(
            serde_json::from_str::<AllowedOrigins>(&text).unwrap(),
            allowed
        );
        assert!(serde_json::from_str::<AllowedOrigins>("[]").is_err());
    }

    #[test]
    fn fuzz_seeds_keep_the_invariants() {
        // The first line of a seed is a rule.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/origins");
        for entry in std::fs::read_dir(dir).unwrap() {
            let seed = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let Some(Ok(rule)) = seed.lines().next().map(OriginRule::parse) else {
                continue;
            };
            assert_eq!(OriginRule::parse(&rule.to_string()).as_ref(), Ok(&rule));
            if let HostPattern::Below(domain) = &rule.host {
                let bare = Origin::new(&rule.scheme, domain, rule.port).unwrap();
                assert!(!rule.matches(&bare), "{rule}");
            }
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,80}") {
            let _ = Origin::parse(&text);
            let _ = Origin::from_referer(&text);
            let _ = OriginRule::parse(&text);
        }

        #[test]
        fn a_parsed_origin_reads_back_as_itself(
            scheme in "(https?|capacitor)",
            labels in prop::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 1..4),
            port in prop::option::of(1u16..),
        ) {
            let mut text = format!("{scheme}://{}", labels.join("."));
            if let Some(port) = port {
                text.push_str(&format!(":{port}"));
            }
            let parsed = Origin::parse(&text).unwrap();
            prop_assert_eq!(Origin::parse(&parsed.to_string()), Some(parsed.clone()));
            let rule = OriginRule::parse(&text).unwrap();
            prop_assert!(rule.matches(&parsed));
            prop_assert_eq!(OriginRule::parse(&rule.to_string()).unwrap(), rule);
        }
    }
}
