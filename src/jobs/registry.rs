//! The live jobs of this node, held in memory as each transition commits,
//! so that `active` and a job's page answer without reading and decoding
//! every live row. The database stays the truth: the registry only vouches
//! for a job when its status, lease generation, process and attempt match
//! the row's (`active` reads those few columns of every live job, from the
//! index), and anything it cannot vouch for is read from the database as
//! before. Writes made elsewhere (a stop sent through another node, a
//! takeover, a new lease generation) therefore never show stale: they
//! change one of those columns, or end the job. Each held job keeps its
//! JSON too, serialized when it is put, so that `active` copies bytes
//! instead of serializing every live job on every call.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use super::live::HeldJson;
use crate::entity::JobStatus;
use crate::store::Job;
use crate::store::live::LiveMark;

/// The jobs this node's own transitions last wrote, by id.
#[derive(Default)]
pub(super) struct Registry {
    inner: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    jobs: HashMap<i32, HeldJob>,
}

/// A job as last committed here, and its JSON (without live progress).
struct HeldJob {
    job: Job,
    json: HeldJson,
}

/// What the registry can answer of the live jobs the database lists.
#[derive(Debug, Default)]
pub(super) struct Vouched {
    /// Jobs whose row the registry holds as the database has it, in the
    /// database's order: their ids and JSON.
    pub(super) jobs: Vec<(i32, HeldJson)>,
    /// Live jobs it cannot vouch for: read from the database.
    pub(super) unknown: Vec<i32>,
}

impl Registry {
    fn held(&self) -> MutexGuard<'_, Held> {
        // A panic while holding the lock leaves plain data, still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a live job as just committed, serialized now (outside the
    /// lock: `active` waits on it). A row older than the one held (an
    /// earlier attempt, `running` after `stopping`, no process after one),
    /// from a transition whose answer arrived late, is ignored.
    pub(super) fn put(&self, job: &Job) {
        if job.status.is_terminal() {
            self.remove(job.id);
            return;
        }
        let Some(json) = HeldJson::of(job) else {
            // Not serializable as held: read from the database instead.
            self.remove(job.id);
            return;
        };
        let mut held = self.held();
        match held.jobs.get(&job.id) {
            Some(known) if freshness(&known.job) > freshness(job) => {}
            _ => {
                let job = Job {
                    progress: None,
                    ..job.clone()
                };
                held.jobs.insert(job.id, HeldJob { job, json });
            }
        }
    }

    /// The job has ended (or is no longer this node's to describe).
    pub(super) fn remove(&self, job_id: i32) {
        self.held().jobs.remove(&job_id);
    }

    /// The job as last written here, if the registry holds it under lease
    /// `generation` (the lease lost and taken again moves every job of
    /// this node under the new generation: an entry of an older one is
    /// out of date).
    pub(super) fn get(&self, job_id: i32, generation: i64) -> Option<Job> {
        self.held()
            .jobs
            .get(&job_id)
            .map(|held| &held.job)
            .filter(|job| job.lease_generation == Some(generation))
            .cloned()
    }

    /// Splits the live jobs the database lists (`marks`, in its order)
    /// into those the registry holds as the database has them and owned
    /// here (`owned`), and the others (all of them while this node does
    /// not hold its lease). Entries for jobs the database no
    /// longer lists as live are dropped: they ended or moved by another
    /// path (a start committed after `marks` was read is dropped too, and
    /// read from the database until its next transition).
    pub(super) fn vouch(
        &self,
        marks: &[LiveMark],
        lease_held: bool,
        owned: &HashSet<i32>,
    ) -> Vouched {
        let mut held = self.held();
        let mut vouched = Vouched::default();
        if !lease_held {
            // Without the lease nothing here is vouched for.
            vouched.unknown = marks.iter().map(|m| m.id).collect();
            return vouched;
        }
        let mut found = 0;
        for mark in marks {
            let entry = held.jobs.get(&mark.id);
            found += usize::from(entry.is_some());
            match entry {
                Some(entry) if owned.contains(&mark.id) && mark.matches(&entry.job) => {
                    vouched.jobs.push((mark.id, entry.json.clone()));
                }
                _ => vouched.unknown.push(mark.id),
            }
        }
        // Each id is marked once: when every entry was found, none is out
        // of date, and the set of every live id is not built (the common
        // case, on every call).
        if found < held.jobs.len() {
            let live: HashSet<i32> = marks.iter().map(|m| m.id).collect();
            held.jobs.retain(|id, _| live.contains(id));
        }
        vouched
    }

    /// How many jobs are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.held().jobs.len()
    }
}

impl LiveMark {
    /// Whether `job` is this row as the database has it now.
    fn matches(&self, job: &Job) -> bool {
        job.status == self.status
            && job.lease_generation == self.lease_generation
            && job.process_id == self.process_id
            && job.attempt == self.attempt
    }
}

