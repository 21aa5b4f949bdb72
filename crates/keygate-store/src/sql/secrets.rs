//! The SQL implementation of [`SecretStore`](crate::SecretStore), expanded per backend by
//! `impl_sql_store!` like the rest.

macro_rules! impl_sql_secrets {
    (store: $store:ty, for_update: $for_update:literal $(,)?) => {
        impl $store {
            /// Inserts a version as pending; a taken version number is a conflict.
            async fn insert_pending_tx(
                tx: &mut Tx,
                version: &$crate::SecretVersion,
            ) -> Result<(), StoreError> {
                let inserted = sqlx::query(
                    "INSERT INTO secret_versions (secret_id, version, stage, kek_id, \
                     wrapped_dek, sealed, created_at, previous_until) \
                     VALUES ($1, $2, 'pending', $3, $4, $5, $6, NULL)",
                )
                .bind(version.secret_id.as_str())
                .bind(version.version)
                .bind(&version.kek_id)
                .bind(&version.wrapped_dek)
                .bind(&version.sealed)
                .bind(version.created_at.as_millis())
                .execute(&mut **tx)
                .await;
                match inserted {
                    Err(err) if StoreError::is_unique_violation(&err) => {
                        Err(Conflict::VersionTaken { entity: "secret" }.into())
                    }
                    other => other.map(|_| ()).map_err(StoreError::from),
                }
            }

            /// Makes `version` current: the current one becomes previous until
            /// `previous_until`, the previous one retires.
            async fn promote_tx(
                tx: &mut Tx,
                id: &keygate_core::SecretId,
                version: i64,
                previous_until: Timestamp,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE secret_versions SET stage = 'retired' \
                     WHERE secret_id = $1 AND stage = 'previous'",
                )
                .bind(id.as_str())
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE secret_versions SET stage = 'previous', previous_until = $2 \
                     WHERE secret_id = $1 AND stage = 'current'",
                )
                .bind(id.as_str())
                .bind(previous_until.as_millis())
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE secret_versions SET stage = 'current', promoted_at = $3 \
                     WHERE secret_id = $1 AND version = $2",
                )
                .bind(id.as_str())
                .bind(version)
                .bind(now.as_millis())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::SecretStore for $store {
            async fn secret(
                &self,
                id: &keygate_core::SecretId,
            ) -> Result<Option<$crate::SecretRecord>, StoreError> {
                let row: Option<$crate::rows::SecretRow> = sqlx::query_as(
                    "SELECT id, org_id, project_id, name, description, created_at, updated_at, \
                     rotate_every_ms \
                     FROM secrets WHERE id = $1 AND deleted_at IS NULL",
                )
                .bind(id.as_str())
                .fetch_optional(self.reader())
                .await?;
                row.map($crate::SecretRecord::try_from).transpose()
            }

            async fn secret_by_name(
                &self,
                project: &ProjectId,
                name: &str,
            ) -> Result<Option<$crate::SecretRecord>, StoreError> {
                let row: Option<$crate::rows::SecretRow> = sqlx::query_as(
                    "SELECT id, org_id, project_id, name, description, created_at, updated_at, \
                     rotate_every_ms \
                     FROM secrets WHERE project_id = $1 AND name = $2 AND deleted_at IS NULL",
                )
                .bind(project.as_str())
                .bind(name)
                .fetch_optional(self.reader())
                .await?;
                row.map($crate::SecretRecord::try_from).transpose()
            }

            async fn list_secrets(
                &self,
                org: &OrgId,
                project: Option<&ProjectId>,
            ) -> Result<Vec<$crate::SecretRecord>, StoreError> {
                let rows: Vec<$crate::rows::SecretRow> = sqlx::query_as(
                    "SELECT id, org_id, project_id, name, description, created_at, updated_at, \
                     rotate_every_ms \
                     FROM secrets WHERE org_id = $1 AND ($2 IS NULL OR project_id = $2) \
                     AND deleted_at IS NULL ORDER BY project_id, name LIMIT 10000",
                )
                .bind(org.as_str())
                .bind(project.map(ProjectId::as_str))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map($crate::SecretRecord::try_from).collect()
            }

            async fn secret_versions(
                &self,
                id: &keygate_core::SecretId,
            ) -> Result<Vec<$crate::SecretVersion>, StoreError> {
                let rows: Vec<$crate::rows::SecretVersionRow> = sqlx::query_as(
                    "SELECT secret_id, version, stage, kek_id, wrapped_dek, sealed, created_at, \
                     previous_until FROM secret_versions WHERE secret_id = $1 \
                     ORDER BY version DESC",
                )
                .bind(id.as_str())
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map($crate::SecretVersion::try_from).collect()
            }

            async fn put_secret(
                &self,
                put: &$crate::SecretPut,
                audit: &AuditDraft,
            ) -> Result<(), StoreError> {
                let secret = &put.secret;
                let version = &put.version;
                let now = version.created_at;
                let mut tx = self.begin_write().await?;
                let existing: Option<(Option<i64>,)> = sqlx::query_as(concat!(
                    "SELECT deleted_at FROM secrets WHERE id = $1",
                    $for_update
                ))
                .bind(secret.id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                match existing {
                    Some((Some(_),)) => return Err(StoreError::NotFound { entity: "secret" }),
                    Some((None,)) => {
                        sqlx::query(
                            "UPDATE secrets SET updated_at = $2, \
                             description = COALESCE($3, description), \
                             rotate_every_ms = COALESCE($4, rotate_every_ms) WHERE id = $1",
                        )
                        .bind(secret.id.as_str())
                        .bind(now.as_millis())
                        .bind(&secret.description)
                        .bind($crate::sql::secrets::rotate_every_ms(secret))
                        .execute(&mut *tx)
                        .await?;
                    }
                    None => {
                        let inserted = sqlx::query(
                            "INSERT INTO secrets (id, org_id, project_id, name, description, \
                             created_at, updated_at, rotate_every_ms) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        )
                        .bind(secret.id.as_str())
                        .bind(secret.org_id.as_str())
                        .bind(secret.project_id.as_str())
                        .bind(&secret.name)
                        .bind(&secret.description)
                        .bind(secret.created_at.as_millis())
                        .bind(now.as_millis())
                        .bind($crate::sql::secrets::rotate_every_ms(secret))
                        .execute(&mut *tx)
                        .await;
                        match inserted {
                            Err(err) if StoreError::is_unique_violation(&err) => {
                                return Err(Conflict::VersionTaken { entity: "secret" }.into());
                            }
                            other => other?,
                        };
                    }
                }
                Self::insert_pending_tx(&mut tx, version).await?;
                Self::promote_tx(&mut tx, &secret.id, version.version, put.previous_until, now)
                    .await?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn add_pending_version(
                &self,
                version: &$crate::SecretVersion,
                audit: &AuditDraft,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let live: Option<(String,)> = sqlx::query_as(concat!(
                    "SELECT id FROM secrets WHERE id = $1 AND deleted_at IS NULL",
                    $for_update
                ))
                .bind(version.secret_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if live.is_none() {
                    return Err(StoreError::NotFound { entity: "secret" });
                }
                Self::insert_pending_tx(&mut tx, version).await?;
                Self::append_audit_tx(&mut tx, audit, version.created_at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn promote_secret_version(
                &self,
                id: &keygate_core::SecretId,
                version: i64,
                previous_until: Timestamp,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let live: Option<(String,)> = sqlx::query_as(concat!(
                    "SELECT id FROM secrets WHERE id = $1 AND deleted_at IS NULL",
                    $for_update
                ))
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if live.is_none() {
                    return Err(StoreError::NotFound { entity: "secret" });
                }
                let stage: Option<(String,)> = sqlx::query_as(
                    "SELECT stage FROM secret_versions WHERE secret_id = $1 AND version = $2",
                )
                .bind(id.as_str())
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
                match stage {
                    None => return Err(StoreError::NotFound { entity: "secret version" }),
                    Some((stage,)) if stage != "pending" => {
                        return Err(Conflict::NotPending { version }.into());
                    }
                    Some(_) => {}
                }
                // A pending version older than the current one would roll the secret back.
                let newer: Option<(i64,)> = sqlx::query_as(
                    "SELECT version FROM secret_versions \
                     WHERE secret_id = $1 AND stage = 'current' AND version > $2",
                )
                .bind(id.as_str())
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
                if newer.is_some() {
                    return Err(Conflict::Superseded { version }.into());
                }
                Self::promote_tx(&mut tx, id, version, previous_until, now).await?;
                sqlx::query("UPDATE secrets SET updated_at = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn versions_not_wrapped_by(
                &self,
                kek_id: &str,
                limit: u32,
            ) -> Result<Vec<$crate::SecretVersion>, StoreError> {
                let rows: Vec<$crate::rows::SecretVersionRow> = sqlx::query_as(
                    "SELECT secret_id, version, stage, kek_id, wrapped_dek, sealed, created_at, \
                     previous_until FROM secret_versions WHERE kek_id <> $1 \
                     ORDER BY created_at, secret_id, version LIMIT $2",
                )
                .bind(kek_id)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map($crate::SecretVersion::try_from).collect()
            }

            async fn rewrap_secret_version(
                &self,
                version: &$crate::SecretVersion,
                to_kek: &str,
                wrapped_dek: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE secret_versions SET kek_id = $4, wrapped_dek = $5 \
                     WHERE secret_id = $1 AND version = $2 AND kek_id = $3",
                )
                .bind(version.secret_id.as_str())
                .bind(version.version)
                .bind(&version.kek_id)
                .bind(to_kek)
                .bind(wrapped_dek)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn secrets_due(
                &self,
                org: Option<&OrgId>,
                project: Option<&ProjectId>,
                by: Timestamp,
                which: $crate::DueFilter,
            ) -> Result<Vec<$crate::DueSecret>, StoreError> {
                let rows: Vec<$crate::rows::DueSecretRow> = sqlx::query_as(
                    "SELECT s.id, s.org_id, s.project_id, s.name, s.description, s.created_at, \
                     s.updated_at, s.rotate_every_ms, v.version, \
                     COALESCE(v.promoted_at, v.created_at) AS current_since \
                     FROM secrets s JOIN secret_versions v \
                     ON v.secret_id = s.id AND v.stage = 'current' \
                     WHERE s.deleted_at IS NULL AND s.rotate_every_ms IS NOT NULL \
                     AND ($1 IS NULL OR s.org_id = $1) AND ($2 IS NULL OR s.project_id = $2) \
                     AND COALESCE(v.promoted_at, v.created_at) + s.rotate_every_ms <= $3 \
                     AND ($4 = 0 OR s.due_announced IS NULL OR s.due_announced < v.version) \
                     ORDER BY current_since LIMIT 10000",
                )
                .bind(org.map(OrgId::as_str))
                .bind(project.map(ProjectId::as_str))
                .bind(by.as_millis())
                .bind(i64::from(which == $crate::DueFilter::Unannounced))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map($crate::DueSecret::try_from).collect()
            }

            async fn announce_due(
                &self,
                id: &keygate_core::SecretId,
                version: i64,
                audit: &AuditDraft,
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let marked = sqlx::query(
                    "UPDATE secrets SET due_announced = $2 WHERE id = $1 \
                     AND (due_announced IS NULL OR due_announced < $2)",
                )
                .bind(id.as_str())
                .bind(version)
                .execute(&mut *tx)
                .await?;
                if marked.rows_affected() == 0 {
                    return Ok(false);
                }
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn retire_expired_previous(&self, now: Timestamp) -> Result<u64, StoreError> {
                Ok(sqlx::query(
                    "UPDATE secret_versions SET stage = 'retired' \
                     WHERE stage = 'previous' AND previous_until <= $1",
                )
                .bind(now.as_millis())
                .execute(self.writer())
                .await?
                .rows_affected())
            }

            async fn delete_secret(
                &self,
                id: &keygate_core::SecretId,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let updated = sqlx::query(
                    "UPDATE secrets SET deleted_at = $2, updated_at = $2 \
                     WHERE id = $1 AND deleted_at IS NULL",
                )
                .bind(id.as_str())
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await?;
                if updated.rows_affected() == 0 {
                    return Err(StoreError::NotFound { entity: "secret" });
                }
                // The sealed values go with the secret: nothing is left to decrypt.
                sqlx::query("DELETE FROM secret_versions WHERE secret_id = $1")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_sql_secrets;

/// A secret's rotation policy as stored.
pub(crate) fn rotate_every_ms(secret: &crate::SecretRecord) -> Option<i64> {
    secret
        .rotate_every
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
