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
