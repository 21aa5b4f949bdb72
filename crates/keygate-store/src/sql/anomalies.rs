//! The SQL implementation of [`AnomalyStore`](crate::AnomalyStore), expanded per backend.

use keygate_core::{AnomalyId, KeyId, OrgId, ProjectId, Timestamp};

use crate::{Anomaly, StoreError, rows::corrupt};

macro_rules! anomaly_columns {
    () => {
        "id, org_id, project_id, key_id, detector, evidence, action, outcome, detected_at, \
         acknowledged_at, acknowledged_by, note"
    };
}

macro_rules! impl_sql_anomalies {
    (store: $store:ty, for_update: $for_update:literal $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::AnomalyStore for $store {
            async fn add_anomaly(
                &self,
                anomaly: &$crate::Anomaly,
                events: &[$crate::OutboxEvent],
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(concat!(
                    "INSERT INTO anomalies (",
                    $crate::sql::anomalies::anomaly_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ))
                .bind(anomaly.id.as_str())
                .bind(anomaly.org_id.as_str())
                .bind(anomaly.project_id.as_ref().map(ProjectId::as_str))
                .bind(anomaly.key_id.as_ref().map(keygate_core::KeyId::as_str))
                .bind(&anomaly.detector)
                .bind(&anomaly.evidence)
                .bind(&anomaly.action)
                .bind(&anomaly.outcome)
                .bind(anomaly.detected_at.as_millis())
                .bind(anomaly.acknowledged_at.map(Timestamp::as_millis))
                .bind(&anomaly.acknowledged_by)
                .bind(&anomaly.note)
                .execute(&mut *tx)
                .await?;
                Self::enqueue_tx(&mut tx, events, None, anomaly.detected_at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn anomalies(
                &self,
                filter: &$crate::AnomalyFilter,
            ) -> Result<Vec<$crate::Anomaly>, StoreError> {
                let acknowledged = filter.acknowledged.map(i64::from);
                let rows: Vec<$crate::sql::anomalies::AnomalyRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::anomalies::anomaly_columns!(),
                    " FROM anomalies WHERE org_id = $1 \
                      AND ($2 IS NULL OR project_id = $2) AND ($3 IS NULL OR key_id = $3) \
                      AND ($4 IS NULL OR ($4 = 1) = (acknowledged_at IS NOT NULL)) \
                      AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6"
                ))
                .bind(filter.org_id.as_str())
                .bind(filter.project_id.as_ref().map(ProjectId::as_str))
                .bind(filter.key_id.as_ref().map(keygate_core::KeyId::as_str))
                .bind(acknowledged)
                .bind(filter.before.as_ref().map(keygate_core::AnomalyId::as_str))
                .bind(i64::from(filter.limit))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn anomaly(
                &self,
                id: &keygate_core::AnomalyId,
            ) -> Result<Option<$crate::Anomaly>, StoreError> {
                let row: Option<$crate::sql::anomalies::AnomalyRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::anomalies::anomaly_columns!(),
                    " FROM anomalies WHERE id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(self.reader())
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn acknowledge_anomaly(
                &self,
                id: &keygate_core::AnomalyId,
                by: &str,
                note: Option<&str>,
                now: Timestamp,
                audit: &AuditDraft,
            ) -> Result<$crate::Anomaly, StoreError> {
                let mut tx = self.begin_write().await?;
                let row: Option<$crate::sql::anomalies::AnomalyRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::sql::anomalies::anomaly_columns!(),
                    " FROM anomalies WHERE id = $1",
                    $for_update
                ))
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let mut anomaly: $crate::Anomaly = row
                    .ok_or(StoreError::NotFound { entity: "anomaly" })?
                    .try_into()?;
                if anomaly.acknowledged_at.is_some() {
                    return Err($crate::Conflict::AlreadyAcknowledged.into());
                }
                sqlx::query(
                    "UPDATE anomalies SET acknowledged_at = $2, acknowledged_by = $3, note = $4 \
                     WHERE id = $1",
                )
                .bind(id.as_str())
                .bind(now.as_millis())
                .bind(by)
                .bind(note)
                .execute(&mut *tx)
                .await?;
                Self::append_audit_tx(&mut tx, audit, now).await?;
                tx.commit().await?;
                anomaly.acknowledged_at = Some(now);
                anomaly.acknowledged_by = Some(by.to_owned());
                anomaly.note = note.map(str::to_owned);
                Ok(anomaly)
            }
        }
    };
}

pub(crate) use {anomaly_columns, impl_sql_anomalies};

#[derive(sqlx::FromRow)]
pub(crate) struct AnomalyRow {
    id: String,
    org_id: String,
    project_id: Option<String>,
    key_id: Option<String>,
    detector: String,
    evidence: String,
    action: String,
    outcome: String,
    detected_at: i64,
    acknowledged_at: Option<i64>,
    acknowledged_by: Option<String>,
    note: Option<String>,
}

impl TryFrom<AnomalyRow> for Anomaly {
    type Error = StoreError;
    fn try_from(row: AnomalyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: AnomalyId::parse(&row.id).map_err(|_| corrupt("anomalies.id")())?,
            org_id: OrgId::parse(&row.org_id).map_err(|_| corrupt("anomalies.org_id")())?,
            project_id: row
                .project_id
                .map(|p| ProjectId::parse(&p))
                .transpose()
                .map_err(|_| corrupt("anomalies.project_id")())?,
            key_id: row
                .key_id
                .map(|k| KeyId::parse(&k))
                .transpose()
                .map_err(|_| corrupt("anomalies.key_id")())?,
            detector: row.detector,
            evidence: row.evidence,
            action: row.action,
            outcome: row.outcome,
            detected_at: Timestamp::from_millis(row.detected_at),
            acknowledged_at: row.acknowledged_at.map(Timestamp::from_millis),
            acknowledged_by: row.acknowledged_by,
            note: row.note,
        })
    }
}
