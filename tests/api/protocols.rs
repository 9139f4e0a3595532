//! The built-in profile recording from real senders of the protocols it
//! has options for, each job stopped by its duration limit: SRT, with the
//! recorder calling a sender that listens; RTMP, read from an nginx server
//! a second ffmpeg publishes to; and HLS whose segments carry timed ID3
//! metadata. Each kind of source gets options of its own
//! (`{input_options}`), and ffmpeg exits at once on an option nothing
//! consumes or a stream its output cannot hold: a first run that records
//! to the end is the proof they fit.

use std::ops::RangeInclusive;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::ffmpeg::{Source, TONE, ffmpeg_available, udp_port_bound};
use crate::helpers::hls::{HlsSource, SEGMENT_SECONDS};
use crate::helpers::rtmp::RtmpServer;
use crate::helpers::timed_id3::timed_id3_stream;
use crate::helpers::{Backend, TestApp, is_terminal};
use crate::on_both_databases;

on_both_databases!(
    a_10_s_job_calling_an_srt_sender_holds_its_sound_and_picture,
    a_6_s_job_reading_an_rtmp_server_holds_its_sound_and_picture,
    a_8_s_job_from_hls_with_timed_id3_metadata_holds_its_sound_without_it,
);

/// A moving test pattern, as a camera would send it.
const PICTURE: &[&str] = &["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"];

/// Sound and picture as live senders encode them: AAC and H.264 with a key
/// frame a second.
const ENCODED: &[&str] = &[
    "-c:a",
    "aac",
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-g",
    "25",
    "-pix_fmt",
    "yuv420p",
];

async fn a_10_s_job_calling_an_srt_sender_holds_its_sound_and_picture(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() || !ffmpeg_speaks("srt") {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port();
    // The sender listens, as an encoder in the field does; the recorder
    // calls it, with the profile's `-latency`.
    let listener = format!("srt://127.0.0.1:{port}?mode=listener");
    let _sender = send(&app, "mpegts", &listener);
    app.wait_until(
        &format!("the SRT sender listening on UDP port {port}"),
        Duration::from_secs(15),
        || udp_port_bound(port).then_some(()).ok_or_else(not_yet),
    )
    .await;
    let recording = record_until_its_limit(&app, &format!("srt://127.0.0.1:{port}"), 10).await;
    // SRT hands each packet over 2 s after it was sent (the profile's
    // `-latency`, consumed, not merely accepted): what was still held back
    // when the job ended is not recorded, so it holds at most 8.5 s.
    holds_sound_and_picture(&recording, 10, 6.5..=8.5);
}

async fn a_6_s_job_reading_an_rtmp_server_holds_its_sound_and_picture(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() || !crate::helpers::rtmp::available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let server = RtmpServer::start(&app.dir);
    app.wait_until("nginx listening", Duration::from_secs(15), || {
        server.listening().then_some(()).ok_or_else(not_yet)
    })
    .await;
    let url = server.url("stream");
    let _sender = send(&app, "flv", &url);
    app.wait_until(
        "the sender publishing to nginx",
        Duration::from_secs(15),
        || {
            server
                .publishing("stream")
                .then_some(())
                .ok_or_else(not_yet)
        },
    )
    .await;
    let recording = record_until_its_limit(&app, &url, 6).await;
    // Connecting and ffmpeg's probe of the stream take the first moments.
    holds_sound_and_picture(&recording, 6, 4.0..=7.0);
}

async fn a_8_s_job_from_hls_with_timed_id3_metadata_holds_its_sound_without_it(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    // Ten minutes of tags, one a second, copied beside the tone into each
    // segment.
    let tags = app.dir.join("id3.ts");
    std::fs::write(&tags, timed_id3_stream(600)).expect("write the ID3 stream");
    let tags = tags.display().to_string();
    let input = [
        TONE,
        &["-i", &tags, "-map", "0:a", "-map", "1:d"],
        &["-c:a", "aac", "-c:d", "copy"],
    ]
    .concat();
    let source = HlsSource::start(&app.dir, &input).await;
    let segments = app
        .wait_until(
            "4 segments listed",
            Duration::from_secs(30),
            || match source.listed_segments() {
                listed if listed.len() >= 4 => Ok(listed),
                listed => Err(format!("{} segments", listed.len())),
            },
        )
        .await;
    // The source really carries the metadata: a test of nothing otherwise.
    let newest = segments.last().expect("a segment");
    let described = ffprobe(
        &[
            "-count_packets",
            "-show_entries",
            "stream=codec_type,codec_name,nb_read_packets",
        ],
        &newest.display().to_string(),
    );
    let tags_in_segment = described
        .split("[STREAM]")
        .find(|s| s.contains("codec_name=timed_id3") && s.contains("codec_type=data"))
        .and_then(|s| field(s, "nb_read_packets"))
        .unwrap_or(0.0);
    assert!(
        tags_in_segment >= 1.0,
        "a segment without timed ID3 tags: {described}"
    );

    let recording = record_until_its_limit(&app, &source.url, 8).await;
    let duration = analysed_duration(&recording);
    eprintln!("HLS with timed ID3: an 8 s job holds {duration:.2} s");
    // The playlist's newest segment is where the recording starts.
    assert!(
        (duration - 8.0).abs() <= SEGMENT_SECONDS + 0.5,
        "an 8 s job holds {duration:.2} s: {recording}"
    );
    assert_eq!(recording["analysis"]["codec"], "aac", "{recording}");
    let file = probe_output(&recording, duration);
    assert!(
        file.contains("codec_type=audio") && !file.contains("codec_type=data"),
        "the sound kept, the metadata left out: {file}"
    );
}

/// What a wait reports while a condition does not hold.
fn not_yet() -> String {
    "not yet".to_owned()
}

/// Whether this ffmpeg was built with `protocol`; says so loudly when not,
/// and fails under CI, whose Debian ffmpeg has them all.
fn ffmpeg_speaks(protocol: &str) -> bool {
    let listed = Command::new("ffmpeg")
        .args(["-hide_banner", "-protocols"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == protocol)
        })
        .unwrap_or(false);
    if !listed {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("ffmpeg has no `{protocol}` protocol under CI");
        }
        eprintln!("\n*** SKIPPED ({protocol}): this ffmpeg was built without it ***\n");
    }
    listed
}

