//! The SQL implementation of [`ModelGroupStore`](crate::ModelGroupStore), expanded per backend.

macro_rules! impl_sql_model_groups {
    (store: $store:ty, for_update: $for_update:literal $(,)?) => {
        impl $store {
            /// Fails with a conflict unless the stored revision is still `expected`.
            async fn check_model_groups_revision_tx(
                tx: &mut Tx,
                expected: Option<&str>,
            ) -> Result<(), StoreError> {
                let current: Option<String> = sqlx::query_scalar(concat!(
                    "SELECT value FROM settings WHERE name = $1",
                    $for_update
                ))
                .bind($crate::model_groups::MODEL_GROUPS_REVISION)
                .fetch_optional(&mut **tx)
                .await?;
                if current.as_deref() == expected {
                    Ok(())
                } else {
                    Err($crate::Conflict::VersionTaken {
                        entity: "model groups",
                    }
                    .into())
                }
            }

            async fn bump_model_groups_revision_tx(
                tx: &mut Tx,
                revision: &str,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO settings (name, value, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind($crate::model_groups::MODEL_GROUPS_REVISION)
                .bind(revision)
                .bind(now.as_millis())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::ModelGroupStore for $store {
            async fn model_groups(&self) -> Result<Vec<$crate::StoredModelGroup>, StoreError> {
                let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
                    "SELECT alias, config, created_at, updated_at FROM model_groups \
                     ORDER BY alias",
                )
                .fetch_all(self.reader())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(
                        |(alias, config, created, updated)| $crate::StoredModelGroup {
                            alias,
                            config,
                            created_at: Timestamp::from_millis(created),
                            updated_at: Timestamp::from_millis(updated),
                        },
                    )
                    .collect())
            }

            async fn put_model_group(
                &self,
                alias: &str,
                config: &str,
                expected: Option<&str>,
                revision: &str,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                Self::check_model_groups_revision_tx(&mut tx, expected).await?;
                sqlx::query(
                    "INSERT INTO model_groups (alias, config, created_at, updated_at) \
                     VALUES ($1, $2, $3, $3) \
                     ON CONFLICT (alias) DO UPDATE SET config = excluded.config, \
                     updated_at = excluded.updated_at",
                )
                .bind(alias)
                .bind(config)
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await?;
                Self::bump_model_groups_revision_tx(&mut tx, revision, now).await?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_model_group(
                &self,
                alias: &str,
                expected: Option<&str>,
                revision: &str,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                Self::check_model_groups_revision_tx(&mut tx, expected).await?;
                let deleted = sqlx::query("DELETE FROM model_groups WHERE alias = $1")
                    .bind(alias)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    return Ok(false);
                }
                Self::bump_model_groups_revision_tx(&mut tx, revision, now).await?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn model_groups_revision(&self) -> Result<Option<String>, StoreError> {
                Ok(
                    sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                        .bind($crate::model_groups::MODEL_GROUPS_REVISION)
                        .fetch_optional(self.reader())
                        .await?,
                )
            }
        }
    };
}

pub(crate) use impl_sql_model_groups;
