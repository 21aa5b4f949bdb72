//! The SQL implementation of [`LimitCountStore`](crate::LimitCountStore), expanded per backend.

macro_rules! impl_sql_limit_counts {
    (store: $store:ty, db: $db:ty $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::LimitCountStore for $store {
            async fn save_limit_counts(
                &self,
                counts: &[$crate::LimitCount],
                now: Timestamp,
            ) -> Result<(), StoreError> {
                // One row per name and statement (PostgreSQL refuses to update a row twice in
                // one statement), the last count of a name winning; in name order, so that
                // two nodes saving the same names lock them in the same order.
                let mut latest = std::collections::BTreeMap::new();
                for count in counts {
                    latest.insert(count.name.as_str(), count);
                }
                if latest.is_empty() {
                    return Ok(());
                }
                let rows: Vec<&$crate::LimitCount> = latest.into_values().collect();
                let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                let mut tx = self.begin_write().await?;
                for batch in rows.chunks($crate::limit_counts::LIMIT_COUNTS_PER_STATEMENT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO limit_counts (name, kind, window_start, used, updated_at) ",
                    );
                    insert.push_values(batch, |mut row, count| {
                        row.push_bind(count.name.clone())
                            .push_bind(count.kind.as_str())
                            .push_bind(int(count.window_start))
                            .push_bind(int(count.used))
                            .push_bind(now.as_millis());
                    });
                    insert.push(
                        " ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
                         window_start = excluded.window_start, used = excluded.used, \
                         updated_at = excluded.updated_at \
                         WHERE limit_counts.window_start <= excluded.window_start",
                    );
                    // Not kept prepared: each batch size is a statement of its own.
                    insert.build().persistent(false).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn load_limit_counts(
                &self,
                since: u64,
            ) -> Result<Vec<$crate::LimitCount>, StoreError> {
                let rows: Vec<$crate::limit_counts::LimitCountRow> = sqlx::query_as(
                    "SELECT name, kind, window_start, used FROM limit_counts \
                     WHERE window_start >= $1 OR window_start = 0",
                )
                .bind(i64::try_from(since).unwrap_or(i64::MAX))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter()
                    .map($crate::limit_counts::from_row)
                    .collect()
            }

            async fn prune_limit_counts(&self, before: u64) -> Result<u64, StoreError> {
                Ok(sqlx::query(
                    "DELETE FROM limit_counts WHERE window_start < $1 AND window_start > 0",
                )
                .bind(i64::try_from(before).unwrap_or(i64::MAX))
                .execute(self.writer())
                .await?
                .rows_affected())
            }
        }
    };
}

pub(crate) use impl_sql_limit_counts;
