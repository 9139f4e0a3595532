//! The process's heap: how many arenas the allocator keeps, and handing
//! back what a burst of work freed.
//!
//! glibc keeps freed memory for reuse: after start-up (migrations, the
//! reconciliation of every stored live job) or a burst of starts and exits,
//! several MiB of a server that then sits idle for hours stay resident
//! although nothing uses them (measured with 200 recorders: 9.3 MiB of
//! anonymous memory, 5.7 MiB once handed back). Other allocators and
//! other C libraries are left as they are.

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// How often the resident set is looked at: rarely enough that an idle
/// server barely wakes for it, often enough that a burst's leftovers do
/// not stay resident for long.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// Growth of the anonymous resident set since the last hand-back that is
/// worth another: below it, the next burst would only fault the same pages
/// in again.
const WORTH_RETURNING: usize = 1 << 20;

/// glibc gives each thread that allocates an arena of its own, up to 8 per
/// core, and keeps what each arena once held: with the runtime's workers
/// and the blocking threads that read `/proc` for many recorders, that is
/// most of the server's heap (measured with 100 recorders: 7.0 MiB of
/// anonymous memory, 5.2 MiB with two arenas, no slower). Two arenas for a
/// process whose work is mostly waiting; an operator's `MALLOC_ARENA_MAX`
/// still wins. Must run before any other thread exists.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before
        // any other thread is started, so no allocation races it.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Hands back to the system the heap's free pages (glibc keeps them
/// otherwise).
pub fn return_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes the allocator's own locks and only
    // releases pages that no allocation uses.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Resident memory not backed by a file (heap, stacks), in bytes, from
/// `/proc/self/statm`; `None` where it cannot be read.
fn anonymous_resident() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut fields = statm.split_whitespace().skip(1);
    let resident: usize = fields.next()?.parse().ok()?;
    let shared: usize = fields.next()?.parse().ok()?;
    Some(resident.saturating_sub(shared) * rustix::param::page_size())
}

/// Hands back freed memory now (the end of start-up is a burst of its
/// own), then whenever the anonymous resident set has grown by
/// [`WORTH_RETURNING`] since the last time, looking every [`LOOK_EVERY`]
/// until shutdown. What grew because it is in use stays, and becomes the
/// new mark: a busy server is not trimmed over and over.
pub async fn return_freed_periodically(shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(LOOK_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut mark = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let Some(now) = anonymous_resident() else {
            return;
        };
        if now >= mark + WORTH_RETURNING {
            return_freed();
            mark = anonymous_resident().unwrap_or(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{anonymous_resident, return_freed};

    /// Memory freed below a live block, which only a trim releases, leaves
    /// the resident set when it is handed back.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_memory_leaves_the_resident_set() {
        // 16 MiB in small blocks (kept off mmap, so they live in the
        // heap), then a live block above them, then the blocks freed.
        let blocks: Vec<Vec<u8>> = (0..16_384).map(|i| vec![i as u8; 1024]).collect();
        let keep = vec![1u8; 1024];
        drop(blocks);
        let before = anonymous_resident().expect("reading statm");
        return_freed();
        let after = anonymous_resident().expect("reading statm");
        assert!(
            after + (8 << 20) <= before,
            "anonymous resident {before} bytes before, {after} after handing back 16 MiB"
        );
        assert_eq!(keep[0], 1);
    }
}
