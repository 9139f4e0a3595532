//! The built-in `ffmpeg` profile against real ffmpeg: a second ffmpeg
//! serves a live MPEG-TS stream over UDP on loopback; recorderd records it
//! and stops it with SIGINT, which makes ffmpeg write its trailer.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp};
use crate::on_both_databases;

on_both_databases!(default_profile_records_a_live_stream_and_finalizes_it_on_stop);

fn ffmpeg_available() -> bool {
    let found = ["ffmpeg", "ffprobe"].iter().all(|tool| {
        Command::new(tool)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !found {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("ffmpeg/ffprobe are missing under CI: .ci/run installs them");
        }
        eprintln!(
            "\n*** SKIPPED (ffmpeg): ffmpeg/ffprobe not installed (apt-get install ffmpeg) ***\n"
        );
    }
    found
}

/// The largest `time=HH:MM:SS.xx` in ffmpeg's progress output.
fn recorded_seconds(log: &str) -> f64 {
    log.split("time=")
        .skip(1)
        .filter_map(|rest| {
            let stamp = rest.split_whitespace().next()?;
            let mut parts = stamp.split(':');
            let h: f64 = parts.next()?.parse().ok()?;
            let m: f64 = parts.next()?.parse().ok()?;
            let s: f64 = parts.next()?.parse().ok()?;
            Some(h * 3600.0 + m * 60.0 + s)
        })
        .fold(0.0, f64::max)
}

/// Kills the stream source when the test ends, whatever happens.
struct Source(std::process::Child);

impl Drop for Source {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn default_profile_records_a_live_stream_and_finalizes_it_on_stop(backend: Backend) {
    if !ffmpeg_available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port();
    // The recorder listens first; a source sending to a closed UDP port
    // can get "connection refused" and stop.
    let (job_id, recording_id) = app
        .start_ok_with(json!({ "source": format!("udp://127.0.0.1:{port}"), "profile": "ffmpeg" }))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let source_log_path = app.dir.join("source.log");
    let source_log = std::fs::File::create(&source_log_path).expect("source log");
    let _source = Source(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-c:a", "aac", "-f", "mpegts"])
            .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(source_log.try_clone().expect("source log"))
            .spawn()
            .expect("start the stream source"),
    );

    // ffmpeg probes a live MPEG-TS input for up to 5 s before it copies;
    // wait until its progress line shows 2 s of audio recorded.
    let output = app.recording(recording_id).await["output_path"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, log) = app
            .get(&format!("/api/recordings/jobs/{job_id}/log/"))
            .await;
        let content = log["content"].as_str().unwrap_or_default();
        if recorded_seconds(content) >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ffmpeg recorded nothing:\n{content}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (status, body) = app.stop(job_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job = app.wait_for_job_end(job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    // One SIGINT: ffmpeg finishes its file and exits 255 ("received signal 2").
    assert_eq!(job["exit_code"], 255, "{job}");
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
    let (_, log) = app
        .get(&format!("/api/recordings/jobs/{job_id}/log/"))
        .await;
    assert!(
        log["content"]
            .as_str()
            .unwrap_or("")
            .contains("received signal 2"),
        "{log}"
    );

    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&output)
        .output()
        .expect("run ffprobe");
    let duration: f64 = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    assert!(
        probe.status.success() && duration >= 1.5,
        "unreadable or short file: {duration} s, {}",
        String::from_utf8_lossy(&probe.stderr)
    );
}
