//! What recorderd's integration suite (`tests/api/`) and its benchmark
//! harness (`examples/bench.rs`) share: both start the real server binary
//! against a fresh database with profiles for the test recorder
//! (`examples/test_recorder.rs`), and watch processes through `/proc`.
//! Each keeps what is its own (the suite's misbehaving profiles, the
//! harness's timing of start-up); what they do alike lives here, once.

pub mod postgres;
pub mod process;
pub mod profiles;
pub mod server;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A name no other run on this machine uses at the same time: this
/// process's id, a counter within it, and the clock's nanoseconds (for a
/// PID reused by a later run). Safe in file and PostgreSQL database names.
pub fn unique_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn unique_names_differ_within_a_process() {
        let names: std::collections::HashSet<String> =
            (0..100).map(|_| super::unique_name()).collect();
        assert_eq!(names.len(), 100);
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_digit() || c == '_'))
        );
    }
}
