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
        let lock = migration_lock(&options).await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        drop(lock);
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

/// Holds `<database>.migrate.lock` while the migrations run. PostgreSQL's migrator takes an
/// advisory lock; SQLite's takes none, so two processes opening a new file at once (`keygate
/// serve` starting beside a local `keygate` command) would both run the first migration and
/// one would fail. An in-memory database needs no lock.
async fn migration_lock(
    options: &SqliteConnectOptions,
) -> Result<Option<std::fs::File>, StoreError> {
    let database = options.get_filename();
    if database.as_os_str().is_empty() || database.as_os_str() == ":memory:" {
        return Ok(None);
    }
    let mut path = database.as_os_str().to_owned();
    path.push(".migrate.lock");
    let locked = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|_| StoreError::MigrationLock(std::io::Error::other("the lock task stopped")))?;
    locked.map(Some).map_err(StoreError::MigrationLock)
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
