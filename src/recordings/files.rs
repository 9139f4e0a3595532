//! Reading and removing the files of recordings and jobs, off the async
//! runtime.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use tracing::warn;

/// A stretch of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTail {
    /// The whole log's size in bytes.
    pub size: u64,
    /// Whether `content` is only part of the log.
    pub truncated: bool,
    /// Lossily decoded as UTF-8.
    pub content: String,
    /// Where in the file `content` starts, in bytes.
    pub offset: u64,
    /// Where it ends: the `offset` of the next read that follows the log.
    pub next_offset: u64,
}

impl LogTail {
    /// A log that does not exist (yet): nothing was written.
    pub fn empty() -> Self {
        Self {
            size: 0,
            truncated: false,
            content: String::new(),
            offset: 0,
            next_offset: 0,
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
    let mut skipped = 0;
    if start > 0
        && let Some(newline) = bytes.iter().position(|b| *b == b'\n')
    {
        skipped = newline + 1;
    }
    let next_offset = start + bytes.len() as u64;
    Ok(LogTail {
        size,
        truncated: start > 0,
        content: String::from_utf8_lossy(&bytes[skipped..]).into_owned(),
        offset: start + skipped as u64,
        next_offset,
    })
}

/// What `path` holds from byte `offset` on, at most `max_bytes`, never
/// ending inside a UTF-8 character (the next read starts with it): how a
/// client follows a log as it grows. An offset past the end reads nothing.
pub fn read_from(path: &Path, offset: u64, max_bytes: u64) -> std::io::Result<LogTail> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let offset = offset.min(size);
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.take(max_bytes).read_to_end(&mut bytes)?;
    let whole = match std::str::from_utf8(&bytes) {
        Ok(_) => bytes.len(),
        // Cut short in the middle of a character: leave it for next time.
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => bytes.len(),
    };
    bytes.truncate(whole);
    let next_offset = offset + bytes.len() as u64;
    Ok(LogTail {
        size,
        truncated: offset > 0 || next_offset < size,
        content: String::from_utf8_lossy(&bytes).into_owned(),
        offset,
        next_offset,
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
        assert_eq!((tail.offset, tail.next_offset), (23, 29));
        let whole = read_tail(&path, 1000).expect("read");
        assert!(!whole.truncated);
        assert_eq!(whole.content, "first line\nsecond line\nthird\n");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_log_is_followed_from_an_offset_without_cutting_a_character() {
        let path =
            std::env::temp_dir().join(format!("recorderd-follow-{}.log", std::process::id()));
        std::fs::write(&path, "abc\u{e9}def\n").expect("write");
        // "é" is two bytes, at 3 and 4: a read of four bytes stops before it.
        let first = read_from(&path, 0, 4).expect("read");
        assert_eq!((first.content.as_str(), first.next_offset), ("abc", 3));
        assert!(first.truncated);
        let rest = read_from(&path, first.next_offset, 100).expect("read");
        assert_eq!(rest.content, "\u{e9}def\n");
        assert_eq!(rest.next_offset, rest.size);
        let past = read_from(&path, 1000, 100).expect("read");
        assert_eq!((past.content.as_str(), past.offset), ("", past.size));
        let _ = std::fs::remove_file(&path);
    }
}
