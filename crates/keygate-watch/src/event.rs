//! The event catalogue and the payload every delivery carries.

use keygate_core::{EventId, OrgId, ProjectId, Timestamp};
use serde::Serialize;

/// Every kind of event a webhook endpoint can subscribe to. The string forms are a public
/// contract (receivers switch on them): add kinds, never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    AuditVerificationFailed,
    AnomalyDetected,
    AnomalyActed,
    KeyLeaked,
    KeyExpiring,
    KeyRotationDue,
    KeySuspended,
    KeyResumed,
    KeyRevoked,
    AdminTokenCreated,
    SecretRotationDue,
    KekRotated,
    SourceBlocked,
    BudgetThreshold,
    BudgetThrottled,
    QuotaExhausted,
    ReviewReady,
    CreditsLow,
    CreditsExhausted,
    AuthFailureBurst,
    /// Sent on demand to one endpoint, to check that it receives and verifies deliveries.
    WebhookTest,
}

/// A name that is not in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type (see docs/events.md)")]
pub struct UnknownEventType;

impl EventType {
    pub const ALL: [EventType; 21] = [
        Self::AuditVerificationFailed,
        Self::AnomalyDetected,
        Self::AnomalyActed,
        Self::KeyLeaked,
        Self::KeyExpiring,
        Self::KeyRotationDue,
        Self::KeySuspended,
        Self::KeyResumed,
        Self::KeyRevoked,
        Self::AdminTokenCreated,
        Self::SecretRotationDue,
        Self::KekRotated,
        Self::SourceBlocked,
        Self::BudgetThreshold,
        Self::BudgetThrottled,
        Self::QuotaExhausted,
        Self::ReviewReady,
        Self::CreditsLow,
        Self::CreditsExhausted,
        Self::AuthFailureBurst,
        Self::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuditVerificationFailed => "audit.verification_failed",
            Self::AnomalyDetected => "anomaly.detected",
            Self::AnomalyActed => "anomaly.acted",
            Self::KeyLeaked => "key.leaked",
            Self::KeyExpiring => "key.expiring",
            Self::KeyRotationDue => "key.rotation_due",
            Self::KeySuspended => "key.suspended",
            Self::KeyResumed => "key.resumed",
            Self::KeyRevoked => "key.revoked",
            Self::AdminTokenCreated => "admin_token.created",
            Self::SecretRotationDue => "secret.rotation_due",
            Self::KekRotated => "kek.rotated",
            Self::SourceBlocked => "source.blocked",
            Self::BudgetThreshold => "budget.threshold",
            Self::BudgetThrottled => "budget.throttled",
            Self::QuotaExhausted => "quota.exhausted",
            Self::ReviewReady => "review.ready",
            Self::CreditsLow => "credits.low",
            Self::CreditsExhausted => "credits.exhausted",
            Self::AuthFailureBurst => "auth.failure_burst",
            Self::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(text: &str) -> Result<Self, UnknownEventType> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or(UnknownEventType)
    }
}

/// One event: what happened, where, and its facts (`data`: ids, names, figures and reasons —
/// never a secret, a key or a prompt).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub kind: EventType,
    pub at: Timestamp,
    /// The organisation whose endpoints hear of it; `None` for the store's own events (a KEK
    /// rotation), which every organisation's endpoints hear.
    pub org_id: Option<OrgId>,
    /// The project it concerns; `None` for the organisation's own events (a KEK rotation).
    pub project_id: Option<ProjectId>,
    pub data: serde_json::Value,
}

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    data: &'a serde_json::Value,
}

impl Event {
    pub fn new(
        kind: EventType,
        at: Timestamp,
        org_id: Option<OrgId>,
        project_id: Option<ProjectId>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            id: EventId::generate(),
            kind,
            at,
            org_id,
            project_id,
            data,
        }
    }

    /// The body every endpoint receives, in the Standard Webhooks shape:
    /// `{"type", "timestamp", "data"}`. Written once, when the event is stored, so that every
    /// attempt signs and sends the same bytes.
    pub fn payload(&self) -> String {
        serde_json::to_string(&Payload {
            kind: self.kind.as_str(),
            timestamp: self.at.to_rfc3339(),
            data: &self.data,
        })
        .unwrap_or_else(|_| "{}".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Ok(kind));
        }
        assert_eq!(EventType::parse("key.*"), Err(UnknownEventType));
    }

    /// docs/events.md documents every event, each under its own heading.
    #[test]
    fn every_event_is_documented() {
        let doc = include_str!("../../../docs/events.md");
        for kind in EventType::ALL {
            let heading = format!("### `{}`", kind.as_str());
            assert!(doc.contains(&heading), "docs/events.md lacks {heading}");
        }
    }

    #[test]
    fn payload_has_the_standard_shape() {
        let event = Event::new(
            EventType::KeyRevoked,
            Timestamp::from_millis(1_800_000_000_000),
            Some(OrgId::parse("org_default").unwrap()),
            None,
            serde_json::json!({"key_id": "key_1"}),
        );
        let payload: serde_json::Value = serde_json::from_str(&event.payload()).unwrap();
        assert_eq!(
            payload,
            serde_json::json!({
                "type": "key.revoked",
                "timestamp": "2027-01-15T08:00:00Z",
                "data": {"key_id": "key_1"},
            })
        );
    }
}
