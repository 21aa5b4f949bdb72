//! The SQL implementation of [`ResponseStore`](crate::ResponseStore), per backend.

macro_rules! impl_sql_responses {
    (store: $store:ty $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::ResponseStore for $store {
            async fn put_response(
                &self,
                response: &$crate::StoredResponse,
                keep: u64,
            ) -> Result<(), StoreError> {
                let bytes = response.response.len() + response.conversation.len();
                sqlx::query(
                    "INSERT INTO responses (project_id, id, key_id, model, created_at, \
                     expires_at, bytes, response, conversation) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (project_id, id) DO UPDATE SET model = excluded.model, \
                     created_at = excluded.created_at, expires_at = excluded.expires_at, \
                     bytes = excluded.bytes, response = excluded.response, \
                     conversation = excluded.conversation \
                     WHERE responses.key_id = excluded.key_id",
                )
                .bind(&response.project_id)
                .bind(&response.id)
                .bind(&response.key_id)
                .bind(&response.model)
                .bind(response.created_at.as_millis())
                .bind(response.expires_at.as_millis())
                .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
                .bind(&response.response)
                .bind(&response.conversation)
                .execute(self.writer())
                .await?;
                // The project's oldest beyond `keep` (by the index on project_id,
                // created_at), exactly: ties broken by id.
                sqlx::query(
                    "DELETE FROM responses WHERE project_id = $1 AND id IN (\
                     SELECT id FROM responses WHERE project_id = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $2)",
                )
                .bind(&response.project_id)
                .bind(i64::try_from(keep).unwrap_or(i64::MAX))
                .bind(i64::MAX)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn response(
                &self,
                project_id: &str,
                id: &str,
                now: Timestamp,
            ) -> Result<Option<$crate::StoredResponse>, StoreError> {
                #[allow(clippy::type_complexity, reason = "one row")]
                let row: Option<(
                    String,
                    String,
                    String,
                    String,
                    i64,
                    i64,
                    String,
                    String,
                )> = sqlx::query_as(
                    "SELECT project_id, id, key_id, model, created_at, expires_at, \
                         response, conversation FROM responses \
                         WHERE project_id = $1 AND id = $2 AND expires_at > $3",
                )
                .bind(project_id)
                .bind(id)
                .bind(now.as_millis())
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(
                    |(
                        project_id,
                        id,
                        key_id,
                        model,
                        created_at,
                        expires_at,
                        response,
                        conversation,
                    )| {
                        $crate::StoredResponse {
                            project_id,
                            id,
                            key_id,
                            model,
                            created_at: Timestamp::from_millis(created_at),
                            expires_at: Timestamp::from_millis(expires_at),
                            response,
                            conversation,
                        }
                    },
                ))
            }

            async fn delete_response(
                &self,
                project_id: &str,
                id: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM responses WHERE project_id = $1 AND id = $2")
                    .bind(project_id)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn prune_responses(&self, now: Timestamp) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM responses WHERE expires_at <= $1")
                    .bind(now.as_millis())
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_sql_responses;
