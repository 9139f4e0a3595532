//! `recorderd recordings …`: list, search, show, transcripts, reprocess,
//! download and delete recordings on a running server.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};

use super::client::{Client, DEFAULT_TIMEOUT, with_query};
use super::table::{duration, print_table, seconds_between, size, text};
use crate::cli::args::{ClientArgs, RecordingsCommand};

/// How often `reprocess --wait` asks how processing goes.
const WAIT_EVERY: Duration = Duration::from_millis(500);

pub async fn run(args: &ClientArgs, command: &RecordingsCommand) -> anyhow::Result<()> {
    let client = Client::new(args, DEFAULT_TIMEOUT)?;
    match command {
        RecordingsCommand::List {
            status,
            profile,
            page,
            page_size,
        } => {
            let path = with_query(
                "/api/recordings/",
                &[
                    ("page", Some(page.to_string())),
                    ("page_size", Some(page_size.to_string())),
                    ("status", status.clone()),
                    ("profile", profile.clone()),
                ],
            );
            let body = client.get(&path).await?;
            print_list(&client, &body, *page)
        }
        RecordingsCommand::Search {
            words,
            status,
            page,
            page_size,
        } => {
            let path = with_query(
                "/api/recordings/",
                &[
                    ("q", Some(words.join(" "))),
                    ("page", Some(page.to_string())),
                    ("page_size", Some(page_size.to_string())),
                    ("status", status.clone()),
                ],
            );
            let body = client.get(&path).await?;
            print_list(&client, &body, *page)
        }
        RecordingsCommand::Show { recording_id } => show(&client, *recording_id).await,
        RecordingsCommand::Transcript { recording_id, vtt } => {
            transcript(&client, *recording_id, *vtt).await
        }
        RecordingsCommand::Reprocess { recording_id, wait } => {
            reprocess(&client, *recording_id, *wait).await
        }
        RecordingsCommand::Download {
            recording_id,
            output_file,
            mp4,
            force,
        } => download(&client, *recording_id, output_file.as_deref(), *mp4, *force).await,
        RecordingsCommand::Delete { recording_id, yes } => {
            delete(&client, *recording_id, *yes).await
        }
    }
}

/// A page of recordings: a row each, and for a search the passages where
/// its words were said.
fn print_list(client: &Client, body: &Value, page: u64) -> anyhow::Result<()> {
    if client.json() {
        return client.print_json(body);
    }
    let recordings = body["recordings"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let searched = recordings.iter().any(|r| r.get("matches").is_some());
    let row = |r: &Value| {
        vec![
            text(&r["id"]),
            text(&r["title"]),
            text(&r["status"]),
            text(&r["profile"]),
            text(&r["started_at"]),
            duration(r["duration_seconds"].as_f64()),
            size(r["size_bytes"].as_u64()),
            text(&r["node"]),
        ]
    };
    let headers = [
        "ID", "TITLE", "STATUS", "PROFILE", "STARTED", "DURATION", "SIZE", "NODE",
    ];
    if searched {
        for r in recordings {
            print_table(&headers, &[row(r)]);
            for passage in r["matches"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                println!(
                    "    {:>7}  {}",
                    duration(passage["start_seconds"].as_f64()),
                    text(&passage["text"]).replace('\n', " ")
                );
            }
        }
    } else {
        let rows: Vec<Vec<String>> = recordings.iter().map(row).collect();
        print_table(&headers, &rows);
    }
    println!("page {page}, {} recording(s) in all", body["count"]);
    Ok(())
}

/// A recording for people: its fields, then its steps (status, how long,
/// error), its recorder runs, what the analysis measured, its transcript.
async fn show(client: &Client, id: i64) -> anyhow::Result<()> {
    let body = client.get(&format!("/api/recordings/{id}/")).await?;
    if client.json() {
        return client.print_json(&body);
    }
    println!(
        "{}  (recording {})",
        text(&body["title"]),
        text(&body["id"])
    );
    let jobs = body["jobs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let analysis = &body["analysis"];
    for (name, value) in [
        ("status", text(&body["status"])),
        ("source", text(&body["source"])),
        ("profile", text(&body["profile"])),
        (
            "node",
            jobs.first().map_or("-".to_owned(), |j| text(&j["node"])),
        ),
        ("created", text(&body["created_at"])),
        ("duration", duration(analysis["duration_seconds"].as_f64())),
        ("size", size(analysis["size_bytes"].as_u64())),
        ("file", text(&body["output_path"])),
        ("error", text(&body["error"])),
    ] {
        println!("  {name:<10} {value}");
    }
    print_steps(&body["steps"]);
    print_runs(jobs);
    if analysis.is_object() {
        println!("\nAnalysis");
        if let Some(map) = analysis.as_object() {
            for (key, value) in map.iter().filter(|(_, v)| !v.is_null()) {
                println!("  {key:<26} {}", text(value));
            }
        }
    }
    if let Some(transcript) = body["transcript"].as_str() {
        println!("\nTranscript");
        for line in transcript.lines() {
            println!("  {line}");
        }
    }
    Ok(())
}

/// A recording's processing steps: status, attempts, time taken, error.
fn print_steps(steps: &Value) {
    println!("\nSteps");
    let rows: Vec<Vec<String>> = steps
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            vec![
                text(&s["name"]),
                text(&s["status"]),
                text(&s["attempt"]),
                if s["started_at"].is_null() {
                    "-".to_owned()
                } else {
                    duration(seconds_between(&s["started_at"], &s["finished_at"]))
                },
                text(&s["exit_code"]),
                text(&s["error"]),
            ]
        })
        .collect();
    print_table(
        &["STEP", "STATUS", "ATTEMPTS", "TOOK", "EXIT", "ERROR"],
        &rows,
    );
}

