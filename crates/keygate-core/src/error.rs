//! Validation errors for values that callers supply.

/// A field that fails validation: names the field and says what is expected. Never contains
/// the offending value, which may be secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {expected}")]
pub struct ValidationError {
    pub field: &'static str,
    pub expected: &'static str,
}

impl ValidationError {
    pub const fn new(field: &'static str, expected: &'static str) -> Self {
        Self { field, expected }
    }
}
