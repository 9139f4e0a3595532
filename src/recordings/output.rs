//! The files a recording's recorder runs wrote, and what state they are in:
//! whether there is anything to process decides a recording's fate when
//! its job ends.

use std::path::{Path, PathBuf};

use crate::store::Recording;

/// What the recorder left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputState {
    HasData,
    Empty,
    Missing,
    Unreadable(String),
}

impl OutputState {
    pub fn has_data(&self) -> bool {
        matches!(self, Self::HasData)
    }

    pub fn describe(&self) -> String {
        match self {
            Self::HasData => "output recorded".to_owned(),
            Self::Empty => "the recorder produced an empty output file".to_owned(),
            Self::Missing => "the recorder produced no output file".to_owned(),
            Self::Unreadable(e) => format!("the output file cannot be read: {e}"),
        }
    }
}

/// Every file the recording's recorder runs wrote: its output, then the
/// segments of restarted runs.
pub fn recorded_files(recording: &Recording) -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from(&recording.output_path)];
    if let Some(segments) = &recording.segments {
        files.extend(segments.0.iter().map(PathBuf::from));
    }
    files
}

/// What the recorder runs left, read off the disk (blocking): data if any
/// of their files holds some (a first run that failed to open its source
/// may have written nothing while a restarted one recorded), otherwise the
/// state of the first file.
pub fn state_of(files: &[PathBuf]) -> OutputState {
    let mut first = None;
    for file in files {
        let state = classify(std::fs::metadata(file));
        if state.has_data() {
            return state;
        }
        first.get_or_insert(state);
    }
    first.unwrap_or(OutputState::Missing)
}

/// How many bytes each recording's files hold (blocking); `None` for a
/// recording none of whose files is here.
pub fn sizes_of(files: Vec<Vec<PathBuf>>) -> Vec<Option<u64>> {
    files
        .iter()
        .map(|files| {
            let sizes: Vec<u64> = files
                .iter()
                .filter_map(|f| std::fs::metadata(f).ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .collect();
            (!sizes.is_empty()).then(|| sizes.iter().sum())
        })
        .collect()
}

/// What a recording's runs left, as a whole and for its last run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    /// See [`state_of`].
    pub state: OutputState,
    /// Whether the last run wrote anything (a restarted run that could not
    /// reach its source writes nothing).
    pub last_run_had_data: bool,
}

/// [`Outputs`] of many recordings (each the list of its runs' files), off
/// the async runtime.
pub async fn outputs_of(files: Vec<Vec<PathBuf>>) -> std::io::Result<Vec<Outputs>> {
    tokio::task::spawn_blocking(move || {
        files
            .iter()
            .map(|runs| Outputs {
                state: state_of(runs),
                last_run_had_data: runs
                    .last()
                    .is_some_and(|last| classify(std::fs::metadata(last)).has_data()),
            })
            .collect()
    })
    .await
    .map_err(std::io::Error::other)
}

fn classify(metadata: std::io::Result<std::fs::Metadata>) -> OutputState {
    match metadata {
        Ok(meta) if meta.is_file() && meta.len() > 0 => OutputState::HasData,
        Ok(meta) if meta.is_file() => OutputState::Empty,
        Ok(_) => OutputState::Unreadable("not a regular file".to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => OutputState::Missing,
        Err(e) => OutputState::Unreadable(e.to_string()),
    }
}

/// Free bytes for an unprivileged writer on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Below this much free space a recorder's failure is put down to a full
/// disk: nothing it could write would fit.
const NEARLY_FULL: u64 = 1024 * 1024;

/// How much of a recorder's log is searched for the OS's "disk full".
const LOG_TAIL: u64 = 16 * 1024;

/// Why a failed recorder could not write, when its disk is full: its log
/// names the OS error (ENOSPC), or the recordings' filesystem has next to
/// nothing left. Blocking.
pub fn disk_full(recordings_dir: &Path, log: &Path) -> Option<String> {
    let free = free_bytes(recordings_dir).ok();
    let said_so = crate::recordings::files::read_tail(log, LOG_TAIL)
        .is_ok_and(|tail| tail.content.contains("No space left on device"));
    (said_so || free.is_some_and(|f| f < NEARLY_FULL)).then(|| {
        format!(
            "the disk holding the recordings is full ({} bytes free at {}); the recorder could not write",
            free.map_or_else(|| "?".to_owned(), |f| f.to_string()),
            recordings_dir.display()
        )
    })
}

/// Longest cause quoted from a log, in characters.
const MAX_CAUSE_CHARS: usize = 300;

/// Words of a log line that says why a recorder gave up.
const CAUSE_WORDS: &[&str] = &[
    "error",
    "invalid",
    "not found",
    "refused",
    "denied",
    "not supported",
    "unsupported",
    "no such",
    "failed",
    "unable",
    "cannot",
    "could not",
    "timed out",
    "forbidden",
];

/// Lines a recorder writes at its end whatever happened (ffmpeg's summary
/// and sign-off): never the cause.
const EPILOGUE: &[&str] = &[
    "size=",
    "video:",
    "frame=",
    "exiting normally",
    "conversion failed",
];

/// Why a recorder failed, in its own words: the last line of its log's
/// end that reads like an error (else its last line), from the recorder's
/// output alone. `None` when the log is empty or unreadable. Blocking.
pub fn log_cause(log: &Path) -> Option<String> {
    let tail = crate::recordings::files::read_tail(log, LOG_TAIL).ok()?;
    let lines: Vec<&str> = tail
        .content
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            !EPILOGUE.iter().any(|e| lower.starts_with(e))
        })
        .collect();
    let cause = lines
        .iter()
        .rev()
        .take(20)
        .find(|l| {
            let lower = l.to_ascii_lowercase();
            CAUSE_WORDS.iter().any(|w| lower.contains(w))
        })
        .or(lines.last())?;
    Some(cause.chars().take(MAX_CAUSE_CHARS).collect())
}

