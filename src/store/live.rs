//! The live jobs (`running` or `stopping`): what `active` lists and
//! reconciliation judges, read on every `active` call, so their reads are
//! kept narrow (an index bound by status, never the history of ended jobs).

use std::sync::Arc;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use tokio::sync::Mutex;
use tracing::debug;

use super::{IN_LIST_CHUNK, Job};
use crate::db;
use crate::entity::{JobStatus, recording_job};

/// The query of the live jobs, newest first, which an index keeps from
/// reading ended jobs (checked against the query plan in the integration
/// tests, as are the other `*_query` functions of the store).
pub fn live_jobs_query() -> Select<recording_job::Entity> {
    live_rows().order_by_desc(recording_job::Column::Id)
}

/// The live rows, in no order.
fn live_rows() -> Select<recording_job::Entity> {
    recording_job::Entity::find().filter(recording_job::Column::Status.is_in(JobStatus::LIVE))
}

/// The columns of a live job that change with each of its transitions:
/// enough to tell whether a copy of its row is still the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveMark {
    pub id: i32,
    pub status: JobStatus,
    pub lease_generation: Option<i64>,
    pub process_id: Option<i32>,
    pub attempt: i32,
}

/// One mark as the database aggregates it: `[id, status, lease
/// generation, process id, attempt]`.
type MarkRow = (i32, JobStatus, Option<i64>, Option<i32>, i32);

/// The marks of every live job, aggregated by the database into one JSON
/// array: `[[id, status, lease_generation, process_id, attempt], …]`.
/// Text on both databases (PostgreSQL's `json` cast), `NULL` on
/// PostgreSQL when no job is live.
pub fn live_marks_query(backend: DatabaseBackend) -> Select<recording_job::Entity> {
    let marks = match backend {
        DatabaseBackend::Postgres => {
            "CAST(json_agg(json_build_array(\"id\", \"status\", \"lease_generation\", \
             \"process_id\", \"attempt\")) AS TEXT)"
        }
        _ => {
            "json_group_array(json_array(\"id\", \"status\", \"lease_generation\", \
             \"process_id\", \"attempt\"))"
        }
    };
    live_rows().select_only().expr(Expr::cust(marks))
}

/// [`LiveMark`]s of every live job, newest first: what the in-memory
/// copies of live jobs are checked against on every `active` call. The
/// database returns them as one row: row by row, the driver copied and
/// sent every value on its own (most of the call's cost with 1,000 live
/// jobs), where one JSON text is one value.
pub async fn live_marks(db: &DatabaseConnection) -> Result<Vec<LiveMark>, DbErr> {
    let json: Option<Option<String>> = live_marks_query(db.get_database_backend())
        .into_tuple::<Option<String>>()
        .one(db)
        .await?;
    parse_marks(json.flatten().as_deref().unwrap_or("[]"))
}

/// The live jobs' marks, read again only when something was committed
/// since they were last read (SQLite, through a connection of its own:
/// `db::connect_watching`). With recorders running and nothing starting or
/// ending, `active` then asks the database only whether anything changed.
/// Without that connection (PostgreSQL) every call reads the marks. Calls
/// take turns on the one connection: when nothing changed, those waiting
/// get the marks the first one read.
pub struct LiveMarks {
    watching: Option<Mutex<Watching>>,
}

struct Watching {
    connection: db::Watching,
    /// The marks last read, with where the commits stood when they were
    /// (asked before the marks were read).
    last: Option<(db::Commits, Arc<[LiveMark]>)>,
}

impl LiveMarks {
    pub fn new(watching: Option<db::Watching>) -> Self {
        Self {
            watching: watching.map(|connection| {
                Mutex::new(Watching {
                    connection,
                    last: None,
                })
            }),
        }
    }

    /// The marks of every live job as committed now, newest first; `reads`
    /// reads them when there is no watching connection, or when it fails.
    pub async fn read(&self, reads: &DatabaseConnection) -> Result<Arc<[LiveMark]>, DbErr> {
        let Some(watching) = &self.watching else {
            return Ok(live_marks(reads).await?.into());
        };
        let mut watching = watching.lock().await;
        match watching.read().await {
            Ok(marks) => Ok(marks),
            Err(e) => {
                // Nothing kept is trusted after a failure: read afresh.
                watching.last = None;
                debug!(error = %e, "the watching connection failed; marks read from the pool");
                Ok(live_marks(reads).await?.into())
            }
        }
    }
}

impl Watching {
    async fn read(&mut self) -> Result<Arc<[LiveMark]>, DbErr> {
        // Asked before the marks are read: a commit in between makes the
        // next call read them again, never keep stale ones.
        let commits = self.connection.commits().await?;
        if let Some((last, marks)) = &self.last
            && *last == commits
        {
            return Ok(marks.clone());
        }
        let marks: Arc<[LiveMark]> = live_marks(&self.connection.db).await?.into();
        self.last = Some((commits, marks.clone()));
        Ok(marks)
    }
}

