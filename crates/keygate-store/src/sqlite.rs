//! The SQLite store: the zero-config default. WAL mode, one writer connection (SQLite allows
//! one writer; queueing in the pool beats `database is locked`), a few readers.

use std::str::FromStr;
use std::time::Duration;

use keygate_core::{
    AuditDraft, AuditEvent, ChainHead, KeyEnv, KeyId, KeyPatch, KeyRecord, KeySecret, KeyStatus,
    OrgId, ProjectId, Timestamp,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::model::IDEMPOTENCY_TTL_MS;
use crate::rows::{AuditRow, IdempotencyRow, KeyRow, KeyWithSecretRow, OrgRow, ProjectRow};
use crate::sql::impl_sql_store;
use crate::{
    AuditFilter, AuditSince, Backend, Bootstrap, Conflict, IdempotencyEntry, KeyFilter, Org,
    Project, RotateOutcome, Rotation, Store, StoreError,
};

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`) and migrates it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }
}

impl_sql_store! {
    store: SqliteStore,
    db: sqlx::Sqlite,
    backend: Backend::Sqlite,
    // Takes the write lock up front: a deferred transaction that reads first cannot upgrade
    // if another process wrote meanwhile, and `busy_timeout` does not help with that.
    begin_write: "BEGIN IMMEDIATE",
    // SQLite has no row locks; `BEGIN IMMEDIATE` already serialises writers.
    for_update: "",
    // Folds the write-ahead log into the database file, so a stopped server leaves one file.
    before_close: "PRAGMA wal_checkpoint(TRUNCATE)",
}
