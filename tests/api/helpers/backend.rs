//! Which database a test runs on, and the macro that runs each scenario on
//! both.

use std::path::Path;

/// Which database a test runs against.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// Admin URL of a PostgreSQL server; each test creates its own database.
    Postgres(String),
}

/// Environment variable naming a PostgreSQL server for the suite, e.g.
/// `postgres://postgres:postgres@127.0.0.1:5432/postgres`.
pub const POSTGRES_ENV: &str = "RECORDERD_TEST_POSTGRES_URL";

impl Backend {
    /// The PostgreSQL backend, or `None` (after saying so loudly) when no
    /// server is configured. Under CI a missing server is a failure.
    pub fn postgres() -> Option<Self> {
        match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.is_empty() => Some(Self::Postgres(url)),
            _ => {
                if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                    panic!(
                        "{POSTGRES_ENV} is not set under CI: the PostgreSQL half of the suite must run"
                    );
                }
                eprintln!(
                    "\n*** SKIPPED (PostgreSQL): {POSTGRES_ENV} is not set, so this test ran on SQLite only. \
                     .ci/run starts PostgreSQL and sets it. ***\n"
                );
                None
            }
        }
    }

    /// The PostgreSQL database of a test named `name`; `.ci/run` drops
    /// those a failed run left by this prefix.
    pub fn database_name(name: &str) -> String {
        format!("recorderd_test_{name}")
    }

    /// A fresh database for a test named `name`, whose files are in `dir`.
    pub async fn fresh_database(&self, dir: &Path, name: &str) -> String {
        match self {
            Self::Sqlite => format!("sqlite://{}/test.db?mode=rwc", dir.display()),
            Self::Postgres(admin) => {
                testkit::postgres::create_database(admin, &Self::database_name(name))
                    .await
                    .expect("create the test database")
            }
        }
    }
}

/// Runs an async test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(backend) = $crate::helpers::Backend::postgres() {
                    super::$name(backend).await
                }
            }
        }
    )*};
}
