//! The supervisor owns recorder processes: it spawns each one in its own
//! process group, awaits its exit in a task of its own, and carries out stop
//! sequences. It reports exits as [`ExitEvent`]s and never touches the
//! database: the job service decides what an exit means.

pub mod env;
pub mod foreign;
pub mod identity;
pub mod logs;
pub mod progress;
pub mod reaper;
mod segments;
mod watch;

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use time::OffsetDateTime;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info_span};

pub use foreign::ForeignProcess;
pub use identity::ProcessIdentity;
pub use progress::{LiveProgress, ProgressBoard};
pub use segments::{ClosedSegment, SegmentList};

use crate::profile::ProgressFormat;
use logs::LogCaps;
use segments::SegmentWatch;
use watch::{StallWatch, Watch, watch_child, watch_foreign};

/// Name of the environment variable that marks a recorder with its job, so
/// that `/proc/<pid>/environ` tells whose process it is.
pub const JOB_ENV_MARKER: &str = "RECORDERD_JOB_ID";
/// Beside the job marker: which node (of which database) spawned the
/// recorder, so that a node finding marked processes after a restart takes
/// charge only of its own (several servers can share one machine).
pub const NODE_ENV_MARKER: &str = "RECORDERD_NODE";

/// How a recorder process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitOutcome {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it.
    Signalled(i32),
    /// It ended while no parent could read its status (adopted or orphaned
    /// process); the text says what is known.
    Vanished(String),
}

/// What the supervisor reports about its recorders.
#[derive(Debug)]
pub enum SupervisorEvent {
    /// A recorder ended.
    Exited(ExitEvent),
    /// A recorder is alive but its output has not grown for `silent_for`.
    Stalled { job_id: i32, silent_for: Duration },
    /// A segmented recorder closed a segment (reported before its exit).
    SegmentClosed(ClosedSegment),
}

/// Sent by the supervisor each time one of its children ends.
#[derive(Debug)]
pub struct ExitEvent {
    pub job_id: i32,
    pub pid: i32,
    pub outcome: ExitOutcome,
    /// The last signal of a stop sequence sent before the exit, if any.
    pub last_stop_signal: Option<i32>,
    /// When the stop sequence sent its first signal.
    pub first_stop_at: Option<Instant>,
    /// Moment the exit was observed (for latency).
    pub observed_at: Instant,
    /// The same moment by the wall clock: when the recorder ended, recorded
    /// as the run's and the job's end however late the commit comes.
    pub ended_at: OffsetDateTime,
    /// As spawned ([`SpawnSpec::restartable`]); false for adopted ones.
    pub restartable: bool,
}

/// What to run for a job.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub job_id: i32,
    pub argv: Vec<String>,
    pub log_path: PathBuf,
    /// Watched for growth when a stall timeout is set.
    pub stall: Option<StallCheck>,
    /// Whether the job's profile would start this recorder again if it
    /// ended unasked; handed back with its exit.
    pub restartable: bool,
    /// The profile's `env`: with the few variables every child gets, all
    /// of the recorder's environment besides its marker.
    pub env: crate::profile::EnvTable,
    /// What the recorder's standard output carries.
    pub progress: ProgressFormat,
    /// Size the job's log is kept under while the recorder runs (`None`:
    /// no cap).
    pub log_max_bytes: Option<u64>,
    /// Where a segmented recorder lists the segments it closes.
    pub segments: Option<SegmentList>,
}

/// Stall detection for one recorder: its output file must grow, or its
/// reported progress show new data, within `timeout`.
#[derive(Debug, Clone)]
pub struct StallCheck {
    pub output: PathBuf,
    pub timeout: Duration,
}

/// Spawning failed before any process existed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot open log file {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start `{program}`: {source}")]
    Program {
        program: String,
        source: std::io::Error,
    },
    #[error("cannot create the output directory {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the identity of process {pid}: {source}")]
    Identity { pid: i32, source: std::io::Error },
}

/// A stop sequence: the profile's signal, then SIGTERM, then SIGKILL, each
/// step given `grace` before the next.
#[derive(Debug, Clone, Copy)]
pub struct StopPlan {
    pub first_signal: Signal,
    pub grace: Duration,
}

