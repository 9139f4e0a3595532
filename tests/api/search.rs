//! Transcripts with time and the search over them: a step's timed
//! transcript is served as segments and as WebVTT captions, found by its
//! words (in any form: stems), phrases and exclusions, with the passage
//! and its time, on SQLite (FTS5) and PostgreSQL (tsvector); the built-in
//! `transcribe` step runs whisper-cli when it and its model are there.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::profiles::RecorderProfile;

use crate::helpers::{AppOptions, Backend, TestApp, test_dir, test_recorder};
use crate::on_both_databases;

on_both_databases!(
    a_timed_transcript_is_served_as_segments_and_captions,
    search_finds_recordings_by_what_was_said_with_the_passage_time,
    whisper_cli_transcribes_when_it_and_its_model_are_installed,
);

/// `GET /api/recordings/?q=…` (and more of the query), which must answer 200.
async fn search(app: &TestApp, query: &str) -> Value {
    let (status, body) = app.get(&format!("/api/recordings/?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

/// Ids of the recordings a search found, in its order.
fn found(page: &Value) -> Vec<i64> {
    page["recordings"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["id"].as_i64()).collect())
        .unwrap_or_default()
}

async fn a_timed_transcript_is_served_as_segments_and_captions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, recording_id) = app
        .start_ok_with(json!({ "source": "test://fox", "profile": "captioned" }))
        .await;
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
    assert_eq!(
        recording["transcript"], "The quick brown fox\njumps over the lazy dogs",
        "{recording}"
    );

    let (status, transcript) = app
        .get(&format!("/api/recordings/{recording_id}/transcript"))
        .await;
    assert_eq!(status, StatusCode::OK, "{transcript}");
    assert_eq!(
        transcript["segments"],
        json!([
            { "start_seconds": 1.0, "end_seconds": 3.5, "text": "The quick brown fox" },
            { "start_seconds": 4.0, "end_seconds": 6.25, "text": "jumps over the lazy dogs" },
        ]),
        "{transcript}"
    );
    let captions_url = transcript["captions_url"].as_str().expect("captions url");
    let response = app
        .client
        .get(app.url(captions_url))
        .send()
        .await
        .expect("GET captions");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/vtt")),
        "{:?}",
        response.headers()
    );
    let vtt = response.text().await.expect("captions text");
    assert_eq!(
        vtt,
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:03.500\nThe quick brown fox\n\n\
         2\n00:00:04.000 --> 00:00:06.250\njumps over the lazy dogs\n"
    );

    // Reprocessing forgets the transcript until the step has run again.
    let (status, body) = app
        .post(
            &format!("/api/recordings/{recording_id}/reprocess"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let recording = app.wait_for_recording_settled(recording_id).await;
    assert_eq!(recording["status"], "ready", "{recording}");
    let (_, transcript) = app
        .get(&format!("/api/recordings/{recording_id}/transcript"))
        .await;
    assert_eq!(
        transcript["segments"].as_array().map(Vec::len),
        Some(2),
        "no segment twice: {transcript}"
    );

    let (status, body) = app.get("/api/recordings/424242/transcript.vtt").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "recording_not_found");
}

async fn search_finds_recordings_by_what_was_said_with_the_passage_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, fox) = app
        .start_ok_with(
            json!({ "source": "test://fox", "profile": "captioned", "title": "Animal report" }),
        )
        .await;
    let (_, lines) = app
        .start_ok_with(
            json!({ "source": "test://lines", "profile": "pipeline", "title": "Weather today" }),
        )
        .await;
    for id in [fox, lines] {
        let recording = app.wait_for_recording_settled(id).await;
        assert_eq!(recording["status"], "ready", "{recording}");
    }

    // A word said, with the passage and its time.
    let page = search(&app, "q=fox").await;
    assert_eq!(page["count"], 1, "{page}");
    assert_eq!(found(&page), [fox]);
    let matches = &page["recordings"][0]["matches"];
    assert_eq!(matches[0]["start_seconds"], 1.0, "{page}");
    assert_eq!(matches[0]["text"], "The quick brown fox", "{page}");

    // Other forms of the words said: stems on both databases.
    let page = search(&app, "q=jumping+dog").await;
    assert_eq!(found(&page), [fox], "{page}");
    assert_eq!(page["recordings"][0]["matches"][0]["start_seconds"], 4.0);

    // Words said in two passages: both, in the order said.
    let page = search(&app, "q=FOX+dogs").await;
    assert_eq!(found(&page), [fox], "{page}");
    let starts: Vec<f64> = page["recordings"][0]["matches"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["start_seconds"].as_f64())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(starts, [1.0, 4.0], "{page}");

    // The title: found, with no passage.
    let page = search(&app, "q=animal").await;
    assert_eq!(found(&page), [fox], "{page}");
    assert_eq!(page["recordings"][0]["matches"], json!([]), "{page}");

    // Phrases, exclusions, `or`, filters.
    assert_eq!(found(&search(&app, "q=%22brown+fox%22").await), [fox]);
    assert!(found(&search(&app, "q=%22fox+brown%22").await).is_empty());
    assert!(found(&search(&app, "q=fox+-lazy").await).is_empty());
    let either = found(&search(&app, "q=fox+or+lines").await);
    assert_eq!(either.len(), 2, "{either:?}");
    assert!(found(&search(&app, "q=fox&status=failed").await).is_empty());
    assert_eq!(found(&search(&app, "q=fox&profile=captioned").await), [fox]);
    assert!(found(&search(&app, "q=nothing+said").await).is_empty());
    // Without `q`, no `matches`: the list as it always was.
    let page = search(&app, "page_size=10").await;
    assert!(page["recordings"][0].get("matches").is_none(), "{page}");

    // What a client types is never syntax to the database.
    for (query, count) in [("q=%22unclosed", 0), ("q=NEAR(fox)", 0), ("q=fox)*+OR", 1)] {
        assert_eq!(search(&app, query).await["count"], count, "{query}");
    }
    // Control characters are spaces (PostgreSQL refuses a NUL in text).
    assert_eq!(search(&app, "q=fox%00%0A").await["count"], 1);
    assert_eq!(
        search(&app, "q=%00").await["count"],
        2,
        "no words: no search"
    );
    let too_long = format!("q={}", "%C2%95".repeat(501));
    for bad in ["q=%25%25%25", "q=-only", "q=fox&profile=a%00b", &too_long] {
        let (status, body) = app.get(&format!("/api/recordings/?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{body}");
    }

    // A deleted recording is not found any more.
    let response = app
        .client
        .delete(app.url(&format!("/api/recordings/{fox}")))
        .header("content-type", "application/json")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(search(&app, "q=fox").await["count"], 0);
    assert_eq!(search(&app, "q=animal").await["count"], 0);
}

