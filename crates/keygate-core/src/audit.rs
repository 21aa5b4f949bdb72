//! The audit log: append-only events, each holding the SHA-256 of its canonical encoding and
//! of the event before it, so that a changed, removed or reordered entry breaks the chain.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Timestamp;

/// What happened. Stored as its string form so the chain stays verifiable across versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    OwnerBootstrap,
    ProjectCreate,
    ProjectUpdate,
    KeyCreate,
    KeyUpdate,
    KeyRotate,
    KeyRevoke,
    KeySuspend,
    KeyResume,
    KeyThrottle,
    KeyLeakReported,
    KeyExpiring,
    KeyRotationDue,
    KeyDelete,
    TokenCreate,
    TokenRevoke,
    SecretPut,
    SecretRotate,
    SecretPromote,
    SecretDelete,
    SecretReveal,
    SecretRead,
    SecretUnreadable,
    KekRotate,
    /// Every token signing key withdrawn and a new one made (one may have leaked).
    SigningKeysReplace,
    SecretRotationDue,
    AdminAuthFailed,
    AccessDenied,
    KeyInQuery,
    ModelGroupPut,
    ModelGroupDelete,
    WebhookCreate,
    WebhookUpdate,
    WebhookDelete,
    WebhookReplay,
    AnomalyAcknowledge,
    SourceBlocked,
    BudgetThreshold,
    BudgetThrottled,
    QuotaExhausted,
    CreditsAdd,
    ReviewReady,
    CreditsLow,
    CreditsExhausted,
    AuthFailureBurst,
    ConsoleSignIn,
    ConsoleSignOut,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OwnerBootstrap => "owner.bootstrap",
            Self::ProjectCreate => "project.create",
            Self::ProjectUpdate => "project.update",
            Self::KeyCreate => "key.create",
            Self::KeyUpdate => "key.update",
            Self::KeyRotate => "key.rotate",
            Self::KeyRevoke => "key.revoke",
            Self::KeySuspend => "key.suspend",
            Self::KeyResume => "key.resume",
            Self::KeyThrottle => "key.throttle",
            Self::KeyLeakReported => "key.leak_reported",
            Self::KeyExpiring => "key.expiring",
            Self::KeyRotationDue => "key.rotation_due",
            Self::KeyDelete => "key.delete",
            Self::TokenCreate => "token.create",
            Self::TokenRevoke => "token.revoke",
            Self::SecretPut => "secret.put",
            Self::SecretRotate => "secret.rotate",
            Self::SecretPromote => "secret.promote",
            Self::SecretDelete => "secret.delete",
            Self::SecretReveal => "secret.reveal",
            Self::SecretRead => "secret.read",
            Self::SecretUnreadable => "secret.unreadable",
            Self::KekRotate => "kek.rotate",
            Self::SigningKeysReplace => "tokens.signing_keys_replace",
            Self::SecretRotationDue => "secret.rotation_due",
            Self::AdminAuthFailed => "admin.auth_failed",
            Self::AccessDenied => "access.denied",
            Self::KeyInQuery => "key.in_query",
            Self::ModelGroupPut => "model_group.put",
            Self::ModelGroupDelete => "model_group.delete",
            Self::WebhookCreate => "webhook.create",
            Self::WebhookUpdate => "webhook.update",
            Self::WebhookDelete => "webhook.delete",
            Self::WebhookReplay => "webhook.replay",
            Self::AnomalyAcknowledge => "anomaly.acknowledge",
            Self::SourceBlocked => "source.blocked",
            Self::BudgetThreshold => "budget.threshold",
            Self::BudgetThrottled => "budget.throttled",
            Self::QuotaExhausted => "quota.exhausted",
            Self::CreditsAdd => "credits.add",
            Self::ReviewReady => "review.ready",
            Self::CreditsLow => "credits.low",
            Self::CreditsExhausted => "credits.exhausted",
            Self::AuthFailureBurst => "auth.failure_burst",
            Self::ConsoleSignIn => "console.sign_in",
            Self::ConsoleSignOut => "console.sign_out",
        }
    }
}

