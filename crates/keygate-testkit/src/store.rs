//! Isolated stores for tests.

use std::sync::Arc;

use anyhow::Context;
use keygate_store::{PgStore, SqliteStore, Store};
use sqlx::Connection;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use. The default is the local server without TLS: negotiating
/// TLS (and loading the platform's roots) costs about 100 ms per connection, and tests open
/// many.
pub fn postgres_base_url() -> String {
    std::env::var("KEYGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".to_owned())
}

/// A store of its own: a fresh SQLite file, or a fresh PostgreSQL schema.
#[derive(Debug)]
pub struct TestStore {
    pub store: Arc<dyn Store>,
    /// A URL that opens this same store (for a server or CLI under test).
    pub url: String,
    pub dir: tempfile::TempDir,
    schema: Option<String>,
}

impl TestStore {
    pub async fn new(db: Db) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        match db {
            Db::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("keygate.db").display());
                let store = Arc::new(SqliteStore::connect(&url).await?);
                Ok(Self {
                    store,
                    url,
                    dir,
                    schema: None,
                })
            }
            Db::Postgres => {
                let base = postgres_base_url();
                let schema = format!("kg_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::PgConnection::connect(&base).await.with_context(|| {
                    format!("PostgreSQL must be reachable at {base} for this test")
                })?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await?;
                let separator = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
                let store = Arc::new(PgStore::connect(&url).await?);
                Ok(Self {
                    store,
                    url,
                    dir,
                    schema: Some(schema),
                })
            }
        }
    }

    /// Runs raw SQL on the store's database, as an attacker with database access would.
    pub async fn tamper(&self, sql: &str) -> anyhow::Result<u64> {
        let done = if self.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await?
                .rows_affected()
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await?;
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await?
                .rows_affected()
        };
        Ok(done)
    }

    /// Every row of every table, one line each as `table: text of the row` (SQLite quotes
    /// each value, PostgreSQL prints the row as a record; blobs come out as hex).
    pub async fn dump_rows(&self) -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();
        if self.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
            )
            .fetch_all(&mut conn)
            .await?;
            for table in tables {
                let columns: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                        .bind(&table)
                        .fetch_all(&mut conn)
                        .await?;
                let row_text = columns
                    .iter()
                    .map(|c| format!("quote(\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || ' ' || ");
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT {row_text} FROM \"{table}\""
                )))
                .fetch_all(&mut conn)
                .await?;
                lines.extend(rows.into_iter().map(|row| format!("{table}: {row}")));
            }
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await?;
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() ORDER BY table_name",
            )
            .fetch_all(&mut conn)
            .await?;
            for table in tables {
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT r::text FROM \"{table}\" r"
                )))
                .fetch_all(&mut conn)
                .await?;
                lines.extend(rows.into_iter().map(|row| format!("{table}: {row}")));
            }
        }
        Ok(lines)
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else {
            return;
        };
        // Dropping runs outside any async context, so the cleanup gets a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&postgres_base_url())
                    .await
                    .ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&mut conn)
                .await
                .ok()
            })
        });
        let _ = cleanup.join();
    }
}
