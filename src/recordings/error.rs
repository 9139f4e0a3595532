//! What can go wrong in an operation on a recording or its files.

use sea_orm::DbErr;

use crate::entity::RecordingStatus;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording {id} not found")]
    NotFound { id: i32 },
    #[error("job {id} not found")]
    JobNotFound { id: i32 },
    #[error("the log of job {id} cannot be read: {source}")]
    LogUnreadable { id: i32, source: std::io::Error },
    #[error("recording {id} is {status}; only a ready or failed recording can be {action}", status = status.as_str())]
    Busy {
        id: i32,
        status: RecordingStatus,
        action: &'static str,
    },
    #[error("recording {id} has no recorded data to process")]
    NothingToProcess { id: i32 },
    #[error("the media of recording {id} is not available: {reason}")]
    MediaUnavailable { id: i32, reason: String },
    #[error("recording {id} cannot be played yet: {reason}")]
    NotYetPlayable { id: i32, reason: &'static str },
    #[error("recording {id} cannot be played in a browser: {reason}")]
    NotPlayable { id: i32, reason: String },
    #[error("the files of {what} are on node `{node}`; ask that node")]
    OnOtherNode { what: String, node: String },
    #[error(transparent)]
    Database(#[from] DbErr),
}
