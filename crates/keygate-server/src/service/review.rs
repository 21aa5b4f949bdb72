//! Access reviews: what a reviewer should look at, per project, each finding with the command
//! that fixes it — keys unused for a while, keys that never expire, wildcard scopes wider than
//! what the key used, write scopes on keys that only ever read, rotations and secret rotations overdue, admin tokens unused, publishable
//! keys without limits. Read-only; an admin sees the projects it may read keys of (and admin
//! tokens only if it may manage them).

use std::collections::{BTreeMap, BTreeSet};

use keygate_core::{KeyKind, KeyRecord, KeyStatus, Permission, Timestamp};
use keygate_store::{DueFilter, KeyFilter, UsageGroup, UsageQuery};
use serde::Serialize;

use super::{Caller, Keygate};
use crate::ServiceError;

/// Keys unused this long are findings unless the reviewer asks for another span.
pub const DEFAULT_UNUSED_DAYS: u32 = 90;
const PAGE: u32 = 200;
/// Wildcard keys whose use one review reads (one usage report each); past it, the finding
/// says the use was not read.
const MAX_USE_READS: usize = 200;

/// One thing to look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `key_unused`, `key_without_expiry`, `scope_wider_than_use`, `write_scope_unused`,
    /// `rotation_overdue`, `secret_rotation_overdue`, `admin_token_unused` or
    /// `publishable_without_limits`.
    pub kind: &'static str,
    /// The key, token or secret id.
    pub target: String,
    /// Its name.
    pub name: String,
    pub detail: String,
    /// A command that fixes it.
    pub fix: String,
}

/// The findings of one project (`project_id` empty for organisation-wide admin tokens).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectReview {
    pub project_id: String,
    pub project: String,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    pub generated_at: String,
    pub unused_days: u32,
    pub projects: Vec<ProjectReview>,
}

fn days_ago(now: Timestamp, days: u32) -> Timestamp {
    Timestamp::from_millis(now.as_millis() - i64::from(days) * 86_400_000)
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "'"))
}

/// The read-only form of a scope that grants writes: `GET` for a method, `read` for an
/// action; `None` when there is none (`*`).
fn read_only(scope: &keygate_core::Scope) -> Option<String> {
    let text = scope.as_str();
    if let Some((_, path)) = text.split_once(' ') {
        return Some(format!("GET {path}"));
    }
    let (resource, _) = text.rsplit_once(':')?;
    Some(format!("{resource}:read"))
}

/// A key that may make changes but made none in the review's span (and is older than it):
/// the finding's detail and fix, which keeps its scopes but reads only.
fn unused_writes(key: &KeyRecord, stale: Timestamp, days: u32) -> Option<(String, String)> {
    let writes: Vec<&keygate_core::Scope> =
        key.scopes.iter().filter(|s| s.grants_writes()).collect();
    if writes.is_empty()
        || key.created_at >= stale
        || key.last_write_at.is_some_and(|at| at >= stale)
    {
        return None;
    }
    let named: Vec<&str> = writes.iter().map(|s| s.as_str()).collect();
    let detail = match key.last_write_at {
        Some(at) => format!(
            "write scopes {named:?}; no change made in {days} days (last {})",
            at.to_rfc3339()
        ),
        None => format!("write scopes {named:?}; it never made a change, only read"),
    };
    let mut kept: Vec<String> = Vec::new();
    for scope in &key.scopes {
        let scope = if scope.grants_writes() {
            match read_only(scope) {
                Some(read) => read,
                None => {
                    return Some((
                        detail,
                        format!("keygate keys update {} --scope <what it reads>", key.id),
                    ));
                }
            }
        } else {
            scope.as_str().to_owned()
        };
        if !kept.contains(&scope) {
            kept.push(scope);
        }
    }
    let scopes: Vec<String> = kept
        .iter()
        .map(|s| format!("--scope {}", quoted(s)))
        .collect();
    Some((
        detail,
        format!("keygate keys update {} {}", key.id, scopes.join(" ")),
    ))
}

