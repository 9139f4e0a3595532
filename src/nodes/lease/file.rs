//! The lease with SQLite, whose nodes share one file and so one host: an
//! exclusive `flock` on the node's lock file beside the database, which
//! the kernel releases the moment the process dies, and a datagram socket
//! beside it for the node's messages.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::DbErr;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Ended;
use super::place::file_stem;
use crate::nodes::notify::{Message, receive_datagrams};

/// Holds the lock file until it is found replaced or `closed`, passing on
/// the messages that arrive on the socket beside it.
pub(super) async fn hold_file(
    file: &File,
    path: &Path,
    every: Duration,
    messages: &mpsc::UnboundedSender<Message>,
    closed: &CancellationToken,
) -> Ended {
    let mut check = tokio::time::interval(every);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.tick().await;
    let receiving = match bind_socket(path) {
        Ok(socket) => Some(tokio::spawn(receive_datagrams(socket, messages.clone()))),
        Err(e) => {
            warn!(error = %e, "cannot listen for other nodes' messages; they are found by polling");
            None
        }
    };
    let ended = loop {
        tokio::select! {
            _ = check.tick() => {}
            () = closed.cancelled() => break Ended::Closed,
        }
        if !still_the_lock_file(file, path) {
            break Ended::Lost(format!("its lock file {} was replaced", path.display()));
        }
    };
    if let Some(receiving) = receiving {
        receiving.abort();
    }
    ended
}

/// One attempt at the lock file of `node_id` in `dir`: `None` when
/// another process holds it.
pub(super) fn try_hold_file(dir: &Path, node_id: &str) -> anyhow::Result<Option<(File, PathBuf)>> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(lock_name(node_id));
    let Some(file) = try_lock_file(&path)? else {
        return Ok(None);
    };
    // For people looking at the directory.
    let _ = rustix::fs::ftruncate(&file, 0);
    let _ = rustix::io::pwrite(&file, format!("{node_id}\n").as_bytes(), 0);
    Ok(Some((file, path)))
}

/// Lets the lock file go, removing the socket beside it.
pub(super) fn release_file(file: File, path: &Path) {
    if let Some(name) = path.file_name() {
        let socket = path.with_file_name(name.to_string_lossy().replace(".lock", ".sock"));
        let _ = std::fs::remove_file(socket);
    }
    drop(file);
}

pub(super) fn lock_name(node_id: &str) -> String {
    format!("{}.lock", file_stem(node_id))
}

/// Locks `path` (created if missing) without waiting; `None` when another
/// process holds it. A file found replaced after locking counts as held:
/// whoever replaced it may have locked the new one.
pub(super) fn try_lock_file(path: &Path) -> Result<Option<File>, DbErr> {
    use rustix::fs::{FlockOperation, flock};
    let io = |e: std::io::Error| DbErr::Custom(format!("lock file {}: {e}", path.display()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    match flock(file.as_fd(), FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
        Err(e) => return Err(io(e.into())),
    }
    if !still_the_lock_file(&file, path) {
        return Ok(None);
    }
    Ok(Some(file))
}

/// Whether `path` still names the file `file` has open (nobody removed or
/// replaced it since it was locked).
pub(super) fn still_the_lock_file(file: &File, path: &Path) -> bool {
    match (rustix::fs::fstat(file), rustix::fs::stat(path)) {
        (Ok(open), Ok(named)) => open.st_ino == named.st_ino && open.st_dev == named.st_dev,
        _ => false,
    }
}

/// This node's message socket, beside its lock file. The lock is held, so
/// a socket file left by an earlier run of this node is removed.
fn bind_socket(lock: &Path) -> std::io::Result<tokio::net::UnixDatagram> {
    let name = lock
        .file_name()
        .map(|n| n.to_string_lossy().replace(".lock", ".sock"))
        .unwrap_or_default();
    let path = lock.with_file_name(name);
    let _ = std::fs::remove_file(&path);
    tokio::net::UnixDatagram::bind(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_file_is_held_by_one_holder_at_a_time() {
        let dir = std::env::temp_dir().join(format!("recorderd-lease-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("n.lock");
        let first = try_lock_file(&path).expect("lock").expect("free at first");
        assert!(
            try_lock_file(&path).expect("try").is_none(),
            "held by the first"
        );
        drop(first);
        assert!(
            try_lock_file(&path).expect("try").is_some(),
            "free once dropped"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
