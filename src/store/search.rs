//! Full-text search, in each database's own terms: SQLite's FTS5 tables
//! (`recording_search`, `segment_search`, kept by triggers) and
//! PostgreSQL's `tsvector` columns (see the migration that made them).
//! Callers hand in a query already written for each (see
//! `recordings::search`); nothing typed by a client reaches the SQL text.

use sea_orm::{DatabaseConnection, DbBackend, DbErr, FromQueryResult, Statement, Value};

use super::Segment;
use crate::entity::RecordingStatus;

/// One query in the syntax of each database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullText {
    /// An FTS5 `MATCH` expression, its terms quoted.
    pub fts5: String,
    /// Input for PostgreSQL's `websearch_to_tsquery('english', …)`, which
    /// accepts any text.
    pub websearch: String,
}

/// Which recordings a search looks in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filters<'a> {
    pub status: Option<RecordingStatus>,
    pub profile: Option<&'a str>,
}

#[derive(Debug, FromQueryResult)]
struct Id {
    id: i32,
}

#[derive(Debug, FromQueryResult)]
struct Count {
    n: i64,
}

/// Ids of one page of the recordings whose title or transcript matches
/// `query`, best match first, and how many match in all.
pub async fn matching_recordings(
    db: &DatabaseConnection,
    query: &FullText,
    filters: Filters<'_>,
    page: u64,
    page_size: u64,
) -> Result<(Vec<i32>, u64), DbErr> {
    let backend = db.get_database_backend();
    let (from, mut values, order) = match backend {
        DbBackend::Postgres => (
            "FROM recordings r, websearch_to_tsquery('english', $1) q WHERE r.search @@ q",
            vec![Value::from(query.websearch.clone())],
            "ORDER BY ts_rank(r.search, q) DESC, r.id DESC",
        ),
        _ => (
            // bm25 weighs a word in the title four times one in the transcript.
            "FROM (SELECT rowid AS id, bm25(recording_search, 4.0, 1.0) AS score \
             FROM recording_search WHERE recording_search MATCH $1) m \
             JOIN recordings r ON r.id = m.id WHERE 1 = 1",
            vec![Value::from(query.fts5.clone())],
            "ORDER BY m.score, r.id DESC",
        ),
    };
    let mut conditions = String::new();
    if let Some(status) = filters.status {
        values.push(Value::from(status.as_str()));
        conditions += &format!(" AND r.status = ${}", values.len());
    }
    if let Some(profile) = filters.profile {
        values.push(Value::from(profile));
        conditions += &format!(" AND r.profile = ${}", values.len());
    }
    let count_sql = format!("SELECT count(*) AS n {from}{conditions}");
    let count = Count::find_by_statement(statement(backend, &count_sql, values.clone()))
        .one(db)
        .await?
        .map_or(0, |c| c.n);
    let offset = page.saturating_sub(1).saturating_mul(page_size);
    values.push(Value::from(i64::try_from(page_size).unwrap_or(i64::MAX)));
    values.push(Value::from(i64::try_from(offset).unwrap_or(i64::MAX)));
    let n = values.len();
    let page_sql = format!(
        "SELECT r.id AS id {from}{conditions} {order} LIMIT ${} OFFSET ${n}",
        n - 1
    );
    let ids = Id::find_by_statement(statement(backend, &page_sql, values))
        .all(db)
        .await?
        .into_iter()
        .map(|row| row.id)
        .collect();
    Ok((ids, u64::try_from(count).unwrap_or(0)))
}

/// The segments of `recording_ids` in which any word of `query` was said,
/// best match first within each recording.
pub async fn matching_segments(
    db: &DatabaseConnection,
    query: &FullText,
    recording_ids: &[i32],
) -> Result<Vec<Segment>, DbErr> {
    if recording_ids.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let mut values = vec![match backend {
        DbBackend::Postgres => Value::from(query.websearch.clone()),
        _ => Value::from(query.fts5.clone()),
    }];
    let ids: Vec<String> = recording_ids
        .iter()
        .map(|id| {
            values.push(Value::from(*id));
            format!("${}", values.len())
        })
        .collect();
    let ids = ids.join(", ");
    let columns = "t.id, t.recording_id, t.position, t.start_ms, t.end_ms, t.text";
    let sql = match backend {
        DbBackend::Postgres => format!(
            "SELECT {columns} FROM transcript_segments t, websearch_to_tsquery('english', $1) q \
             WHERE t.recording_id IN ({ids}) AND t.search @@ q \
             ORDER BY t.recording_id, ts_rank(t.search, q) DESC, t.position"
        ),
        _ => format!(
            "SELECT {columns} FROM (SELECT rowid AS id, rank AS score FROM segment_search \
             WHERE segment_search MATCH $1) m JOIN transcript_segments t ON t.id = m.id \
             WHERE t.recording_id IN ({ids}) ORDER BY t.recording_id, m.score, t.position"
        ),
    };
    Segment::find_by_statement(statement(backend, &sql, values))
        .all(db)
        .await
}

/// A statement with `$n` placeholders, as SQLite also accepts them.
fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}
