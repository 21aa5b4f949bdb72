//! The SQL implementation of [`CheckpointStore`](crate::CheckpointStore), expanded per backend.

macro_rules! impl_sql_checkpoints {
    (store: $store:ty $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::CheckpointStore for $store {
            async fn add_checkpoint(
                &self,
                checkpoint: &$crate::Checkpoint,
            ) -> Result<bool, StoreError> {
                let added = sqlx::query(
                    "INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
                )
                .bind(checkpoint.seq)
                .bind(&checkpoint.hash)
                .bind(checkpoint.signed_at.as_millis())
                .bind(&checkpoint.key_id)
                .bind(&checkpoint.signature)
                .execute(self.writer())
                .await?
                .rows_affected();
                Ok(added == 1)
            }

            async fn checkpoints(
                &self,
                after: i64,
                limit: u32,
            ) -> Result<Vec<$crate::Checkpoint>, StoreError> {
                let rows: Vec<(i64, String, i64, String, String)> = sqlx::query_as(
                    "SELECT seq, hash, signed_at, key_id, signature FROM audit_checkpoints \
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                Ok(rows
                    .into_iter()
                    .map($crate::sql::checkpoint_from_row)
                    .collect())
            }

            async fn last_checkpoint(&self) -> Result<Option<$crate::Checkpoint>, StoreError> {
                let row: Option<(i64, String, i64, String, String)> = sqlx::query_as(
                    "SELECT seq, hash, signed_at, key_id, signature FROM audit_checkpoints \
                     ORDER BY seq DESC LIMIT 1",
                )
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map($crate::sql::checkpoint_from_row))
            }
        }
    };
}

pub(crate) use impl_sql_checkpoints;

/// A checkpoint from its row.
pub(crate) fn checkpoint_from_row(
    (seq, hash, signed_at, key_id, signature): (i64, String, i64, String, String),
) -> crate::Checkpoint {
    crate::Checkpoint {
        seq,
        hash,
        signed_at: keygate_core::Timestamp::from_millis(signed_at),
        key_id,
        signature,
    }
}
