//! Joining the files of a restarted recorder into one before processing.
//! Containers with a global header (Matroska, MP4) are joined by ffmpeg's
//! concat demuxer without re-encoding; streams made to be cut anywhere
//! (MPEG-TS, raw data, text) are appended byte for byte.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::supervisor::Supervisor;

/// Extensions whose files cannot simply be appended to one another.
const CONTAINERS: &[&str] = &["mkv", "mka", "webm", "mp4", "m4a", "mov"];

/// Joins `first` and `rest` (in order) into `first`. The result is written
/// in `workdir` and renamed over `first`, so an interrupted join leaves
/// every input intact and is simply done again.
pub async fn join_segments(
    supervisor: &Supervisor,
    first: &Path,
    rest: &[PathBuf],
    workdir: &Path,
) -> Result<(), String> {
    let extension = first
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let joined = workdir.join(format!("joined.{extension}"));
    // A marker written once the joined file is complete: a run interrupted
    // after it only has to move the file into place; one interrupted before
    // it joins again from the untouched inputs.
    let done = workdir.join("joined.done");
    if tokio::fs::metadata(&done).await.is_ok() {
        if tokio::fs::metadata(&joined).await.is_ok() {
            tokio::fs::rename(&joined, first)
                .await
                .map_err(|e| format!("cannot move the joined file into place: {e}"))?;
        }
        return Ok(());
    }
    let existing: Vec<PathBuf> = std::iter::once(first.to_path_buf())
        .chain(rest.iter().cloned())
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
        .collect();
    if existing.is_empty() {
        return Err("no run recorded any data".to_owned());
    }
    if CONTAINERS.contains(&extension.as_str()) {
        concat_with_ffmpeg(supervisor, &existing, &joined, workdir).await?;
    } else {
        let parts = existing.clone();
        let target = joined.clone();
        tokio::task::spawn_blocking(move || append_files(&parts, &target))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("appending the files failed: {e}"))?;
    }
    tokio::fs::write(&done, b"")
        .await
        .map_err(|e| format!("cannot write {}: {e}", done.display()))?;
    tokio::fs::rename(&joined, first)
        .await
        .map_err(|e| format!("cannot move the joined file into place: {e}"))
}

/// Removes the segments (and the join's marker) once their data is in the
/// joined file and the recording no longer lists them.
pub async fn remove_segments(segments: &[PathBuf], workdir: &Path) {
    for segment in segments {
        let _ = tokio::fs::remove_file(segment).await;
    }
    let _ = tokio::fs::remove_file(workdir.join("joined.done")).await;
}

fn append_files(parts: &[PathBuf], target: &Path) -> std::io::Result<()> {
    let mut out = std::fs::File::create(target)?;
    for part in parts {
        let mut input = std::fs::File::open(part)?;
        std::io::copy(&mut input, &mut out)?;
    }
    out.sync_all()
}

async fn concat_with_ffmpeg(
    supervisor: &Supervisor,
    parts: &[PathBuf],
    joined: &Path,
    workdir: &Path,
) -> Result<(), String> {
    // The concat demuxer's list: one `file '<path>'` line each, with single
    // quotes escaped as the format requires.
    let list: String = parts
        .iter()
        .map(|p| {
            format!(
                "file '{}'\n",
                p.display().to_string().replace('\'', "'\\''")
            )
        })
        .collect();
    let list_path = workdir.join("segments.txt");
    tokio::fs::write(&list_path, list)
        .await
        .map_err(|e| format!("cannot write {}: {e}", list_path.display()))?;
    let mut command = Command::new("ffmpeg");
    command
        .args([
            "-nostdin",
            "-y",
            "-loglevel",
            "error",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
        ])
        .arg(&list_path)
        .args(["-map", "0", "-c", "copy"])
        .arg(joined)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let (child, _owned) = supervisor
        .spawn_step(&mut command, &crate::profile::EnvTable::new())
        .map_err(|e| format!("cannot start ffmpeg: {e}"))?;
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("waiting for ffmpeg failed: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ffmpeg could not join them: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
