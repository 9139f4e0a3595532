//! Where leases live and what they are called: the advisory-lock key of a
//! node (and of placement) on PostgreSQL, the directory of lock files
//! beside a shared SQLite file, or the process itself for an in-memory
//! database.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use sea_orm::sqlx::postgres::PgConnectOptions;
use sha2::{Digest, Sha256};

/// Where the database keeps leases.
#[derive(Debug, Clone)]
pub enum Place {
    Postgres(Box<PgConnectOptions>),
    /// Lock files (and message sockets) in this directory, beside the
    /// SQLite file every node shares.
    Files(PathBuf),
    /// An in-memory database: one process, which holds its lease always.
    Process,
}

impl Place {
    pub fn of(database_url: &str) -> anyhow::Result<Self> {
        if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            let options =
                PgConnectOptions::from_str(database_url).context("reading the database URL")?;
            return Ok(Self::Postgres(Box::new(options)));
        }
        if database_url.starts_with("sqlite:") {
            let options = sea_orm::sqlx::sqlite::SqliteConnectOptions::from_str(database_url)
                .context("reading the database URL")?;
            let file = options.get_filename();
            // sqlx names an in-memory database `file:sqlx-in-memory-<n>`.
            let in_memory = file.as_os_str().is_empty()
                || file == Path::new(":memory:")
                || file.to_string_lossy().starts_with("file:sqlx-in-memory-")
                || database_url.contains("mode=memory");
            if in_memory {
                return Ok(Self::Process);
            }
            let file = std::path::absolute(file).context("resolving the database file")?;
            let mut dir = file.into_os_string();
            dir.push("-nodes");
            return Ok(Self::Files(PathBuf::from(dir)));
        }
        Ok(Self::Process)
    }
}

/// The advisory-lock key of a node: 63 bits of a digest of its id (never
/// negative, so `pg_locks` shows it plainly).
pub fn key_of(node_id: &str) -> i64 {
    let digest = Sha256::digest(format!("recorderd lease\0{node_id}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes) & i64::MAX
}

/// The key under which starts are decided one at a time in the cluster.
pub fn placement_key() -> i64 {
    let digest = Sha256::digest(b"recorderd placement");
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes) & i64::MAX
}

/// A short name for a node's files and channel, whatever characters its
/// id has.
pub fn file_stem(node_id: &str) -> String {
    format!("{:016x}", key_of(node_id))
}

/// `pg_locks` shows a `bigint` advisory key as two `oid` halves.
pub(super) fn key_halves(key: i64) -> (i64, i64) {
    (key >> 32, key & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_positive_and_distinct() {
        assert_eq!(key_of("node-a"), key_of("node-a"));
        assert_ne!(key_of("node-a"), key_of("node-b"));
        for id in ["", "a", "node-a", "ünïcode", &"x".repeat(255)] {
            let key = key_of(id);
            assert!(key >= 0, "{id}");
            let (high, low) = key_halves(key);
            assert_eq!((high << 32) | low, key);
            assert_eq!(file_stem(id).len(), 16);
        }
        assert_eq!(
            super::super::super::notify::socket_name("a"),
            format!("{}.sock", file_stem("a"))
        );
    }

    #[test]
    fn leases_live_beside_a_shared_sqlite_file() {
        match Place::of("sqlite:///var/lib/recorderd/db.sqlite?mode=rwc").expect("place") {
            Place::Files(dir) => {
                assert_eq!(dir, PathBuf::from("/var/lib/recorderd/db.sqlite-nodes"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Place::of("sqlite::memory:").expect("place"),
            Place::Process
        ));
        assert!(matches!(
            Place::of("postgres://u:p@localhost/db").expect("place"),
            Place::Postgres(_)
        ));
    }
}
