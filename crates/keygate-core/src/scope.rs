//! Scopes: what a key may do, as permission patterns such as `chat:write`, `models:gpt-4o*`
//! or `GET /proxy/payments/*`. A `*` matches any run of characters.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

const MAX_SCOPE_LEN: usize = 200;
/// Most scopes one key may carry.
pub const MAX_SCOPES: usize = 100;

/// One validated scope pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl Scope {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let printable = text.bytes().all(|c| c.is_ascii_graphic() || c == b' ');
        let trimmed = !text.starts_with(' ') && !text.ends_with(' ') && !text.contains("  ");
        if text.is_empty() || text.len() > MAX_SCOPE_LEN || !printable || !trimmed {
            return Err(ValidationError::new(
                "scopes",
                "each scope is 1-200 printable ASCII characters, single spaces inside",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this pattern grants `permission`.
    pub fn grants(&self, permission: &str) -> bool {
        glob_match(self.0.as_bytes(), permission.as_bytes())
    }

    /// Validates a list of scopes: bounded, no duplicates.
    pub fn parse_list(items: &[String]) -> Result<Vec<Self>, ValidationError> {
        if items.len() > MAX_SCOPES {
            return Err(ValidationError::new("scopes", "at most 100 scopes"));
        }
        let mut scopes: Vec<Self> = Vec::with_capacity(items.len());
        for item in items {
            let scope = Self::parse(item)?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Ok(scopes)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Scope {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Scope> for String {
    fn from(value: Scope) -> String {
        value.0
    }
}

/// Scopes in this family grant access to upstream secret values; only an owner may give them
/// to a key, and only scopes that name the family literally grant it (never `*`).
pub const SECRETS_SCOPE_PREFIX: &str = "secrets:";

impl Scope {
    /// Whether this scope reaches upstream secrets (and so needs an owner to grant it).
    pub fn touches_secrets(&self) -> bool {
        self.0.starts_with(SECRETS_SCOPE_PREFIX)
    }
}

/// Whether `scopes` allow reading the secret `name`: a scope `secrets:read` or
/// `secrets:read:<pattern>` matching the name. Wildcards outside that prefix (`*`,
/// `secrets:*`, `*:read`) do not count: reading secret values is granted explicitly.
pub fn grants_secret_read(scopes: &[Scope], name: &str) -> bool {
    scopes.iter().any(|scope| {
        let text = scope.as_str();
        text == "secrets:read"
            || text
                .strip_prefix("secrets:read:")
                .is_some_and(|pattern| glob_match(pattern.as_bytes(), name.as_bytes()))
    })
}

/// Whether any scope in `scopes` grants `permission`.
pub fn any_grants(scopes: &[Scope], permission: &str) -> bool {
    scopes.iter().any(|scope| scope.grants(permission))
}

/// HTTP methods that change something, in a permission such as `POST /proxy/payments/refunds`.
const WRITE_METHODS: [&str; 4] = ["POST", "PUT", "PATCH", "DELETE"];
/// Actions that change something, in a permission such as `documents:write`.
const WRITE_ACTIONS: [&str; 2] = ["write", "delete"];

/// The two forms a permission takes: `METHOD path` or `resource:action`. keygate's own
/// `models:<alias>` names a model, not an action.
enum Form<'a> {
    Http { method: &'a str },
    Action { action: &'a str },
    Other,
}

fn form(text: &str) -> Form<'_> {
    if let Some((method, _)) = text.split_once(' ') {
        Form::Http { method }
    } else if text.starts_with("models:") {
        Form::Other
    } else if let Some((_, action)) = text.rsplit_once(':') {
        Form::Action { action }
    } else {
        Form::Other
    }
}

/// Whether `permission` asks to change something: a `POST`, `PUT`, `PATCH` or `DELETE`, or a
/// `…:write` or `…:delete` action.
pub fn is_write(permission: &str) -> bool {
    match form(permission) {
        Form::Http { method } => WRITE_METHODS.contains(&method),
        Form::Action { action } => WRITE_ACTIONS.contains(&action),
        Form::Other => false,
    }
}

impl Scope {
    /// Whether this scope grants some permission that changes something (see [`is_write`]).
    pub fn grants_writes(&self) -> bool {
        let matches = |pattern: &str, words: &[&str]| {
            words
                .iter()
                .any(|word| glob_match(pattern.as_bytes(), word.as_bytes()))
        };
        match form(&self.0) {
            _ if self.0 == "*" => true,
            Form::Http { method } => matches(method, &WRITE_METHODS),
            Form::Action { action } => matches(action, &WRITE_ACTIONS),
            Form::Other => false,
        }
    }
}

impl Scope {
    /// Whether `other` grants nothing this scope does not. Used to narrow a token's scopes: a scope
    /// asked for is allowed only when one the parent holds covers it. A `*` in `other` is
    /// covered only by a `*` here (a literal character never matches it), so a pattern is
    /// never widened. Secret reads follow [`grants_secret_read`]: only `secrets:read` or a
    /// `secrets:read:<pattern>` covering the asked pattern covers them, never a broader
    /// wildcard.
    pub fn covers(&self, other: &Scope) -> bool {
        if other.touches_secrets() {
            let mine = self.as_str();
            let theirs = other.as_str();
            return mine == theirs
                || (mine == "secrets:read" && theirs.starts_with("secrets:read:"))
                || match (
                    mine.strip_prefix("secrets:read:"),
                    theirs.strip_prefix("secrets:read:"),
                ) {
                    (Some(pattern), Some(asked)) => {
                        glob_match(pattern.as_bytes(), asked.as_bytes())
                    }
                    _ => false,
                };
        }
        glob_match(self.0.as_bytes(), other.0.as_bytes())
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (the matching of
/// scopes, for other rules that name things by pattern).
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    glob_match(pattern.as_bytes(), text.as_bytes())
}

/// Glob matching where `*` matches any sequence; linear time with single backtracking.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(text: &str) -> Scope {
        Scope::parse(text).unwrap()
    }

    #[test]
    fn writes_are_told_from_reads_in_both_forms() {
        for write in [
            "POST /proxy/pay/refunds",
            "DELETE /proxy/x/1",
            "docs:write",
            "a:b:delete",
        ] {
            assert!(is_write(write), "{write}");
        }
        for read in [
            "GET /proxy/pay/x",
            "HEAD /proxy/x",
            "docs:read",
            "models:write",
            "plain",
        ] {
            assert!(!is_write(read), "{read}");
        }
        for grants in [
            "*",
            "* /proxy/pay/*",
            "P* /proxy/x/*",
            "docs:*",
            "docs:write",
        ] {
            assert!(scope(grants).grants_writes(), "{grants}");
        }
        for only_reads in ["GET /proxy/pay/*", "docs:read", "models:*", "models:gpt-4o"] {
            assert!(!scope(only_reads).grants_writes(), "{only_reads}");
        }
    }

    #[test]
    fn exact_and_wildcard_matching() {
        assert!(scope("chat:write").grants("chat:write"));
        assert!(!scope("chat:write").grants("chat:read"));
        assert!(scope("chat:*").grants("chat:read"));
        assert!(scope("*").grants("anything at all"));
        assert!(scope("GET /proxy/pay/*").grants("GET /proxy/pay/v1/charges"));
        assert!(!scope("GET /proxy/pay/*").grants("POST /proxy/pay/v1/charges"));
        assert!(scope("models:gpt-4o*").grants("models:gpt-4o-mini"));
        assert!(scope("a*b*c").grants("aXXbYYc"));
        assert!(!scope("a*b*c").grants("aXXbYY"));
        assert!(!scope("chat").grants("chat:write"));
    }

    #[test]
    fn rejects_bad_scopes() {
        assert!(Scope::parse("").is_err());
        assert!(Scope::parse(" lead").is_err());
        assert!(Scope::parse("tab\there").is_err());
        assert!(Scope::parse(&"x".repeat(201)).is_err());
        assert!(Scope::parse("GET /proxy/x/*").is_ok());
    }

    #[test]
    fn secret_reads_are_granted_only_explicitly() {
        let scopes = |list: &[&str]| list.iter().map(|s| scope(s)).collect::<Vec<_>>();
        assert!(grants_secret_read(&scopes(&["secrets:read"]), "openai"));
        assert!(grants_secret_read(
            &scopes(&["secrets:read:open*"]),
            "openai"
        ));
        assert!(!grants_secret_read(
            &scopes(&["secrets:read:stripe"]),
            "openai"
        ));
        for broad in ["*", "secrets:*", "*:read", "secrets:re*"] {
            assert!(!grants_secret_read(&scopes(&[broad]), "openai"), "{broad}");
        }
        for touching in ["secrets:read", "secrets:read:x", "secrets:*"] {
            assert!(scope(touching).touches_secrets(), "{touching}");
        }
        for other in ["chat:write", "models:*", "GET /proxy/*", "*:read", "*"] {
            assert!(!scope(other).touches_secrets(), "{other}");
        }
    }

    #[test]
    fn covering_never_widens() {
        let covers = |mine: &str, theirs: &str| scope(mine).covers(&scope(theirs));
        assert!(covers("models:*", "models:gpt-*"));
        assert!(covers("models:gpt-*", "models:gpt-4o"));
        assert!(covers("*", "chat:write"));
        assert!(covers("GET /proxy/pay/*", "GET /proxy/pay/v1/*"));
        assert!(!covers("models:gpt-*", "models:*"));
        assert!(!covers("a*b", "a*"));
        assert!(!covers("GET /proxy/pay/*", "* /proxy/pay/*"));
        assert!(!covers("chat:read", "chat:*"));
        // Secret reads come only from scopes that grant them.
        assert!(covers("secrets:read", "secrets:read"));
        assert!(covers("secrets:read", "secrets:read:open*"));
        assert!(covers("secrets:read:open*", "secrets:read:openai"));
        assert!(!covers("secrets:read:openai", "secrets:read:open*"));
        assert!(!covers("secrets:read:open*", "secrets:read"));
        for broad in ["*", "secrets:*", "secrets:re*"] {
            assert!(!covers(broad, "secrets:read"), "{broad}");
            assert!(!covers(broad, "secrets:read:x"), "{broad}");
        }
    }

    #[test]
    fn list_deduplicates_and_bounds() {
        let items = vec!["a".to_owned(), "a".to_owned(), "b".to_owned()];
        assert_eq!(Scope::parse_list(&items).unwrap().len(), 2);
        let many: Vec<String> = (0..101).map(|i| format!("s{i}")).collect();
        assert!(Scope::parse_list(&many).is_err());
    }
}
