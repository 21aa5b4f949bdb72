//! The SQL implementation of [`UsageStore`](crate::UsageStore), expanded per backend.

/// Rows per INSERT statement: 22 parameters each stays under both databases' limits.
pub(crate) const USAGE_ROWS_PER_STATEMENT: usize = 500;

macro_rules! impl_sql_usage {
    (store: $store:ty, db: $db:ty $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::UsageStore for $store {
            async fn insert_usage(
                &self,
                records: &[keygate_core::UsageRecord],
            ) -> Result<(), StoreError> {
                if records.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_write().await?;
                for batch in records.chunks($crate::sql::usage::USAGE_ROWS_PER_STATEMENT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO usage_records (id, at, org_id, project_id, key_id, \
                         endpoint, model, deployment, provider, status, error_code, streamed, \
                         attempts, latency_ms, ttft_ms, prompt_tokens, completion_tokens, \
                         cached_tokens, token_source, cost_micros, client_ip, user_agent) ",
                    );
                    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                    insert.push_values(batch, |mut row, r| {
                        row.push_bind(r.id.clone())
                            .push_bind(r.at.as_millis())
                            .push_bind(r.org_id.to_string())
                            .push_bind(r.project_id.as_ref().map(ToString::to_string))
                            .push_bind(r.key_id.to_string())
                            .push_bind(r.endpoint.clone())
                            .push_bind(r.model.clone())
                            .push_bind(r.deployment.clone())
                            .push_bind(r.provider.clone())
                            .push_bind(i64::from(r.status))
                            .push_bind(r.error_code.clone())
                            .push_bind(i64::from(r.streamed))
                            .push_bind(i64::from(r.attempts))
                            .push_bind(int(r.latency_ms))
                            .push_bind(r.ttft_ms.map(int))
                            .push_bind(int(r.tokens.prompt))
                            .push_bind(int(r.tokens.completion))
                            .push_bind(int(r.tokens.cached))
                            .push_bind(r.token_source.as_str())
                            .push_bind(r.cost.map(|c| c.0))
                            .push_bind(r.client_ip.clone())
                            .push_bind(r.user_agent.clone());
                    });
                    // Not kept prepared: each batch size is a statement of its own, and a
                    // cache of large INSERTs would grow by megabytes per size seen.
                    insert.build().persistent(false).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn usage_report(
                &self,
                query: &$crate::UsageQuery,
            ) -> Result<Vec<$crate::UsageRow>, StoreError> {
                use $crate::UsageGroup;
                // Fixed expressions per group: nothing from the request reaches the SQL text.
                let (group, order) = match query.group_by {
                    UsageGroup::Key => ("key_id", "cost DESC, grp"),
                    UsageGroup::Project => ("COALESCE(project_id, '')", "cost DESC, grp"),
                    UsageGroup::Model => ("model", "cost DESC, grp"),
                    UsageGroup::Day => ("CAST(at / 86400000 AS TEXT)", "MIN(at)"),
                };
                let sql = format!(
                    "SELECT {group} AS grp, COUNT(*) AS requests, \
                     CAST(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
                     CAST(SUM(prompt_tokens) AS BIGINT) AS prompt, \
                     CAST(SUM(completion_tokens) AS BIGINT) AS completion, \
                     CAST(SUM(cached_tokens) AS BIGINT) AS cached, \
                     CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost, \
                     CAST(SUM(CASE WHEN cost_micros IS NULL THEN 1 ELSE 0 END) AS BIGINT) \
                     AS unpriced \
                     FROM usage_records \
                     WHERE org_id = $1 AND at >= $2 AND at < $3 \
                     AND ($4 IS NULL OR project_id = $4) AND ($5 IS NULL OR key_id = $5) \
                     AND ($6 IS NULL OR model = $6) \
                     GROUP BY {group} ORDER BY {order} LIMIT {limit}",
                    limit = $crate::usage::MAX_USAGE_GROUPS,
                );
                let rows: Vec<(String, i64, i64, i64, i64, i64, i64, i64)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(query.org.to_string())
                        .bind(query.from.as_millis())
                        .bind(query.to.as_millis())
                        .bind(query.project.as_ref().map(ToString::to_string))
                        .bind(query.key.as_ref().map(ToString::to_string))
                        .bind(query.model.clone())
                        .fetch_all(self.reader())
                        .await?;
                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                Ok(rows
                    .into_iter()
                    .map(|(grp, requests, errors, prompt, completion, cached, cost, unpriced)| {
                        $crate::UsageRow {
                            group: match query.group_by {
                                UsageGroup::Day => $crate::usage_day(&grp),
                                _ => grp,
                            },
                            requests: count(requests),
                            errors: count(errors),
                            prompt_tokens: count(prompt),
                            completion_tokens: count(completion),
                            cached_tokens: count(cached),
                            cost: keygate_core::MicroUsd(cost),
                            unpriced: count(unpriced),
                        }
                    })
                    .collect())
            }
        }
    };
}

pub(crate) use impl_sql_usage;
