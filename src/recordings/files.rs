//! Reading and removing the files of recordings and jobs, off the async
//! runtime.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use tracing::warn;

/// The last bytes of a log file, cut at a line boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTail {
    /// The whole log's size in bytes.
    pub size: u64,
    /// Whether `content` is only the end of the log.
    pub truncated: bool,
    /// Lossily decoded as UTF-8.
    pub content: String,
}

impl LogTail {
    /// A log that does not exist (yet): nothing was written.
    pub fn empty() -> Self {
        Self {
            size: 0,
            truncated: false,
            content: String::new(),
        }
    }
}

/// The end of `path`, at most `max_bytes`, starting at a whole line.
pub fn read_tail(path: &Path, max_bytes: u64) -> std::io::Result<LogTail> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let start = size.saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((size - start) as usize);
    file.take(max_bytes).read_to_end(&mut bytes)?;
    let mut content = String::from_utf8_lossy(&bytes).into_owned();
    if start > 0
        && let Some(newline) = content.find('\n')
    {
        content.drain(..=newline);
    }
    Ok(LogTail {
        size,
        truncated: start > 0,
        content,
    })
}

/// Removes files and directories; those already gone are fine, others are
/// logged (the database rows are gone already, so nothing is left to retry).
pub fn remove_all(files: &[PathBuf], dirs: &[PathBuf]) {
    for file in files {
        match std::fs::remove_file(file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(path = %file.display(), error = %e, "cannot remove file"),
        }
    }
    for dir in dirs {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(path = %dir.display(), error = %e, "cannot remove directory"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_starts_at_a_whole_line() {
        let path = std::env::temp_dir().join(format!("recorderd-tail-{}.log", std::process::id()));
        std::fs::write(&path, "first line\nsecond line\nthird\n").expect("write");
        let tail = read_tail(&path, 14).expect("read");
        assert_eq!(tail.size, 29);
        assert!(tail.truncated);
        assert_eq!(tail.content, "third\n");
        let whole = read_tail(&path, 1000).expect("read");
        assert!(!whole.truncated);
        assert_eq!(whole.content, "first line\nsecond line\nthird\n");
        let _ = std::fs::remove_file(&path);
    }
}
