//! Jobs: the state machine, and the service that owns every state change of
//! a job (start, restart, stop, exit, reconciliation, adoption). The
//! supervisor reports, the job service decides; storage is `store`'s.

mod admission;
mod crash_loop;
mod decide;
mod error;
mod exits;
mod finish;
#[cfg(test)]
pub(crate) mod fixtures;
mod live;
mod orphans;
mod peers;
mod pending;
mod placement;
mod reconcile;
mod registry;
mod request;
mod restart;
mod segments;
mod service;
mod start;
pub mod status;
mod stop;
mod takeover;

pub use error::{JobError, NoRoomHere};
pub use live::LiveJob;
pub use request::{StartRequest, ValidStart, whole_number};
pub use service::{JobDeps, JobService, StatusCounts};

use crate::store::{Job, Recording};

/// A job that was started, with its recording.
#[derive(Debug, Clone)]
pub struct Started {
    pub job: Job,
    pub recording: Recording,
}
