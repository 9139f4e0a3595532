//! The task that watches one recorder: it awaits the recorder's end, carries
//! out stop sequences and watches the output for stalls, and reports what it
//! saw. One such task per recorder, child or adopted.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use time::OffsetDateTime;
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::logs::LogCap;
use super::segments::{SegmentWatch, watch_segments};
use super::{
    Control, ExitEvent, ExitOutcome, ForeignProcess, OwnedPid, ProgressBoard, StallCheck, StopPlan,
    SupervisorEvent,
};

/// A stop sequence under way: which signals remain and when the next is due.
#[derive(Default)]
struct Escalation {
    pending: Vec<Signal>,
    grace: Duration,
    next_step: Option<Instant>,
    last_sent: Option<Signal>,
    first_sent_at: Option<Instant>,
}

impl Escalation {
    /// Starts the sequence now; a second stop request does not restart it.
    fn begin(&mut self, plan: StopPlan) {
        if self.next_step.is_some() || self.last_sent.is_some() {
            return;
        }
        self.pending = plan.signals();
        self.pending.reverse();
        self.grace = plan.grace;
        self.next_step = Some(Instant::now());
    }

    fn is_due(&self) -> bool {
        self.next_step.is_some()
    }

    /// Resolves when the next signal is due (never, if none is).
    async fn due(&self) {
        match self.next_step {
            Some(at) => sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// The signal to send now; schedules the one after it.
    fn step(&mut self) -> Option<Signal> {
        let signal = self.pending.pop();
        self.next_step = signal.map(|_| Instant::now() + self.grace);
        if signal.is_some() {
            self.last_sent = signal;
            self.first_sent_at.get_or_insert_with(Instant::now);
        }
        signal
    }
}

/// What every watcher task listens to and reports through.
pub(super) struct Watch {
    pub(super) job_id: i32,
    pub(super) control: mpsc::UnboundedReceiver<Control>,
    pub(super) events: mpsc::UnboundedSender<SupervisorEvent>,
    pub(super) detached: CancellationToken,
    pub(super) stall: Option<StallWatch>,
    pub(super) restartable: bool,
    /// The job's log, kept under its cap while the recorder runs (by the
    /// task shared by all recorders: this only keeps it watched).
    pub(super) log_cap: Option<LogCap>,
    /// The list of a segmented recorder's closed segments.
    pub(super) segments: Option<SegmentWatch>,
}

/// Watches an output file for growth, and the recorder's reported
/// progress when it reports any.
pub(super) struct StallWatch {
    check: StallCheck,
    progress: Option<ProgressBoard>,
    last_size: u64,
    last_growth: Instant,
    next_check: Instant,
    reported: bool,
}

impl StallWatch {
    pub(super) fn new(check: StallCheck, progress: Option<ProgressBoard>) -> Self {
        Self {
            check,
            progress,
            last_size: 0,
            last_growth: Instant::now(),
            next_check: Instant::now(),
            reported: false,
        }
    }

    /// Time between two looks at the file: a quarter of the timeout, so a
    /// stall is noticed within 1.25 timeouts.
    fn period(&self) -> Duration {
        (self.check.timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(5))
    }
}

/// Resolves at the next check; yields the silence when a stall is found
/// (once per stall: growth re-arms it). Data flows when the output file
/// grew or the recorder reported new data since the last growth seen: a
/// muxer may hold data back from the file for a while, and a file may grow
/// from a trailer while nothing arrives.
async fn watch_stall(watch: &mut Option<StallWatch>, job_id: i32) -> Option<Duration> {
    let watch = watch.as_mut()?;
    sleep_until(watch.next_check).await;
    watch.next_check = Instant::now() + watch.period();
    let size = tokio::fs::metadata(&watch.check.output)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let reported_data = watch
        .progress
        .as_ref()
        .and_then(|board| board.last_data(job_id))
        .filter(|at| *at > watch.last_growth);
    if size > watch.last_size || reported_data.is_some() {
        watch.last_size = watch.last_size.max(size);
        watch.last_growth = reported_data.unwrap_or_else(Instant::now);
        watch.reported = false;
        return None;
    }
    let silent_for = watch.last_growth.elapsed();
    if silent_for >= watch.check.timeout && !watch.reported {
        watch.reported = true;
        return Some(silent_for);
    }
    None
}

/// Awaits one child's exit, carrying out stop sequences meanwhile. Signals
/// are only ever sent from here, before `wait()` has returned: until then the
/// child is unreaped, so its PID (and the process group it leads) cannot
/// belong to anyone else.
pub(super) async fn watch_child(pid: i32, mut child: Child, owned_pid: OwnedPid, watch: Watch) {
    let Watch {
        job_id,
        mut control,
        events: exits,
        detached,
        mut stall,
        restartable,
        log_cap: _log_cap,
        mut segments,
    } = watch;
    info!("recorder started");
    let mut escalation = Escalation::default();
    let mut control_open = true;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            () = detached.cancelled() => {
                info!("detached: the recorder keeps running");
                return;
            }
            closed = watch_segments(&mut segments, job_id), if segments.is_some() => {
                for segment in closed {
                    let _ = exits.send(SupervisorEvent::SegmentClosed(segment));
                }
            }
            // Not a `Some(..) =` pattern: a check that finds no stall must
            // end this select so the next check is scheduled.
            stalled = watch_stall(&mut stall, job_id), if stall.is_some() => {
                if let Some(silent_for) = stalled {
                    warn!(?silent_for, "no data from the recorder");
                    let _ = exits.send(SupervisorEvent::Stalled { job_id, silent_for });
                }
            }
            cmd = control.recv(), if control_open => match cmd {
                Some(Control::Stop(plan)) => escalation.begin(plan),
                Some(Control::Kill) => {
                    warn!("killing the recorder's process group");
                    escalation.last_sent = Some(Signal::KILL);
                    escalation.first_sent_at.get_or_insert_with(Instant::now);
                    if let Some(group) = Pid::from_raw(pid) {
                        let _ = kill_process_group(group, Signal::KILL);
                    }
                }
                None => control_open = false,
            },
            _ = escalation.due(), if escalation.is_due() => {
                if let Some(signal) = escalation.step() {
                    info!(signal = signal.as_raw(), "sending stop signal to process group");
                    if let Some(group) = Pid::from_raw(pid)
                        && let Err(e) = kill_process_group(group, signal)
                    {
                        warn!(error = %e, "could not signal the recorder's process group");
                    }
                }
            }
        }
    };
    let (observed_at, ended_at) = (Instant::now(), OffsetDateTime::now_utc());
    drop(owned_pid);
    let outcome = match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => ExitOutcome::Exited(code),
            (None, Some(signal)) => ExitOutcome::Signalled(signal),
            (None, None) => ExitOutcome::Vanished(format!("unrecognised wait status {status}")),
        },
        Err(e) => ExitOutcome::Vanished(format!("waiting for the recorder failed: {e}")),
    };
    info!(?outcome, "recorder ended");
    // The last segment is closed by the recorder's end: reported before it.
    if let Some(watch) = segments.as_mut() {
        for segment in watch.read_new(job_id).await {
            let _ = exits.send(SupervisorEvent::SegmentClosed(segment));
        }
    }
    let _ = exits.send(SupervisorEvent::Exited(ExitEvent {
        job_id,
        pid,
        outcome,
        last_stop_signal: escalation.last_sent.map(Signal::as_raw),
        first_stop_at: escalation.first_sent_at,
        observed_at,
        ended_at,
        restartable,
    }));
}