/// How the action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
        }
    }
}

/// An event before the store gives it a sequence number and a place in the chain.
/// `details` is JSON that never holds key material.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditDraft {
    pub actor: String,
    pub action: AuditAction,
    pub outcome: Outcome,
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    pub target: Option<String>,
    pub details: serde_json::Value,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
}

impl AuditDraft {
    pub fn new(actor: impl Into<String>, action: AuditAction) -> Self {
        Self {
            actor: actor.into(),
            action,
            outcome: Outcome::Success,
            org_id: None,
            project_id: None,
            target: None,
            details: serde_json::Value::Object(serde_json::Map::new()),
            client_ip: None,
            request_id: None,
        }
    }

    /// Seals the draft as entry `seq` after `prev_hash`.
    pub fn seal(&self, seq: i64, ts: Timestamp, prev_hash: [u8; 32]) -> AuditEvent {
        let mut event = AuditEvent {
            seq,
            ts,
            actor: self.actor.clone(),
            action: self.action.as_str().to_owned(),
            outcome: self.outcome.as_str().to_owned(),
            org_id: self.org_id.clone(),
            project_id: self.project_id.clone(),
            target: self.target.clone(),
            details: self.details.to_string(),
            client_ip: self.client_ip.clone(),
            request_id: self.request_id.clone(),
            prev_hash: hex::encode(prev_hash),
            hash: String::new(),
        };
        event.hash = hex::encode(event.compute_hash());
        event
    }
}

/// A stored audit event. Text fields are kept exactly as hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub ts: Timestamp,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    pub target: Option<String>,
    /// JSON text, hashed byte for byte.
    pub details: String,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

const DOMAIN: &[u8] = b"keygate-audit-v1";

impl AuditEvent {
    /// SHA-256 over a length-prefixed encoding of every field and the previous hash.
    pub fn compute_hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        hasher.update(self.seq.to_be_bytes());
        hasher.update(self.ts.as_millis().to_be_bytes());
        for field in [
            Some(self.actor.as_str()),
            Some(self.action.as_str()),
            Some(self.outcome.as_str()),
            self.org_id.as_deref(),
            self.project_id.as_deref(),
            self.target.as_deref(),
            Some(self.details.as_str()),
            self.client_ip.as_deref(),
            self.request_id.as_deref(),
            Some(self.prev_hash.as_str()),
        ] {
            match field {
                // A distinct marker keeps `None` apart from `Some("")`.
                None => hasher.update(u32::MAX.to_be_bytes()),
                Some(text) => {
                    let len = u32::try_from(text.len()).unwrap_or(u32::MAX - 1);
                    hasher.update(len.to_be_bytes());
                    hasher.update(text.as_bytes());
                }
            }
        }
        hasher.finalize().into()
    }
}

/// The newest entry of the chain, kept beside it so that removing the tail is detected too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

impl ChainHead {
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: hex::encode([0u8; 32]),
        }
    }

    pub fn hash_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        if hex::decode_to_slice(&self.hash, &mut out).is_err() {
            // A corrupt head can never match a real chain; all-ones marks it.
            out = [0xFF; 32];
        }
        out
    }
}

/// Where and how the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ChainBreak {
    #[error("entry {found} follows entry {after}: entries were removed or reordered")]
    Gap { after: i64, found: i64 },
    #[error("entry {seq} does not link to the entry before it")]
    Unlinked { seq: i64 },
    #[error("entry {seq} was changed after it was written")]
    Altered { seq: i64 },
    #[error("the log ends at entry {last} but its head says {head}: entries were removed")]
    Truncated { last: i64, head: i64 },
    #[error(
        "entry {seq} differs from the anchor saved earlier: the log was rewritten from there on"
    )]
    AnchorMismatch { seq: i64 },
    #[error("the log ends at entry {last}, before the anchor saved earlier at entry {anchor}")]
    AnchorMissing { last: i64, anchor: i64 },
}