/// A recording's recorder runs (restarts included) and how each ended.
fn print_runs(jobs: &[Value]) {
    println!("\nRecorder runs");
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let end = match (j["exit_code"].as_i64(), j["exit_signal"].as_i64()) {
                (_, Some(signal)) => format!("signal {signal}"),
                (Some(code), None) => format!("exit {code}"),
                (None, None) => "-".to_owned(),
            };
            vec![
                text(&j["id"]),
                text(&j["status"]),
                text(&j["process_id"]),
                text(&j["started_at"]),
                text(&j["completed_at"]),
                end,
                text(&j["stop_reason"]),
                text(&j["error"]),
            ]
        })
        .collect();
    print_table(
        &[
            "JOB", "STATUS", "PID", "STARTED", "ENDED", "END", "STOP", "ERROR",
        ],
        &rows,
    );
}

async fn transcript(client: &Client, id: i64, vtt: bool) -> anyhow::Result<()> {
    if vtt {
        let response = client
            .answer(client.request(
                reqwest::Method::GET,
                &format!("/api/recordings/{id}/transcript.vtt"),
            ))
            .await?;
        print!("{}", response.text().await.context("reading the captions")?);
        return Ok(());
    }
    let body = client
        .get(&format!("/api/recordings/{id}/transcript"))
        .await?;
    if client.json() {
        return client.print_json(&body);
    }
    for segment in body["segments"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        println!(
            "{:>8}  {}",
            duration(segment["start_seconds"].as_f64()),
            text(&segment["text"]).replace('\n', " ")
        );
    }
    Ok(())
}

async fn reprocess(client: &Client, id: i64, wait: bool) -> anyhow::Result<()> {
    let body = client
        .post(&format!("/api/recordings/{id}/reprocess/"), json!({}))
        .await?;
    if !wait {
        if client.json() {
            return client.print_json(&body);
        }
        println!("recording {id}: {}", text(&body["recording"]["status"]));
        return Ok(());
    }
    loop {
        tokio::time::sleep(WAIT_EVERY).await;
        let recording = client.get(&format!("/api/recordings/{id}/")).await?;
        let status = recording["status"].as_str().unwrap_or_default();
        if status == "ready" || status == "failed" {
            if client.json() {
                client.print_json(&recording)?;
            } else {
                println!("recording {id}: {status}");
            }
            if status == "failed" {
                bail!("recording {id} failed: {}", text(&recording["error"]));
            }
            return Ok(());
        }
    }
}

/// Streams the recorded file (or its MP4) to a file, written beside its
/// place and renamed there once whole, or to standard output.
async fn download(
    client: &Client,
    id: i64,
    to: Option<&Path>,
    mp4: bool,
    force: bool,
) -> anyhow::Result<()> {
    let recording = client.get(&format!("/api/recordings/{id}/")).await?;
    let target: PathBuf = match to {
        Some(path) => path.to_owned(),
        None => {
            let recorded = recording["output_path"].as_str().unwrap_or_default();
            let name = Path::new(recorded)
                .file_name()
                .map_or_else(|| format!("recording-{id}").into(), PathBuf::from);
            if mp4 {
                name.with_extension("mp4")
            } else {
                name
            }
        }
    };
    let to_stdout = target.as_os_str() == "-";
    if !to_stdout && !force && target.exists() {
        bail!("{} exists; --force replaces it", target.display());
    }
    let path = if mp4 {
        format!("/api/recordings/{id}/media.mp4")
    } else {
        format!("/api/recordings/{id}/media")
    };
    let response = client
        .answer(client.request(reqwest::Method::GET, &path))
        .await?;
    let mut bytes = response.bytes_stream();
    if to_stdout {
        let mut out = std::io::stdout().lock();
        while let Some(chunk) = bytes.next().await {
            out.write_all(&chunk.context("the download broke off")?)?;
        }
        out.flush()?;
        return Ok(());
    }
    let partial = target.with_extension(format!(
        "{}.part",
        target
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let mut written: u64 = 0;
    let mut file = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("creating {}", partial.display()))?;
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.context("the download broke off")?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
        written += chunk.len() as u64;
    }
    tokio::io::AsyncWriteExt::flush(&mut file).await?;
    drop(file);
    tokio::fs::rename(&partial, &target)
        .await
        .with_context(|| format!("renaming {} to {}", partial.display(), target.display()))?;
    if client.json() {
        println!(
            "{}",
            json!({ "recording_id": id, "file": target, "bytes": written })
        );
    } else {
        eprintln!("saved {} to {}", size(Some(written)), target.display());
    }
    Ok(())
}

async fn delete(client: &Client, id: i64, yes: bool) -> anyhow::Result<()> {
    if !yes {
        let recording = client.get(&format!("/api/recordings/{id}/")).await?;
        if !std::io::stdin().is_terminal() {
            bail!("deleting recording {id} needs --yes when no one is at a terminal to confirm");
        }
        eprint!(
            "Delete recording {id} “{}”, its files and history? [y/N] ",
            text(&recording["title"])
        );
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("not deleted");
        }
    }
    let body = client.delete(&format!("/api/recordings/{id}/")).await?;
    if client.json() {
        client.print_json(&body)
    } else {
        println!("{}", text(&body["message"]));
        Ok(())
    }
}
