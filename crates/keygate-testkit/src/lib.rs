//! Test support for keygate: isolated stores on SQLite and on the machine's PostgreSQL,
//! fixtures that build valid domain values, a real server on `127.0.0.1:0`, and an HTTP client
//! for black-box tests of its API.
//!
//! PostgreSQL tests use `KEYGATE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test?sslmode=disable`); each store gets its own schema,
//! dropped when the store is dropped. A test that needs PostgreSQL fails, never skips, when it
//! is unreachable.

#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test support: a broken fixture should stop the test loudly"
)]

mod cut_proxy;
mod fixtures;
mod http_client;
mod mock_agent;
pub mod mock_anthropic;
pub mod mock_gemini;
pub mod mock_openai;
mod mock_server;
pub mod oidc;
pub mod otlp;
pub mod pki;
mod redis;
mod server;
mod store;
pub mod upstream;
mod world;

pub use cut_proxy::CutProxy;
pub use fixtures::{KeyFixture, audit, new_key};
pub use http_client::{Api, Call, CreatedKey, Exchange, IssuedToken, Method, Reply};
pub use mock_anthropic::MockAnthropic;
pub use mock_gemini::MockGemini;
pub use mock_openai::{FormPart, MockOpenAi, MockReply, PNG_1X1, SeenRequest, speech_audio};
pub use mock_server::MockServer;
pub use oidc::{OidcProvider, OidcUser};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use pki::{Issued, TestCa};
pub use redis::OwnRedis;
pub use server::TestServer;
pub use store::{Db, TestStore, postgres_base_url};
pub use world::World;

/// Generates a `sqlite` and a `postgres` module with one `#[tokio::test]` per named case;
/// each case is an `async fn(Db)` in the calling module.
#[macro_export]
macro_rules! on_both_databases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::Db::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::Db::Postgres).await;
                }
            )*
        }
    };
}
