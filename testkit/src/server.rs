//! Starting the server binary (`recorderd serve`) on port 0, and learning
//! its address from the line it logs once it listens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What the server logs, followed by its address, once it accepts
/// connections.
pub const LISTENING: &str = "listening on http://";

/// Where a server keeps its state and what it records with.
#[derive(Debug, Clone, Copy)]
pub struct ServeConfig<'a> {
    pub data_dir: &'a Path,
    pub profiles: &'a Path,
    pub database_url: &'a str,
}

/// `recorderd serve` on 127.0.0.1, port 0, run under `wrapper` if one is
/// given (e.g. `unshare --pid --fork`). It logs at `info`, without the
/// database drivers' statements. Standard input and output are null;
/// standard error is the caller's to direct.
pub fn serve_command(binary: &Path, wrapper: &[String], config: ServeConfig<'_>) -> Command {
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .arg("serve")
        .args(["--bind", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(config.data_dir)
        .arg("--config")
        .arg(config.profiles)
        .args(["--database-url", config.database_url])
        .env("RUST_LOG", "info,sqlx=warn,sea_orm=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

/// The address in the first [`LISTENING`] line of `log`.
pub fn listening_address(log: &str) -> Option<SocketAddr> {
    let rest = log.split(LISTENING).nth(1)?;
    let address: String = rest
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    address.parse().ok()
}

/// An example binary of the same build as `server`
/// (`target/<profile>/examples/<name>`).
pub fn example_beside(server: &Path, name: &str) -> Option<PathBuf> {
    Some(server.parent()?.join("examples").join(name))
}

/// Why a server did not come to listen.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the server exited with {0} before listening")]
    Exited(ExitStatus),
    #[error("the server did not listen within {0:?}")]
    Timeout(Duration),
    #[error("cannot wait for the server: {0}")]
    Wait(#[source] std::io::Error),
}

/// Waits until `server`, whose standard error is the file `log`, says it
/// listens, and returns its address; fails as soon as it exits. Its log
/// stays a plain file it writes itself: whatever it wrote is there the
/// moment it wrote it, and nothing it writes waits on a reader.
pub async fn wait_until_listening(
    server: &mut Child,
    log: &Path,
    timeout: Duration,
) -> Result<SocketAddr, StartError> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(address) = listening_address(&text) {
            return Ok(address);
        }
        if let Some(status) = server.try_wait().map_err(StartError::Wait)? {
            return Err(StartError::Exited(status));
        }
        if Instant::now() >= deadline {
            return Err(StartError::Timeout(timeout));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_the_listening_line() {
        let log = "2026-01-01T00:00:00Z  INFO recorderd::startup: recovered state\n\
                   2026-01-01T00:00:00Z  INFO recorderd::startup: listening on http://127.0.0.1:40123 address=127.0.0.1:40123\n";
        assert_eq!(
            listening_address(log),
            Some("127.0.0.1:40123".parse().expect("address"))
        );
        assert_eq!(
            listening_address("listening on http://[::1]:8000\n"),
            Some("[::1]:8000".parse().expect("address"))
        );
        assert_eq!(listening_address("INFO recorderd: starting\n"), None);
        assert_eq!(listening_address("listening on http://\n"), None);
    }
}