/// A second ffmpeg sending a tone and a test pattern, in real time, as
/// `format` to `url`; its messages go to `sender.log` in the test
/// directory.
fn send(app: &TestApp, format: &str, url: &str) -> Source {
    let log = std::fs::File::create(app.dir.join("sender.log")).expect("sender log");
    Source::spawn(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error"])
            .arg("-re")
            .args(TONE)
            .arg("-re")
            .args(PICTURE)
            .args(ENCODED)
            .args(["-f", format, url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log),
    )
}

/// Records `source` with the built-in profile for `seconds`; checks that
/// the job's first run lasted to its limit and ended as a stop (ffmpeg's
/// 255 after SIGINT), and that the recording is ready. Returns the
/// recording.
async fn record_until_its_limit(app: &TestApp, source: &str, seconds: u64) -> Value {
    let (job_id, recording_id) = app
        .start_ok_with(
            json!({ "source": source, "profile": "ffmpeg", "duration_seconds": seconds }),
        )
        .await;
    let job = app
        .wait_for_job(job_id, Duration::from_secs(seconds + 30), |j| {
            is_terminal(&j["status"])
        })
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stop_reason"], "duration", "{job}");
    assert_eq!(
        job["attempt"], 1,
        "its first run recorded to the end: {job}"
    );
    assert_eq!(job["exit_code"], 255, "ended by the stop: {job}");
    let recording = app
        .wait_for_recording(recording_id, Duration::from_secs(60), |r| {
            matches!(r["status"].as_str(), Some("ready" | "failed"))
        })
        .await;
    assert_eq!(recording["status"], "ready", "{recording}");
    recording
}

/// The duration the recording's analysis measured.
fn analysed_duration(recording: &Value) -> f64 {
    recording["analysis"]["duration_seconds"]
        .as_f64()
        .unwrap_or(0.0)
}

/// Checks the recording of a `seconds` s job of the tone and the test
/// pattern: as long as `expected` says, AAC and H.264 of the pattern's
/// size, and so ffprobe finds the file.
fn holds_sound_and_picture(recording: &Value, seconds: u64, expected: RangeInclusive<f64>) {
    let duration = analysed_duration(recording);
    eprintln!(
        "{}: a {seconds} s job holds {duration:.2} s",
        recording["source"]
    );
    assert!(
        expected.contains(&duration),
        "a {seconds} s job holds {duration:.2} s, not {expected:?}: {recording}"
    );
    let analysis = &recording["analysis"];
    assert_eq!(analysis["codec"], "aac", "{analysis}");
    assert_eq!(analysis["video"]["codec"], "h264", "{analysis}");
    assert_eq!(analysis["video"]["width"], 320, "{analysis}");
    let file = probe_output(recording, duration);
    assert!(
        file.contains("codec_name=aac") && file.contains("codec_name=h264"),
        "{file}"
    );
}

/// What ffprobe says of the recording's file, checking that it reads it
/// whole and finds the length the analysis found.
fn probe_output(recording: &Value, duration: f64) -> String {
    let output = recording["output_path"].as_str().unwrap_or_default();
    let described = ffprobe(
        &[
            "-show_entries",
            "format=format_name,duration:stream=codec_type,codec_name",
        ],
        output,
    );
    assert!(described.contains("format_name=matroska"), "{described}");
    let probed = field(&described, "duration").unwrap_or(0.0);
    assert!(
        (probed - duration).abs() < 0.5,
        "ffprobe finds {probed} s, the analysis {duration} s: {described}"
    );
    described
}

/// ffprobe's `key=value` description of `path` by `entries`; fails if it
/// cannot read it.
fn ffprobe(entries: &[&str], path: &str) -> String {
    let probe = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(entries)
        .args(["-of", "default=noprint_wrappers=0", path])
        .output()
        .expect("run ffprobe");
    assert!(
        probe.status.success(),
        "ffprobe cannot read {path}: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    String::from_utf8_lossy(&probe.stdout).into_owned()
}

/// The number after `key=` in a description.
fn field(described: &str, key: &str) -> Option<f64> {
    described
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}
