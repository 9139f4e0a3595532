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

pub(crate) fn ffmpeg_available() -> bool {
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

/// Seconds of media the job's current run has written, as its live
/// progress says (0 before the first report).
pub(crate) fn media_seconds(job: &serde_json::Value) -> f64 {
    job["progress"]["media_seconds"].as_f64().unwrap_or(0.0)
}

/// Waits until run number `attempt` (or a later one) of the job has
/// recorded `seconds` of media, as its live progress reports; returns the
/// job.
pub(crate) async fn wait_recorded(
    app: &TestApp,
    job_id: i64,
    attempt: i64,
    seconds: f64,
) -> serde_json::Value {
    app.wait_for_job(job_id, Duration::from_secs(60), |j| {
        j["attempt"].as_i64().unwrap_or(0) >= attempt && media_seconds(j) >= seconds
    })
    .await
}

/// Kills the stream source when the test ends, whatever happens.
pub(crate) struct Source(std::process::Child);

impl Source {
    /// Starts `command` as a source.
    pub(crate) fn spawn(command: &mut Command) -> Self {
        Self(command.spawn().expect("start the stream source"))
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a job recording a live MPEG-TS stream over UDP on loopback with
/// the built-in profile, then the stream itself: a second ffmpeg reading
/// `input` (its input options and file). The recorder listens first: a
/// source sending to a closed UDP port can get "connection refused" and
/// stop. The source's messages go to `source.log` in the test directory.
async fn record_live_stream(app: &TestApp, input: &[&str]) -> (i64, i64, Source) {
    record_live_stream_with(app, "ffmpeg", input).await
}

/// [`record_live_stream`] with the profile named `profile`.
pub(crate) async fn record_live_stream_with(
    app: &TestApp,
    profile: &str,
    input: &[&str],
) -> (i64, i64, Source) {
    send_live_stream(app, profile, input, &["-c:a", "aac"]).await
}

/// [`record_live_stream_with`] for a picture without sound, sent as H.264.
pub(crate) async fn record_live_video(
    app: &TestApp,
    profile: &str,
    input: &[&str],
) -> (i64, i64, Source) {
    let h264 = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-pix_fmt",
        "yuv420p",
    ];
    send_live_stream(app, profile, input, &h264).await
}

/// Starts the job, then a sender of `input` encoded with `codec`.
async fn send_live_stream(
    app: &TestApp,
    profile: &str,
    input: &[&str],
    codec: &[&str],
) -> (i64, i64, Source) {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port();
    let (job_id, recording_id) = app
        .start_ok_with(json!({ "source": format!("udp://127.0.0.1:{port}"), "profile": profile }))
        .await;
    app.wait_until(
        &format!("the recorder listening on UDP port {port}"),
        Duration::from_secs(15),
        || {
            if udp_port_bound(port) {
                Ok(())
            } else {
                Err("nothing bound to it".to_owned())
            }
        },
    )
    .await;
    let source_log = std::fs::File::create(app.dir.join("source.log")).expect("source log");
    let source = Source(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re"])
            .args(input)
            .args(codec)
            .args(["-f", "mpegts"])
            .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(source_log)
            .spawn()
            .expect("start the stream source"),
    );
    (job_id, recording_id, source)
}

/// Whether a socket of this machine is bound to UDP `port`.
pub(crate) fn udp_port_bound(port: u16) -> bool {
    let v4 = procfs::net::udp().unwrap_or_default();
    let v6 = procfs::net::udp6().unwrap_or_default();
    v4.iter()
        .chain(&v6)
        .any(|socket| socket.local_address.port() == port)
}

/// A 440 Hz tone, for as long as it is recorded.
pub(crate) const TONE: &[&str] = &["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"];

async fn default_profile_records_a_live_stream_and_finalizes_it_on_stop(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id, _source) = record_live_stream(&app, TONE).await;
    let source_log_path = app.dir.join("source.log");

    // ffmpeg probes a live MPEG-TS input for up to 5 s before it copies;
    // wait until its progress shows 2 s of audio recorded.
    let output = app.recording(recording_id).await["output_path"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let _ = &source_log_path;
    let running = wait_recorded(&app, job_id, 1, 2.0).await;
    // Live figures: data flows, and the bytes match the file.
    let progress = &running["progress"];
    let bytes = progress["bytes_written"].as_u64().unwrap_or(0);
    assert!(bytes > 0, "{running}");
    assert!(
        progress["bitrate_kbps"].as_f64().unwrap_or(0.0) > 0.0,
        "{running}"
    );
    let last_data = progress["last_data_at"].as_str().unwrap_or_default();
    let last_data =
        time::OffsetDateTime::parse(last_data, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("last_data_at {last_data:?}: {e}: {running}"));
    let age = time::OffsetDateTime::now_utc() - last_data;
    assert!(
        age < time::Duration::seconds(3),
        "stale data: {age} ago: {running}"
    );
    let later = app
        .wait_for_job(job_id, Duration::from_secs(10), |j| {
            j["progress"]["bytes_written"].as_u64().unwrap_or(0) > bytes
        })
        .await;
    assert!(media_seconds(&later) >= 2.0, "{later}");

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
    let content = log["content"].as_str().unwrap_or("");
    assert!(content.contains("received signal 2"), "{log}");
    // Progress went to recorderd, not into the log: no `\r`-separated
    // lines, only ffmpeg's one summary line as it ends.
    assert!(
        !content.contains('\r'),
        "progress lines in the log: {content:?}"
    );
    assert!(content.matches("time=").count() <= 1, "{content}");
    assert!(!content.contains("out_time"), "{content}");

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
    browsers_get_an_mp4_of_it(&app, recording_id, duration).await;
}

/// The Matroska file as browsers play it: an MP4 of the same length, its
/// AAC copied, served with ranges; no still, as it has no video.
async fn browsers_get_an_mp4_of_it(app: &TestApp, recording_id: i64, duration: f64) {
    let url = app.url(&format!("/api/recordings/{recording_id}/media.mp4"));
    let response = app.client.get(&url).send().await.expect("GET media.mp4");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "video/mp4");
    let mp4 = response.bytes().await.expect("the MP4");
    let path = app.dir.join("played.mp4");
    std::fs::write(&path, &mp4).expect("write the MP4");
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=format_name,duration:stream=codec_name",
        ])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(&path)
        .output()
        .expect("run ffprobe");
    let described = String::from_utf8_lossy(&probe.stdout);
    assert!(
        described.contains("codec_name=aac") && described.contains("format_name=mov,mp4"),
        "{described}"
    );
    let played: f64 = described
        .lines()
        .find_map(|l| l.strip_prefix("duration="))
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    assert!(
        (played - duration).abs() < 0.5,
        "{played} s of {duration} s"
    );
    // The moov atom first: a player starts before the whole file arrives.
    let moov = mp4.windows(4).position(|w| w == b"moov");
    let mdat = mp4.windows(4).position(|w| w == b"mdat");
    assert!(moov < mdat, "moov at {moov:?}, mdat at {mdat:?}");
    let part = app
        .client
        .get(&url)
        .header("range", "bytes=100-199")
        .send()
        .await
        .expect("GET a range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.expect("range").as_ref(), &mp4[100..200]);
    let (status, body) = app
        .get(&format!("/api/recordings/{recording_id}/thumbnail.jpg"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "media_not_found", "{body}");
}

on_both_databases!(speech_is_recorded_analyzed_and_transcribed);

const SENTENCE: &str = "hello world this is a recording test";

fn speech_tools_available() -> bool {
    let found = ffmpeg_available()
        && ["espeak-ng", "pocketsphinx_continuous"].iter().all(|tool| {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    if !found {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("espeak-ng/pocketsphinx are missing under CI: .ci/run installs them");
        }
        eprintln!(
            "\n*** SKIPPED (speech): espeak-ng, pocketsphinx, pocketsphinx-en-us not installed ***\n"
        );
    }
    found
}

/// Word error rate of `heard` against `said` (Levenshtein over words).
fn word_error_rate(said: &[&str], heard: &[&str]) -> f64 {
    let mut row: Vec<usize> = (0..=heard.len()).collect();
    for (i, s) in said.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, h) in heard.iter().enumerate() {
            let substitution = previous + usize::from(s != h);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[heard.len()] as f64 / said.len().max(1) as f64
}

async fn speech_is_recorded_analyzed_and_transcribed(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    if !speech_tools_available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let speech = app.dir.join("speech.wav");
    let spoken = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "130", "-w"])
        .arg(&speech)
        .arg(SENTENCE)
        .status()
        .expect("run espeak-ng");
    assert!(spoken.success());
    // The sentence, looped, as a live stream.
    let speech = speech.display().to_string();
    let (job_id, recording_id, _source) =
        record_live_stream(&app, &["-stream_loop", "-1", "-i", &speech]).await;
    let source_started = Instant::now();
    wait_recorded(&app, job_id, 1, 8.0).await;
    let wall = source_started.elapsed().as_secs_f64();
    let (status, body) = app.stop(job_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job = app.wait_for_job_end(job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stop_signal"], 2, "one SIGINT was enough: {job}");
    assert!(job["error"].is_null(), "a clean stop: {job}");

    let recording = app
        .wait_for_recording(recording_id, Duration::from_secs(120), |r| {
            matches!(r["status"].as_str(), Some("ready" | "failed"))
        })
        .await;
    assert_eq!(recording["status"], "ready", "{recording}");
    for name in ["analyze", "transcode", "transcribe"] {
        let step = recording["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no step {name}: {recording}"));
        assert_eq!(step["status"], "succeeded", "{recording}");
    }
    let analysis = &recording["analysis"];
    let duration = analysis["duration_seconds"].as_f64().unwrap_or(0.0);
    assert!(
        (duration - wall).abs() <= 1.0,
        "recorded {duration:.2} s of a {wall:.2} s stream: {analysis}"
    );
    let loudness = analysis["integrated_loudness_lufs"].as_f64().unwrap_or(0.0);
    assert!(
        (-45.0..=-5.0).contains(&loudness),
        "loudness {loudness}: {analysis}"
    );
    let silence = analysis["silence_ratio"].as_f64().unwrap_or(-1.0);
    assert!(
        (0.0..0.9).contains(&silence),
        "silence ratio {silence}: {analysis}"
    );
    assert_eq!(analysis["codec"], "aac", "{analysis}");

    let transcript = recording["transcript"]
        .as_str()
        .unwrap_or("")
        .to_lowercase();
    assert!(!transcript.trim().is_empty(), "{recording}");
    let heard: Vec<&str> = transcript.split_whitespace().collect();
    let said: Vec<&str> = SENTENCE.split_whitespace().collect();
    let (best_repeats, best_wer) = (1..=4)
        .map(|n| {
            let repeated: Vec<&str> = said.iter().copied().cycle().take(said.len() * n).collect();
            (n, word_error_rate(&repeated, &heard))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((1, 1.0));
    eprintln!(
        "speech: {duration:.2} s recorded of {wall:.2} s, loudness {loudness:.1} LUFS, silence {:.0}%, transcript {transcript:?}, word accuracy {:.0}% against the sentence said {best_repeats}×",
        silence * 100.0,
        (1.0 - best_wer).max(0.0) * 100.0
    );
    spoken_words_are_timed_and_found(&app, recording_id, duration).await;
}

/// The transcript of a real recording has times within it, and a search
/// for a word said and heard finds the recording, at a passage that holds
/// the word.
async fn spoken_words_are_timed_and_found(app: &TestApp, recording_id: i64, duration: f64) {
    let (_, transcript) = app
        .get(&format!("/api/recordings/{recording_id}/transcript"))
        .await;
    let segments = transcript["segments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!segments.is_empty(), "{transcript}");
    let mut previous = -1.0;
    for segment in &segments {
        let start = segment["start_seconds"].as_f64().unwrap_or(-1.0);
        let end = segment["end_seconds"].as_f64().unwrap_or(-1.0);
        assert!(
            previous <= start && start < end && end <= duration + 0.5,
            "segments in order, within the {duration:.2} s recorded: {transcript}"
        );
        previous = start;
    }
    let heard = transcript["text"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    let word = SENTENCE
        .split_whitespace()
        .filter(|w| w.len() > 3)
        .find(|w| heard.split_whitespace().any(|h| h == *w))
        .unwrap_or_else(|| panic!("no word of {SENTENCE:?} was heard: {heard:?}"));
    let (status, page) = app.get(&format!("/api/recordings/?q={word}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["recordings"][0]["id"], recording_id, "{word}: {page}");
    let passage = &page["recordings"][0]["matches"][0];
    let at = passage["start_seconds"].as_f64().unwrap_or(-1.0);
    assert!(
        passage["text"]
            .as_str()
            .is_some_and(|t| t.to_lowercase().contains(word))
            && (0.0..duration).contains(&at),
        "{word}: {page}"
    );
    eprintln!("search: {word:?} found at {at:.2} s in {passage}");
}

on_both_databases!(a_crashed_ffmpeg_is_restarted_and_its_files_joined);

async fn a_crashed_ffmpeg_is_restarted_and_its_files_joined(backend: Backend) {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (job_id, recording_id, _source) = record_live_stream(&app, TONE).await;
    wait_recorded(&app, job_id, 1, 2.0).await;
    let first = app.job(job_id).await;
    let pid = first["process_id"].as_i64().unwrap_or_default() as i32;
    // A crash nobody asked for.
    crate::helpers::send_signal(pid, 11);
    let restarted = app
        .wait_for_job(job_id, Duration::from_secs(20), |j| {
            j["attempt"] == 2 && j["process_id"].is_i64()
        })
        .await;
    assert_eq!(restarted["status"], "running", "{restarted}");
    assert_ne!(restarted["process_id"], first["process_id"]);
    wait_recorded(&app, job_id, 2, 2.0).await;

    app.stop(job_id).await;
    let job = app.wait_for_job_end(job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["attempts"][0]["exit_signal"], 11, "{job}");
    let recording = app
        .wait_for_recording(recording_id, Duration::from_secs(60), |r| {
            matches!(r["status"].as_str(), Some("ready" | "failed"))
        })
        .await;
    assert_eq!(recording["status"], "ready", "{recording}");
    // Both runs are in the joined file: more than either alone.
    let duration = recording["analysis"]["duration_seconds"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(duration >= 6.0, "joined duration {duration}: {recording}");
    let output = recording["output_path"].as_str().unwrap_or_default();
    assert!(!std::path::Path::new(&output.replace(".mkv", ".part2.mkv")).exists());
}

/// A playlist served from loopback (allowed: a local media server is the
/// common case) whose segment is a local file: the built-in profile's
/// `-protocol_whitelist` holds only what `http` needs, so ffmpeg refuses
/// to open it, and says so in the job's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playlist_cannot_make_the_builtin_profile_read_a_local_file() {
    let _exclusive = crate::helpers::exclusive().await;
    if !ffmpeg_available() {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let segment = app.dir.join("local-secret.ts");
    std::fs::write(&segment, b"not for recorders").expect("write the local file");
    let playlist = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile://{}\n#EXT-X-ENDLIST\n",
        segment.display()
    );
    let server = axum::Router::new().route(
        "/live.m3u8",
        axum::routing::get(move || {
            let playlist = playlist.clone();
            async move {
                (
                    [("content-type", "application/vnd.apple.mpegurl")],
                    playlist,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, server).await });

    let (job_id, _) = app
        .start_ok_with(
            json!({ "source": format!("http://{address}/live.m3u8"), "profile": "ffmpeg" }),
        )
        .await;
    let log = app
        .wait_until(
            "ffmpeg refusing the file segment",
            Duration::from_secs(30),
            || {
                let job_log = std::fs::read_dir(app.dir.join("data").join("logs"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .find(|e| e.file_name().to_string_lossy() == format!("job-{job_id}.log"))
                    .and_then(|e| std::fs::read_to_string(e.path()).ok())
                    .unwrap_or_default();
                if job_log.contains("not on whitelist") {
                    Ok(job_log)
                } else {
                    Err(job_log)
                }
            },
        )
        .await;
    assert!(log.contains("Protocol 'file' not on whitelist"), "{log}");
    let _ = app.stop(job_id).await;
    app.wait_for_job_end(job_id).await;
}
