//! A live HLS stream on loopback: ffmpeg writes a rolling playlist of 2 s
//! MPEG-TS segments into a directory, which a small HTTP server serves.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Seconds of one segment of the playlist.
pub const SEGMENT_SECONDS: f64 = 2.0;

/// The playlist's file name in its directory.
const PLAYLIST: &str = "live.m3u8";

/// A live HLS stream, its writer killed when dropped.
pub struct HlsSource {
    /// The playlist's URL.
    pub url: String,
    /// Where the writer puts the playlist and its segments.
    pub dir: PathBuf,
    writer: Child,
}

impl Drop for HlsSource {
    fn drop(&mut self) {
        let _ = self.writer.kill();
        let _ = self.writer.wait();
    }
}

impl HlsSource {
    /// Starts ffmpeg reading and encoding `input` (its inputs, stream maps
    /// and codecs, read in real time) into `hls/` under `dir`, and serves
    /// that directory. ffmpeg's messages go to `hls-source.log` in `dir`.
    pub async fn start(dir: &Path, input: &[&str]) -> Self {
        let hls = dir.join("hls");
        std::fs::create_dir_all(&hls).expect("HLS directory");
        let log = std::fs::File::create(dir.join("hls-source.log")).expect("source log");
        let writer = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
            .args(input)
            .args(["-f", "hls", "-hls_time", "2", "-hls_list_size", "6"])
            .args(["-hls_flags", "delete_segments"])
            .arg(hls.join(PLAYLIST))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the HLS writer");
        let url = serve_dir(hls.clone()).await;
        Self {
            url: format!("{url}/{PLAYLIST}"),
            dir: hls,
            writer,
        }
    }

    /// The segments the playlist lists now, oldest first.
    pub fn listed_segments(&self) -> Vec<PathBuf> {
        std::fs::read_to_string(self.dir.join(PLAYLIST))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.ends_with(".ts"))
            .map(|name| self.dir.join(name))
            .collect()
    }
}

/// Serves the files of `dir` (no subdirectories) on a loopback port;
/// returns its base URL.
pub async fn serve_dir(dir: PathBuf) -> String {
    let app = axum::Router::new().route(
        "/{name}",
        axum::routing::get(
            move |axum::extract::Path(name): axum::extract::Path<String>| {
                let path = dir.join(name.replace('/', ""));
                async move {
                    match tokio::fs::read(&path).await {
                        Ok(bytes) => (axum::http::StatusCode::OK, bytes),
                        Err(_) => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}