/// Orders the rows of one live job by how far its life has gone: later
/// attempts, then `stopping` after `running`, then a process stored.
fn freshness(job: &Job) -> (i32, bool, bool) {
    (
        job.attempt,
        job.status == JobStatus::Stopping,
        job.process_id.is_some(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::fixtures;
    use crate::jobs::live::LiveJob;

    fn job(id: i32, status: JobStatus, pid: Option<i32>, attempt: i32) -> Job {
        Job {
            process_id: pid,
            process_start_time: pid.map(i64::from),
            attempt,
            node: Some("a".to_owned()),
            lease_generation: Some(1),
            ..fixtures::job(id, status)
        }
    }

    fn mark(job: &Job) -> LiveMark {
        LiveMark {
            id: job.id,
            status: job.status,
            lease_generation: job.lease_generation,
            process_id: job.process_id,
            attempt: job.attempt,
        }
    }

    fn owned(ids: &[i32]) -> HashSet<i32> {
        ids.iter().copied().collect()
    }

    #[test]
    fn owned_jobs_held_as_the_database_has_them_are_vouched_for_in_its_order() {
        let registry = Registry::default();
        let (a, b) = (
            job(1, JobStatus::Running, Some(10), 1),
            job(2, JobStatus::Running, Some(20), 1),
        );
        registry.put(&a);
        registry.put(&b);
        let marks = [mark(&b), mark(&a)];
        let vouched = registry.vouch(&marks, true, &owned(&[1, 2]));
        let ids: Vec<i32> = vouched.jobs.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [2, 1]);
        assert_eq!(vouched.jobs[1].1, HeldJson::of(&a).expect("held"));
        assert!(vouched.unknown.is_empty());
    }

    #[test]
    fn a_row_changed_elsewhere_an_unowned_job_or_an_unknown_one_is_read_from_the_database() {
        let registry = Registry::default();
        let mine = job(1, JobStatus::Running, Some(10), 1);
        let unowned = job(2, JobStatus::Running, Some(20), 1);
        registry.put(&mine);
        registry.put(&unowned);
        // Marked stopping through another node: the row moved on.
        let mut stopped_elsewhere = mark(&mine);
        stopped_elsewhere.status = JobStatus::Stopping;
        let foreign = mark(&job(3, JobStatus::Running, Some(30), 1));
        let marks = [foreign, mark(&unowned), stopped_elsewhere];
        let vouched = registry.vouch(&marks, true, &owned(&[1]));
        assert!(vouched.jobs.is_empty());
        assert_eq!(vouched.unknown, [3, 2, 1]);
    }

    #[test]
    fn jobs_no_longer_live_in_the_database_are_forgotten() {
        let registry = Registry::default();
        registry.put(&job(1, JobStatus::Running, Some(10), 1));
        registry.put(&job(2, JobStatus::Running, Some(20), 1));
        let still = job(2, JobStatus::Running, Some(20), 1);
        let vouched = registry.vouch(&[mark(&still)], true, &owned(&[1, 2]));
        assert_eq!(vouched.jobs.len(), 1);
        assert_eq!(registry.len(), 1);
        assert!(registry.get(1, 1).is_none());
    }

    #[test]
    fn a_late_answer_does_not_replace_a_later_state() {
        let registry = Registry::default();
        let stopping = job(1, JobStatus::Stopping, Some(10), 1);
        registry.put(&stopping);
        registry.put(&job(1, JobStatus::Running, Some(10), 1));
        registry.put(&job(1, JobStatus::Stopping, None, 1));
        assert_eq!(
            registry.get(1, 1).map(|j| j.status),
            Some(JobStatus::Stopping)
        );
        assert_eq!(registry.get(1, 1).and_then(|j| j.process_id), Some(10));
        // The next attempt is later whatever its state.
        registry.put(&job(1, JobStatus::Running, None, 2));
        assert_eq!(registry.get(1, 1).map(|j| j.attempt), Some(2));
        // An ended job leaves.
        registry.put(&job(1, JobStatus::Completed, None, 2));
        assert!(registry.get(1, 1).is_none());
    }

    /// The JSON `active` would write for the job the registry vouches for.
    fn vouched_json(registry: &Registry, job: &Job) -> Vec<u8> {
        let vouched = registry.vouch(&[mark(job)], true, &owned(&[job.id]));
        let [(id, json)] = &vouched.jobs[..] else {
            panic!("{} not vouched for: {vouched:?}", job.id);
        };
        let mut out = Vec::new();
        LiveJob::Held {
            id: *id,
            json: json.clone(),
            progress: None,
        }
        .write_json(&mut out)
        .expect("written");
        out
    }

    #[test]
    fn the_held_json_is_a_fresh_serialization_after_each_kind_of_update() {
        let registry = Registry::default();
        let started = job(1, JobStatus::Running, Some(10), 1);
        // A crash claims the next run: its process comes once spawned.
        let waiting = Job {
            process_id: None,
            process_start_time: None,
            attempt: 2,
            exit_code: Some(1),
            restart_at: Some(time::OffsetDateTime::UNIX_EPOCH),
            ..started.clone()
        };
        let restarted = Job {
            process_id: Some(11),
            process_start_time: Some(11),
            restart_at: None,
            ..waiting.clone()
        };
        let stopping = Job {
            status: JobStatus::Stopping,
            stop_requested_at: Some(time::OffsetDateTime::UNIX_EPOCH),
            ..restarted.clone()
        };
        for row in [&started, &waiting, &restarted, &stopping] {
            registry.put(row);
            let fresh = serde_json::to_vec(row).expect("serialized");
            assert_eq!(vouched_json(&registry, row), fresh, "{row:?}");
        }
        // A late answer leaves the later row's bytes.
        registry.put(&restarted);
        let fresh = serde_json::to_vec(&stopping).expect("serialized");
        assert_eq!(vouched_json(&registry, &stopping), fresh);
    }

    #[test]
    fn a_new_lease_generation_or_no_lease_vouches_for_nothing_held_before() {
        let registry = Registry::default();
        let a = job(1, JobStatus::Running, Some(10), 1);
        registry.put(&a);
        assert!(registry.get(1, 1).is_some());
        let none = registry.vouch(&[mark(&a)], false, &owned(&[1]));
        assert_eq!(none.unknown, [1]);
        // Taken again: the database moved the job under generation 2.
        let mut moved = mark(&a);
        moved.lease_generation = Some(2);
        assert_eq!(registry.vouch(&[moved], true, &owned(&[1])).unknown, [1]);
        assert!(registry.get(1, 2).is_none());
    }
}
