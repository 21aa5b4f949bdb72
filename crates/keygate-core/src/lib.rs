//! Domain types and rules of keygate: the API key format, identifiers, scopes, roles, key
//! records and their verification rules, and the hash-chained audit log.
//!
//! Architecture invariant: this crate does no I/O. It reads the clock only through [`Clock`]
//! and randomness only through the OS CSPRNG when a key is generated.

pub mod audit;
mod base62;
pub mod clock;
pub mod error;
pub mod ids;
pub mod key;
pub mod limits;
pub mod publishable;
pub mod record;
pub mod role;
pub mod scope;
pub mod time;
pub mod usage;

pub use audit::{AuditAction, AuditDraft, AuditEvent, ChainBreak, ChainHead, Outcome};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::ValidationError;
pub use ids::{AnomalyId, DeliveryId, EventId, KeyId, OrgId, ProjectId, SecretId, WebhookId};
pub use key::{ApiKey, KeyEnv, KeyFormatError, KeyHint};
pub use limits::{Budget, KeyLimits, KeyThrottle, Per, Percents, Quota, RequestRate, Window};
pub use publishable::{AllowedOrigins, Origin};
pub use record::{
    KeyKind, KeyPatch, KeyRecord, KeyRejection, KeySecret, KeySpec, KeyStatus, Metadata,
};
pub use role::{Binding, Permission, Principal, Role};
pub use scope::{Scope, is_write};
pub use time::Timestamp;
pub use usage::{MicroUsd, TokenCounts, TokenSource, UsageRecord};
