//! Telling a service manager what the server is doing, through the
//! `sd_notify` protocol (systemd's `Type=notify`; a datagram to the socket
//! `NOTIFY_SOCKET` names, nothing when it names none): `READY=1` once
//! recovery is over and the server answers, `STOPPING=1` when shutdown
//! begins, and while recorders finish their stop sequences
//! `EXTEND_TIMEOUT_USEC`, so the manager waits for files to be finalized
//! rather than killing them at its own timeout. A manager that cannot be
//! told is logged once and never stops the server.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How often the stop timeout is extended while recorders finish, and by
/// how much each time: a server that hangs is still killed soon after.
const EXTEND_EVERY: Duration = Duration::from_secs(5);
const EXTEND_BY: Duration = Duration::from_secs(15);

static FAILED: AtomicBool = AtomicBool::new(false);

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        if !FAILED.swap(true, Ordering::Relaxed) {
            warn!(error = %e, "cannot notify the service manager");
        }
    } else {
        debug!(?states, "service manager notified");
    }
}

/// Recovery is over and the server answers.
pub fn ready(address: std::net::SocketAddr) {
    let status = format!("listening on http://{address}");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Shutdown has begun.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: no new requests"),
    ]);
}

/// Extends the manager's stop timeout now and every few seconds while
/// `busy()` says recorders are still finishing, until the returned guard
/// is dropped.
pub fn extend_while(busy: impl Fn() -> usize + Send + 'static) -> ExtendGuard {
    let done = CancellationToken::new();
    let until = done.clone();
    tokio::spawn(async move {
        loop {
            let remaining = busy();
            if remaining > 0 {
                let status = format!("stopping: {remaining} recorder(s) finishing");
                let usec = u32::try_from(EXTEND_BY.as_micros()).unwrap_or(u32::MAX);
                send(&[
                    NotifyState::ExtendTimeoutUsec(usec),
                    NotifyState::Status(&status),
                ]);
            }
            tokio::select! {
                () = tokio::time::sleep(EXTEND_EVERY) => {}
                () = until.cancelled() => return,
            }
        }
    });
    ExtendGuard(done)
}

/// Stops extending the timeout when dropped.
pub struct ExtendGuard(CancellationToken);

impl Drop for ExtendGuard {
    fn drop(&mut self) {
        self.0.cancel();
    }
}
