//! Running a step's command: its standard output kept (bounded) as the
//! step's result, its standard error appended to the processing log.

use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::entity::Analysis;
use crate::profile::EnvTable;
use crate::store::transcripts::NewSegment;
use crate::supervisor::Supervisor;

/// Most of a command step's standard output kept as its result.
pub(super) const MAX_STDOUT: u64 = 1024 * 1024;

/// How one attempt of a step went.
pub(super) struct Attempt {
    pub(super) exit_code: Option<i32>,
    /// Standard output of a command, or the built-in step's JSON.
    pub(super) result: Option<String>,
    /// What the built-in `analyze` step measured.
    pub(super) analysis: Option<Analysis>,
    /// The transcript the built-in `transcribe` step heard.
    pub(super) segments: Option<Vec<NewSegment>>,
}

/// Runs one command: stdout kept (bounded) as its result, stderr appended
/// to the processing log, `env` beside the variables every child gets. The
/// child is killed if this future is dropped (timeout or shutdown).
pub(super) async fn run_command(
    supervisor: &Supervisor,
    argv: &[String],
    env: &EnvTable,
    log_path: &Path,
    max_stdout: u64,
) -> Result<Attempt, (Option<i32>, String)> {
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| (None, format!("cannot open {}: {e}", log_path.display())))?;
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);
    let (mut child, _owned) = supervisor
        .spawn_step(&mut command, env)
        .map_err(|e| (None, format!("`{}` could not be started: {e}", argv[0])))?;
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = (&mut out).take(max_stdout).read_to_end(&mut stdout).await;
        // Drained past the limit so the step never blocks on a full pipe.
        let _ = tokio::io::copy(&mut out, &mut tokio::io::sink()).await;
    }
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let status = child
        .wait()
        .await
        .map_err(|e| (None, format!("`{}` could not be awaited: {e}", argv[0])))?;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(Attempt {
            exit_code: Some(0),
            result: Some(stdout),
            analysis: None,
            segments: None,
        }),
        (Some(code), _) => Err((Some(code), format!("`{}` exited with code {code}", argv[0]))),
        (None, Some(signal)) => Err((None, format!("`{}` was killed by signal {signal}", argv[0]))),
        (None, None) => Err((None, format!("`{}` ended with status {status}", argv[0]))),
    }
}
