//! Process signals that end the service: SIGTERM (what container runtimes
//! and systemd send) and SIGINT (Ctrl-C). The first begins a graceful
//! shutdown; a second one exits at once.

use futures::StreamExt;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tracing::warn;

/// Resolves on the first SIGTERM or SIGINT. Must be called inside a tokio
/// runtime.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    Ok(async move {
        let first = signals.next().await;
        warn!(
            signal = first,
            "shutdown requested; a second signal exits at once"
        );
        tokio::spawn(async move {
            if let Some(signal) = signals.next().await {
                warn!(signal, "second signal: exiting now");
                std::process::exit(128 + signal);
            }
        });
    })
}
