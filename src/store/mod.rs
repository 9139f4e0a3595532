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

use crate::entity::{processing_step, recording, recording_job, transcript_segment};

pub type Job = recording_job::Model;
pub type Recording = recording::Model;
pub type Step = processing_step::Model;
pub type Segment = transcript_segment::Model;

/// Longest `IN (…)` list a statement gets (bound parameters per statement
/// are limited).
pub const IN_LIST_CHUNK: usize = 500;
