//! Store errors: typed, and free of stored values.

use keygate_core::KeyStatus;

/// A change the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("keygate was already bootstrapped: the first owner exists")]
    AlreadyBootstrapped,
    #[error("a {entity} with that name already exists")]
    DuplicateName { entity: &'static str },
    #[error("the key is {status} and can no longer change", status = .0.as_str())]
    KeyNotMutable(KeyStatus),
    #[error("the key is already suspended")]
    AlreadySuspended,
    #[error("the key is {status}, neither suspended nor throttled", status = .0.as_str())]
    NotSuspended(KeyStatus),
    #[error("the credits would pass 1000000000 dollars")]
    CreditsTooHigh,
    #[error("the anomaly was already acknowledged")]
    AlreadyAcknowledged,
    #[error("the delivery is already waiting for its next attempt")]
    DeliveryPending,
    #[error("the idempotency key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("another change to this {entity} landed at the same time; retry")]
    VersionTaken { entity: &'static str },
    #[error("version {version} is not pending: only a pending version can be promoted")]
    NotPending { version: i64 },
    #[error("version {version} is older than the current version: promoting it would roll back")]
    Superseded { version: i64 },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} not found")]
    NotFound { entity: &'static str },
    #[error(transparent)]
    Conflict(#[from] Conflict),
    #[error("the database URL must start with sqlite: or postgres://")]
    UnsupportedUrl,
    #[error("a stored {column} value is corrupt")]
    Corrupt { column: &'static str },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("could not lock the SQLite file for its migrations: {0}")]
    MigrationLock(#[source] std::io::Error),
}

impl StoreError {
    /// Whether the database could not be reached (connection refused or lost, the pool out of
    /// time, the server shutting down), as opposed to refusing the request itself.
    pub fn is_unavailable(&self) -> bool {
        let Self::Database(err) = self else {
            return false;
        };
        match err {
            // A connection cut mid-exchange reads as a protocol error (an early end of the
            // stream) as often as an I/O one.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::BeginFailed
            | sqlx::Error::WorkerCrashed => true,
            // PostgreSQL's connection exceptions (class 08) and its shutting down (57P0x).
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57P0")),
            _ => false,
        }
    }

    /// Whether the database refused a row for a unique constraint.
    pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
        matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
    }
}
