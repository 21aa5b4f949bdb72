//! A token's scopes: narrowed from what its parent holds, never widened, and written in the
//! `scope` claim.
//!
//! The claim is space-delimited (RFC 8693 §4.2, RFC 9068), while a keygate scope of the HTTP
//! form holds one space (`GET /proxy/pay/*`). In the claim, a part that begins with `/` is the
//! path of the method before it, so both forms read back exactly; a scope that could not
//! (another space, or a leading `/`) is refused for tokens rather than split.

use keygate_core::Scope;

/// A scope a token may not carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Asked for, but not covered by any of the parent's scopes.
    #[error("the scope `{0}` is wider than what the credential holds")]
    Wider(String),
    /// Cannot be written in a space-delimited `scope` claim.
    #[error("the scope `{0}` cannot be carried by a token")]
    NotCarried(String),
    #[error("the scope list is not valid: {0}")]
    Invalid(String),
}

/// The scopes of a token made from a credential holding `held`: all of them when nothing is
/// asked, else the ones asked, each of which some held scope must cover.
pub fn narrow(held: &[Scope], asked: Option<&[Scope]>) -> Result<Vec<Scope>, ScopeError> {
    let Some(asked) = asked else {
        return Ok(held.to_vec());
    };
    for scope in asked {
        if !held.iter().any(|h| h.covers(scope)) {
            return Err(ScopeError::Wider(scope.to_string()));
        }
    }
    Ok(asked.to_vec())
}

/// Writes scopes for the `scope` claim.
pub fn encode(scopes: &[Scope]) -> Result<String, ScopeError> {
    let mut out = String::new();
    for scope in scopes {
        let text = scope.as_str();
        let carried = !text.starts_with('/')
            && match text.split_once(' ') {
                None => true,
                Some((method, path)) => {
                    !method.is_empty() && path.starts_with('/') && !path.contains(' ')
                }
            };
        if !carried {
            return Err(ScopeError::NotCarried(text.to_owned()));
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(text);
    }
    Ok(out)
}

/// Reads a `scope` claim or parameter back into scopes.
pub fn decode(text: &str) -> Result<Vec<Scope>, ScopeError> {
    let mut items: Vec<String> = Vec::new();
    for part in text.split(' ').filter(|p| !p.is_empty()) {
        match items.last_mut() {
            Some(last) if part.starts_with('/') && !last.contains(' ') => {
                last.push(' ');
                last.push_str(part);
            }
            _ if part.starts_with('/') => {
                return Err(ScopeError::Invalid(format!("`{part}` follows no method")));
            }
            _ => items.push(part.to_owned()),
        }
    }
    Scope::parse_list(&items).map_err(|err| ScopeError::Invalid(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[&str]) -> Vec<Scope> {
        list.iter().map(|s| Scope::parse(s).unwrap()).collect()
    }

    #[test]
    fn narrowing_keeps_or_shrinks_and_never_widens() {
        let held = scopes(&["models:gpt-*", "GET /proxy/pay/*"]);
        assert_eq!(narrow(&held, None).unwrap(), held);
        let asked = scopes(&["models:gpt-4o"]);
        assert_eq!(narrow(&held, Some(&asked)).unwrap(), asked);
        for wider in [
            "models:*",
            "* /proxy/pay/*",
            "POST /proxy/pay/x",
            "secrets:read",
        ] {
            let asked = scopes(&[wider]);
            assert_eq!(
                narrow(&held, Some(&asked)),
                Err(ScopeError::Wider(wider.to_owned()))
            );
        }
    }

    #[test]
    fn the_claim_reads_back_exactly() {
        let list = scopes(&["models:*", "GET /proxy/pay/*", "docs:read", "* /proxy/x/*"]);
        let text = encode(&list).unwrap();
        assert_eq!(text, "models:* GET /proxy/pay/* docs:read * /proxy/x/*");
        assert_eq!(decode(&text).unwrap(), list);
        assert_eq!(decode("").unwrap(), Vec::<Scope>::new());
    }

    #[test]
    fn scopes_a_claim_cannot_carry_are_refused() {
        for odd in ["/lead", "a b", "GET /x y"] {
            assert!(matches!(
                encode(&scopes(&[odd])),
                Err(ScopeError::NotCarried(_))
            ));
        }
        assert!(decode("/proxy/x").is_err());
    }
}
