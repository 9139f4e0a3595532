//! Jobs: the state machine, its storage, and the service that owns every
//! state change (start, stop, exit, reconciliation).

pub mod repo;
pub mod service;
pub mod status;

pub use repo::{Job, Recording};
pub use service::{JobError, JobService, StartRequest, Started, whole_number};
