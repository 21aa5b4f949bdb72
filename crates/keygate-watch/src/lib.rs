//! keygate's alerts, as pure logic: the catalogue of events operators subscribe to
//! ([`EventType`], documented in `docs/events.md`), the events the audit log announces
//! ([`from_audit`]), their payloads ([`Event`]), the Standard Webhooks signature
//! ([`WebhookSecret`], [`sign`]), when a failed delivery is tried again ([`RetrySchedule`]),
//! the anomaly detectors over keys' traffic ([`detect`]), and bursts of failed authentications
//! per source ([`sources`]) and per presented key ([`dead_keys`]). The outbox lives in the store
//! and the one delivery task in the server.

pub mod dead_keys;
pub mod detect;
mod event;
pub mod from_audit;
mod retry;
mod signature;
pub mod sources;

pub use event::{Event, EventType, UnknownEventType};
pub use retry::RetrySchedule;
pub use signature::{SIGNATURE_VERSION, WebhookSecret, WebhookSecretError, sign, verify};
