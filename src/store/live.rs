//! The live jobs (`running` or `stopping`): what `active` lists and
//! reconciliation judges, read on every `active` call, so their reads are
//! kept narrow (an index bound by status, never the history of ended jobs).

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};

use super::{IN_LIST_CHUNK, Job};
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

    #[test]
    fn a_status_that_is_not_a_job_status_is_an_error() {
        assert!(parse_marks(r#"[[3,"sleeping",2,40,1]]"#).is_err());
    }
}
