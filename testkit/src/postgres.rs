//! A PostgreSQL database of its own for each test or benchmark run, made
//! through an administrator URL (e.g. `postgres://postgres:…@host/postgres`).

use sea_orm::{ConnectionTrait, Database, DbErr};

/// Creates the database `name` through `admin_url` and returns its URL.
/// `name` must be a plain identifier (see [`crate::unique_name`]).
pub async fn create_database(admin_url: &str, name: &str) -> Result<String, DbErr> {
    let admin = Database::connect(admin_url).await?;
    let created = admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await;
    let _ = admin.close().await;
    created?;
    Ok(database_url(admin_url, name))
}

/// Drops the database `name`, closing its connections; best effort, for
/// the end of a run.
pub async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(admin) = Database::connect(admin_url).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
        let _ = admin.close().await;
    }
}

/// Drops the database `name` once its last connection is gone, from
/// synchronous code such as a `Drop` (on a thread of its own, so it may run
/// inside an async runtime). Without `FORCE`: a database another process
/// still uses is left alone rather than cut from under it; a server that
/// has just exited may need a moment for its sessions to end, so the drop is
/// retried for a few seconds. Best effort: what is left is dropped by the
/// next `.ci/run`.
pub fn drop_database_when_unused(admin_url: &str, name: &str) {
    let (admin_url, name) = (admin_url.to_owned(), name.to_owned());
    let dropping = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let Ok(admin) = Database::connect(&admin_url).await else {
                return;
            };
            for _ in 0..20 {
                let dropped = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                    .await;
                if dropped.is_ok() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            let _ = admin.close().await;
        });
    });
    let _ = dropping.join();
}

/// `admin_url` with its database replaced by `name`, its query (e.g.
/// `?sslmode=disable`) kept.
pub fn database_url(admin_url: &str, name: &str) -> String {
    let authority = admin_url.find("://").map_or(0, |i| i + 3);
    let (base, query) = match admin_url[authority..].find('?') {
        Some(q) => admin_url.split_at(authority + q),
        None => (admin_url, ""),
    };
    let server = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    format!("{server}/{name}{query}")
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn the_database_is_replaced_and_the_query_kept() {
        for (admin, expected) in [
            (
                "postgres://postgres:pw@127.0.0.1:5432/postgres",
                "postgres://postgres:pw@127.0.0.1:5432/run_1",
            ),
            (
                "postgres://127.0.0.1/postgres?sslmode=disable",
                "postgres://127.0.0.1/run_1?sslmode=disable",
            ),
            (
                "postgres://127.0.0.1:5432",
                "postgres://127.0.0.1:5432/run_1",
            ),
            (
                "postgres://127.0.0.1?sslmode=disable",
                "postgres://127.0.0.1/run_1?sslmode=disable",
            ),
            ("postgres://127.0.0.1/", "postgres://127.0.0.1/run_1"),
        ] {
            assert_eq!(database_url(admin, "run_1"), expected, "{admin}");
        }
    }
}
