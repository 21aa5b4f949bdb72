//! The PostgreSQL store, for many nodes sharing one database.

use std::str::FromStr;
use std::time::Duration;

use keygate_core::{
    AuditDraft, AuditEvent, ChainHead, KeyEnv, KeyId, KeyPatch, KeyRecord, KeySecret, KeyStatus,
    OrgId, ProjectId, Timestamp,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::model::IDEMPOTENCY_TTL_MS;
use crate::rows::{AuditRow, IdempotencyRow, KeyRow, KeyWithSecretRow, OrgRow, ProjectRow};
use crate::sql::impl_sql_store;
use crate::{
    AuditFilter, AuditSince, Backend, Bootstrap, Conflict, IdempotencyEntry, KeyFilter, Org,
    Project, RotateOutcome, Rotation, Store, StoreError,
};

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) and migrates the database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(PgConnectOptions::from_str(url)?).await
    }

    /// Connects with explicit options (tests use this to pick a schema).
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // An unreachable database fails requests soon, not after a long wait.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await?;
        // The migrator takes an advisory lock, so nodes starting together migrate once.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }
}

impl_sql_store! {
    store: PgStore,
    db: sqlx::Postgres,
    backend: Backend::Postgres,
    begin_write: "BEGIN",
    for_update: " FOR UPDATE",
    before_close: "",
}