/// A stand-in for whisper.cpp's `whisper-cli`: writes the JSON file
/// `-oj -of STEM` asks for, in whisper-cli's shape, and the model and
/// language it was given beside it.
const FAKE_WHISPER: &str = r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model="$2"; shift ;;
    -l) language="$2"; shift ;;
    -of) stem="$2"; shift ;;
  esac
  shift
done
printf '%s %s\n' "$model" "$language" > "$stem.args"
cat > "$stem.json" <<'JSON'
{"result": {"language": "de"}, "transcription": [
 {"timestamps": {"from": "00:00:00,500", "to": "00:00:02,000"}, "offsets": {"from": 500, "to": 2000}, "text": " Guten Morgen."},
 {"timestamps": {"from": "00:00:02,500", "to": "00:00:04,000"}, "offsets": {"from": 2500, "to": 4000}, "text": " Wie geht es?"}
]}
JSON
"#;

async fn whisper_cli_transcribes_when_it_and_its_model_are_installed(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let tools = test_dir(&format!("whisper-{}", testkit::unique_name()));
    let bin = tools.join("bin");
    std::fs::create_dir_all(&bin).expect("bin directory");
    let whisper = bin.join("whisper-cli");
    std::fs::write(&whisper, FAKE_WHISPER).expect("write whisper-cli");
    std::fs::set_permissions(&whisper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let model = tools.join("ggml-test.bin");
    std::fs::write(&model, b"model").expect("write the model");

    let mut profiles = String::from("default_profile = \"whispered\"\n");
    profiles += &RecorderProfile::new("whispered", &test_recorder(), "test", 120)
        .args(["--exit-after", "0.3"])
        .to_toml();
    // The audio `transcode` would make from real media.
    profiles += &format!(
        r#"
[[profiles.whispered.steps]]
name = "transcode"
command = ["sh", "-c", "printf RIFF > \"$0/audio-16k.wav\"", "{{workdir}}"]

[[profiles.whispered.steps]]
name = "transcribe"
builtin = "transcribe"
model = "{}"
language = "de"
"#,
        model.display()
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let app = TestApp::spawn_with(
        backend,
        AppOptions {
            profiles: Some(profiles),
            env: vec![("PATH".to_owned(), path)],
            ..Default::default()
        },
    )
    .await;
    let (_, recording_id) = app
        .start_ok_with(json!({ "source": "test://morning" }))
        .await;
    let recording = app
        .wait_for_recording(recording_id, Duration::from_secs(30), |r| {
            matches!(r["status"].as_str(), Some("ready" | "failed"))
        })
        .await;
    assert_eq!(recording["status"], "ready", "{recording}");
    assert_eq!(recording["transcript"], "Guten Morgen.\nWie geht es?");
    let (_, transcript) = app
        .get(&format!("/api/recordings/{recording_id}/transcript"))
        .await;
    assert_eq!(
        transcript["segments"][1]["start_seconds"], 2.5,
        "{transcript}"
    );
    assert_eq!(
        transcript["segments"][1]["end_seconds"], 4.0,
        "{transcript}"
    );
    let args = std::fs::read_to_string(
        app.dir
            .join("data")
            .join("work")
            .join(format!("recording-{recording_id}"))
            .join("whisper.args"),
    )
    .expect("whisper-cli ran");
    assert_eq!(args.trim(), format!("{} de", model.display()));
    assert!(
        search(&app, "q=morgen").await["count"] == 1,
        "found by a word whisper heard"
    );
    let _ = std::fs::remove_dir_all(&tools);
}