impl Keygate {
    /// Every live key (or admin token) of the organisation, a page at a time.
    async fn live_keys(
        &self,
        caller: &Caller,
        kind: KeyKind,
    ) -> Result<Vec<KeyRecord>, ServiceError> {
        let now = self.clock.now();
        let mut keys = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_keys(&KeyFilter {
                    org_id: caller.org().clone(),
                    project_id: caller.bound_project().cloned(),
                    kind,
                    env: None,
                    status: None,
                    now,
                    after: after.clone(),
                    limit: PAGE,
                    name_contains: None,
                })
                .await?;
            after = page.last().map(|k| k.id.clone());
            let full = page.len() == PAGE as usize;
            keys.extend(
                page.into_iter()
                    .filter(|k| matches!(k.status(now), KeyStatus::Active | KeyStatus::Suspended)),
            );
            if !full {
                return Ok(keys);
            }
        }
    }

    /// The models or proxy routes a key was served in the last `days`.
    async fn used_by(&self, key: &KeyRecord, days: u32) -> Result<BTreeSet<String>, ServiceError> {
        let now = self.clock.now();
        let rows = self
            .store
            .usage_report(&UsageQuery {
                org: key.org_id.clone(),
                project: key.project_id.clone(),
                key: Some(key.id.clone()),
                model: None,
                from: days_ago(now, days),
                to: now,
                group_by: UsageGroup::Model,
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter(|row| row.requests > row.errors)
            .map(|row| row.group)
            .collect())
    }

    /// The review of everything the caller may see.
    pub async fn access_review(
        &self,
        caller: &Caller,
        unused_days: Option<u32>,
    ) -> Result<Review, ServiceError> {
        let bound = caller.bound_project().cloned();
        self.authorize(caller, Permission::KeysRead, bound.as_ref(), None)
            .await?;
        let unused_days = unused_days.unwrap_or(DEFAULT_UNUSED_DAYS).clamp(1, 3650);
        let now = self.clock.now();
        let stale = days_ago(now, unused_days);
        let mut found: BTreeMap<String, Vec<Finding>> = BTreeMap::new();
        let project_of = |key: &KeyRecord| {
            key.project_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        };

        let mut use_reads = 0usize;
        for key in self.live_keys(caller, KeyKind::Api).await? {
            let mut add = |kind, detail: String, fix: String| {
                found.entry(project_of(&key)).or_default().push(Finding {
                    kind,
                    target: key.id.to_string(),
                    name: key.name.clone(),
                    detail,
                    fix,
                });
            };
            let last = key.last_used_at.unwrap_or(key.created_at);
            // A suspended key is out of use already: that was the fix.
            if last < stale && key.status(now) == KeyStatus::Active {
                add(
                    "key_unused",
                    match key.last_used_at {
                        Some(at) => format!("last used {}", at.to_rfc3339()),
                        None => format!("never used since {}", key.created_at.to_rfc3339()),
                    },
                    format!(
                        "keygate keys suspend {} --reason {}",
                        key.id,
                        quoted(&format!("unused for {unused_days} days"))
                    ),
                );
            }
            if key.expires_at.is_none() {
                add(
                    "key_without_expiry",
                    "the key never expires".to_owned(),
                    format!("keygate keys update {} --expires-in 90d", key.id),
                );
            }
            if key.rotation_due_at().is_some_and(|due| due <= now) {
                add(
                    "rotation_overdue",
                    format!(
                        "rotation due since {}",
                        key.rotation_due_at()
                            .map(Timestamp::to_rfc3339)
                            .unwrap_or_default()
                    ),
                    format!("keygate keys rotate {} --grace 1h", key.id),
                );
            }
            if key.is_publishable() && key.limits.is_empty() {
                add(
                    "publishable_without_limits",
                    "a publishable key (its text is public) without request limits".to_owned(),
                    format!("keygate keys update {} --rate 60/minute", key.id),
                );
            }
            if let Some((detail, fix)) = unused_writes(&key, stale, unused_days) {
                add("write_scope_unused", detail, fix);
            }
            let wildcards: Vec<&str> = key
                .scopes
                .iter()
                .map(keygate_core::Scope::as_str)
                .filter(|s| s.contains('*'))
                .collect();
            if !wildcards.is_empty() && use_reads >= MAX_USE_READS {
                add(
                    "scope_wider_than_use",
                    format!("wildcard scopes {wildcards:?} (use not read: review limit)"),
                    format!("keygate keys update {} --scope <what it needs>", key.id),
                );
            } else if !wildcards.is_empty() {
                use_reads += 1;
                let span = unused_days.min(365);
                let used = self.used_by(&key, span).await?;
                let detail = format!(
                    "wildcard scopes {wildcards:?}; served in {span} days: {}",
                    if used.is_empty() {
                        "nothing".to_owned()
                    } else {
                        used.iter().cloned().collect::<Vec<_>>().join(", ")
                    }
                );
                let fix = if used.is_empty() {
                    format!("keygate keys update {} --scope <what it needs>", key.id)
                } else {
                    let scopes: Vec<String> = used
                        .iter()
                        .map(|model| {
                            if key.scopes.iter().any(|s| s.as_str().contains("/proxy/")) {
                                format!("--scope {}", quoted(&format!("GET /proxy/{model}/*")))
                            } else {
                                format!("--scope models:{model}")
                            }
                        })
                        .collect();
                    format!("keygate keys update {} {}", key.id, scopes.join(" "))
                };
                add("scope_wider_than_use", detail, fix);
            }
        }

        for due in self
            .store
            .secrets_due(Some(caller.org()), bound.as_ref(), now, DueFilter::All)
            .await?
        {
            found
                .entry(due.secret.project_id.to_string())
                .or_default()
                .push(Finding {
                    kind: "secret_rotation_overdue",
                    target: due.secret.id.to_string(),
                    name: due.secret.name.clone(),
                    detail: format!(
                        "version {} due since {}",
                        due.version,
                        due.due_at.to_rfc3339()
                    ),
                    fix: format!(
                        "keygate secrets rotate {} --project {} --from-file NEW_VALUE",
                        due.secret.name, due.secret.project_id
                    ),
                });
        }

        if caller.may(Permission::TokensWrite, bound.as_ref()) {
            for token in self.live_keys(caller, KeyKind::Admin).await? {
                if token.last_used_at.unwrap_or(token.created_at) < stale {
                    found.entry(project_of(&token)).or_default().push(Finding {
                        kind: "admin_token_unused",
                        target: token.id.to_string(),
                        name: token.name.clone(),
                        detail: match token.last_used_at {
                            Some(at) => format!("last used {}", at.to_rfc3339()),
                            None => "never used".to_owned(),
                        },
                        fix: format!(
                            "keygate admin token revoke {} --reason {}",
                            token.id,
                            quoted(&format!("unused for {unused_days} days"))
                        ),
                    });
                }
            }
        }

        let names: BTreeMap<String, String> = self
            .store
            .list_projects(caller.org())
            .await?
            .into_iter()
            .map(|p| (p.id.to_string(), p.name))
            .collect();
        Ok(Review {
            generated_at: now.to_rfc3339(),
            unused_days,
            projects: found
                .into_iter()
                .map(|(project_id, findings)| ProjectReview {
                    project: names.get(&project_id).cloned().unwrap_or_default(),
                    project_id,
                    findings,
                })
                .collect(),
        })
    }
}