/// Where a segmented recording's runs write their segments and lists:
/// `recording-7.mkv` → `recording-7.segments/`.
pub fn segments_dir(output: &Path) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!("{stem}.segments"))
}

/// The file name pattern (`{output}`) of run number `attempt` of a
/// segmented recorder: `recording-7.segments/run1-%05d.mkv`, each run's
/// segments apart (restarted runs are never joined).
pub fn segment_pattern(output: &Path, attempt: i32) -> PathBuf {
    let extension = output
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    segments_dir(output).join(format!("run{attempt}-%05d{extension}"))
}

/// The list (`{segment_list}`) run number `attempt` of a segmented
/// recorder appends each closed segment to: `recording-7.segments/run1.csv`.
pub fn segment_list(output: &Path, attempt: i32) -> PathBuf {
    segments_dir(output).join(format!("run{attempt}.csv"))
}

/// The files that tell what a segmented recording's runs (1 to `attempts`)
/// recorded: their segment lists, which hold a line once a segment closed.
pub fn segment_lists(recording: &Recording, attempts: i32) -> Vec<PathBuf> {
    let output = Path::new(&recording.output_path);
    (1..=attempts.max(1))
        .map(|attempt| segment_list(output, attempt))
        .collect()
}

/// Where run number `attempt` (from 2) of a restarted recorder writes:
/// `recording-7.mkv` → `recording-7.part2.mkv`.
pub fn segment_path(output: &Path, attempt: i32) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match output.extension() {
        Some(ext) => format!("{stem}.part{attempt}.{}", ext.to_string_lossy()),
        None => format!("{stem}.part{attempt}"),
    };
    output.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_named_after_the_output_and_their_run() {
        assert_eq!(
            segment_path(Path::new("/d/recording-7.mkv"), 2),
            Path::new("/d/recording-7.part2.mkv")
        );
        assert_eq!(
            segment_path(Path::new("/d/recording-7"), 3),
            Path::new("/d/recording-7.part3")
        );
    }

    #[test]
    fn the_cause_of_a_failure_is_the_last_line_that_reads_like_one() {
        let dir = std::env::temp_dir().join(format!("recorderd-cause-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let log = dir.join("job-1.log");
        std::fs::write(
            &log,
            "Input #0, hls, from 'http://h/live.m3u8':\n\
             [matroska @ 0x55] Only audio, video, and subtitles are supported for Matroska.\n\
             Could not write header for output file #0 (incorrect codec parameters ?): Invalid argument\n\
             size=       0kB time=00:00:00.00 bitrate=N/A speed=   0x\n\
             Conversion failed!\n",
        )
        .expect("write the log");
        let cause = log_cause(&log).expect("a cause");
        assert!(cause.starts_with("Could not write header"), "{cause}");
        std::fs::write(&log, "").expect("empty the log");
        assert_eq!(log_cause(&log), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn any_run_with_data_gives_the_recording_data() {
        let dir = std::env::temp_dir().join(format!("recorderd-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let empty = dir.join("a.mkv");
        let full = dir.join("a.part2.mkv");
        std::fs::write(&empty, b"").expect("write");
        assert_eq!(state_of(std::slice::from_ref(&empty)), OutputState::Empty);
        assert_eq!(state_of(&[dir.join("missing.mkv")]), OutputState::Missing);
        std::fs::write(&full, b"data").expect("write");
        assert_eq!(state_of(&[empty, full]), OutputState::HasData);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
