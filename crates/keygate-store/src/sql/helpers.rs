//! The transaction helpers of the SQL store: appending to the audit chain, inserting,
//! locking and writing keys, idempotency entries, rotation. Expanded per backend by
//! `impl_sql_store!`, like the rest of the implementation.

macro_rules! impl_sql_helpers {
    (
        store: $store:ty,
        db: $db:ty,
        begin_write: $begin:literal,
        for_update: $for_update:literal $(,)?
    ) => {
        type Tx = sqlx::Transaction<'static, $db>;

        impl $store {
            async fn begin_write(&self) -> Result<Tx, StoreError> {
                Ok(self.writer().begin_with($begin).await?)
            }

            async fn append_audit_tx(
                tx: &mut Tx,
                audit: &AuditDraft,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                let (seq, hash): (i64, String) = sqlx::query_as(concat!(
                    "SELECT seq, hash FROM audit_head WHERE id = 1",
                    $for_update
                ))
                .fetch_one(&mut **tx)
                .await?;
                let head = ChainHead { seq, hash };
                let event = audit.seal(head.seq + 1, now, head.hash_bytes());
                sqlx::query(
                    "INSERT INTO audit_events (seq, ts, actor, action, outcome, org_id, \
                     project_id, target, details, client_ip, request_id, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(event.seq)
                .bind(event.ts.as_millis())
                .bind(&event.actor)
                .bind(&event.action)
                .bind(&event.outcome)
                .bind(&event.org_id)
                .bind(&event.project_id)
                .bind(&event.target)
                .bind(&event.details)
                .bind(&event.client_ip)
                .bind(&event.request_id)
                .bind(&event.prev_hash)
                .bind(&event.hash)
                .execute(&mut **tx)
                .await?;
                sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                    .bind(event.seq)
                    .bind(&event.hash)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn insert_key_tx(
                tx: &mut Tx,
                key: &KeyRecord,
                secret: &KeySecret,
            ) -> Result<(), StoreError> {
                let row = KeyRow::from_record(key);
                sqlx::query(concat!(
                    "INSERT INTO api_keys (",
                    $crate::sql::key_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                     $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)"
                ))
                .bind(row.id)
                .bind(row.kind)
                .bind(row.org_id)
                .bind(row.project_id)
                .bind(row.name)
                .bind(row.env)
                .bind(row.role)
                .bind(row.scopes)
                .bind(row.expires_at)
                .bind(row.ip_allow)
                .bind(row.metadata)
                .bind(row.created_at)
                .bind(row.updated_at)
                .bind(row.last_used_at)
                .bind(row.revoked_at)
                .bind(row.revoked_reason)
                .bind(row.deleted_at)
                .bind(row.rotate_every_ms)
                .bind(row.rotated_at)
                .bind(row.generation)
                .bind(row.hint)
                .bind(row.limits)
                .bind(row.publishable_origins)
                .bind(row.suspended_at)
                .bind(row.suspended_reason)
                .bind(row.throttle)
                .bind(row.last_write_at)
                .execute(&mut **tx)
                .await?;
                Self::insert_secret_tx(tx, secret).await
            }

            async fn insert_secret_tx(tx: &mut Tx, secret: &KeySecret) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO key_secrets (digest, key_id, generation, created_at, grace_until) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&secret.digest)
                .bind(secret.key_id.as_str())
                .bind(secret.generation)
                .bind(secret.created_at.as_millis())
                .bind(secret.grace_until.map(Timestamp::as_millis))
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Reads a key for change, locking its row until the transaction ends.
            /// A deleted key is not found.
            async fn locked_key(tx: &mut Tx, id: &KeyId) -> Result<KeyRecord, StoreError> {
                let row: Option<KeyRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::key_columns!(),
                    " FROM api_keys WHERE id = $1",
                    $for_update
                ))
                .bind(id.as_str())
                .fetch_optional(&mut **tx)
                .await?;
                let key = KeyRecord::try_from(row.ok_or(StoreError::NotFound { entity: "key" })?)?;
                if key.deleted_at.is_some() {
                    return Err(StoreError::NotFound { entity: "key" });
                }
                Ok(key)
            }

            /// Locks a key, applies `change` to it, and writes it back with its audit event, in
            /// one transaction; nothing is written when `change` refuses.
            async fn change_key(
                &self,
                id: &KeyId,
                now: Timestamp,
                audit: &AuditDraft,
                change: impl FnOnce(&mut KeyRecord) -> Result<(), StoreError> + Send,
            ) -> Result<KeyRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let mut key = Self::locked_key(&mut tx, id).await?;
                change(&mut key)?;
                Self::write_key_tx(&mut tx, &key).await?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(key)
            }

            /// Writes back every mutable column of a key.
            async fn write_key_tx(tx: &mut Tx, key: &KeyRecord) -> Result<(), StoreError> {
                let row = KeyRow::from_record(key);
                sqlx::query(
                    "UPDATE api_keys SET name = $2, scopes = $3, expires_at = $4, ip_allow = $5, \
                     metadata = $6, updated_at = $7, revoked_at = $8, revoked_reason = $9, \
                     deleted_at = $10, rotate_every_ms = $11, rotated_at = $12, generation = $13, \
                     hint = $14, limits = $15, publishable_origins = $16, suspended_at = $17, \
                     suspended_reason = $18, throttle = $19 WHERE id = $1",
                )
                .bind(row.id)
                .bind(row.name)
                .bind(row.scopes)
                .bind(row.expires_at)
                .bind(row.ip_allow)
                .bind(row.metadata)
                .bind(row.updated_at)
                .bind(row.revoked_at)
                .bind(row.revoked_reason)
                .bind(row.deleted_at)
                .bind(row.rotate_every_ms)
                .bind(row.rotated_at)
                .bind(row.generation)
                .bind(row.hint)
                .bind(row.limits)
                .bind(row.publishable_origins)
                .bind(row.suspended_at)
                .bind(row.suspended_reason)
                .bind(row.throttle)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn idempotency_entry(
                executor: &mut <$db as sqlx::Database>::Connection,
                scope: &str,
                key: &str,
                now: Timestamp,
            ) -> Result<Option<IdempotencyEntry>, StoreError> {
                let row: Option<IdempotencyRow> = sqlx::query_as(
                    "SELECT fingerprint, response, created_at FROM idempotency \
                     WHERE scope = $1 AND idem_key = $2 AND created_at > $3",
                )
                .bind(scope)
                .bind(key)
                .bind(now.as_millis() - IDEMPOTENCY_TTL_MS)
                .fetch_optional(executor)
                .await?;
                Ok(row.map(|row| IdempotencyEntry {
                    scope: scope.to_owned(),
                    key: key.to_owned(),
                    fingerprint: row.fingerprint,
                    response: row.response,
                    created_at: Timestamp::from_millis(row.created_at),
                }))
            }

            /// Binds `$1`-`$9` of `key_filter!`, the page limit (`$8`) among them.
            fn bind_key_filter<'q>(
                query: sqlx::query::QueryAs<'q, $db, KeyRow, <$db as sqlx::Database>::Arguments>,
                filter: &'q KeyFilter,
            ) -> sqlx::query::QueryAs<'q, $db, KeyRow, <$db as sqlx::Database>::Arguments> {
                query
                    .bind(filter.org_id.as_str())
                    .bind(filter.kind.as_str())
                    .bind(filter.project_id.as_ref().map(ProjectId::as_str))
                    .bind(filter.env.map(KeyEnv::as_str))
                    .bind(filter.after.as_ref().map(KeyId::as_str))
                    .bind(filter.status.map(KeyStatus::as_str))
                    .bind(filter.now.as_millis())
                    .bind(i64::from(filter.limit))
                    .bind(filter.name_contains.as_deref().map($crate::sql::contains_pattern))
            }

            /// The stored answer to a repeated request, or a conflict if the body differs.
            fn replay(
                stored: IdempotencyEntry,
                asked: &IdempotencyEntry,
            ) -> Result<RotateOutcome, StoreError> {
                if stored.fingerprint == asked.fingerprint {
                    Ok(RotateOutcome::Replayed(stored))
                } else {
                    Err(Conflict::IdempotencyKeyReused.into())
                }
            }

            async fn rotate_tx(
                tx: &mut Tx,
                rotation: &Rotation,
                audit: &AuditDraft,
            ) -> Result<KeyRecord, StoreError> {
                let mut key = Self::locked_key(tx, &rotation.key_id).await?;
                if !key.is_mutable() {
                    return Err(Conflict::KeyNotMutable(key.status(rotation.now)).into());
                }
                // Shortens, never lengthens, the grace of secrets already rotated out.
                sqlx::query(
                    "UPDATE key_secrets SET grace_until = $2 \
                     WHERE key_id = $1 AND (grace_until IS NULL OR grace_until > $2)",
                )
                .bind(key.id.as_str())
                .bind(rotation.grace_until.as_millis())
                .execute(&mut **tx)
                .await?;
                key.generation += 1;
                key.rotated_at = Some(rotation.now);
                key.updated_at = rotation.now;
                key.hint = rotation.new_hint.clone();
                let secret = KeySecret {
                    digest: rotation.new_digest.clone(),
                    key_id: key.id.clone(),
                    generation: key.generation,
                    created_at: rotation.now,
                    grace_until: None,
                };
                Self::insert_secret_tx(tx, &secret).await?;
                Self::write_key_tx(tx, &key).await?;
                Self::append_audit_tx(tx, audit, rotation.now).await?;
                // Expired entries go, all of them: each holds a sealed secret that must not
                // outlive its day. A live entry for this request means a concurrent retry
                // committed first: the INSERT below then fails on the primary key, and
                // `rotate_key` answers with that retry's stored result.
                sqlx::query("DELETE FROM idempotency WHERE created_at <= $1")
                    .bind(rotation.now.as_millis() - IDEMPOTENCY_TTL_MS)
                    .execute(&mut **tx)
                    .await?;
                if let Some(entry) = &rotation.idempotency {
                    sqlx::query(
                        "INSERT INTO idempotency (scope, idem_key, fingerprint, response, \
                         created_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&entry.scope)
                    .bind(&entry.key)
                    .bind(&entry.fingerprint)
                    .bind(&entry.response)
                    .bind(entry.created_at.as_millis())
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(key)
            }
        }
    };
}

pub(crate) use impl_sql_helpers;
