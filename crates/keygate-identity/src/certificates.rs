//! Mutual TLS: what a client certificate (already verified against the configured CA) may
//! do, decided by the names it presents — DNS names, and URIs such as a SPIFFE ID
//! (`spiffe://acme.internal/ns/prod/sa/billing`) — against rules, the first that matches
//! deciding.

use keygate_core::scope::pattern_matches;
use keygate_core::{KeyLimits, Scope};

/// A principal for the client certificates that present a matching name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRule {
    /// Unique; named in the tokens keygate issues to such a client.
    pub name: String,
    /// A pattern (`*` for any run) for one of the certificate's subject alternative names:
    /// a URI's (a SPIFFE ID) when it has a scheme (`spiffe://…`), else a DNS name's — never
    /// one kind for the other.
    pub san: String,
    /// The project (name or id) the client acts in.
    pub project: String,
    pub scopes: Vec<Scope>,
    /// Counted per client (rule and name).
    pub limits: KeyLimits,
}

/// The first rule one of `names` matches, with that name.
pub fn matching<'a, 'n>(
    rules: &'a [CertificateRule],
    names: &'n [String],
) -> Option<(usize, &'a CertificateRule, &'n str)> {
    let is_uri = |text: &str| text.contains("://");
    rules.iter().enumerate().find_map(|(at, rule)| {
        names
            .iter()
            .filter(|name| is_uri(name) == is_uri(&rule.san))
            .find(|name| pattern_matches(&rule.san, name))
            .map(|name| (at, rule, name.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, san: &str) -> CertificateRule {
        CertificateRule {
            name: name.into(),
            san: san.into(),
            project: "default".into(),
            scopes: vec![Scope::parse("models:*").unwrap()],
            limits: KeyLimits::default(),
        }
    }

    #[test]
    fn the_first_rule_a_name_matches_decides() {
        let rules = [
            rule("billing", "spiffe://acme.internal/ns/prod/sa/billing"),
            rule("prod", "spiffe://acme.internal/ns/prod/*"),
            rule("hosts", "*.svc.acme.internal"),
        ];
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let billing = names(&["spiffe://acme.internal/ns/prod/sa/billing"]);
        assert_eq!(matching(&rules, &billing).map(|m| m.0), Some(0));
        let worker = names(&["worker.local", "spiffe://acme.internal/ns/prod/sa/worker"]);
        let (at, _, name) = matching(&rules, &worker).unwrap();
        assert_eq!((at, name), (1, "spiffe://acme.internal/ns/prod/sa/worker"));
        let host = names(&["api.svc.acme.internal"]);
        assert_eq!(matching(&rules, &host).map(|m| m.0), Some(2));
        let stranger = names(&["spiffe://other.org/ns/prod/sa/billing", "acme.internal"]);
        assert!(matching(&rules, &stranger).is_none());
        // A DNS pattern never takes a URI that happens to end like a host name.
        let posing = names(&["spiffe://other.org/ns/dev/sa/x.svc.acme.internal"]);
        assert!(matching(&rules, &posing).is_none());
    }
}