impl std::str::FromStr for ChainHead {
    type Err = crate::ValidationError;

    /// Parses an anchor written as `SEQ:HASH`, as `keygate audit verify` prints it.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "SEQ:HASH, e.g. 42:9f86d0…, as printed by `keygate audit verify`";
        let (seq, hash) = text
            .split_once(':')
            .ok_or(crate::ValidationError::new("anchor", EXPECTED))?;
        let seq: i64 = seq
            .parse()
            .map_err(|_| crate::ValidationError::new("anchor", EXPECTED))?;
        let hex_ok = hash.len() == 64 && hash.bytes().all(|c| c.is_ascii_hexdigit());
        if seq < 1 || !hex_ok {
            return Err(crate::ValidationError::new("anchor", EXPECTED));
        }
        Ok(Self {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

impl std::fmt::Display for ChainHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// Checks a chain one entry at a time, so it can run over pages of any size.
///
/// The chain alone cannot reveal a rewrite by someone who recomputes every hash and the head;
/// an anchor (an earlier head saved outside the database) can.
#[derive(Debug)]
pub struct ChainVerifier {
    last: ChainHead,
    checked: u64,
    anchor: Option<ChainHead>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            last: ChainHead::genesis(),
            checked: 0,
            anchor: None,
        }
    }
}

impl ChainVerifier {
    /// A verifier that checks the entries after `last`, an entry already verified.
    pub fn continuing(last: ChainHead) -> Self {
        Self {
            last,
            ..Self::default()
        }
    }

    /// A verifier that also checks the chain still holds `anchor`.
    pub fn with_anchor(anchor: ChainHead) -> Self {
        Self {
            anchor: Some(anchor),
            ..Self::default()
        }
    }

    pub fn push(&mut self, event: &AuditEvent) -> Result<(), ChainBreak> {
        if event.seq != self.last.seq + 1 {
            return Err(ChainBreak::Gap {
                after: self.last.seq,
                found: event.seq,
            });
        }
        if event.prev_hash != self.last.hash {
            return Err(ChainBreak::Unlinked { seq: event.seq });
        }
        if hex::encode(event.compute_hash()) != event.hash {
            return Err(ChainBreak::Altered { seq: event.seq });
        }
        if let Some(anchor) = &self.anchor
            && anchor.seq == event.seq
            && anchor.hash != event.hash
        {
            return Err(ChainBreak::AnchorMismatch { seq: event.seq });
        }
        self.last = ChainHead {
            seq: event.seq,
            hash: event.hash.clone(),
        };
        self.checked += 1;
        Ok(())
    }

