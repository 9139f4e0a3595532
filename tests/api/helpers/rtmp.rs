//! An RTMP server of a test's own: nginx with its RTMP module, one process
//! (no master, no daemon) on a loopback port, its configuration, log and
//! PID file in the test's directory. Senders publish to
//! `rtmp://…/live/NAME`; players read the same URL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where Debian's `libnginx-mod-rtmp` puts the module.
const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// A running nginx RTMP server, stopped when dropped.
pub struct RtmpServer {
    /// Its loopback port.
    pub port: u16,
    /// Its error log, where it tells each publish and play at `info`.
    pub log: PathBuf,
    process: Child,
}

impl Drop for RtmpServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Whether nginx and its RTMP module are installed; says so loudly when
/// not, and fails under CI, where `.ci/run` installs them.
pub fn available() -> bool {
    let found = Path::new(MODULE).exists()
        && Command::new("nginx")
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("nginx/libnginx-mod-rtmp are missing under CI: .ci/run installs them");
        }
        eprintln!("\n*** SKIPPED (RTMP): nginx-light and libnginx-mod-rtmp not installed ***\n");
    }
    found
}

impl RtmpServer {
    /// Starts nginx with an RTMP application `live` on a free loopback
    /// port, its files in `rtmp/` under `dir`. Not yet listening when this
    /// returns: see [`RtmpServer::listening`].
    pub fn start(dir: &Path) -> Self {
        let root = dir.join("rtmp");
        std::fs::create_dir_all(&root).expect("RTMP server directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free TCP port")
            .port();
        let log = root.join("error.log");
        let config = root.join("nginx.conf");
        std::fs::write(
            &config,
            format!(
                "load_module {MODULE};\n\
                 daemon off;\n\
                 master_process off;\n\
                 worker_processes 1;\n\
                 pid {pid};\n\
                 error_log {log} info;\n\
                 events {{ worker_connections 64; }}\n\
                 rtmp {{\n\
                 \x20 server {{\n\
                 \x20   listen 127.0.0.1:{port};\n\
                 \x20   application live {{ live on; record off; }}\n\
                 \x20 }}\n\
                 }}\n",
                pid = root.join("nginx.pid").display(),
                log = log.display(),
            ),
        )
        .expect("write the nginx configuration");
        // `-e` before the configuration is read: nginx would otherwise
        // open its system-wide log first.
        let process = Command::new("nginx")
            .arg("-p")
            .arg(&root)
            .arg("-e")
            .arg(&log)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        Self { port, log, process }
    }

    /// The URL of stream `name`.
    pub fn url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.port)
    }

    /// Whether it accepts connections yet.
    pub fn listening(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    /// Whether a sender publishes stream `name`, as its log says.
    pub fn publishing(&self, name: &str) -> bool {
        std::fs::read_to_string(&self.log)
            .is_ok_and(|log| log.contains(&format!("publish: name='{name}'")))
    }
}