impl StopPlan {
    /// The signals in order, without repeats (a profile whose stop signal is
    /// SIGTERM goes straight to SIGKILL after it).
    pub fn signals(&self) -> Vec<Signal> {
        let mut out = vec![self.first_signal];
        for next in [Signal::TERM, Signal::KILL] {
            if !out.contains(&next) {
                out.push(next);
            }
        }
        if let Some(kill) = out.iter().position(|s| *s == Signal::KILL) {
            out.truncate(kill + 1);
        }
        out
    }
}

enum Control {
    Stop(StopPlan),
    /// SIGKILL the process group now (end of a shutdown whose time is up).
    Kill,
}

struct ChildHandle {
    control: mpsc::UnboundedSender<Control>,
}

/// Cheap to clone; every clone manages the same set of children.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    /// Children whose exit a task of this process is awaiting, by job id.
    /// An entry is removed only once the job service has committed the exit
    /// (see [`Supervisor::release`]), so a job is never "unowned" while its
    /// own exit is being recorded.
    children: Mutex<HashMap<i32, ChildHandle>>,
    exits: mpsc::UnboundedSender<SupervisorEvent>,
    tracker: TaskTracker,
    /// PIDs of children whose exit status a tokio waiter will collect
    /// (recorders, post-processing steps). The orphan reaper never touches
    /// them; spawning happens under this lock so the reaper never sees a
    /// child before it is registered.
    owned_pids: Mutex<HashSet<i32>>,
    /// Cancelled to let every recorder run on without this process.
    detached: CancellationToken,
    /// This node's marker, set in each recorder's environment.
    node_marker: String,
    /// What recorders that report progress reported last.
    progress: ProgressBoard,
    /// The running recorders' logs, kept under their caps.
    log_caps: LogCaps,
}

/// Removes a PID from the owned set once its waiter has collected it.
pub struct OwnedPid {
    supervisor: Supervisor,
    pid: i32,
}

impl Drop for OwnedPid {
    fn drop(&mut self) {
        self.supervisor.owned_pids().remove(&self.pid);
    }
}

