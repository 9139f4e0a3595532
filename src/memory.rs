//! The process's heap: how many arenas the allocator keeps, and handing
//! back what a burst of work freed.
//!
//! glibc keeps freed memory for reuse: after start-up (migrations, the
//! reconciliation of every stored live job) or a burst of starts and exits,
//! several MiB of a server that then sits idle for hours stay resident
//! although nothing uses them; so does what ended jobs used (measured with 200 recorders: 9.3 MiB of
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

/// Bytes the allocator has handed out and not had back, in every arena;
/// `None` where the allocator cannot say.
fn in_use() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics, under
        // its own locks.
        let info = unsafe { libc::mallinfo2() };
        Some(info.uordblks + info.hblkhd)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// When freed memory is worth handing back, from what each look sees.
///
/// Two ways a server leaves memory resident that nothing uses: a burst
/// (the resident set grew since the last hand-back), and work that ended
/// (a thousand recorders' jobs: what they used is freed, the resident set
/// does not shrink by itself, and the next burst may never come).
#[derive(Debug, Default)]
struct Leftovers {
    /// The anonymous resident set just after the last hand-back.
    resident_mark: usize,
    /// The most in use seen since the last hand-back.
    peak_in_use: usize,
}

impl Leftovers {
    /// True when memory should be handed back now; the caller then
    /// reports what is left with [`Leftovers::returned`].
    fn look(&mut self, resident: usize, in_use: usize) -> bool {
        self.peak_in_use = self.peak_in_use.max(in_use);
        let grew = resident >= self.resident_mark + WORTH_RETURNING;
        let freed = self.peak_in_use >= in_use + WORTH_RETURNING;
        grew || freed
    }

    /// What grew because it is in use stays, and becomes the new mark: a
    /// busy server is not trimmed over and over.
    fn returned(&mut self, resident: usize, in_use: usize) {
        self.resident_mark = resident;
        self.peak_in_use = in_use;
    }
}

/// Hands back freed memory now (the end of start-up is a burst of its
/// own), then whenever a burst grew the anonymous resident set or ended
/// work freed [`WORTH_RETURNING`] since the last time, looking every
/// [`LOOK_EVERY`] until shutdown.
pub async fn return_freed_periodically(shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(LOOK_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut leftovers = Leftovers::default();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let Some(resident) = anonymous_resident() else {
            return;
        };
        let used = in_use().unwrap_or(0);
        if leftovers.look(resident, used) {
            return_freed();
            leftovers.returned(anonymous_resident().unwrap_or(resident), used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Leftovers, WORTH_RETURNING, anonymous_resident, return_freed};

    const MIB: usize = WORTH_RETURNING;

    #[test]
    fn a_burst_or_ended_work_is_worth_handing_back_and_steady_use_is_not() {
        let mut leftovers = Leftovers::default();
        // The first look (start-up) always hands back.
        assert!(leftovers.look(6 * MIB, 3 * MIB));
        leftovers.returned(4 * MIB, 3 * MIB);
        // Steady, or grown a little: nothing to do.
        assert!(!leftovers.look(4 * MIB, 3 * MIB));
        assert!(!leftovers.look(4 * MIB + MIB / 2, 3 * MIB + MIB / 2));
        // A burst grew the resident set by a MiB.
        assert!(leftovers.look(5 * MIB, 3 * MIB + MIB / 2));
        leftovers.returned(5 * MIB, 4 * MIB);
        // Work grows, in use: becomes the mark, no hand-back while in use.
        assert!(leftovers.look(12 * MIB, 11 * MIB));
        leftovers.returned(12 * MIB, 11 * MIB);
        assert!(!leftovers.look(12 * MIB, 11 * MIB));
        // The work ends: the resident set stays, what is in use falls.
        assert!(leftovers.look(12 * MIB, 5 * MIB));
        leftovers.returned(6 * MIB, 5 * MIB);
        assert!(!leftovers.look(6 * MIB, 5 * MIB));
    }

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
