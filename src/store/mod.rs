//! Database access: the queries of jobs, recordings and pipeline steps, and
//! their compare-and-set updates. Nothing here decides anything; the job
//! service and the pipeline decide, and write through these functions.

pub mod jobs;
pub mod live;
pub mod nodes;
pub mod placement;
pub mod recordings;
pub mod schedules;
pub mod search;
pub mod segments;
pub mod steps;
pub mod transcripts;

use sea_orm::{ConnectionTrait, DbErr, Paginator, SelectorTrait};

use crate::entity::{processing_step, recording, recording_job, transcript_segment};

pub type Job = recording_job::Model;
pub type Recording = recording::Model;
pub type Step = processing_step::Model;
pub type Segment = transcript_segment::Model;

/// Longest `IN (…)` list a statement gets (bound parameters per statement
/// are limited).
pub const IN_LIST_CHUNK: usize = 500;

/// Page `page` (from 1) of a listing and the total it is a page of, read
/// side by side: on SQLite each gets one of the read connections, so a
/// listing waits for the longer of the two, not for both.
pub async fn page_and_total<C, S>(
    paginator: &Paginator<'_, C, S>,
    page: u64,
) -> Result<(Vec<S::Item>, u64), DbErr>
where
    C: ConnectionTrait,
    S: SelectorTrait,
{
    let (total, items) = tokio::try_join!(
        paginator.num_items(),
        paginator.fetch_page(page.saturating_sub(1))
    )?;
    Ok((items, total))
}
