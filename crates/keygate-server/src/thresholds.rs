//! Budget thresholds and spent quotas, announced once per window; budgets throttled past their
//! throttle point. The usage log shows each batch of records to [`run`]'s task, which reads
//! the limits of the keys in it (and of their projects) as they stand — spent plus reserved by
//! requests in flight — off the request path:
//!
//! - a budget at or past one of its `alert_at` percentages → `budget.threshold`;
//! - a budget at or past its `throttle_at` → throttled on this node until its window ends
//!   (`budget.throttled`), lifted if a raise brings it back under;
//! - a quota with nothing left, or a request a quota refused → `quota.exhausted`; a request a
//!   budget refused → a `budget.threshold` of its own (`"refused": true`) if it alerts at 100 %;
//! - prepaid credits with a tenth or less left → `credits.low`, a request they refused →
//!   `credits.exhausted`, each once per amount granted (a top-up starts afresh).
//!
//! Each announcement is an audit event written with a one-time marker (the window's start, or
//! the credits granted), so every node may see the same crossing and the webhooks still hear
//! of it once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use keygate_core::{AuditAction, AuditDraft, Budget, KeyId, MicroUsd, Timestamp, Window};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cache::{CachedKey, VerifyCache};
use crate::limits::{Counted, Exhausted, LimitState, Limiter, Owner, window_bounds};
use crate::service::Keygate;
use crate::usage_log::UsageWatcher;

/// Batches of keys (or refusals) waiting for the task; past it, they are dropped: the next
/// batch of the same keys says the same.
const QUEUE: usize = 256;
/// Announcements remembered on this node before the memory is cleared (the store still
/// refuses a second one).
const REMEMBERED: usize = 50_000;

/// Runs the thresholds of `keygate`'s keys under `limiter` until `stop`.
pub async fn run(keygate: Arc<Keygate>, limiter: Arc<Limiter>, stop: CancellationToken) {
    let (found, mut batches) = mpsc::channel(QUEUE);
    let (refused, mut refusals) = mpsc::channel(QUEUE);
    keygate.usage().watched_by(Arc::new(Spenders {
        cache: keygate.cache().clone(),
        found,
    }));
    limiter.on_exhausted(refused);
    let task = Thresholds {
        keygate,
        limiter,
        announced: Mutex::default(),
    };
    // The limiter takes one listener: a second run on it hears of no refusal, but still
    // watches its records.
    let mut hearing = true;
    loop {
        tokio::select! {
            batch = batches.recv() => match batch {
                Some(keys) => {
                    for key in keys {
                        task.look_at(&key).await;
                    }
                }
                None => return,
            },
            refusal = refusals.recv(), if hearing => match refusal {
                Some(refusal) => task.refused(&refusal).await,
                None => hearing = false,
            },
            () = stop.cancelled() => return,
        }
    }
}

/// Picks, from each batch of usage records, the keys whose limits have a budget or a quota.
#[derive(Debug)]
struct Spenders {
    cache: Arc<VerifyCache>,
    found: mpsc::Sender<Vec<KeyId>>,
}

impl UsageWatcher for Spenders {
    fn observe(&self, records: &[keygate_core::UsageRecord]) {
        let mut keys: HashSet<KeyId> = HashSet::new();
        for record in records {
            if keys.contains(&record.key_id) {
                continue;
            }
            let Some(key) = self.cache.key(&record.key_id) else {
                continue;
            };
            let counted = |l: &keygate_core::KeyLimits| {
                !l.budgets.is_empty() || l.quota.is_some() || l.credits.is_some()
            };
            if counted(&key.record.limits) || counted(&key.project_limits) {
                keys.insert(record.key_id.clone());
            }
        }
        if !keys.is_empty() {
            let _ = self.found.try_send(keys.into_iter().collect());
        }
    }

    fn is_live(&self) -> bool {
        !self.found.is_closed()
    }
}

/// What an announcement is made once for.
#[derive(Clone, Copy)]
enum Span {
    /// A quota's or a budget's window.
    Window(Window),
    /// Prepaid credits, as granted so far (µ$): a top-up makes a new occurrence.
    Granted(u64),
}

/// What one announcement says.
struct Notice<'a> {
    action: AuditAction,
    key: &'a CachedKey,
    owner: Owner,
    /// What it is announced once for.
    span: Span,
    /// What it is about within the window: a budget's percentage, a refusal.
    about: Option<String>,
    /// When the limits were read: the window is the one holding it.
    at: Timestamp,
    details: serde_json::Value,
}

