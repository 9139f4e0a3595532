//! `recorderd jobs …`: start, stop, list and follow jobs on a running
//! server, as tables for people or the server's JSON for programs.

use std::time::Duration;

use anyhow::bail;
use serde_json::{Value, json};

use super::client::{Client, DEFAULT_TIMEOUT, with_query};
use super::table::{print_fields, print_table, text};
use super::watch::watch;
use crate::cli::args::{ClientArgs, JobsCommand};

/// How often `logs --follow` asks for what was written since.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

pub async fn run(args: &ClientArgs, command: &JobsCommand) -> anyhow::Result<()> {
    let client = Client::new(args, DEFAULT_TIMEOUT)?;
    match command {
        JobsCommand::Watch {
            last_event_id,
            limit,
        } => watch(&client, *last_event_id, *limit, client.json()).await,
        JobsCommand::Logs {
            job_id,
            bytes,
            follow: true,
        } => follow_log(&client, *job_id, *bytes).await,
        command => {
            let body = request(&client, command).await?;
            if client.json() {
                client.print_json(&body)
            } else {
                print_answer(command, &body);
                Ok(())
            }
        }
    }
}

/// The server's answer to one `jobs` command.
async fn request(client: &Client, command: &JobsCommand) -> anyhow::Result<Value> {
    match command {
        JobsCommand::Start {
            source,
            title,
            profile,
            duration,
        } => {
            let mut request = json!({ "source": source });
            if let Some(title) = title {
                request["title"] = json!(title);
            }
            if let Some(profile) = profile {
                request["profile"] = json!(profile);
            }
            if let Some(duration) = duration {
                request["duration_seconds"] = json!(duration);
            }
            client.post("/api/recordings/jobs/start/", request).await
        }
        JobsCommand::Stop { job_id } => {
            client
                .post("/api/recordings/jobs/stop/", json!({ "job_id": job_id }))
                .await
        }
        JobsCommand::Active => client.get("/api/recordings/jobs/active/").await,
        JobsCommand::Cleanup => {
            client
                .post("/api/recordings/jobs/cleanup/", json!({}))
                .await
        }
        JobsCommand::List {
            status,
            page,
            page_size,
        } => {
            let path = with_query(
                "/api/recordings/jobs/",
                &[
                    ("page", Some(page.to_string())),
                    ("page_size", Some(page_size.to_string())),
                    ("status", status.clone()),
                ],
            );
            client.get(&path).await
        }
        JobsCommand::Show { job_id } => {
            client.get(&format!("/api/recordings/jobs/{job_id}/")).await
        }
        JobsCommand::Logs { job_id, bytes, .. } => {
            client
                .get(&format!("/api/recordings/jobs/{job_id}/log/?bytes={bytes}"))
                .await
        }
        JobsCommand::Profiles => client.get("/api/profiles").await,
        JobsCommand::Watch { .. } => {
            bail!("`jobs watch` follows the stream; it has no single answer")
        }
    }
}

/// Prints the answer to a `jobs` command for people.
fn print_answer(command: &JobsCommand, body: &Value) {
    let jobs = || {
        body["jobs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    match command {
        JobsCommand::Start { .. } => {
            println!(
                "{} (recording {}, job {})",
                text(&body["recording"]["title"]),
                text(&body["recording"]["id"]),
                text(&body["job"]["id"])
            );
            print_jobs(std::slice::from_ref(&body["job"]));
        }
        JobsCommand::Stop { .. } => print_jobs(std::slice::from_ref(&body["job"])),
        JobsCommand::Active => {
            print_jobs(jobs());
            println!("{} active", body["count"]);
        }
        JobsCommand::Cleanup => println!("{}", text(&body["message"])),
        JobsCommand::List { page, .. } => {
            print_jobs(jobs());
            println!("page {page}, {} job(s) in all", body["count"]);
        }
        JobsCommand::Show { .. } => print_fields(body),
        JobsCommand::Logs { .. } => print!("{}", body["content"].as_str().unwrap_or_default()),
        JobsCommand::Profiles => print_profiles(body),
        JobsCommand::Watch { .. } => {}
    }
}

fn print_jobs(jobs: &[Value]) {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            // Between two runs nothing records: the status says so.
            let status = match j["restart_at"].as_str() {
                Some(at) if j["status"] == "running" => format!("restarting at {at}"),
                _ => text(&j["status"]),
            };
            let mut row = vec![text(&j["id"]), status];
            row.extend(
                [
                    "process_id",
                    "recording_id",
                    "started_at",
                    "completed_at",
                    "error",
                ]
                .iter()
                .map(|field| text(&j[field])),
            );
            row
        })
        .collect();
    print_table(
        &[
            "ID",
            "STATUS",
            "PID",
            "RECORDING",
            "STARTED",
            "COMPLETED",
            "ERROR",
        ],
        &rows,
    );
}

fn print_profiles(body: &Value) {
    let rows: Vec<Vec<String>> = body["profiles"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let names = |list: &Value, field: &str| {
                list.as_array()
                    .map(|items| {
                        items
                            .iter()
                            .map(|i| text(if field.is_empty() { i } else { &i[field] }))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            vec![
                text(&p["name"])
                    + if p["default"] == true {
                        " (default)"
                    } else {
                        ""
                    },
                names(&p["allowed_schemes"], ""),
                names(&p["steps"], "name"),
                names(&p["skipped_steps"], "name"),
            ]
        })
        .collect();
    print_table(&["PROFILE", "SCHEMES", "STEPS", "SKIPPED"], &rows);
}

/// Prints the end of a job's log, then what its recorder writes, until
/// the job has ended and its log is read to the end.
async fn follow_log(client: &Client, job_id: i64, bytes: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let path = format!("/api/recordings/jobs/{job_id}/log/");
    let mut answer = client.get(&format!("{path}?bytes={bytes}")).await?;
    let mut first = true;
    loop {
        let content = answer["content"].as_str().unwrap_or_default();
        if client.json() {
            // One object per read that brought something (and the first).
            if first || !content.is_empty() {
                println!("{answer}");
            }
        } else {
            print!("{content}");
            std::io::stdout().flush()?;
        }
        first = false;
        let next = answer["next_offset"].as_u64().unwrap_or_default();
        let read_all = answer["content"].as_str().is_none_or(str::is_empty);
        if read_all {
            // Asked after the empty read: a recorder that ended before it
            // wrote its last lines is read once more.
            let job = client
                .get(&format!("/api/recordings/jobs/{job_id}/"))
                .await?;
            if matches!(job["status"].as_str(), Some("completed" | "failed")) {
                let last = client
                    .get(&format!("{path}?offset={next}&bytes=1048576"))
                    .await?;
                if last["content"].as_str().is_none_or(str::is_empty) {
                    return Ok(());
                }
                answer = last;
                continue;
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
        answer = client
            .get(&format!("{path}?offset={next}&bytes=1048576"))
            .await?;
    }
}
