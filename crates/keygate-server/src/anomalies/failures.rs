//! Failed authentications on the gateway and proxy routes: counted per source (a burst blocks
//! the source for a while, `429 source_blocked`) and per presented key (a burst of one refused
//! key — a deployment left with a dead key, or a leaked one being tried — is announced as
//! `auth.failure_burst`). Both are audited off the request path, by the anomaly task.

use std::net::IpAddr;

use keygate_core::{ApiKey, AuditAction, AuditDraft, KeyRecord, KeyRejection};

use super::{Anomalies, Work};

/// A refused key presented in a burst: its hint (never the key), why it was refused, and the
/// key, when it is one of keygate's.
#[derive(Debug)]
pub(super) struct DeadKeyBurst {
    pub(super) hint: String,
    pub(super) failures: u32,
    pub(super) code: &'static str,
    pub(super) key: Option<KeyRecord>,
    pub(super) source: Option<IpAddr>,
}

impl Anomalies {
    /// How long `ip`'s source stays refused for its failed authentications, if it is.
    pub fn source_blocked(&self, ip: Option<IpAddr>) -> Option<std::time::Duration> {
        self.sources.blocked(ip?, self.keygate.clock().now())
    }

    /// Counts a failed authentication from `ip` with the text `presented`, refused for
    /// `rejection` (`key` when it is one of keygate's). A source that crosses its threshold is
    /// blocked at once; a well-formed key presented in a burst is announced. The audit events
    /// are written by the anomaly task, off the request path.
    pub fn authentication_failed(
        &self,
        ip: Option<IpAddr>,
        presented: &str,
        rejection: KeyRejection,
        key: Option<&KeyRecord>,
    ) {
        let now = self.keygate.clock().now();
        // Only a well-formed key has a hint: any other text is a source's business.
        let hint = ApiKey::parse(presented)
            .ok()
            .map(|parsed| parsed.hint().as_str().to_owned());
        if self.cluster.is_some() {
            // Counted for the whole cluster too, by the anomaly task.
            self.failures
                .add(ip, hint.as_deref(), rejection.code(), key, now);
        }
        if let Some(hint) = hint
            && let Some(failures) = self.dead_keys.failed(&hint, now)
        {
            tracing::warn!(
                hint = %hint,
                failures,
                code = rejection.code(),
                "a refused key is presented in a burst"
            );
            self.watcher
                .queue_work(Work::DeadKey(Box::new(DeadKeyBurst {
                    hint,
                    failures,
                    code: rejection.code(),
                    key: key.cloned(),
                    source: ip,
                })));
        }
        let Some(ip) = ip else { return };
        let Some(block) = self.sources.failed(ip, now) else {
            return;
        };
        self.keygate.metrics().watch.source_blocked();
        tracing::warn!(
            source = %block.source,
            failures = block.failures,
            "a source is blocked after a burst of failed authentications"
        );
        self.watcher.queue_work(Work::Blocked(block));
    }

    /// Audits a block this node started and tells the other nodes, once for the cluster.
    pub(super) async fn audit_block(&self, block: keygate_watch::sources::Block) {
        if !self.announce_block(&block).await {
            return;
        }
        let mut audit = AuditDraft::new("system", AuditAction::SourceBlocked);
        audit.target = Some(block.source.to_string());
        audit.details = serde_json::json!({
            "failures_this_minute": block.failures,
            "until": block.until.to_rfc3339(),
        });
        self.audit(&audit, "a source block").await;
    }

    pub(super) async fn audit_dead_key(&self, burst: Box<DeadKeyBurst>) {
        if !self.claimed_burst(&burst.hint).await {
            return;
        }
        let mut audit = AuditDraft::new("system", AuditAction::AuthFailureBurst);
        audit.target = Some(burst.hint);
        let mut details = serde_json::json!({
            "failures_this_minute": burst.failures,
            "code": burst.code,
            "last_source": burst.source.map(|ip| ip.to_string()),
        });
        // A key of keygate's (revoked, expired, suspended…): its organisation hears of it.
        if let Some(key) = &burst.key {
            audit.org_id = Some(key.org_id.to_string());
            audit.project_id = key.project_id.as_ref().map(ToString::to_string);
            if let Some(details) = details.as_object_mut() {
                details.insert("key_id".into(), key.id.to_string().into());
                details.insert("key_name".into(), key.name.clone().into());
            }
        }
        audit.details = details;
        self.audit(&audit, "a burst of failures with one key").await;
    }

    async fn audit(&self, audit: &AuditDraft, what: &str) {
        if let Err(err) = self
            .keygate
            .store()
            .append_audit(audit, self.keygate.clock().now())
            .await
        {
            tracing::warn!(error = %err, "{what} could not be audited");
        }
    }
}
