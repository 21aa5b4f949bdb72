//! The SQL implementation of [`UsageStore`](crate::UsageStore), expanded per backend.

/// Rows per INSERT statement: 23 parameters each stays under both databases' limits.
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
                         cached_tokens, token_source, cost_micros, client_ip, user_agent, \
                         saved_micros) ",
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
                            .push_bind(r.user_agent.clone())
                            .push_bind(r.saved.map(|c| c.0));
                    });
                    // Not kept prepared: each batch size is a statement of its own, and a
                    // cache of large INSERTs would grow by megabytes per size seen.
                    insert.build().persistent(false).execute(&mut *tx).await?;
                }
                let sums: Vec<_> = $crate::rollup::sum(records).into_iter().collect();
                for batch in sums.chunks($crate::rollup::ROLLUPS_PER_STATEMENT) {
                    let mut upsert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO usage_rollups (grain, org_id, bucket, project_id, key_id, \
                         model, status, requests, prompt_tokens, completion_tokens, \
                         cached_tokens, cost_micros, unpriced, latency_ms, timed, cache_hits, \
                         saved_micros) ",
                    );
                    upsert.push_values(batch, |mut row, (key, sums)| {
                        row.push_bind(key.grain)
                            .push_bind(key.org_id.clone())
                            .push_bind(key.bucket)
                            .push_bind(key.project_id.clone())
                            .push_bind(key.key_id.clone())
                            .push_bind(key.model.clone())
                            .push_bind(key.status)
                            .push_bind(sums.requests)
                            .push_bind(sums.prompt_tokens)
                            .push_bind(sums.completion_tokens)
                            .push_bind(sums.cached_tokens)
                            .push_bind(sums.cost_micros)
                            .push_bind(sums.unpriced)
                            .push_bind(sums.latency_ms)
                            .push_bind(sums.timed)
                            .push_bind(sums.cache_hits)
                            .push_bind(sums.saved_micros);
                    });
                    upsert.push(
                        " ON CONFLICT (grain, org_id, bucket, project_id, key_id, model, status) \
                         DO UPDATE SET requests = usage_rollups.requests + excluded.requests, \
                         prompt_tokens = usage_rollups.prompt_tokens + excluded.prompt_tokens, \
                         completion_tokens = usage_rollups.completion_tokens \
                         + excluded.completion_tokens, \
                         cached_tokens = usage_rollups.cached_tokens + excluded.cached_tokens, \
                         cost_micros = usage_rollups.cost_micros + excluded.cost_micros, \
                         unpriced = usage_rollups.unpriced + excluded.unpriced, \
                         latency_ms = usage_rollups.latency_ms + excluded.latency_ms, \
                         timed = usage_rollups.timed + excluded.timed, \
                         cache_hits = usage_rollups.cache_hits + excluded.cache_hits, \
                         saved_micros = usage_rollups.saved_micros + excluded.saved_micros",
                    );
                    upsert.build().persistent(false).execute(&mut *tx).await?;
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
                // The sums of the whole hours and days of the window, and the records of the
                // parts of an hour at its ends, summed together (see `rollup.rs`).
                let pieces = $crate::rollup::pieces(query.from.as_millis(), query.to.as_millis());
                let (summed, counted) = match query.group_by {
                    UsageGroup::Key => ("key_id", "key_id"),
                    UsageGroup::Project => ("project_id", "COALESCE(project_id, '')"),
                    UsageGroup::Model => ("model", "model"),
                    UsageGroup::Day => (
                        "CAST(bucket / 86400000 AS TEXT)",
                        "CAST(at / 86400000 AS TEXT)",
                    ),
                };
                let order = match query.group_by {
                    UsageGroup::Day => "MIN(t)",
                    _ => "cost DESC, grp",
                };
                // One SELECT per piece that is not empty, each a range of the sums' primary
                // key (or of the records' (org_id, at) index), and only the filters asked for:
                // a plan per shape rather than one generic plan that scans everything.
                let mut sql = sqlx::QueryBuilder::<$db>::new(
                    "SELECT grp, CAST(SUM(requests) AS BIGINT) AS requests, \
                     CAST(SUM(errors) AS BIGINT) AS errors, \
                     CAST(SUM(prompt_tokens) AS BIGINT) AS prompt, \
                     CAST(SUM(completion_tokens) AS BIGINT) AS completion, \
                     CAST(SUM(cached_tokens) AS BIGINT) AS cached, \
                     CAST(SUM(cost) AS BIGINT) AS cost, \
                     CAST(SUM(unpriced) AS BIGINT) AS unpriced, \
                     CAST(SUM(latency) AS BIGINT) AS latency, \
                     CAST(SUM(timed) AS BIGINT) AS timed, \
                     CAST(SUM(cache_hits) AS BIGINT) AS hits, \
                     CAST(SUM(saved) AS BIGINT) AS saved FROM (",
                );
                let mut first = true;
                let filters = |sql: &mut sqlx::QueryBuilder<$db>| {
                    if let Some(project) = &query.project {
                        sql.push(" AND project_id = ").push_bind(project.to_string());
                    }
                    if let Some(key) = &query.key {
                        sql.push(" AND key_id = ").push_bind(key.to_string());
                    }
                    if let Some(model) = &query.model {
                        sql.push(" AND model = ").push_bind(model.clone());
                    }
                };
                for (grain, start, end) in pieces.sums.into_iter().filter(|(_, s, e)| s < e) {
                    if !first {
                        sql.push(" UNION ALL ");
                    }
                    first = false;
                    sql.push(format_args!(
                        "SELECT {summed} AS grp, bucket AS t, requests, \
                         CASE WHEN status >= 400 THEN requests ELSE 0 END AS errors, \
                         prompt_tokens, completion_tokens, cached_tokens, \
                         cost_micros AS cost, unpriced, latency_ms AS latency, timed, \
                         cache_hits, saved_micros AS saved \
                         FROM usage_rollups WHERE grain = "
                    ));
                    sql.push_bind(grain)
                        .push(" AND org_id = ")
                        .push_bind(query.org.to_string())
                        .push(" AND bucket >= ")
                        .push_bind(start)
                        .push(" AND bucket < ")
                        .push_bind(end);
                    filters(&mut sql);
                }
                for (start, end) in pieces.records.into_iter().filter(|(s, e)| s < e) {
                    if !first {
                        sql.push(" UNION ALL ");
                    }
                    first = false;
                    sql.push(format_args!(
                        "SELECT {counted} AS grp, at AS t, 1 AS requests, \
                         CASE WHEN status >= 400 THEN 1 ELSE 0 END AS errors, \
                         prompt_tokens, completion_tokens, cached_tokens, \
                         COALESCE(cost_micros, 0) AS cost, \
                         CASE WHEN cost_micros IS NULL THEN 1 ELSE 0 END AS unpriced, \
                         latency_ms AS latency, 1 AS timed, \
                         CASE WHEN token_source = 'cache' THEN 1 ELSE 0 END AS cache_hits, \
                         COALESCE(saved_micros, 0) AS saved \
                         FROM usage_records WHERE org_id = "
                    ));
                    sql.push_bind(query.org.to_string())
                        .push(" AND at >= ")
                        .push_bind(start)
                        .push(" AND at < ")
                        .push_bind(end);
                    filters(&mut sql);
                }
                if first {
                    return Ok(Vec::new());
                }
                sql.push(format_args!(
                    ") AS parts GROUP BY grp ORDER BY {order} LIMIT {limit}",
                    limit = $crate::usage::MAX_USAGE_GROUPS,
                ));
                // Not kept prepared: the statement's shape follows the window and filters.
                #[allow(clippy::type_complexity, reason = "one row of the report's SELECT")]
                let rows: Vec<(String, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64)> = sql
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(self.reader())
                    .await?;
                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                Ok(rows
                    .into_iter()
                    .map(|(grp, requests, errors, prompt, completion, cached, cost, unpriced, latency, timed, hits, saved)| {
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
                            latency_ms: (timed > 0).then(|| count(latency) / count(timed)),
                            cache_hits: count(hits),
                            saved: keygate_core::MicroUsd(saved),
                        }
                    })
                    .collect())
            }

            async fn key_refusals(
                &self,
                org: &keygate_core::OrgId,
                key: &keygate_core::KeyId,
                since: keygate_core::Timestamp,
                limit: u32,
            ) -> Result<Vec<$crate::Refusal>, StoreError> {
                // Along the (org_id, at) index, newest first, until enough are found.
                let rows: Vec<(i64, String, String, i64, Option<String>, Option<String>)> =
                    sqlx::query_as(
                        "SELECT at, endpoint, model, status, error_code, client_ip \
                         FROM usage_records WHERE org_id = $1 AND at >= $2 AND key_id = $3 \
                         AND status >= 400 ORDER BY at DESC LIMIT $4",
                    )
                    .bind(org.as_str())
                    .bind(since.as_millis())
                    .bind(key.as_str())
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|(at, endpoint, model, status, error_code, client_ip)| $crate::Refusal {
                        at: keygate_core::Timestamp::from_millis(at),
                        endpoint,
                        model,
                        status: u16::try_from(status).unwrap_or(0),
                        error_code,
                        client_ip,
                    })
                    .collect())
            }

            async fn prune_usage(
                &self,
                before: keygate_core::Timestamp,
                limit: u32,
            ) -> Result<u64, StoreError> {
                let mut tx = self.begin_write().await?;
                // Organisation by organisation, so that the (org_id, at) index finds the rows.
                let orgs: Vec<(String,)> =
                    sqlx::query_as("SELECT DISTINCT org_id FROM usage_rollups WHERE grain = 'day'")
                        .fetch_all(&mut *tx)
                        .await?;
                let mut deleted = 0u64;
                for (org,) in orgs {
                    let left = i64::from(limit) - i64::try_from(deleted).unwrap_or(i64::MAX);
                    if left <= 0 {
                        break;
                    }
                    deleted += sqlx::query(
                        "DELETE FROM usage_records WHERE id IN (SELECT id FROM usage_records \
                         WHERE org_id = $1 AND at < $2 LIMIT $3)",
                    )
                    .bind(&org)
                    .bind(before.as_millis())
                    .bind(left)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    // An hour's sum is past when its hour ended before the cut.
                    sqlx::query(
                        "DELETE FROM usage_rollups WHERE grain = 'hour' AND org_id = $1 \
                         AND bucket < $2 - 3600000",
                    )
                    .bind(&org)
                    .bind(before.as_millis())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(deleted)
            }

            async fn take_lease(
                &self,
                name: &str,
                holder: &str,
                now: keygate_core::Timestamp,
                until: keygate_core::Timestamp,
            ) -> Result<bool, StoreError> {
                let taken = sqlx::query(
                    "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                     until = excluded.until \
                     WHERE leases.until <= $4 OR leases.holder = excluded.holder",
                )
                .bind(name)
                .bind(holder)
                .bind(until.as_millis())
                .bind(now.as_millis())
                .execute(self.writer())
                .await?
                .rows_affected();
                Ok(taken == 1)
            }
        }
    };
}

pub(crate) use impl_sql_usage;