impl Supervisor {
    /// Returns the supervisor and the stream of its children's exits.
    pub fn new(
        tracker: TaskTracker,
        node_marker: String,
    ) -> (Self, mpsc::UnboundedReceiver<SupervisorEvent>) {
        let (exits, rx) = mpsc::unbounded_channel();
        let inner = Inner {
            node_marker,
            children: Mutex::new(HashMap::new()),
            exits,
            log_caps: LogCaps::new(tracker.clone()),
            tracker,
            owned_pids: Mutex::new(HashSet::new()),
            detached: CancellationToken::new(),
            progress: ProgressBoard::default(),
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    fn children(&self) -> MutexGuard<'_, HashMap<i32, ChildHandle>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (each operation is a single insert/remove/read), so poisoning is
        // safe to ignore.
        self.inner
            .children
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn owned_pids(&self) -> MutexGuard<'_, HashSet<i32>> {
        // Same reasoning as `children`: single inserts and removals.
        self.inner
            .owned_pids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The live progress of this node's recorders.
    pub fn progress(&self) -> &ProgressBoard {
        &self.inner.progress
    }

    /// Runs `f` with the owned-PID set locked (see [`reaper`]).
    pub fn with_owned_pids<T>(&self, f: impl FnOnce(&HashSet<i32>) -> T) -> T {
        f(&self.owned_pids())
    }

    /// Spawns a child whose exit status belongs to the caller: registered so
    /// that the orphan reaper leaves it alone until the guard is dropped.
    pub fn spawn_owned(&self, command: &mut Command) -> std::io::Result<(Child, OwnedPid)> {
        let mut owned = self.owned_pids();
        let child = command.spawn()?;
        let pid = child.id().map(|p| p as i32).unwrap_or_default();
        owned.insert(pid);
        drop(owned);
        let guard = OwnedPid {
            supervisor: self.clone(),
            pid,
        };
        Ok((child, guard))
    }

    /// Spawns a processing step: owned like [`Supervisor::spawn_owned`], and
    /// killed by the kernel if this process dies. A step orphaned by a crash
    /// would otherwise finish unobserved while the next start runs it again.
    /// Its environment is the allow-list of [`env`] and `extra_env`.
    pub fn spawn_step(
        &self,
        command: &mut Command,
        extra_env: &crate::profile::EnvTable,
    ) -> std::io::Result<(Child, OwnedPid)> {
        env::restrict(command, extra_env);
        // SAFETY: the closure runs in the child between fork and exec and
        // makes one prctl(2) call, which is async-signal-safe; it touches no
        // memory of the parent.
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
                    .map_err(std::io::Error::from)
            });
        }
        self.spawn_owned(command)
    }

    /// Starts a recorder: own process group (signals reach it and anything
    /// it starts, and a Ctrl-C on the supervisor's terminal does not), stdin
    /// null, stderr appended to the job's log file (a file, never a pipe, so
    /// a recorder never blocks on a reader that went away). stdout goes to
    /// the log too, unless it carries progress: then to a pipe read by a
    /// task of its own, which never stops reading while the recorder runs
    /// (and ffmpeg ignores the pipe breaking when it does).
    pub fn spawn(&self, spec: SpawnSpec) -> Result<ProcessIdentity, SpawnError> {
        let open_log = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&spec.log_path)
        };
        let log_err = |source| SpawnError::Log {
            path: spec.log_path.clone(),
            source,
        };
        let stderr = open_log().map_err(log_err)?;
        let stdout = match spec.progress {
            ProgressFormat::None => Stdio::from(stderr.try_clone().map_err(log_err)?),
            ProgressFormat::Ffmpeg => Stdio::piped(),
        };
        let program = spec.argv.first().cloned().unwrap_or_default();

        let mut command = Command::new(&program);
        env::restrict(&mut command, &spec.env);
        command
            .args(&spec.argv[1..])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .env(JOB_ENV_MARKER, spec.job_id.to_string())
            .env(NODE_ENV_MARKER, &self.inner.node_marker)
            .process_group(0)
            .kill_on_drop(false);
        let (mut child, owned_pid) = self
            .spawn_owned(&mut command)
            .map_err(|source| SpawnError::Program { program, source })?;
        self.inner.progress.reset(spec.job_id);
        if let Some(output) = child.stdout.take() {
            let reader = progress::read_ffmpeg_progress(
                output,
                self.inner.progress.clone(),
                spec.job_id,
                self.inner.detached.clone(),
            );
            self.inner.tracker.spawn(reader);
        }
        // `id()` is Some until the child has been reaped, and nothing polls
        // it before the watcher below starts.
        let pid = child.id().map(|p| p as i32).unwrap_or_default();
        // The child cannot have been reaped yet (only its watcher reaps), so
        // /proc/<pid> still describes it, even if it already exited.
        let start_time = match identity::read_stat(pid) {
            Ok(stat) => stat.start_time,
            Err(source) => {
                // Without its start time the recorder could never be told
                // apart from a stranger after a restart: refuse to run it.
                if let Some(group) = Pid::from_raw(pid) {
                    let _ = kill_process_group(group, Signal::KILL);
                }
                let mut child = child;
                self.inner.tracker.spawn(async move {
                    let _ = child.wait().await;
                    drop(owned_pid);
                });
                return Err(SpawnError::Identity { pid, source });
            }
        };

        let (control, control_rx) = mpsc::unbounded_channel();
        self.children().insert(spec.job_id, ChildHandle { control });
        let span = info_span!("job", job_id = spec.job_id, pid);
        let exits = self.inner.exits.clone();
        self.inner.tracker.spawn(
            watch_child(
                pid,
                child,
                owned_pid,
                Watch {
                    job_id: spec.job_id,
                    control: control_rx,
                    events: exits,
                    detached: self.inner.detached.clone(),
                    stall: spec
                        .stall
                        .map(|c| StallWatch::new(c, Some(self.inner.progress.clone()))),
                    restartable: spec.restartable,
                    log_cap: spec.log_max_bytes.map(|max| {
                        self.inner
                            .log_caps
                            .watch(spec.job_id, spec.log_path.clone(), max)
                    }),
                    segments: spec.segments.map(SegmentWatch::new),
                },
            )
            .instrument(span),
        );
        Ok(ProcessIdentity { pid, start_time })
    }

    /// Takes charge of a live recorder that a previous supervisor spawned:
    /// from now on it is owned like a child, except that its exit status is
    /// unknown.
    pub fn adopt(
        &self,
        job_id: i32,
        process: ForeignProcess,
        stall: Option<StallCheck>,
        segments: Option<SegmentList>,
    ) {
        let pid = process.identity().pid;
        let (control, control_rx) = mpsc::unbounded_channel();
        {
            // Two reconciliations may race to adopt the same orphan: the
            // first wins, the second's handle is dropped unused.
            let mut children = self.children();
            if children.contains_key(&job_id) {
                return;
            }
            children.insert(job_id, ChildHandle { control });
        }
        let span = info_span!("job", job_id, pid);
        let exits = self.inner.exits.clone();
        self.inner.tracker.spawn(
            watch_foreign(
                process,
                Watch {
                    job_id,
                    control: control_rx,
                    events: exits,
                    detached: self.inner.detached.clone(),
                    // Its progress pipe was the previous supervisor's: only
                    // its output file tells whether data flows.
                    stall: stall.map(|c| StallWatch::new(c, None)),
                    restartable: false,
                    log_cap: None,
                    // Read from its start: segments reported before are
                    // kept once by the job service.
                    segments: segments.map(SegmentWatch::new),
                },
            )
            .instrument(span),
        );
    }

    /// Reports every segment the lists name, those reported already
    /// included (the job service keeps each once): at a segmented job's
    /// end, for segments closed while nothing followed its list (a
    /// recorder that ended or was adopted while recorderd was down).
    pub fn sweep_segments(&self, job_id: i32, lists: Vec<SegmentList>) {
        let events = self.inner.exits.clone();
        self.inner.tracker.spawn(async move {
            for list in lists {
                for segment in segments::read_all(list, job_id).await {
                    let _ = events.send(SupervisorEvent::SegmentClosed(segment));
                }
            }
        });
    }

    /// Begins the stop sequence of an owned child. Returns false when no
    /// task of this process owns the job.
    pub fn stop(&self, job_id: i32, plan: StopPlan) -> bool {
        match self.children().get(&job_id) {
            Some(handle) => handle.control.send(Control::Stop(plan)).is_ok(),
            None => false,
        }
    }

    /// Whether a task of this process awaits this job's recorder.
    pub fn owns(&self, job_id: i32) -> bool {
        self.children().contains_key(&job_id)
    }

    /// Ids of every job this process owns.
    pub fn owned_jobs(&self) -> Vec<i32> {
        self.children().keys().copied().collect()
    }

    /// Number of children still owned.
    pub fn len(&self) -> usize {
        self.children().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets a child once its exit has been committed.
    pub fn release(&self, job_id: i32) {
        self.children().remove(&job_id);
        self.inner.progress.remove(job_id);
    }

    /// Has every owned child's watcher SIGKILL its process group: the last
    /// resort of a shutdown whose time is up. Going through the watchers
    /// means nothing is signalled after its recorder has been reaped.
    pub fn kill_all(&self) {
        for handle in self.children().values() {
            let _ = handle.control.send(Control::Kill);
        }
    }

    /// Stops watching every recorder without signalling any: they run on,
    /// recorded as `running` with their identity, for the next supervisor
    /// to adopt.
    pub fn detach(&self) {
        self.inner.detached.cancel();
    }

    /// Has one child's watcher SIGKILL its process group now.
    pub fn kill(&self, job_id: i32) {
        if let Some(handle) = self.children().get(&job_id) {
            let _ = handle.control.send(Control::Kill);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_plans_escalate_without_repeating_a_signal() {
        let plan = |first| StopPlan {
            first_signal: first,
            grace: Duration::from_secs(1),
        };
        assert_eq!(
            plan(Signal::INT).signals(),
            [Signal::INT, Signal::TERM, Signal::KILL]
        );
        assert_eq!(plan(Signal::TERM).signals(), [Signal::TERM, Signal::KILL]);
        assert_eq!(plan(Signal::KILL).signals(), [Signal::KILL]);
    }
}