/// The marks in `json` (as [`live_marks_query`] aggregates them), newest
/// first.
fn parse_marks(json: &str) -> Result<Vec<LiveMark>, DbErr> {
    let rows: Vec<MarkRow> = serde_json::from_str(json)
        .map_err(|e| DbErr::Type(format!("the live jobs' marks: {e}")))?;
    let mut marks: Vec<LiveMark> = rows
        .into_iter()
        .map(
            |(id, status, lease_generation, process_id, attempt)| LiveMark {
                id,
                status,
                lease_generation,
                process_id,
                attempt,
            },
        )
        .collect();
    marks.sort_unstable_by_key(|mark| std::cmp::Reverse(mark.id));
    Ok(marks)
}

/// The jobs with these ids that are live, newest first.
pub async fn live_jobs_among(db: &DatabaseConnection, ids: &[i32]) -> Result<Vec<Job>, DbErr> {
    let mut jobs = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_LIST_CHUNK) {
        let rows = live_rows()
            .filter(recording_job::Column::Id.is_in(chunk.iter().copied()))
            .all(db)
            .await?;
        jobs.extend(rows);
    }
    jobs.sort_by_key(|job| std::cmp::Reverse(job.id));
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use sea_orm::ConnectionTrait;

    use super::*;

    #[test]
    fn marks_come_newest_first_with_their_nulls() {
        let marks =
            parse_marks(r#"[[3,"running",2,40,1],[9,"stopping",null,null,2]]"#).expect("parsed");
        assert_eq!(
            marks,
            vec![
                LiveMark {
                    id: 9,
                    status: JobStatus::Stopping,
                    lease_generation: None,
                    process_id: None,
                    attempt: 2,
                },
                LiveMark {
                    id: 3,
                    status: JobStatus::Running,
                    lease_generation: Some(2),
                    process_id: Some(40),
                    attempt: 1,
                },
            ]
        );
        assert_eq!(parse_marks("[]").expect("parsed"), Vec::new());
    }

    /// A real SQLite file, written through one connection and watched
    /// through another, as the server does.
    #[tokio::test]
    async fn marks_are_read_again_exactly_when_another_connection_committed() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "recorderd-live-marks-{}-{nanos}.db",
            std::process::id()
        ));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let writer = crate::db::connect(&url, std::time::Duration::from_secs(5))
            .await
            .expect("the writer");
        let write = |sql: &'static str| {
            let writer = writer.clone();
            async move { writer.execute_unprepared(sql).await.expect(sql) }
        };
        write(
            "CREATE TABLE recording_jobs (id INTEGER PRIMARY KEY, status TEXT NOT NULL, \
             lease_generation INTEGER, process_id INTEGER, attempt INTEGER NOT NULL)",
        )
        .await;
        write("INSERT INTO recording_jobs VALUES (1, 'running', 1, 10, 1), (2, 'completed', 1, 11, 1)")
            .await;
        let watching = crate::db::connect_watching(&url)
            .await
            .expect("the watching connection");
        let opened = watching
            .as_ref()
            .map(|w| w.opened.clone())
            .expect("SQLite gets a watching connection");
        assert_eq!(opened.load(Ordering::SeqCst), 1, "opened at start-up");
        let marks = LiveMarks::new(watching);

        let first = marks.read(&writer).await.expect("read");
        assert_eq!(first.iter().map(|m| m.id).collect::<Vec<_>>(), [1]);
        let again = marks.read(&writer).await.expect("read");
        assert!(
            Arc::ptr_eq(&first, &again),
            "nothing committed: not read again"
        );

        write("UPDATE recording_jobs SET status = 'stopping' WHERE id = 1").await;
        let after = marks.read(&writer).await.expect("read");
        assert_eq!(after[0].status, JobStatus::Stopping, "{after:?}");

        write("INSERT INTO recording_jobs VALUES (3, 'running', 1, 12, 1)").await;
        let grown = marks.read(&writer).await.expect("read");
        assert_eq!(grown.iter().map(|m| m.id).collect::<Vec<_>>(), [3, 1]);

        // A connection opened since (the first one replaced) has versions
        // of its own: nothing read under the old one is kept.
        opened.fetch_add(1, Ordering::SeqCst);
        let renewed = marks.read(&writer).await.expect("read");
        assert!(
            !Arc::ptr_eq(&grown, &renewed),
            "read again on a new connection"
        );
        assert_eq!(renewed, grown);

        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }

    #[test]
    fn a_status_that_is_not_a_job_status_is_an_error() {
        assert!(parse_marks(r#"[[3,"sleeping",2,40,1]]"#).is_err());
    }
}