/// The same duties for a recorder left by a previous supervisor: its end is
/// noticed through its pidfd, and stop sequences go to its process group
/// only while it is verifiably alive.
pub(super) async fn watch_foreign(process: ForeignProcess, watch: Watch) {
    let Watch {
        job_id,
        mut control,
        events: exits,
        detached,
        mut stall,
        restartable,
        log_cap: _,
        mut segments,
    } = watch;
    info!("adopted a recorder left by a previous supervisor");
    let mut escalation = Escalation::default();
    let mut control_open = true;
    loop {
        tokio::select! {
            () = process.exited() => break,
            () = detached.cancelled() => return,
            closed = watch_segments(&mut segments, job_id), if segments.is_some() => {
                for segment in closed {
                    let _ = exits.send(SupervisorEvent::SegmentClosed(segment));
                }
            }
            stalled = watch_stall(&mut stall, job_id), if stall.is_some() => {
                if let Some(silent_for) = stalled {
                    warn!(?silent_for, "the adopted recorder's output stopped growing");
                    let _ = exits.send(SupervisorEvent::Stalled { job_id, silent_for });
                }
            }
            cmd = control.recv(), if control_open => match cmd {
                Some(Control::Stop(plan)) => escalation.begin(plan),
                Some(Control::Kill) => {
                    escalation.last_sent = Some(Signal::KILL);
                    escalation.first_sent_at.get_or_insert_with(Instant::now);
                    let _ = process.signal_group(Signal::KILL);
                }
                None => control_open = false,
            },
            _ = escalation.due(), if escalation.is_due() => {
                if let Some(signal) = escalation.step() {
                    info!(signal = signal.as_raw(), "sending stop signal to adopted process group");
                    if let Err(e) = process.signal_group(signal) {
                        warn!(error = %e, "could not signal the adopted recorder's process group");
                    }
                }
            }
        }
    }
    let (observed_at, ended_at) = (Instant::now(), OffsetDateTime::now_utc());
    info!("adopted recorder ended");
    if let Some(watch) = segments.as_mut() {
        for segment in watch.read_new(job_id).await {
            let _ = exits.send(SupervisorEvent::SegmentClosed(segment));
        }
    }
    let _ = exits.send(SupervisorEvent::Exited(ExitEvent {
        job_id,
        pid: process.identity().pid,
        outcome: ExitOutcome::Vanished(
            "the recorder was adopted after a restart; its exit status cannot be read".to_owned(),
        ),
        last_stop_signal: escalation.last_sent.map(Signal::as_raw),
        first_stop_at: escalation.first_sent_at,
        observed_at,
        ended_at,
        restartable,
    }));
}
