//! Typed identifiers. Each is a prefix plus a UUIDv7 in hex, so ids sort by creation time and
//! serve as stable pagination cursors.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// Checks the shape of an id received from a caller or the store.
            pub fn parse(text: &str) -> Result<Self, ValidationError> {
                let valid = text.len() <= 64
                    && text.starts_with($prefix)
                    && text.len() > $prefix.len()
                    && text[$prefix.len()..]
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
                if valid {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(ValidationError::new(
                        $field,
                        concat!("an id of the form ", $prefix, "…"),
                    ))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

typed_id!(
    /// The stable id of an API key or admin token; it survives rotation.
    KeyId, "key_", "key_id"
);
typed_id!(
    /// A project: keys belong to one.
    ProjectId, "proj_", "project_id"
);
typed_id!(
    /// An organisation: projects belong to one.
    OrgId, "org_", "org_id"
);
typed_id!(
    /// An upstream secret kept in the vault; its versions share it.
    SecretId, "sec_", "secret_id"
);
typed_id!(
    /// A webhook endpoint: where alerts are delivered.
    WebhookId, "wh_", "webhook_id"
);
typed_id!(
    /// An event for webhooks; also its deliveries' `webhook-id`, the same on every retry.
    EventId, "msg_", "event_id"
);
typed_id!(
    /// One event's delivery to one endpoint, with its attempts.
    DeliveryId, "whd_", "delivery_id"
);
typed_id!(
    /// Something an anomaly detector found.
    AnomalyId, "anom_", "anomaly_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort_by_time() {
        let a = KeyId::generate();
        let b = KeyId::generate();
        assert!(a < b);
        assert_eq!(KeyId::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn rejects_wrong_prefix_and_characters() {
        assert!(KeyId::parse("proj_abc").is_err());
        assert!(KeyId::parse("key_").is_err());
        assert!(KeyId::parse("key_a b").is_err());
        assert!(ProjectId::parse(&format!("proj_{}", "a".repeat(100))).is_err());
        assert!(OrgId::parse("org_default").is_ok());
    }
}
