//! The SQL implementation of [`ConsoleSessionStore`](crate::ConsoleSessionStore), per backend.

macro_rules! impl_sql_console_sessions {
    (store: $store:ty $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::ConsoleSessionStore for $store {
            async fn create_console_session(
                &self,
                session: &$crate::ConsoleSession,
                audit: &AuditDraft,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO console_sessions (id, org_id, subject, token_id, role, \
                     project_id, name, csrf, created_at, last_seen_at, expires_at, ended_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&session.id)
                .bind(session.org_id.as_str())
                .bind(&session.subject)
                .bind(session.token_id.as_ref().map(|id| id.as_str().to_owned()))
                .bind(session.role.as_str())
                .bind(session.project_id.as_ref().map(ToString::to_string))
                .bind(&session.name)
                .bind(&session.csrf)
                .bind(session.created_at.as_millis())
                .bind(session.last_seen_at.as_millis())
                .bind(session.expires_at.as_millis())
                .bind(session.ended_at.map(Timestamp::as_millis))
                .execute(&mut *tx)
                .await?;
                Self::append_audit_tx(&mut tx, audit, session.created_at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn console_session(
                &self,
                id: &str,
            ) -> Result<Option<$crate::ConsoleSession>, StoreError> {
                let row: Option<$crate::sql::console_sessions::SessionRow> = sqlx::query_as(
                    "SELECT id, org_id, subject, token_id, role, project_id, name, csrf, \
                     created_at, last_seen_at, expires_at, ended_at \
                     FROM console_sessions WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn open_console_sessions(
                &self,
                org: &keygate_core::OrgId,
                now: Timestamp,
                limit: u32,
            ) -> Result<Vec<$crate::ConsoleSession>, StoreError> {
                let rows: Vec<$crate::sql::console_sessions::SessionRow> = sqlx::query_as(
                    "SELECT id, org_id, subject, token_id, role, project_id, name, csrf, \
                     created_at, last_seen_at, expires_at, ended_at \
                     FROM console_sessions WHERE org_id = $1 AND ended_at IS NULL \
                     AND expires_at > $2 ORDER BY created_at DESC LIMIT $3",
                )
                .bind(org.as_str())
                .bind(now.as_millis())
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn touch_console_session(
                &self,
                id: &str,
                at: Timestamp,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "UPDATE console_sessions SET last_seen_at = $2 \
                     WHERE id = $1 AND last_seen_at < $2",
                )
                .bind(id)
                .bind(at.as_millis())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn end_console_session(
                &self,
                id: &str,
                at: Timestamp,
                audit: &AuditDraft,
            ) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let ended = sqlx::query(
                    "UPDATE console_sessions SET ended_at = $2 \
                     WHERE id = $1 AND ended_at IS NULL",
                )
                .bind(id)
                .bind(at.as_millis())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if ended {
                    Self::append_audit_tx(&mut tx, audit, at).await?;
                    tx.commit().await?;
                }
                Ok(ended)
            }

            async fn end_console_sessions_of(
                &self,
                subject: &str,
                at: Timestamp,
            ) -> Result<u64, StoreError> {
                let mut tx = self.begin_write().await?;
                let ended = sqlx::query(
                    "UPDATE console_sessions SET ended_at = $2 \
                     WHERE subject = $1 AND ended_at IS NULL",
                )
                .bind(subject)
                .bind(at.as_millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(ended)
            }
        }
    };
}

pub(crate) use impl_sql_console_sessions;

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: String,
    org_id: String,
    subject: String,
    token_id: Option<String>,
    role: String,
    project_id: Option<String>,
    name: String,
    csrf: String,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    ended_at: Option<i64>,
}

impl TryFrom<SessionRow> for crate::ConsoleSession {
    type Error = crate::StoreError;

    fn try_from(row: SessionRow) -> Result<Self, Self::Error> {
        use keygate_core::{KeyId, OrgId, ProjectId, Timestamp};
        let corrupt = |column| crate::StoreError::Corrupt { column };
        Ok(Self {
            id: row.id,
            org_id: OrgId::parse(&row.org_id).map_err(|_| corrupt("console_sessions.org_id"))?,
            subject: row.subject,
            token_id: row
                .token_id
                .map(|id| KeyId::parse(&id))
                .transpose()
                .map_err(|_| corrupt("console_sessions.token_id"))?,
            role: row
                .role
                .parse()
                .map_err(|_| corrupt("console_sessions.role"))?,
            project_id: row
                .project_id
                .map(|id| ProjectId::parse(&id))
                .transpose()
                .map_err(|_| corrupt("console_sessions.project_id"))?,
            name: row.name,
            csrf: row.csrf,
            created_at: Timestamp::from_millis(row.created_at),
            last_seen_at: Timestamp::from_millis(row.last_seen_at),
            expires_at: Timestamp::from_millis(row.expires_at),
            ended_at: row.ended_at.map(Timestamp::from_millis),
        })
    }
}
