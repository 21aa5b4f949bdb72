//! The SQL implementation of [`AnnouncementStore`](crate::AnnouncementStore), per backend.

macro_rules! impl_sql_announcements {
    (store: $store:ty $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::AnnouncementStore for $store {
            async fn keys_to_announce(
                &self,
                notice: $crate::KeyNotice,
                now: Timestamp,
                expiring_by: Timestamp,
                limit: u32,
            ) -> Result<Vec<(KeyRecord, i64)>, StoreError> {
                // The occurrence of each notice, as an expression over the key's columns.
                let (occurrence, due) = match notice {
                    $crate::KeyNotice::Expiring => {
                        ("expires_at", "expires_at > $1 AND expires_at <= $2")
                    }
                    $crate::KeyNotice::RotationDue => (
                        "COALESCE(rotated_at, created_at) + rotate_every_ms",
                        "rotate_every_ms IS NOT NULL AND $2 >= $1 \
                         AND COALESCE(rotated_at, created_at) + rotate_every_ms <= $1 \
                         AND (expires_at IS NULL OR expires_at > $1)",
                    ),
                };
                let sql = format!(
                    "SELECT {columns}, {occurrence} AS occurrence FROM api_keys k \
                     WHERE kind = 'api' AND deleted_at IS NULL AND revoked_at IS NULL AND {due} \
                     AND NOT EXISTS (SELECT 1 FROM announcements a WHERE a.kind = $3 \
                       AND a.target = k.id AND a.marker = {occurrence}) \
                     ORDER BY id LIMIT $4",
                    columns = $crate::sql::key_columns!(),
                );
                let rows: Vec<$crate::sql::announcements::NoticeRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(now.as_millis())
                        .bind(expiring_by.as_millis())
                        .bind(notice.as_str())
                        .bind(i64::from(limit))
                        .fetch_all(self.reader())
                        .await?;
                rows.into_iter()
                    .map(|row| Ok((KeyRecord::try_from(row.key)?, row.occurrence)))
                    .collect()
            }

            async fn was_announced(
                &self,
                kind: &str,
                target: &str,
                marker: i64,
            ) -> Result<bool, StoreError> {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT marker FROM announcements WHERE kind = $1 AND target = $2 \
                     AND marker = $3",
                )
                .bind(kind)
                .bind(target)
                .bind(marker)
                .fetch_optional(self.reader())
                .await?;
                Ok(found.is_some())
            }

            async fn org_ids(&self) -> Result<Vec<keygate_core::OrgId>, StoreError> {
                let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM orgs ORDER BY id")
                    .fetch_all(self.reader())
                    .await?;
                ids.iter()
                    .map(|id| {
                        keygate_core::OrgId::parse(id)
                            .map_err(|_| StoreError::Corrupt { column: "orgs.id" })
                    })
                    .collect()
            }

            async fn announce_once(
                &self,
                kind: &str,
                target: &str,
                marker: i64,
                audit: &AuditDraft,
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let new = sqlx::query(
                    "INSERT INTO announcements (kind, target, marker, announced_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (kind, target, marker) DO NOTHING",
                )
                .bind(kind)
                .bind(target)
                .bind(marker)
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if new {
                    Self::append_audit_tx(&mut tx, audit, now).await?;
                    tx.commit().await?;
                }
                Ok(new)
            }
        }
    };
}

pub(crate) use impl_sql_announcements;

/// A key row with the occurrence of its notice.
#[derive(sqlx::FromRow)]
pub(crate) struct NoticeRow {
    #[sqlx(flatten)]
    pub key: crate::rows::KeyRow,
    pub occurrence: i64,
}