struct Thresholds {
    keygate: Arc<Keygate>,
    limiter: Arc<Limiter>,
    /// Announcements made (or found made) by this node: `kind|target|marker`.
    announced: Mutex<HashSet<String>>,
}

impl Thresholds {
    /// Reads the limits of `key` as they stand and announces (or throttles) what they passed.
    async fn look_at(&self, key_id: &KeyId) {
        let Some(key) = self.keygate.cache().key(key_id) else {
            return;
        };
        let clock = self.keygate.clock();
        let now = clock.now();
        // Without Redis's counts (when limits are shared), nothing is decided.
        let Some(limits) = self.limiter.peek_shared(&key, clock.as_ref()).await else {
            return;
        };
        for limit in limits {
            match limit.counted {
                Counted::Budget(per) => {
                    if let Some(budget) = budget_of(&key, limit.owner, per) {
                        self.budget(&key, &limit, &budget, now).await;
                    }
                }
                Counted::Credits
                    if limit.state.remaining.saturating_mul(10) <= limit.state.limit =>
                {
                    self.credits(&key, &limit, AuditAction::CreditsLow, now)
                        .await;
                }
                Counted::Quota(per) if limit.state.remaining == 0 => {
                    self.quota_spent(&key, limit.owner, per, limit.state.limit, now)
                        .await;
                }
                _ => {}
            }
        }
    }

    async fn budget(&self, key: &CachedKey, limit: &LimitState, budget: &Budget, now: Timestamp) {
        let (max, left) = (limit.state.limit, limit.state.remaining);
        let used = max.saturating_sub(left);
        let percent = u8::try_from(used.saturating_mul(100) / max.max(1)).unwrap_or(100);
        let Counted::Budget(per) = limit.counted else {
            return;
        };
        let figures = |extra: serde_json::Value| {
            let mut details = serde_json::json!({
                "limit_usd": dollars(max),
                "used_usd": dollars(used),
            });
            if let (Some(details), serde_json::Value::Object(extra)) =
                (details.as_object_mut(), extra)
            {
                details.extend(extra);
            }
            details
        };
        for threshold in budget.alerts().iter().filter(|t| *t <= percent) {
            self.announce(Notice {
                action: AuditAction::BudgetThreshold,
                key,
                owner: limit.owner,
                span: Span::Window(per),
                about: Some(threshold.to_string()),
                at: now,
                details: figures(serde_json::json!({ "percent": threshold })),
            })
            .await;
        }
        if let Some((at, rate)) = budget.throttled() {
            let over = percent >= at;
            let (_, end) = window_bounds(per, now);
            self.limiter
                .throttle_budget(key, limit.owner, per, over.then_some(end), now);
            if over {
                self.announce(Notice {
                    action: AuditAction::BudgetThrottled,
                    key,
                    owner: limit.owner,
                    span: Span::Window(per),
                    about: Some(at.to_string()),
                    at: now,
                    details: figures(serde_json::json!({
                        "percent": at,
                        "throttle": rate.to_string(),
                        "until": end.to_rfc3339(),
                    })),
                })
                .await;
            }
        }
    }

    /// A request a quota or a budget refused: the quota is spent; the budget cannot pay for
    /// what is asked of it — announced, if the budget alerts at 100 %, once per window as a
    /// threshold event of its own (`"refused": true`, with the percentage used), apart from
    /// the 100 % crossing.
    async fn refused(&self, refusal: &Exhausted) {
        let Some(key) = self.keygate.cache().key(&refusal.key_id) else {
            return;
        };
        let now = self.keygate.clock().now();
        let limit = &refusal.limit;
        match limit.counted {
            Counted::Quota(per) => {
                self.quota_spent(&key, limit.owner, per, limit.state.limit, now)
                    .await;
            }
            Counted::Budget(per) => {
                let alerts_whole = budget_of(&key, limit.owner, per)
                    .is_some_and(|b| b.alerts().iter().any(|p| p == 100));
                if alerts_whole {
                    let (max, left) = (limit.state.limit, limit.state.remaining);
                    let used = max.saturating_sub(left);
                    self.announce(Notice {
                        action: AuditAction::BudgetThreshold,
                        key: &key,
                        owner: limit.owner,
                        span: Span::Window(per),
                        about: Some("refused".to_owned()),
                        at: now,
                        details: serde_json::json!({
                            "percent": used.saturating_mul(100) / max.max(1),
                            "limit_usd": dollars(max),
                            "used_usd": dollars(used),
                            "refused": true,
                        }),
                    })
                    .await;
                }
            }
            Counted::Credits => {
                self.credits(&key, limit, AuditAction::CreditsExhausted, now)
                    .await;
            }
            _ => {}
        }
    }

