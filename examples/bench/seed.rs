//! Rows the harness writes into the server's database while the server is
//! down: the history of ended jobs, and `running` jobs whose process is
//! gone (for start-up reconciliation). Written in multi-row INSERTs of
//! 500 rows, one transaction per call: one round trip per 500 rows rather
//! than two per row.

use anyhow::{Context, Result};
use procfs::process::Process;
use recorderd::entity::{EndCause, JobStatus, RecordingStatus, recording, recording_job};
use sea_orm::ActiveValue::Set;
use sea_orm::{Database, DatabaseConnection, EntityTrait, TransactionTrait};
use time::OffsetDateTime;

use crate::args::Ctx;

/// The node name the server runs as (`--node-id`) and the seeded rows
/// carry: its own jobs, as they would be after running for a while.
pub const NODE: &str = "bench";

/// Rows per INSERT: far below SQLite's and PostgreSQL's bind limits.
const ROWS_PER_INSERT: usize = 500;

/// What the seeded jobs are.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    /// Ended jobs (completed, exit code 0), their recordings ready.
    History,
    /// `running` jobs whose PIDs (taken in turn from the list) name no
    /// process.
    DeadOrphans(&'a [i32]),
}

/// Inserts `count` recordings with one job each.
pub async fn insert_rows(ctx: &Ctx, count: usize, rows: Rows<'_>) -> Result<()> {
    let db: DatabaseConnection = Database::connect(&ctx.database_url)
        .await
        .context("connecting to the benchmark database")?;
    let now = OffsetDateTime::now_utc();
    let history = ctx.dir.join("history");
    let txn = db.begin().await?;
    let mut done = 0;
    while done < count {
        let chunk = ROWS_PER_INSERT.min(count - done);
        let recordings = (done..done + chunk).map(|i| recording::ActiveModel {
            title: Set(format!("stored {i}")),
            source: Set(format!("bench://stored/{i}")),
            profile: Set("bench".into()),
            status: Set(match rows {
                Rows::History => RecordingStatus::Ready,
                Rows::DeadOrphans(_) => RecordingStatus::Recording,
            }),
            output_path: Set(history
                .join(format!("stored-{i}.txt"))
                .display()
                .to_string()),
            error: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        });
        let ids = recording::Entity::insert_many(recordings)
            .exec_with_returning_keys(&txn)
            .await
            .context("storing recordings")?;
        let jobs = ids.iter().zip(done..).map(|(&recording_id, i)| {
            let mut job = recording_job::ActiveModel {
                recording_id: Set(recording_id),
                started_at: Set(now),
                node: Set(Some(NODE.to_owned())),
                log_path: Set(history
                    .join(format!("stored-{i}.log"))
                    .display()
                    .to_string()),
                ..Default::default()
            };
            match rows {
                Rows::History => {
                    job.status = Set(JobStatus::Completed);
                    job.exit_code = Set(Some(0));
                    job.completed_at = Set(Some(now));
                    job.end_cause = Set(Some(EndCause::Exited));
                }
                Rows::DeadOrphans(pids) => {
                    job.status = Set(JobStatus::Running);
                    job.process_id = Set(Some(pids[i % pids.len()]));
                    job.process_start_time = Set(Some(1));
                }
            }
            job
        });
        recording_job::Entity::insert_many(jobs)
            .exec_without_returning(&txn)
            .await
            .context("storing jobs")?;
        done += chunk;
    }
    txn.commit().await?;
    db.close().await?;
    Ok(())
}

/// PIDs that no process has now (the highest free ones).
pub fn dead_pids(count: usize) -> Vec<i32> {
    let max = procfs::sys::kernel::pid_max().unwrap_or(32768);
    (2..max)
        .rev()
        .filter(|pid| Process::new(*pid).is_err())
        .take(count)
        .collect()
}
