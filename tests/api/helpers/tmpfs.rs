//! A small disk for a test: a tmpfs mounted over a directory (root only;
//! under CI, where the suite runs as root, failing to mount is an error).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted over a directory for the test's lifetime.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts `size` of tmpfs over `dir`; `None` (said loudly) where this
    /// process may not mount.
    pub fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).expect("create the mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                panic!("cannot mount a tmpfs under CI (it runs as root)");
            }
            eprintln!("\n*** SKIPPED (small disk): cannot mount a tmpfs here (needs root) ***\n");
            return None;
        }
        Some(Self(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
