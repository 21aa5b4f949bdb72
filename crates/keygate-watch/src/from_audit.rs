//! The events the audit log announces. Every admin change commits with its audit event, so
//! reading the log in order (after a cursor kept with the events it produced) turns each
//! change into its event exactly once, even when a node stops between the two.

use keygate_core::{AuditEvent, OrgId, ProjectId, Timestamp};
use serde_json::{Map, Value};

use crate::{Event, EventType};

/// The event an audit entry announces, if any: keys reported leaked, expiring soon or due for
/// rotation, successful suspensions, resumptions and revocations of keys, admin tokens
/// created, secrets due for rotation, KEK rotations, blocked sources, budgets past a
/// threshold or throttled, and spent quotas.
pub fn event_for(entry: &AuditEvent) -> Option<Event> {
    if entry.outcome != "success" {
        return None;
    }
    let (kind, target_field) = match entry.action.as_str() {
        "key.leak_reported" => (EventType::KeyLeaked, "key_id"),
        "key.expiring" => (EventType::KeyExpiring, "key_id"),
        "key.rotation_due" => (EventType::KeyRotationDue, "key_id"),
        "key.suspend" => (EventType::KeySuspended, "key_id"),
        "key.resume" => (EventType::KeyResumed, "key_id"),
        "key.revoke" => (EventType::KeyRevoked, "key_id"),
        "token.create" => (EventType::AdminTokenCreated, "token_id"),
        "secret.rotation_due" => (EventType::SecretRotationDue, "secret_id"),
        "kek.rotate" => (EventType::KekRotated, "kek_id"),
        "source.blocked" => (EventType::SourceBlocked, "source"),
        "budget.threshold" => (EventType::BudgetThreshold, "owner_id"),
        "budget.throttled" => (EventType::BudgetThrottled, "owner_id"),
        "quota.exhausted" => (EventType::QuotaExhausted, "owner_id"),
        "review.ready" => (EventType::ReviewReady, "org_id"),
        "credits.low" => (EventType::CreditsLow, "owner_id"),
        "credits.exhausted" => (EventType::CreditsExhausted, "owner_id"),
        "auth.failure_burst" => (EventType::AuthFailureBurst, "hint"),
        _ => return None,
    };
    // The audit details hold names, reasons and figures, never key material (the chain's rule).
    let mut data = match serde_json::from_str::<Value>(&entry.details) {
        Ok(Value::Object(details)) => details,
        _ => Map::new(),
    };
    if let Some(target) = &entry.target {
        data.insert(target_field.to_owned(), Value::from(target.clone()));
    }
    data.insert("actor".to_owned(), Value::from(entry.actor.clone()));
    data.insert("audit_seq".to_owned(), Value::from(entry.seq));
    let org_id = entry.org_id.as_deref().and_then(|o| OrgId::parse(o).ok());
    let project_id = entry
        .project_id
        .as_deref()
        .and_then(|p| ProjectId::parse(p).ok());
    if let Some(project) = &project_id {
        data.insert("project_id".to_owned(), Value::from(project.to_string()));
    }
    Some(Event::new(
        kind,
        Timestamp::from_millis(entry.ts.as_millis()),
        org_id,
        project_id,
        Value::Object(data),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str, outcome: &str) -> AuditEvent {
        AuditEvent {
            seq: 42,
            ts: Timestamp::from_millis(1_800_000_000_000),
            actor: "key_admin".into(),
            action: action.into(),
            outcome: outcome.into(),
            org_id: Some("org_default".into()),
            project_id: Some("proj_a".into()),
            target: Some("key_1".into()),
            details: r#"{"reason":"spend spike"}"#.into(),
            client_ip: Some("203.0.113.9".into()),
            request_id: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn a_suspension_becomes_its_event_with_the_audit_facts() {
        let event = event_for(&entry("key.suspend", "success")).unwrap();
        assert_eq!(event.kind, EventType::KeySuspended);
        assert_eq!(event.org_id.unwrap().as_str(), "org_default");
        assert_eq!(
            event.data,
            serde_json::json!({
                "reason": "spend spike",
                "key_id": "key_1",
                "actor": "key_admin",
                "audit_seq": 42,
                "project_id": "proj_a",
            })
        );
    }

    #[test]
    fn refusals_and_other_actions_announce_nothing() {
        assert!(event_for(&entry("key.suspend", "denied")).is_none());
        assert!(event_for(&entry("key.update", "success")).is_none());
        assert!(event_for(&entry("secret.reveal", "success")).is_none());
    }
}
