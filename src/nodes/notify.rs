//! Waking other nodes the moment something is asked of them: a stop of one
//! of their jobs, a start placed on them, a recording to process. On
//! PostgreSQL a `NOTIFY` on the node's own channel (or the common one); on
//! SQLite, whose nodes share one host, a datagram to the node's socket
//! beside its lock file. A message only wakes: what was asked is always
//! written to the database first, so a message lost (its node restarting,
//! a full socket buffer) is found by the node's next look, never lost.

use std::path::PathBuf;
use std::str::FromStr;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio::sync::mpsc;
use tracing::debug;

use super::lease::{Place, file_stem};

/// The channel every node listens on.
pub const COMMON_CHANNEL: &str = "recorderd";

/// A node's own channel.
pub fn channel_of(node_id: &str) -> String {
    format!("recorderd_{}", file_stem(node_id))
}

/// What one node tells another (or all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// One of the receiver's jobs was marked `stopping` elsewhere.
    Stop { job_id: i32 },
    /// A recording whose files the receiver holds was reset for
    /// processing elsewhere.
    Process { recording_id: i32 },
    /// Files were queued for the receiver to remove.
    RemoveFiles,
    /// A start was placed on the receiver.
    Placed,
    /// The receiver was asked to drain, or to take jobs again.
    Drain,
    /// (To all) a placed job was started: its placer answers.
    Started { job_id: i32 },
    /// (To all) a recording waits for a node to process it.
    Processing,
}

impl Message {
    /// The payload on the wire (`stop:7`, `placed`).
    pub fn encode(self) -> String {
        match self {
            Self::Stop { job_id } => format!("stop:{job_id}"),
            Self::Process { recording_id } => format!("process:{recording_id}"),
            Self::RemoveFiles => "remove_files".to_owned(),
            Self::Placed => "placed".to_owned(),
            Self::Drain => "drain".to_owned(),
            Self::Started { job_id } => format!("started:{job_id}"),
            Self::Processing => "processing".to_owned(),
        }
    }
}

impl FromStr for Message {
    type Err = String;

    fn from_str(payload: &str) -> Result<Self, Self::Err> {
        let (kind, id) = match payload.split_once(':') {
            Some((kind, id)) => (kind, Some(id)),
            None => (payload, None),
        };
        let id = || {
            id.and_then(|id| id.parse::<i32>().ok())
                .ok_or_else(|| format!("`{payload}` lacks its id"))
        };
        Ok(match kind {
            "stop" => Self::Stop { job_id: id()? },
            "process" => Self::Process {
                recording_id: id()?,
            },
            "remove_files" => Self::RemoveFiles,
            "placed" => Self::Placed,
            "drain" => Self::Drain,
            "started" => Self::Started { job_id: id()? },
            "processing" => Self::Processing,
            _ => return Err(format!("unknown message `{payload}`")),
        })
    }
}

/// Sends messages to other nodes. Cheap to clone.
#[derive(Clone)]
pub struct Bell {
    how: How,
    /// This node's own messages short-cut the database.
    me: String,
    local: mpsc::UnboundedSender<Message>,
}

#[derive(Clone)]
enum How {
    Notify(DatabaseConnection),
    Datagrams(PathBuf),
    Local,
}

impl Bell {
    pub fn new(
        place: &Place,
        db: DatabaseConnection,
        me: String,
        local: mpsc::UnboundedSender<Message>,
    ) -> Self {
        let how = match place {
            Place::Postgres(_) => How::Notify(db),
            Place::Files(dir) => How::Datagrams(dir.clone()),
            Place::Process => How::Local,
        };
        Self { how, me, local }
    }

    /// Wakes `node` (this node through its own queue). Best effort: what
    /// the message says is in the database already.
    pub async fn ring(&self, node: &str, message: Message) {
        if node == self.me {
            let _ = self.local.send(message);
            return;
        }
        match &self.how {
            How::Notify(db) => notify(db, &channel_of(node), message).await,
            How::Datagrams(dir) => send_datagram(dir.join(socket_name(node)), message).await,
            How::Local => {}
        }
    }

    /// Wakes every node, this one included.
    pub async fn ring_all(&self, message: Message) {
        match &self.how {
            // A node hears its own NOTIFY on the common channel.
            How::Notify(db) => notify(db, COMMON_CHANNEL, message).await,
            How::Datagrams(dir) => {
                let _ = self.local.send(message);
                let mine = socket_name(&self.me);
                for path in sockets_in(dir).await {
                    if path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy() != mine)
                    {
                        send_datagram(path, message).await;
                    }
                }
            }
            How::Local => {
                let _ = self.local.send(message);
            }
        }
    }
}

async fn notify(db: &DatabaseConnection, channel: &str, message: Message) {
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [channel.into(), message.encode().into()],
    );
    if let Err(e) = db.execute_raw(statement).await {
        debug!(error = %e, channel, "cannot notify; the node finds it at its next look");
    }
}

/// A node's socket, beside its lock file.
pub fn socket_name(node_id: &str) -> String {
    format!("{}.sock", file_stem(node_id))
}

async fn send_datagram(path: PathBuf, message: Message) {
    let Ok(socket) = tokio::net::UnixDatagram::unbound() else {
        return;
    };
    // Refused or missing: the node is not running; it looks at start.
    let _ = socket.send_to(message.encode().as_bytes(), &path).await;
}

async fn sockets_in(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return found;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "sock") {
            found.push(path);
        }
    }
    found
}

/// Receives this node's datagrams (SQLite) until the socket fails; each
/// message goes to `messages`.
pub async fn receive_datagrams(
    socket: tokio::net::UnixDatagram,
    messages: mpsc::UnboundedSender<Message>,
) {
    let mut buffer = [0u8; 256];
    while let Ok(n) = socket.recv(&mut buffer).await {
        match std::str::from_utf8(&buffer[..n]).map(Message::from_str) {
            Ok(Ok(message)) => {
                if messages.send(message).is_err() {
                    return;
                }
            }
            _ => debug!("ignoring an unreadable datagram"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_the_wire() {
        for message in [
            Message::Stop { job_id: 7 },
            Message::Process { recording_id: 3 },
            Message::RemoveFiles,
            Message::Placed,
            Message::Drain,
            Message::Started { job_id: 12 },
            Message::Processing,
        ] {
            assert_eq!(message.encode().parse::<Message>(), Ok(message));
        }
        assert!("stop".parse::<Message>().is_err());
        assert!("stop:x".parse::<Message>().is_err());
        assert!("reboot".parse::<Message>().is_err());
    }

    #[test]
    fn each_node_has_its_own_channel() {
        assert_ne!(channel_of("a"), channel_of("b"));
        // A PostgreSQL identifier: at most 63 bytes, whatever the id.
        assert!(channel_of(&"x".repeat(255)).len() <= 63);
    }
}