    /// Ends the check against the stored head; returns how many entries were verified.
    pub fn finish(self, head: &ChainHead) -> Result<(u64, ChainHead), ChainBreak> {
        if let Some(anchor) = &self.anchor
            && anchor.seq > self.last.seq
        {
            return Err(ChainBreak::AnchorMissing {
                last: self.last.seq,
                anchor: anchor.seq,
            });
        }
        if self.last.seq != head.seq {
            return Err(ChainBreak::Truncated {
                last: self.last.seq,
                head: head.seq,
            });
        }
        if self.last.hash != head.hash {
            return Err(ChainBreak::Altered { seq: head.seq });
        }
        Ok((self.checked, self.last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> (Vec<AuditEvent>, ChainHead) {
        let mut head = ChainHead::genesis();
        let mut events = Vec::new();
        for seq in 1..=n {
            let mut draft = AuditDraft::new("key_test", AuditAction::KeyCreate);
            draft.target = Some(format!("key_{seq}"));
            let event = draft.seal(seq, Timestamp::from_millis(seq * 1000), head.hash_bytes());
            head = ChainHead {
                seq,
                hash: event.hash.clone(),
            };
            events.push(event);
        }
        (events, head)
    }

    fn verify(events: &[AuditEvent], head: &ChainHead) -> Result<u64, ChainBreak> {
        let mut verifier = ChainVerifier::default();
        for event in events {
            verifier.push(event)?;
        }
        verifier.finish(head).map(|(n, _)| n)
    }

    #[test]
    fn intact_chain_verifies() {
        let (events, head) = chain(5);
        assert_eq!(verify(&events, &head), Ok(5));
        assert_eq!(verify(&[], &ChainHead::genesis()), Ok(0));
    }

    #[test]
    fn changed_field_is_detected() {
        let (mut events, head) = chain(5);
        events[2].details = r#"{"x":1}"#.into();
        assert_eq!(verify(&events, &head), Err(ChainBreak::Altered { seq: 3 }));
    }

    #[test]
    fn none_differs_from_empty() {
        let (mut events, head) = chain(2);
        events[0].client_ip = Some(String::new());
        assert_eq!(verify(&events, &head), Err(ChainBreak::Altered { seq: 1 }));
    }

    #[test]
    fn removed_entry_is_detected() {
        let (mut events, head) = chain(5);
        events.remove(1);
        assert_eq!(
            verify(&events, &head),
            Err(ChainBreak::Gap { after: 1, found: 3 })
        );
    }

    #[test]
    fn removed_tail_is_detected() {
        let (mut events, head) = chain(5);
        events.pop();
        assert_eq!(
            verify(&events, &head),
            Err(ChainBreak::Truncated { last: 4, head: 5 })
        );
    }

    #[test]
    fn a_recomputed_chain_is_caught_by_an_anchor() {
        let (events, head) = chain(5);
        let anchor: ChainHead = format!("3:{}", events[2].hash).parse().unwrap();
        let mut verifier = ChainVerifier::with_anchor(anchor.clone());
        for event in &events {
            verifier.push(event).unwrap();
        }
        assert!(verifier.finish(&head).is_ok());

        // Rewrite entry 3 and every hash after it, head included: the chain checks out,
        // the anchor does not.
        let mut forged = events[..2].to_vec();
        let mut prev = ChainHead {
            seq: 2,
            hash: events[1].hash.clone(),
        };
        for seq in 3..=5 {
            let mut draft = AuditDraft::new("attacker", AuditAction::KeyCreate);
            draft.target = Some(format!("key_{seq}"));
            let event = draft.seal(seq, Timestamp::from_millis(seq * 1000), prev.hash_bytes());
            prev = ChainHead {
                seq,
                hash: event.hash.clone(),
            };
            forged.push(event);
        }
        assert_eq!(verify(&forged, &prev), Ok(5));
        let mut verifier = ChainVerifier::with_anchor(anchor);
        let result = forged.iter().try_for_each(|e| verifier.push(e));
        assert_eq!(result, Err(ChainBreak::AnchorMismatch { seq: 3 }));

        let beyond: ChainHead = format!("9:{}", events[2].hash).parse().unwrap();
        let mut verifier = ChainVerifier::with_anchor(beyond);
        events.iter().for_each(|e| verifier.push(e).unwrap());
        assert_eq!(
            verifier.finish(&head),
            Err(ChainBreak::AnchorMissing { last: 5, anchor: 9 })
        );
    }

    #[test]
    fn anchors_parse_strictly() {
        assert!("0:abc".parse::<ChainHead>().is_err());
        assert!("x:00".parse::<ChainHead>().is_err());
        let hash = "A".repeat(64);
        let anchor: ChainHead = format!("7:{hash}").parse().unwrap();
        assert_eq!(anchor.to_string(), format!("7:{}", "a".repeat(64)));
    }

    #[test]
    fn reordered_entries_are_detected() {
        let (mut events, head) = chain(5);
        events.swap(1, 2);
        // Renumbering to hide the swap breaks the links instead.
        events[1].seq = 2;
        events[2].seq = 3;
        assert!(matches!(
            verify(&events, &head),
            Err(ChainBreak::Unlinked { seq: 2 } | ChainBreak::Altered { seq: 2 })
        ));
    }
}