    /// Credits with a tenth or less left (`credits.low`), or too little for a request
    /// (`credits.exhausted`): once per amount granted, so a top-up starts afresh.
    async fn credits(
        &self,
        key: &CachedKey,
        limit: &LimitState,
        action: AuditAction,
        at: Timestamp,
    ) {
        let (granted, left) = (limit.state.limit, limit.state.remaining);
        self.announce(Notice {
            action,
            key,
            owner: limit.owner,
            span: Span::Granted(granted),
            about: None,
            at,
            details: serde_json::json!({
                "remaining_usd": dollars(left),
                "used_usd": dollars(granted.saturating_sub(left)),
            }),
        })
        .await;
    }

    async fn quota_spent(
        &self,
        key: &CachedKey,
        owner: Owner,
        per: Window,
        amount: u64,
        at: Timestamp,
    ) {
        self.announce(Notice {
            action: AuditAction::QuotaExhausted,
            key,
            owner,
            span: Span::Window(per),
            about: None,
            at,
            details: serde_json::json!({ "amount": amount }),
        })
        .await;
    }

    /// Writes the notice's audit event once per window (across nodes).
    async fn announce(&self, notice: Notice<'_>) {
        let record = &notice.key.record;
        let owner_id = match notice.owner {
            Owner::Key => record.id.to_string(),
            Owner::Project => match &record.project_id {
                Some(project) => project.to_string(),
                None => return,
            },
        };
        let now = self.keygate.clock().now();
        let kind = notice.action.as_str();
        let (span, marker, mut details) = match notice.span {
            Span::Window(window) => {
                let (start, end) = window_bounds(window, notice.at);
                let details = serde_json::json!({
                    "owner": notice.owner.as_str(),
                    "window": window.as_str(),
                    "window_start": start.to_rfc3339(),
                    "window_end": end.to_rfc3339(),
                });
                (window.as_str(), start.as_millis(), details)
            }
            Span::Granted(granted) => {
                let details = serde_json::json!({
                    "owner": notice.owner.as_str(),
                    "granted_usd": dollars(granted),
                });
                (
                    "credits",
                    i64::try_from(granted).unwrap_or(i64::MAX),
                    details,
                )
            }
        };
        let target = match &notice.about {
            Some(about) => format!("{owner_id}:{span}:{about}"),
            None => format!("{owner_id}:{span}"),
        };
        let memo = format!("{kind}|{target}|{marker}");
        {
            let mut announced = self
                .announced
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if announced.len() >= REMEMBERED {
                announced.clear();
            }
            if !announced.insert(memo.clone()) {
                return;
            }
        }
        let mut audit = AuditDraft::new("system", notice.action);
        audit.org_id = Some(record.org_id.to_string());
        audit.project_id = record.project_id.as_ref().map(ToString::to_string);
        audit.target = Some(owner_id);
        if notice.owner == Owner::Key
            && let Some(details) = details.as_object_mut()
        {
            details.insert("key_id".into(), record.id.to_string().into());
            details.insert("key_name".into(), record.name.clone().into());
        }
        if let (Some(details), serde_json::Value::Object(extra)) =
            (details.as_object_mut(), notice.details)
        {
            details.extend(extra);
        }
        audit.details = details;
        let stored = self
            .keygate
            .store()
            .announce_once(kind, &target, marker, &audit, now)
            .await;
        if let Err(err) = stored {
            tracing::warn!(error = %err, kind, "a limit's threshold could not be announced");
            // Tried again when the next record of the key shows the same.
            self.announced
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&memo);
        }
    }
}

/// `owner`'s budget per `per` of `key`, as configured.
fn budget_of(key: &CachedKey, owner: Owner, per: Window) -> Option<Budget> {
    let limits = match owner {
        Owner::Key => &key.record.limits,
        Owner::Project => &key.project_limits,
    };
    limits.budgets.iter().find(|b| b.per == per).copied()
}

fn dollars(micros: u64) -> String {
    MicroUsd(i64::try_from(micros).unwrap_or(i64::MAX)).to_string()
}
