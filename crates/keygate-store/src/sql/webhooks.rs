//! The SQL implementation of [`WebhookStore`](crate::WebhookStore), expanded per backend.

use keygate_core::{DeliveryId, EventId, OrgId, ProjectId, Timestamp, WebhookId};

use crate::webhooks::{Delivery, DeliveryState, WebhookEndpoint};
use crate::{StoreError, rows::corrupt};

/// The columns of `webhook_endpoints`, in [`EndpointRow`] order.
macro_rules! endpoint_columns {
    () => {
        "id, org_id, project_id, url, description, event_types, kek_id, secret_sealed, \
         disabled_at, created_at, updated_at"
    };
}

/// The columns of a delivery joined with its event (`d`, `e`), in [`DeliveryRow`] order.
macro_rules! delivery_columns {
    () => {
        "d.id, d.event_id, d.endpoint_id, e.event_type, d.state, d.attempts, d.next_at, \
         d.last_status, d.last_error, d.delivered_at, d.created_at"
    };
}

macro_rules! impl_sql_webhooks {
    (store: $store:ty, for_update: $for_update:literal $(,)?) => {
        impl $store {
            /// Stores events with one pending delivery per endpoint that wants each (only
            /// `endpoint`, when given); an event no endpoint wants is not kept.
            pub(crate) async fn enqueue_tx(
                tx: &mut Tx,
                events: &[$crate::OutboxEvent],
                endpoint: Option<&keygate_core::WebhookId>,
                now: Timestamp,
            ) -> Result<u64, StoreError> {
                let rows: Vec<$crate::sql::webhooks::EndpointRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::webhooks::endpoint_columns!(),
                    " FROM webhook_endpoints WHERE deleted_at IS NULL \
                      AND ($1 IS NULL OR id = $1)"
                ))
                .bind(endpoint.map(keygate_core::WebhookId::as_str))
                .fetch_all(&mut **tx)
                .await?;
                let endpoints = rows
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect::<Result<Vec<$crate::WebhookEndpoint>, _>>()?;
                let mut queued = 0u64;
                for event in events {
                    let targets: Vec<&$crate::WebhookEndpoint> = endpoints
                        .iter()
                        .filter(|target| {
                            let same_org =
                                event.org_id.as_ref().is_none_or(|o| *o == target.org_id);
                            // A test event goes to the one endpoint asked for, even if it is
                            // not subscribed to that type.
                            let wanted = endpoint.is_some()
                                || target.wants(&event.event_type, event.project_id.as_ref());
                            same_org && wanted
                        })
                        .collect();
                    if targets.is_empty() {
                        continue;
                    }
                    sqlx::query(
                        "INSERT INTO webhook_events (id, org_id, project_id, event_type, \
                         payload, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(event.id.as_str())
                    .bind(event.org_id.as_ref().map(OrgId::as_str))
                    .bind(event.project_id.as_ref().map(ProjectId::as_str))
                    .bind(&event.event_type)
                    .bind(&event.payload)
                    .bind(event.at.as_millis())
                    .execute(&mut **tx)
                    .await?;
                    for target in targets {
                        sqlx::query(
                            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, state, \
                             attempts, next_at, locked_until, created_at) \
                             VALUES ($1, $2, $3, 'pending', 0, $4, 0, $4)",
                        )
                        .bind(keygate_core::DeliveryId::generate().as_str())
                        .bind(event.id.as_str())
                        .bind(target.id.as_str())
                        .bind(now.as_millis())
                        .execute(&mut **tx)
                        .await?;
                        queued += 1;
                    }
                }
                Ok(queued)
            }

            async fn locked_webhook_tx(
                tx: &mut Tx,
                id: &keygate_core::WebhookId,
            ) -> Result<$crate::WebhookEndpoint, StoreError> {
                let row: Option<$crate::sql::webhooks::EndpointRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::webhooks::endpoint_columns!(),
                    " FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL",
                    $for_update
                ))
                .bind(id.as_str())
                .fetch_optional(&mut **tx)
                .await?;
                row.ok_or(StoreError::NotFound { entity: "webhook" })?
                    .try_into()
            }
        }

        #[async_trait::async_trait]
        impl $crate::WebhookStore for $store {
            async fn create_webhook(
                &self,
                endpoint: &$crate::WebhookEndpoint,
                audit: &AuditDraft,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(concat!(
                    "INSERT INTO webhook_endpoints (",
                    $crate::sql::webhooks::endpoint_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .bind(endpoint.id.as_str())
                .bind(endpoint.org_id.as_str())
                .bind(endpoint.project_id.as_ref().map(ProjectId::as_str))
                .bind(&endpoint.url)
                .bind(&endpoint.description)
                .bind($crate::sql::webhooks::types_text(&endpoint.event_types))
                .bind(&endpoint.kek_id)
                .bind(&endpoint.secret_sealed)
                .bind(endpoint.disabled_at.map(Timestamp::as_millis))
                .bind(endpoint.created_at.as_millis())
                .bind(endpoint.updated_at.as_millis())
                .execute(&mut *tx)
                .await?;
                Self::append_audit_tx(&mut tx, audit, endpoint.created_at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn webhooks(
                &self,
                org: &OrgId,
            ) -> Result<Vec<$crate::WebhookEndpoint>, StoreError> {
                let rows: Vec<$crate::sql::webhooks::EndpointRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::webhooks::endpoint_columns!(),
                    " FROM webhook_endpoints WHERE org_id = $1 AND deleted_at IS NULL ORDER BY id"
                ))
                .bind(org.as_str())
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn webhook(
                &self,
                id: &keygate_core::WebhookId,
            ) -> Result<Option<$crate::WebhookEndpoint>, StoreError> {
                let row: Option<$crate::sql::webhooks::EndpointRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::webhooks::endpoint_columns!(),
                    " FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL"
                ))
                .bind(id.as_str())
                .fetch_optional(self.reader())
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn update_webhook(
                &self,
                id: &keygate_core::WebhookId,
                patch: &$crate::WebhookPatch,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<$crate::WebhookEndpoint, StoreError> {
                let mut tx = self.begin_write().await?;
                let mut endpoint = Self::locked_webhook_tx(&mut tx, id).await?;
                if let Some(url) = &patch.url {
                    endpoint.url.clone_from(url);
                }
                if let Some(description) = &patch.description {
                    endpoint.description.clone_from(description);
                }
                if let Some(types) = &patch.event_types {
                    endpoint.event_types.clone_from(types);
                }
                match patch.disabled {
                    Some(true) if endpoint.disabled_at.is_none() => {
                        endpoint.disabled_at = Some(now);
                    }
                    Some(false) => endpoint.disabled_at = None,
                    _ => {}
                }
                endpoint.updated_at = now;
                sqlx::query(
                    "UPDATE webhook_endpoints SET url = $2, description = $3, event_types = $4, \
                     disabled_at = $5, updated_at = $6 WHERE id = $1",
                )
                .bind(id.as_str())
                .bind(&endpoint.url)
                .bind(&endpoint.description)
                .bind($crate::sql::webhooks::types_text(&endpoint.event_types))
                .bind(endpoint.disabled_at.map(Timestamp::as_millis))
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(endpoint)
            }

            async fn delete_webhook(
                &self,
                id: &keygate_core::WebhookId,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                Self::locked_webhook_tx(&mut tx, id).await?;
                sqlx::query("UPDATE webhook_endpoints SET deleted_at = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE webhook_deliveries SET state = 'dead', \
                     last_error = 'the endpoint was deleted' \
                     WHERE endpoint_id = $1 AND state = 'pending'",
                )
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn enqueue_events(
                &self,
                events: &[$crate::OutboxEvent],
                endpoint: Option<&keygate_core::WebhookId>,
                cursor: Option<&$crate::CursorMove<'_>>,
                now: Timestamp,
            ) -> Result<u64, StoreError> {
                let mut tx = self.begin_write().await?;
                // The cursor first: a node that lost the race writes nothing.
                if let Some(cursor) = cursor {
                    let moved = match cursor.from {
                        None => sqlx::query(
                            "INSERT INTO cursors (name, position) VALUES ($1, $2) \
                             ON CONFLICT (name) DO NOTHING",
                        )
                        .bind(cursor.name)
                        .bind(cursor.to),
                        Some(from) => sqlx::query(
                            "UPDATE cursors SET position = $2 WHERE name = $1 AND position = $3",
                        )
                        .bind(cursor.name)
                        .bind(cursor.to)
                        .bind(from),
                    }
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if moved != 1 {
                        return Err($crate::Conflict::VersionTaken { entity: "cursor" }.into());
                    }
                }
                let queued = Self::enqueue_tx(&mut tx, events, endpoint, now).await?;
                tx.commit().await?;
                Ok(queued)
            }

            async fn cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
                Ok(
                    sqlx::query_scalar("SELECT position FROM cursors WHERE name = $1")
                        .bind(name)
                        .fetch_optional(self.writer())
                        .await?,
                )
            }

            async fn claim_deliveries(
                &self,
                now: Timestamp,
                lease_until: Timestamp,
                limit: u32,
            ) -> Result<Vec<$crate::DueDelivery>, StoreError> {
                let mut tx = self.begin_write().await?;
                // Rows another node is claiming wait for its commit, then fail the lease test.
                let ids: Vec<(String,)> = sqlx::query_as(concat!(
                    "SELECT d.id FROM webhook_deliveries d \
                     JOIN webhook_endpoints w ON w.id = d.endpoint_id \
                     WHERE d.state = 'pending' AND d.next_at <= $1 AND d.locked_until <= $1 \
                     AND w.deleted_at IS NULL AND w.disabled_at IS NULL \
                     ORDER BY d.next_at, d.id LIMIT $2",
                    $for_update
                ))
                .bind(now.as_millis())
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                let mut due = Vec::with_capacity(ids.len());
                for (id,) in ids {
                    let claimed = sqlx::query(
                        "UPDATE webhook_deliveries SET locked_until = $2 \
                         WHERE id = $1 AND state = 'pending' AND locked_until <= $3",
                    )
                    .bind(&id)
                    .bind(lease_until.as_millis())
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if claimed != 1 {
                        continue;
                    }
                    let row: $crate::sql::webhooks::DueRow = sqlx::query_as(concat!(
                        "SELECT ",
                        $crate::sql::webhooks::delivery_columns!(),
                        ", e.payload, w.url, w.kek_id, w.secret_sealed \
                         FROM webhook_deliveries d \
                         JOIN webhook_events e ON e.id = d.event_id \
                         JOIN webhook_endpoints w ON w.id = d.endpoint_id WHERE d.id = $1"
                    ))
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await?;
                    let mut claimed: $crate::DueDelivery = row.try_into()?;
                    claimed.claimed_until = lease_until;
                    due.push(claimed);
                }
                tx.commit().await?;
                Ok(due)
            }

            async fn finish_attempt(
                &self,
                claimed: &$crate::DueDelivery,
                outcome: &$crate::AttemptOutcome,
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                use $crate::AttemptOutcome as O;
                let (state, next_at, status, error, delivered_at) = match outcome {
                    O::Delivered { status } => {
                        ("delivered", now, Some(*status), None, Some(now.as_millis()))
                    }
                    O::Retry { at, status, error } => {
                        ("pending", *at, *status, Some(error.as_str()), None)
                    }
                    O::Dead { status, error } => ("dead", now, *status, Some(error.as_str()), None),
                };
                let recorded = sqlx::query(
                    "UPDATE webhook_deliveries SET state = $2, attempts = attempts + 1, \
                     next_at = $3, locked_until = 0, last_status = $4, last_error = $5, \
                     delivered_at = $6 WHERE id = $1 AND state = 'pending' \
                     AND locked_until = $7 AND attempts = $8",
                )
                .bind(claimed.delivery.id.as_str())
                .bind(state)
                .bind(next_at.as_millis())
                .bind(status.map(i64::from))
                .bind(error)
                .bind(delivered_at)
                .bind(claimed.claimed_until.as_millis())
                .bind(i64::from(claimed.delivery.attempts))
                .execute(self.writer())
                .await?
                .rows_affected();
                Ok(recorded == 1)
            }

            async fn deliveries(
                &self,
                filter: &$crate::DeliveryFilter,
            ) -> Result<Vec<$crate::Delivery>, StoreError> {
                let rows: Vec<$crate::sql::webhooks::DeliveryRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::webhooks::delivery_columns!(),
                    " FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
                      WHERE d.endpoint_id = $1 AND ($2 IS NULL OR d.state = $2) \
                      AND ($3 IS NULL OR d.id < $3) ORDER BY d.id DESC LIMIT $4"
                ))
                .bind(filter.endpoint_id.as_str())
                .bind(filter.state.map($crate::DeliveryState::as_str))
                .bind(filter.before.as_ref().map(keygate_core::DeliveryId::as_str))
                .bind(i64::from(filter.limit))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn replay_delivery(
                &self,
                endpoint: &keygate_core::WebhookId,
                id: &keygate_core::DeliveryId,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<$crate::Delivery, StoreError> {
                let mut tx = self.begin_write().await?;
                Self::locked_webhook_tx(&mut tx, endpoint).await?;
                let replayed = sqlx::query(
                    "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, \
                     next_at = $3, locked_until = 0, delivered_at = NULL \
                     WHERE id = $1 AND endpoint_id = $2 AND state <> 'pending'",
                )
                .bind(id.as_str())
                .bind(endpoint.as_str())
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let row: Option<$crate::sql::webhooks::DeliveryRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::webhooks::delivery_columns!(),
                    " FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
                      WHERE d.id = $1 AND d.endpoint_id = $2"
                ))
                .bind(id.as_str())
                .bind(endpoint.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let delivery: $crate::Delivery = row
                    .ok_or(StoreError::NotFound { entity: "delivery" })?
                    .try_into()?;
                if replayed != 1 {
                    return Err($crate::Conflict::DeliveryPending.into());
                }
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                Ok(delivery)
            }

            async fn webhooks_not_wrapped_by(
                &self,
                kek_id: &str,
                limit: u32,
            ) -> Result<Vec<$crate::WebhookEndpoint>, StoreError> {
                let rows: Vec<$crate::sql::webhooks::EndpointRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::webhooks::endpoint_columns!(),
                    " FROM webhook_endpoints WHERE kek_id <> $1 ORDER BY id LIMIT $2"
                ))
                .bind(kek_id)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn rewrap_webhook_secret(
                &self,
                id: &keygate_core::WebhookId,
                old_kek: &str,
                new_kek: &str,
                sealed: &str,
            ) -> Result<bool, StoreError> {
                let moved = sqlx::query(
                    "UPDATE webhook_endpoints SET kek_id = $3, secret_sealed = $4 \
                     WHERE id = $1 AND kek_id = $2",
                )
                .bind(id.as_str())
                .bind(old_kek)
                .bind(new_kek)
                .bind(sealed)
                .execute(self.writer())
                .await?
                .rows_affected();
                Ok(moved == 1)
            }
        }
    };
}

