//! Fault points, for tests that prove recovery from failures that cannot be
//! caused from outside at the right instant (a crash between two writes, a
//! panic in a task). In debug builds, `RECORDERD_FAULT` lists the points
//! (comma-separated) at which the process misbehaves on purpose; release
//! builds compile them out.

/// A place where a test can make the process fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// The process exits at once after spawning a recorder, before its
    /// identity is stored.
    ExitAfterSpawn,
    /// The task committing exits panics.
    PanicInExitCommit,
    /// A start waits a second after spawning the recorder, before storing
    /// its identity: long enough for its client to go away.
    PauseAfterSpawn,
    /// A reprocess waits a second between resetting the recording and
    /// launching its pipeline.
    PauseInReprocess,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Self::ExitAfterSpawn => "exit_after_spawn",
            Self::PanicInExitCommit => "panic_in_exit_commit",
            Self::PauseAfterSpawn => "pause_after_spawn",
            Self::PauseInReprocess => "pause_in_reprocess",
        }
    }
}

/// How long a pause point waits.
pub const PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a test armed `point` for this process.
pub fn armed(point: Point) -> bool {
    if cfg!(debug_assertions) {
        std::env::var("RECORDERD_FAULT")
            .is_ok_and(|points| points.split(',').any(|p| p.trim() == point.name()))
    } else {
        false
    }
}

/// How far a test moved this node's clock (`clock_offset=SECONDS` in
/// `RECORDERD_FAULT`, debug builds only): the times a node writes about
/// itself (heartbeats, leases) are shifted by it, to prove that no node
/// judges another by comparing clocks.
pub fn clock_offset() -> time::Duration {
    if !cfg!(debug_assertions) {
        return time::Duration::ZERO;
    }
    std::env::var("RECORDERD_FAULT")
        .ok()
        .and_then(|points| {
            points.split(',').find_map(|p| {
                p.trim()
                    .strip_prefix("clock_offset=")
                    .and_then(|s| s.parse::<i64>().ok())
            })
        })
        .map(time::Duration::seconds)
        .unwrap_or(time::Duration::ZERO)
}
