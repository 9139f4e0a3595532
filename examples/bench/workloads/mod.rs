//! The workloads, in the order a run takes them (`main.rs`): memory idle,
//! starts, memory and idle CPU with recorders, listings, exits staggered
//! and in a storm, thousands of concurrent recorders, recovery.

pub mod concurrent;
pub mod exits;
pub mod listing;
pub mod memory;
pub mod recovery;
pub mod start;
