//! The one SQL implementation of [`Store`](crate::Store), expanded for each backend.
//!
//! Both backends accept the same SQL (`$n` placeholders, integer instants, TEXT JSON), so
//! the implementation is written once as a macro over the concrete pool type. A macro rather
//! than a generic `impl<DB: Database>` keeps each expansion on concrete sqlx types, where
//! errors are readable and no trait-bound lattice is needed. The only dialect differences are
//! passed in: how a write transaction begins, how a row is locked for update, and what to run
//! before closing.

macro_rules! impl_sql_store {
    (
        store: $store:ty,
        db: $db:ty,
        backend: $backend:expr,
        begin_write: $begin:literal,
        for_update: $for_update:literal,
        before_close: $before_close:literal $(,)?
    ) => {
        $crate::sql::impl_sql_helpers! {
            store: $store,
            db: $db,
            begin_write: $begin,
            for_update: $for_update,
        }

        $crate::sql::impl_sql_secrets! {
            store: $store,
            for_update: $for_update,
        }

        $crate::sql::impl_sql_usage! {
            store: $store,
            db: $db,
        }

        $crate::sql::impl_sql_model_groups! {
            store: $store,
            for_update: $for_update,
        }

        $crate::sql::impl_sql_limit_counts! {
            store: $store,
            db: $db,
        }

        $crate::sql::impl_sql_checkpoints! {
            store: $store,
        }

        $crate::sql::impl_sql_webhooks! {
            store: $store,
            for_update: $for_update,
        }

        $crate::sql::impl_sql_anomalies! {
            store: $store,
            for_update: $for_update,
        }

        $crate::sql::impl_sql_announcements! {
            store: $store,
        }

        $crate::sql::impl_sql_console_sessions! {
            store: $store,
        }

        $crate::sql::impl_sql_signing_keys! {
            store: $store,
        }

        $crate::sql::impl_sql_responses! {
            store: $store,
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(self.reader()).await?;
                Ok(())
            }

            async fn close(&self) {
                // Readers first: an open reader would keep the writer from tidying up.
                self.reader().close().await;
                if !$before_close.is_empty() {
                    let tidied: Result<Vec<(i64, i64, i64)>, _> =
                        sqlx::query_as($before_close).fetch_all(self.writer()).await;
                    tracing::debug!(result = ?tidied, "tidied the store before closing");
                }
                self.writer().close().await;
            }

            async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?)
            }

            async fn init_setting(
                &self,
                name: &str,
                value: &str,
                now: Timestamp,
            ) -> Result<String, StoreError> {
                sqlx::query(
                    "INSERT INTO settings (name, value, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(value)
                .bind(now.as_millis())
                .execute(self.writer())
                .await?;
                Ok(sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                    .bind(name)
                    .fetch_one(self.writer())
                    .await?)
            }

            async fn replace_setting(
                &self,
                name: &str,
                old: &str,
                new: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE settings SET value = $3 WHERE name = $1 AND value = $2",
                )
                .bind(name)
                .bind(old)
                .bind(new)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn idempotency_entries(
                &self,
                now: Timestamp,
            ) -> Result<Vec<IdempotencyEntry>, StoreError> {
                let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
                    "SELECT scope, idem_key, fingerprint, response, created_at FROM idempotency \
                     WHERE created_at > $1 ORDER BY created_at",
                )
                .bind(now.as_millis() - IDEMPOTENCY_TTL_MS)
                .fetch_all(self.reader())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(scope, key, fingerprint, response, created_at)| IdempotencyEntry {
                        scope,
                        key,
                        fingerprint,
                        response,
                        created_at: Timestamp::from_millis(created_at),
                    })
                    .collect())
            }

            async fn replace_idempotency_response(
                &self,
                entry: &IdempotencyEntry,
                new_response: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE idempotency SET response = $4 \
                     WHERE scope = $1 AND idem_key = $2 AND response = $3",
                )
                .bind(&entry.scope)
                .bind(&entry.key)
                .bind(&entry.response)
                .bind(new_response)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn is_bootstrapped(&self) -> Result<bool, StoreError> {
                Ok(self.setting("bootstrapped_by").await?.is_some())
            }

            async fn bootstrap(
                &self,
                bootstrap: &Bootstrap,
                audit: &AuditDraft,
            ) -> Result<(), StoreError> {
                let now = bootstrap.owner.created_at;
                let mut tx = self.begin_write().await?;
                let marked = sqlx::query(
                    "INSERT INTO settings (name, value, created_at) VALUES ('bootstrapped_by', $1, $2)",
                )
                .bind(bootstrap.owner.id.as_str())
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await;
                match marked {
                    Err(err) if StoreError::is_unique_violation(&err) => {
                        return Err(Conflict::AlreadyBootstrapped.into());
                    }
                    other => other?,
                };
                let org = &bootstrap.org;
                sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(org.id.as_str())
                    .bind(&org.name)
                    .bind(org.created_at.as_millis())
                    .execute(&mut *tx)
                    .await?;
                let project = &bootstrap.project;
                sqlx::query(concat!(
                    "INSERT INTO projects (",
                    $crate::sql::project_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6)"
                ))
                .bind(project.id.as_str())
                .bind(project.org_id.as_str())
                .bind(&project.name)
                .bind(project.created_at.as_millis())
                .bind($crate::rows::limits_text(&project.limits))
                .bind($crate::rows::actions_text(&project.anomaly_actions))
                .execute(&mut *tx)
                .await?;
                Self::insert_key_tx(&mut tx, &bootstrap.owner, &bootstrap.owner_secret).await?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn org_by_name(&self, name: &str) -> Result<Option<Org>, StoreError> {
                let row: Option<OrgRow> =
                    sqlx::query_as("SELECT id, name, created_at FROM orgs WHERE name = $1")
                        .bind(name)
                        .fetch_optional(self.reader())
                        .await?;
                row.map(Org::try_from).transpose()
            }

            async fn create_project(
                &self,
                project: &Project,
                audit: &AuditDraft,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let inserted = sqlx::query(concat!(
                    "INSERT INTO projects (",
                    $crate::sql::project_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6)"
                ))
                .bind(project.id.as_str())
                .bind(project.org_id.as_str())
                .bind(&project.name)
                .bind(project.created_at.as_millis())
                .bind($crate::rows::limits_text(&project.limits))
                .bind($crate::rows::actions_text(&project.anomaly_actions))
                .execute(&mut *tx)
                .await;
                match inserted {
                    Err(err) if StoreError::is_unique_violation(&err) => {
                        return Err(Conflict::DuplicateName { entity: "project" }.into());
                    }
                    other => other?,
                };
                Self::append_audit_tx(&mut tx, audit, project.created_at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
                let row: Option<ProjectRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::project_columns!(),
                    " FROM projects WHERE id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(self.reader())
                .await?;
                row.map(Project::try_from).transpose()
            }

            async fn project_by_name(
                &self,
                org: &OrgId,
                name: &str,
            ) -> Result<Option<Project>, StoreError> {
                let row: Option<ProjectRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::project_columns!(),
                    " FROM projects WHERE org_id = $1 AND name = $2"
                ))
                .bind(org.as_str())
                .bind(name)
                .fetch_optional(self.reader())
                .await?;
                row.map(Project::try_from).transpose()
            }

            async fn list_projects(&self, org: &OrgId) -> Result<Vec<Project>, StoreError> {
                let rows: Vec<ProjectRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::project_columns!(),
                    " FROM projects WHERE org_id = $1 ORDER BY name"
                ))
                .bind(org.as_str())
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(Project::try_from).collect()
            }

            async fn add_key_credits(
                &self,
                id: &KeyId,
                usd: keygate_core::MicroUsd,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<KeyRecord, StoreError> {
                self.change_key(id, now, audit, |key| {
                    if matches!(key.status(now), KeyStatus::Revoked | KeyStatus::Deleted) {
                        return Err(Conflict::KeyNotMutable(key.status(now)).into());
                    }
                    key.limits.credits = Some($crate::sql::credits_plus(key.limits.credits, usd)?);
                    key.updated_at = now;
                    Ok(())
                })
                .await
            }

            async fn add_project_credits(
                &self,
                id: &ProjectId,
                usd: keygate_core::MicroUsd,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<Project, StoreError> {
                let mut tx = self.begin_write().await?;
                let row: Option<ProjectRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::project_columns!(),
                    " FROM projects WHERE id = $1",
                    $for_update
                ))
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let mut project =
                    Project::try_from(row.ok_or(StoreError::NotFound { entity: "project" })?)?;
                project.limits.credits =
                    Some($crate::sql::credits_plus(project.limits.credits, usd)?);
                sqlx::query("UPDATE projects SET limits = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind($crate::rows::limits_text(&project.limits))
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(project)
            }

            async fn update_project(
                &self,
                id: &ProjectId,
                change: &$crate::ProjectChange,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<Project, StoreError> {
                let mut tx = self.begin_write().await?;
                // A part left out keeps its stored value.
                let row: Option<ProjectRow> = sqlx::query_as(concat!(
                    "UPDATE projects SET limits = COALESCE($2, limits), \
                     anomaly_actions = CASE WHEN $3 THEN $4 ELSE anomaly_actions END \
                     WHERE id = $1 RETURNING ",
                    $crate::sql::project_columns!()
                ))
                .bind(id.as_str())
                .bind(change.limits.as_ref().map($crate::rows::limits_text))
                .bind(change.anomaly_actions.is_some())
                .bind(
                    change
                        .anomaly_actions
                        .as_ref()
                        .and_then($crate::rows::actions_text),
                )
                .fetch_optional(&mut *tx)
                .await?;
                let project =
                    Project::try_from(row.ok_or(StoreError::NotFound { entity: "project" })?)?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(project)
            }

            async fn create_key(
                &self,
                key: &KeyRecord,
                secret: &KeySecret,
                audit: &AuditDraft,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                Self::insert_key_tx(&mut tx, key, secret).await?;
                Self::append_audit_tx(&mut tx, audit, key.created_at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
                let row: Option<KeyRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::key_columns!(),
                    " FROM api_keys WHERE id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(self.reader())
                .await?;
                row.map(KeyRecord::try_from).transpose()
            }

            async fn key_by_digest(
                &self,
                digest: &[u8],
            ) -> Result<Option<(KeyRecord, KeySecret)>, StoreError> {
                let row: Option<KeyWithSecretRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::key_columns_k!(),
                    ", s.digest AS s_digest, s.generation AS s_generation, \
                     s.created_at AS s_created_at, s.grace_until AS s_grace_until \
                     FROM key_secrets s JOIN api_keys k ON k.id = s.key_id WHERE s.digest = $1"
                ))
                .bind(digest)
                .fetch_optional(self.reader())
                .await?;
                row.map(<(KeyRecord, KeySecret)>::try_from).transpose()
            }

            async fn live_secrets(
                &self,
                id: &KeyId,
                now: Timestamp,
            ) -> Result<Vec<KeySecret>, StoreError> {
                let rows: Vec<(Vec<u8>, i64, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT digest, generation, created_at, grace_until FROM key_secrets \
                     WHERE key_id = $1 AND (grace_until IS NULL OR grace_until > $2) \
                     ORDER BY generation DESC",
                )
                .bind(id.as_str())
                .bind(now.as_millis())
                .fetch_all(self.reader())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(digest, generation, created_at, grace_until)| KeySecret {
                        digest,
                        key_id: id.clone(),
                        generation,
                        created_at: Timestamp::from_millis(created_at),
                        grace_until: grace_until.map(Timestamp::from_millis),
                    })
                    .collect())
            }

            async fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
                let query = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::key_columns!(),
                    " FROM api_keys",
                    $crate::sql::key_filter!(),
                    "ORDER BY id LIMIT $8"
                ));
                let rows: Vec<KeyRow> = Self::bind_key_filter(query, filter)
                    .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(KeyRecord::try_from).collect()
            }

            async fn keys_due_for_rotation(
                &self,
                filter: &KeyFilter,
                by: Timestamp,
            ) -> Result<Vec<KeyRecord>, StoreError> {
                let query = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::key_columns!(),
                    " FROM api_keys",
                    $crate::sql::key_filter!(),
                    "AND rotate_every_ms IS NOT NULL AND revoked_at IS NULL \
                     AND (expires_at IS NULL OR expires_at > $7) \
                     AND COALESCE(rotated_at, created_at) + rotate_every_ms <= $10 \
                     ORDER BY id LIMIT $8"
                ));
                let rows: Vec<KeyRow> = Self::bind_key_filter(query, filter)
                    .bind(by.as_millis())
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(KeyRecord::try_from).collect()
            }

            async fn update_key(
                &self,
                id: &KeyId,
                patch: &KeyPatch,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<KeyRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let mut key = Self::locked_key(&mut tx, id).await?;
                if !key.is_mutable() {
                    return Err(Conflict::KeyNotMutable(key.status(now)).into());
                }
                key.apply(patch, now);
                Self::write_key_tx(&mut tx, &key).await?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(key)
            }

            async fn rotate_key(
                &self,
                rotation: &Rotation,
                audit: &AuditDraft,
            ) -> Result<RotateOutcome, StoreError> {
                let mut tx = self.begin_write().await?;
                if let Some(asked) = &rotation.idempotency {
                    let stored =
                        Self::idempotency_entry(&mut *tx, &asked.scope, &asked.key, rotation.now)
                            .await?;
                    if let Some(stored) = stored {
                        return Self::replay(stored, asked);
                    }
                }
                match Self::rotate_tx(&mut tx, rotation, audit).await {
                    Ok(key) => {
                        tx.commit().await?;
                        Ok(RotateOutcome::Rotated(Box::new(key)))
                    }
                    // A concurrent retry with the same idempotency key won the race.
                    Err(StoreError::Database(err)) if StoreError::is_unique_violation(&err) => {
                        drop(tx);
                        let asked = rotation
                            .idempotency
                            .as_ref()
                            .ok_or(StoreError::Database(err))?;
                        let mut conn = self.writer().acquire().await?;
                        match Self::idempotency_entry(&mut conn, &asked.scope, &asked.key, rotation.now)
                            .await?
                        {
                            Some(stored) => Self::replay(stored, asked),
                            None => Err(Conflict::IdempotencyKeyReused.into()),
                        }
                    }
                    Err(err) => Err(err),
                }
            }

            async fn revoke_key(
                &self,
                id: &KeyId,
                reason: &str,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<KeyRecord, StoreError> {
                self.change_key(id, now, audit, |key| {
                    if key.revoked_at.is_some() {
                        return Err(Conflict::KeyNotMutable(KeyStatus::Revoked).into());
                    }
                    key.revoked_at = Some(now);
                    key.revoked_reason = Some(reason.to_owned());
                    key.updated_at = now;
                    Ok(())
                })
                .await
            }

            async fn suspend_key(
                &self,
                id: &KeyId,
                reason: &str,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<KeyRecord, StoreError> {
                self.change_key(id, now, audit, |key| {
                    key.suspend(reason, now).map_err(|status| match status {
                        KeyStatus::Suspended => Conflict::AlreadySuspended.into(),
                        other => Conflict::KeyNotMutable(other).into(),
                    })
                })
                .await
            }

            async fn throttle_key(
                &self,
                id: &KeyId,
                throttle: &keygate_core::KeyThrottle,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<KeyRecord, StoreError> {
                self.change_key(id, now, audit, |key| {
                    key.throttle(throttle.clone(), now)
                        .map_err(|status| Conflict::KeyNotMutable(status).into())
                })
                .await
            }

            async fn resume_key(
                &self,
                id: &KeyId,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<KeyRecord, StoreError> {
                self.change_key(id, now, audit, |key| {
                    key.resume(now).map_err(|status| Conflict::NotSuspended(status).into())
                })
                .await
            }

            async fn delete_key(
                &self,
                id: &KeyId,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<KeyRecord, StoreError> {
                self.change_key(id, now, audit, |key| {
                    key.tombstone(now);
                    Ok(())
                })
                .await
            }

            async fn touch_keys(
                &self,
                uses: &[(KeyId, Timestamp)],
                writes: &[(KeyId, Timestamp)],
            ) -> Result<(), StoreError> {
                if uses.is_empty() && writes.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_write().await?;
                for (times, sql) in [
                    (
                        uses,
                        "UPDATE api_keys SET last_used_at = $2 \
                         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
                    ),
                    (
                        writes,
                        "UPDATE api_keys SET last_write_at = $2 \
                         WHERE id = $1 AND (last_write_at IS NULL OR last_write_at < $2)",
                    ),
                ] {
                    // One order for every node, so that two batches never wait on each other.
                    let mut times = times.to_vec();
                    times.sort_by(|a, b| a.0.cmp(&b.0));
                    for (id, at) in &times {
                        sqlx::query(sql)
                            .bind(id.as_str())
                            .bind(at.as_millis())
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn append_audit(
                &self,
                audit: &AuditDraft,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT * FROM audit_events \
                     WHERE (org_id = $1 OR (org_id IS NULL AND $2 IS NULL)) \
                     AND ($2 IS NULL OR project_id = $2) AND ($3 IS NULL OR action = $3) \
                     AND ($4 IS NULL OR seq < $4) ORDER BY seq DESC LIMIT $5",
                )
                .bind(filter.org_id.as_str())
                .bind(filter.project_id.as_ref().map(ProjectId::as_str))
                .bind(filter.action.as_deref())
                .bind(filter.before)
                .bind(i64::from(filter.limit))
                .fetch_all(self.reader())
                .await?;
                Ok(rows.into_iter().map(AuditEvent::from).collect())
            }

            async fn audit_since(&self, filter: &AuditSince) -> Result<Vec<AuditEvent>, StoreError> {
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT * FROM audit_events \
                     WHERE (org_id = $1 OR (org_id IS NULL AND $2 IS NULL)) \
                     AND ($2 IS NULL OR project_id = $2) AND seq > $3 ORDER BY seq LIMIT $4",
                )
                .bind(filter.org_id.as_str())
                .bind(filter.project_id.as_ref().map(ProjectId::as_str))
                .bind(filter.after)
                .bind(i64::from(filter.limit))
                .fetch_all(self.reader())
                .await?;
                Ok(rows.into_iter().map(AuditEvent::from).collect())
            }

            async fn audit_chain_page(
                &self,
                after: i64,
                upto: i64,
                limit: u32,
            ) -> Result<Vec<AuditEvent>, StoreError> {
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT * FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
                )
                .bind(after)
                .bind(upto)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                Ok(rows.into_iter().map(AuditEvent::from).collect())
            }

            async fn audit_head(&self) -> Result<ChainHead, StoreError> {
                let (seq, hash): (i64, String) =
                    sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                        .fetch_one(self.reader())
                        .await?;
                Ok(ChainHead { seq, hash })
            }
        }
    };
}

pub(crate) mod announcements;
pub(crate) mod anomalies;
pub(crate) mod checkpoints;
pub(crate) mod console_sessions;
mod fragments;
mod helpers;
pub(crate) mod limit_counts;
pub(crate) mod model_groups;
pub(crate) mod responses;
pub(crate) mod secrets;
pub(crate) mod signing_keys;
pub(crate) mod usage;
pub(crate) mod webhooks;

pub(crate) use announcements::impl_sql_announcements;
pub(crate) use anomalies::impl_sql_anomalies;
pub(crate) use checkpoints::{checkpoint_from_row, impl_sql_checkpoints};
pub(crate) use console_sessions::impl_sql_console_sessions;
pub(crate) use fragments::{
    contains_pattern, credits_plus, key_columns, key_columns_k, key_filter, project_columns,
};
pub(crate) use helpers::impl_sql_helpers;
pub(crate) use impl_sql_store;
pub(crate) use limit_counts::impl_sql_limit_counts;
pub(crate) use model_groups::impl_sql_model_groups;
pub(crate) use responses::impl_sql_responses;
pub(crate) use secrets::impl_sql_secrets;
pub(crate) use signing_keys::impl_sql_signing_keys;
pub(crate) use usage::impl_sql_usage;
pub(crate) use webhooks::impl_sql_webhooks;
