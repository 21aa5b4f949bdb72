//! The client's `anthropic-beta` header: the Anthropic betas a request asks for, passed on to
//! Anthropic deployments of Anthropic clients.
//!
//! Without `[gateway] anthropic_beta` the header goes on as the client sent it. With it, only
//! the listed betas may be asked for: a request naming another is refused, naming the beta,
//! rather than sent without it. A beta changes what a request means (a longer context, a
//! tool, a cache), and a request quietly served without one would answer a different
//! question; the client, told which beta is off, can drop it itself. Either way the header is
//! bounded in length and in the number of betas it names.

use std::borrow::Cow;
use std::collections::BTreeSet;

use crate::ConfigError;

/// Longest `anthropic-beta` header accepted.
pub const MAX_HEADER_BYTES: usize = 2048;
/// Most betas one request may name.
pub const MAX_BETAS: usize = 32;
/// Longest beta name: Anthropic's are well under this (`prompt-caching-2024-07-31`).
const MAX_NAME_BYTES: usize = 64;
/// Most betas the allow-list may hold.
const MAX_ALLOWED: usize = 256;

/// Why a request's `anthropic-beta` header was refused. Only a well-formed beta name is ever
/// repeated back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BetaError {
    #[error("anthropic-beta `{0}` is not enabled on this gateway")]
    NotAllowed(String),
    #[error("the anthropic-beta header holds something that is not a beta name")]
    Malformed,
    #[error("the anthropic-beta header is longer than {MAX_HEADER_BYTES} bytes")]
    TooLong,
    #[error("the anthropic-beta header names more than {MAX_BETAS} betas")]
    TooMany,
}

/// Which betas clients may ask for: any (`None`), or the listed ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BetaPolicy {
    allowed: Option<BTreeSet<String>>,
}

/// Letters, digits, `-`, `_` and `.`: the shape of every beta name Anthropic has published.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NAME_BYTES
        && text
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

impl BetaPolicy {
    /// Any beta passes, as sent.
    pub fn any() -> Self {
        Self::default()
    }

    /// The policy of `[gateway] anthropic_beta`: `None` lets any beta pass.
    pub fn resolve(listed: Option<&[String]>) -> Result<Self, ConfigError> {
        let Some(listed) = listed else {
            return Ok(Self::any());
        };
        const FIELD: &str = "gateway.anthropic_beta";
        if listed.len() > MAX_ALLOWED {
            return Err(ConfigError::invalid(
                FIELD,
                format!("at most {MAX_ALLOWED} betas"),
            ));
        }
        let mut allowed = BTreeSet::new();
        for name in listed {
            if !is_name(name) {
                return Err(ConfigError::invalid(
                    FIELD,
                    format!(
                        "beta names of 1-{MAX_NAME_BYTES} letters, digits, `-`, `_` or `.`, \
                         such as \"prompt-caching-2024-07-31\""
                    ),
                ));
            }
            allowed.insert(name.clone());
        }
        Ok(Self {
            allowed: Some(allowed),
        })
    }

    /// The header to send upstream for the client's `header`: `None` when it asks for no
    /// beta. Under an allow-list the betas are sent comma-separated, each once.
    pub fn pass_on<'a>(&self, header: Option<&'a str>) -> Result<Option<Cow<'a, str>>, BetaError> {
        let Some(header) = header else {
            return Ok(None);
        };
        if header.len() > MAX_HEADER_BYTES {
            return Err(BetaError::TooLong);
        }
        let names = header
            .split(',')
            .map(|name| name.trim_matches([' ', '\t']))
            .filter(|name| !name.is_empty());
        if names.clone().count() > MAX_BETAS {
            return Err(BetaError::TooMany);
        }
        let Some(allowed) = &self.allowed else {
            return Ok((!header.trim().is_empty()).then_some(Cow::Borrowed(header)));
        };
        let mut passed: Vec<&str> = Vec::new();
        for name in names {
            if !is_name(name) {
                return Err(BetaError::Malformed);
            }
            if !allowed.contains(name) {
                return Err(BetaError::NotAllowed(name.to_owned()));
            }
            if !passed.contains(&name) {
                passed.push(name);
            }
        }
        Ok((!passed.is_empty()).then(|| Cow::Owned(passed.join(","))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(names: &[&str]) -> BetaPolicy {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        BetaPolicy::resolve(Some(&names)).unwrap()
    }

    #[test]
    fn without_a_list_the_header_goes_on_as_sent() {
        let any = BetaPolicy::resolve(None).unwrap();
        assert_eq!(any, BetaPolicy::any());
        assert_eq!(
            any.pass_on(Some("a-1, b-2")).unwrap().as_deref(),
            Some("a-1, b-2")
        );
        assert_eq!(any.pass_on(None).unwrap(), None);
        assert_eq!(any.pass_on(Some(" ")).unwrap(), None);
        assert_eq!(
            any.pass_on(Some(&"x".repeat(MAX_HEADER_BYTES + 1))),
            Err(BetaError::TooLong)
        );
        let many = vec!["b"; MAX_BETAS + 1].join(",");
        assert_eq!(any.pass_on(Some(&many)), Err(BetaError::TooMany));
        let enough = vec!["b"; MAX_BETAS].join(",");
        assert!(any.pass_on(Some(&enough)).is_ok());
    }

    #[test]
    fn a_list_passes_its_betas_and_refuses_others_by_name() {
        let policy = listed(&[
            "prompt-caching-2024-07-31",
            "token-efficient-tools-2025-02-19",
        ]);
        assert_eq!(
            policy
                .pass_on(Some(
                    "prompt-caching-2024-07-31 ,token-efficient-tools-2025-02-19,,\
                     prompt-caching-2024-07-31"
                ))
                .unwrap()
                .as_deref(),
            Some("prompt-caching-2024-07-31,token-efficient-tools-2025-02-19")
        );
        assert_eq!(
            policy.pass_on(Some("prompt-caching-2024-07-31, context-1m-2025-08-07")),
            Err(BetaError::NotAllowed("context-1m-2025-08-07".to_owned()))
        );
        assert_eq!(
            policy.pass_on(Some("Prompt-Caching-2024-07-31")),
            Err(BetaError::NotAllowed(
                "Prompt-Caching-2024-07-31".to_owned()
            )),
            "names match exactly, as Anthropic reads them"
        );
        assert_eq!(
            policy.pass_on(Some("prompt-caching-2024-07-31;x=<script>")),
            Err(BetaError::Malformed),
            "what is not a name is not repeated back"
        );
        assert_eq!(policy.pass_on(Some(" , ")).unwrap(), None);
        assert_eq!(
            listed(&[]).pass_on(Some("prompt-caching-2024-07-31")),
            Err(BetaError::NotAllowed(
                "prompt-caching-2024-07-31".to_owned()
            )),
            "an empty list allows no beta"
        );
    }

    #[test]
    fn the_list_holds_beta_names_only() {
        for bad in ["", "a b", "a,b", &"x".repeat(65)] {
            let err = BetaPolicy::resolve(Some(&[bad.to_owned()])).unwrap_err();
            assert!(
                err.to_string().starts_with("gateway.anthropic_beta:"),
                "{err}"
            );
        }
    }
}
