//! The SQL implementation of [`SigningKeyStore`](crate::SigningKeyStore), per backend.

macro_rules! impl_sql_signing_keys {
    (store: $store:ty $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::SigningKeyStore for $store {
            async fn signing_keys(&self) -> Result<Vec<$crate::StoredSigningKey>, StoreError> {
                let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
                    "SELECT kid, kek_id, sealed, created_at, signs_from FROM signing_keys \
                     ORDER BY signs_from, kid",
                )
                .fetch_all(self.reader())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(
                        |(kid, kek_id, sealed, created_at, signs_from)| $crate::StoredSigningKey {
                            kid,
                            kek_id,
                            sealed,
                            created_at: Timestamp::from_millis(created_at),
                            signs_from: Timestamp::from_millis(signs_from),
                        },
                    )
                    .collect())
            }

            async fn add_signing_key(
                &self,
                key: &$crate::StoredSigningKey,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, kek_id, sealed, created_at, signs_from) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kid) DO NOTHING",
                )
                .bind(&key.kid)
                .bind(&key.kek_id)
                .bind(&key.sealed)
                .bind(key.created_at.as_millis())
                .bind(key.signs_from.as_millis())
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                    .bind(kid)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn rewrap_signing_key(
                &self,
                kid: &str,
                old_kek: &str,
                new_kek: &str,
                sealed: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE signing_keys SET kek_id = $1, sealed = $2 \
                     WHERE kid = $3 AND kek_id = $4",
                )
                .bind(new_kek)
                .bind(sealed)
                .bind(kid)
                .bind(old_kek)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

pub(crate) use impl_sql_signing_keys;
