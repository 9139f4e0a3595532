//! `--shared-storage`, checked rather than believed: each node writes a
//! probe file into its data directory saying who wrote it and where, and a
//! node joining reads the probes of the live nodes that say they share
//! storage, at the same path under its own data directory. Found with the
//! right token, the storage is shared; found with another data directory
//! written in it, the nodes see the same files under different paths,
//! which would not do either (recordings are stored by absolute path).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use super::lease::file_stem;
use crate::store::nodes::Node;

/// Where probes are written, under the data directory.
const PROBES: &str = ".recorderd-probes";

fn probe_path(data_dir: &Path, node_id: &str) -> PathBuf {
    data_dir.join(PROBES).join(file_stem(node_id))
}

/// Writes this node's probe; returns its token (stored in the node's row).
pub fn write_probe(data_dir: &Path, node_id: &str) -> anyhow::Result<String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let digest = Sha256::digest(format!("{node_id}\0{}\0{nanos}", std::process::id()).as_bytes());
    let token: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    let path = probe_path(data_dir, node_id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, format!("{token}\n{}\n", data_dir.display()))
        .with_context(|| format!("writing the storage probe {}", path.display()))?;
    Ok(token)
}

/// Checks that every node in `peers` (live, sharing storage, not this one)
/// has its probe here, with its token and this data directory.
pub fn check_peers(data_dir: &Path, peers: &[Node]) -> anyhow::Result<()> {
    for peer in peers {
        let Some(token) = &peer.storage_probe else {
            continue;
        };
        let path = probe_path(data_dir, &peer.id);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut lines = text.lines();
        let (found, dir) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
        if found != token {
            bail!(
                "--shared-storage: node `{}` shares storage, but its probe is not at {} here; \
                 this node's data directory ({}) is not the storage that node writes to",
                peer.id,
                path.display(),
                data_dir.display()
            );
        }
        if Path::new(dir) != data_dir {
            bail!(
                "--shared-storage: node `{}` sees the shared storage at {dir}, this node at {}; \
                 mount it at the same path (recordings are stored by absolute path)",
                peer.id,
                data_dir.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_found_only_on_the_same_storage_at_the_same_path() {
        let root = std::env::temp_dir().join(format!("recorderd-probe-{}", std::process::id()));
        let (shared, other) = (root.join("shared"), root.join("other"));
        std::fs::create_dir_all(&other).expect("dir");
        let token = write_probe(&shared, "a").expect("probe");
        let peer = |token: &str| Node {
            id: "a".to_owned(),
            instance: String::new(),
            timeout_ms: 0,
            started_at: time::OffsetDateTime::UNIX_EPOCH,
            last_seen_at: time::OffsetDateTime::UNIX_EPOCH,
            lease_generation: 1,
            lease_acquired_at: None,
            url: None,
            max_jobs: 1,
            processing_slots: 1,
            processing_busy: 0,
            labels: None,
            version: String::new(),
            shared_storage: true,
            storage_probe: Some(token.to_owned()),
            draining: false,
            departure: None,
        };
        check_peers(&shared, &[peer(&token)]).expect("same storage, same path");
        let err = check_peers(&other, &[peer(&token)]).expect_err("another disk");
        assert!(err.to_string().contains("is not the storage"), "{err}");
        let err = check_peers(&shared, &[peer("stale")]).expect_err("an old probe");
        assert!(err.to_string().contains("node `a`"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