pub(crate) use {delivery_columns, endpoint_columns, impl_sql_webhooks};

/// Event types as stored: a JSON array of names.
pub(crate) fn types_text(types: &[String]) -> String {
    serde_json::to_string(types).unwrap_or_else(|_| "[]".to_owned())
}

#[derive(sqlx::FromRow)]
pub(crate) struct EndpointRow {
    id: String,
    org_id: String,
    project_id: Option<String>,
    url: String,
    description: String,
    event_types: String,
    kek_id: String,
    secret_sealed: String,
    disabled_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<EndpointRow> for WebhookEndpoint {
    type Error = StoreError;
    fn try_from(row: EndpointRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: WebhookId::parse(&row.id).map_err(|_| corrupt("webhook_endpoints.id")())?,
            org_id: OrgId::parse(&row.org_id).map_err(|_| corrupt("webhook_endpoints.org_id")())?,
            project_id: row
                .project_id
                .map(|p| ProjectId::parse(&p))
                .transpose()
                .map_err(|_| corrupt("webhook_endpoints.project_id")())?,
            url: row.url,
            description: row.description,
            event_types: serde_json::from_str(&row.event_types)
                .map_err(|_| corrupt("webhook_endpoints.event_types")())?,
            kek_id: row.kek_id,
            secret_sealed: row.secret_sealed,
            disabled_at: row.disabled_at.map(Timestamp::from_millis),
            created_at: Timestamp::from_millis(row.created_at),
            updated_at: Timestamp::from_millis(row.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: String,
    event_id: String,
    endpoint_id: String,
    event_type: String,
    state: String,
    attempts: i64,
    next_at: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    delivered_at: Option<i64>,
    created_at: i64,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(row: DeliveryRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: DeliveryId::parse(&row.id).map_err(|_| corrupt("webhook_deliveries.id")())?,
            event_id: EventId::parse(&row.event_id)
                .map_err(|_| corrupt("webhook_deliveries.event_id")())?,
            endpoint_id: WebhookId::parse(&row.endpoint_id)
                .map_err(|_| corrupt("webhook_deliveries.endpoint_id")())?,
            event_type: row.event_type,
            state: DeliveryState::parse(&row.state)
                .ok_or_else(corrupt("webhook_deliveries.state"))?,
            attempts: u32::try_from(row.attempts)
                .map_err(|_| corrupt("webhook_deliveries.attempts")())?,
            next_at: Timestamp::from_millis(row.next_at),
            last_status: row.last_status.and_then(|s| u16::try_from(s).ok()),
            last_error: row.last_error,
            delivered_at: row.delivered_at.map(Timestamp::from_millis),
            created_at: Timestamp::from_millis(row.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DueRow {
    #[sqlx(flatten)]
    delivery: DeliveryRow,
    payload: String,
    url: String,
    kek_id: String,
    secret_sealed: String,
}

impl TryFrom<DueRow> for crate::DueDelivery {
    type Error = StoreError;
    fn try_from(row: DueRow) -> Result<Self, StoreError> {
        Ok(Self {
            delivery: row.delivery.try_into()?,
            claimed_until: Timestamp::from_millis(0),
            payload: row.payload,
            url: row.url,
            kek_id: row.kek_id,
            secret_sealed: row.secret_sealed,
        })
    }
}
