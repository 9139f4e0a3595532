//! The dashboard in a real browser: headless Chromium (Debian's package)
//! driven by playwright-core takes a recording of a live stream (video and
//! espeak-ng speech, served by a second ffmpeg) through its whole life from
//! the page: started from the form with a listed profile, followed, scheduled
//! daily (listed with its next firing, paused, deleted), stopped,
//! played (the media element passes 1 s), read (transcript and caption
//! track), sought by a transcript line, found by a word said, deleted.
//! Screenshots at desktop and phone widths are kept in `target/browser/`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("browser")
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

fn found(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn browser_available() -> bool {
    let chromium = std::path::Path::new("/usr/bin/chromium").exists();
    let node = found("node");
    let playwright = browser_dir()
        .join("node_modules")
        .join("playwright-core")
        .exists();
    let media = ["ffmpeg", "ffprobe", "espeak-ng", "pocketsphinx_continuous"]
        .iter()
        .all(|p| found(p));
    let all = chromium && node && playwright && media;
    if !all {
        if on_ci() {
            panic!(
                "chromium ({chromium}), node ({node}), playwright-core ({playwright}) or ffmpeg, espeak-ng, pocketsphinx ({media}) missing under CI: .ci/run installs them"
            );
        }
        eprintln!(
            "\n*** SKIPPED (browser): needs /usr/bin/chromium, node and `npm ci` in tests/browser, ffmpeg, espeak-ng and pocketsphinx ***\n"
        );
    }
    all
}

/// Kills the stream source when the test ends, whatever happens.
struct Source(std::process::Child);

impl Drop for Source {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A live MPEG-TS stream a recorder can connect to: a test picture and
/// `speech` on a loop, from an ffmpeg listening on TCP `port`.
fn serve_stream(app: &TestApp, speech: &std::path::Path, port: u16) -> Source {
    let log = std::fs::File::create(app.dir.join("source.log")).expect("source log");
    Source(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error"])
            .args(["-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15"])
            .args(["-re", "-stream_loop", "-1", "-i"])
            .arg(speech)
            .args(["-map", "0:v", "-map", "1:a"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args([
                "-pix_fmt", "yuv420p", "-g", "30", "-c:a", "aac", "-f", "mpegts",
            ])
            .arg(format!("tcp://127.0.0.1:{port}?listen=1"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the stream source"),
    )
}

fn tcp_port_listening(port: u16) -> bool {
    let v4 = procfs::net::tcp().unwrap_or_default();
    v4.iter().any(|socket| {
        socket.local_address.port() == port && socket.state == procfs::net::TcpState::Listen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_is_started_followed_played_read_found_and_deleted_in_a_real_browser() {
    // Before the probe too: every process this suite starts runs under
    // the turn lock.
    let _exclusive = crate::helpers::exclusive().await;
    if !browser_available() {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let speech = app.dir.join("speech.wav");
    let spoken = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "130", "-w"])
        .arg(&speech)
        .arg("hello world this is the morning show with the weather")
        .status()
        .expect("run espeak-ng");
    assert!(spoken.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free TCP port")
        .port();
    let _source = serve_stream(&app, &speech, port);
    app.wait_until(
        &format!("the stream source listening on TCP port {port}"),
        Duration::from_secs(15),
        || {
            if tcp_port_listening(port) {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        },
    )
    .await;

    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("browser");
    let (address, source) = (app.address.clone(), format!("tcp://127.0.0.1:{port}"));
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(browser_dir().join("dashboard.mjs"))
            .arg(&address)
            .arg(&artifacts)
            .arg(&source)
            .output()
    })
    .await
    .expect("join")
    .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser run failed:\n{stdout}\n{stderr}\nserver log:\n{}\nsource: {}",
        app.server_log_text(),
        std::fs::read_to_string(app.dir.join("source.log")).unwrap_or_default()
    );
    eprintln!("{stderr}{stdout}");
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(result["ok"], true, "{stdout}");
    assert!(result["played"].as_f64().unwrap_or(0.0) > 1.0, "{stdout}");
    let recording_id = result["recording"].as_i64().expect("recording id");
    let (status, _) = app.get(&format!("/api/recordings/{recording_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted from the page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_as_a_page_and_plain_modules() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let page = app.client.get(app.url("/")).send().await.expect("GET /");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("page");
    assert!(
        html.contains(r#"<script type="module" src="/ui/app.js">"#),
        "{html}"
    );
    for (file, kind) in [("app.js", "text/javascript"), ("style.css", "text/css")] {
        let response = app
            .client
            .get(app.url(&format!("/ui/{file}")))
            .send()
            .await
            .expect("GET asset");
        assert_eq!(response.status(), StatusCode::OK, "{file}");
        let content_type = response.headers()["content-type"].to_str().unwrap_or("");
        assert!(content_type.starts_with(kind), "{file}: {content_type}");
    }
    let (status, body) = app.get("/ui/nothing.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
}
