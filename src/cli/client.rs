//! The command-line client: `recorderd jobs …` and `recorderd recordings
//! …` against a running server, as tables for people or `--json` for
//! programs. Errors print the server's message and exit non-zero.

use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::cli::args::{ClientArgs, JobsCommand, RecordingsCommand};

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    fn new(args: &ClientArgs) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: args.url.trim_end_matches('/').to_owned(),
            token: args.token.clone().filter(|t| !t.is_empty()),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach recorderd at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.with_context(|| {
            format!("the server answered {status} with something that is not JSON")
        })?;
        if !status.is_success() {
            let message = body["error"]["message"]
                .as_str()
                .unwrap_or("request failed");
            bail!("{status}: {message}");
        }
        Ok(body)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.request(reqwest::Method::POST, path).json(&body))
            .await
    }
}

pub async fn jobs(args: &ClientArgs, command: &JobsCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(args);
    let body = match command {
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
            let body = client.post("/api/recordings/jobs/start/", request).await?;
            if !args.json {
                print_jobs(std::slice::from_ref(&body["job"]));
            }
            body
        }
        JobsCommand::Stop { job_id } => {
            let body = client
                .post("/api/recordings/jobs/stop/", json!({ "job_id": job_id }))
                .await?;
            if !args.json {
                print_jobs(std::slice::from_ref(&body["job"]));
            }
            body
        }
        JobsCommand::Active => {
            let body = client.get("/api/recordings/jobs/active/").await?;
            if !args.json {
                print_jobs(
                    body["jobs"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                );
                println!("{} active", body["count"]);
            }
            body
        }
        JobsCommand::Cleanup => {
            let body = client
                .post("/api/recordings/jobs/cleanup/", json!({}))
                .await?;
            if !args.json {
                println!("{}", body["message"].as_str().unwrap_or_default());
            }
            body
        }
        JobsCommand::List {
            status,
            page,
            page_size,
        } => {
            let path = page_path(
                "/api/recordings/jobs/",
                *page,
                *page_size,
                status.as_deref(),
            );
            let body = client.get(&path).await?;
            if !args.json {
                print_jobs(
                    body["jobs"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                );
                println!("page {page}, {} job(s) in all", body["count"]);
            }
            body
        }
        JobsCommand::Show { job_id } => {
            let body = client
                .get(&format!("/api/recordings/jobs/{job_id}/"))
                .await?;
            if !args.json {
                print_fields(&body);
            }
            body
        }
        JobsCommand::Logs { job_id, bytes } => {
            let body = client
                .get(&format!("/api/recordings/jobs/{job_id}/log/?bytes={bytes}"))
                .await?;
            if !args.json {
                print!("{}", body["content"].as_str().unwrap_or_default());
            }
            body
        }
        JobsCommand::Watch {
            last_event_id,
            limit,
        } => {
            watch(&client, *last_event_id, *limit, args.json).await?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn recordings(
    args: &ClientArgs,
    command: &RecordingsCommand,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(args);
    let body = match command {
        RecordingsCommand::List {
            status,
            page,
            page_size,
        } => {
            let path = page_path("/api/recordings/", *page, *page_size, status.as_deref());
            let body = client.get(&path).await?;
            if !args.json {
                let rows: Vec<Vec<String>> = body["recordings"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|r| {
                        vec![
                            text(&r["id"]),
                            text(&r["status"]),
                            text(&r["profile"]),
                            text(&r["title"]),
                            text(&r["created_at"]),
                        ]
                    })
                    .collect();
                print_table(&["ID", "STATUS", "PROFILE", "TITLE", "CREATED"], &rows);
                println!("page {page}, {} recording(s) in all", body["count"]);
            }
            body
        }
        RecordingsCommand::Show { recording_id } => {
            let body = client
                .get(&format!("/api/recordings/{recording_id}/"))
                .await?;
            if !args.json {
                print_fields(&body);
            }
            body
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Follows the event stream, one line per event.
async fn watch(
    client: &Client,
    last_event_id: Option<i64>,
    limit: Option<usize>,
    json_lines: bool,
) -> anyhow::Result<()> {
    let mut request = client.request(reqwest::Method::GET, "/api/recordings/jobs/events/");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let mut response = request
        .send()
        .await
        .with_context(|| format!("cannot reach recorderd at {}", client.base))?;
    if !response.status().is_success() {
        bail!("{}: cannot follow events", response.status());
    }
    let mut buffer = String::new();
    let mut seen = 0;
    while let Some(chunk) = response.chunk().await.context("the event stream broke")? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if kind.is_empty() {
                continue; // keep-alive comment
            }
            let object: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            if json_lines {
                println!(
                    "{}",
                    json!({ "id": id.parse::<i64>().ok(), "event": kind, "data": object })
                );
            } else {
                println!(
                    "#{id:<6} {kind:<22} {} {:<10} {}",
                    text(&object["id"]),
                    text(&object["status"]),
                    object["error"].as_str().unwrap_or_default()
                );
            }
            seen += 1;
            if limit.is_some_and(|limit| seen >= limit) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A list endpoint's path with its page and optional status filter.
fn page_path(base: &str, page: u64, page_size: u64, status: Option<&str>) -> String {
    let mut path = format!("{base}?page={page}&page_size={page_size}");
    if let Some(status) = status {
        path.push_str(&format!("&status={status}"));
    }
    path
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_jobs(jobs: &[Value]) {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                text(&j["id"]),
                text(&j["status"]),
                text(&j["process_id"]),
                text(&j["recording_id"]),
                text(&j["started_at"]),
                text(&j["completed_at"]),
                text(&j["error"]),
            ]
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

fn print_fields(object: &Value) {
    if let Some(map) = object.as_object() {
        for (key, value) in map {
            let shown = match value {
                Value::Array(items) => format!("{} item(s)", items.len()),
                Value::Object(_) => value.to_string(),
                other => text(other),
            };
            println!("{key:<20} {shown}");
        }
    }
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count().min(60));
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                let c: String = c.chars().take(60).collect();
                format!("{c:<w$}")
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!(
        "{}",
        line(headers.iter().map(|h| (*h).to_owned()).collect())
    );
    for row in rows {
        println!("{}", line(row.clone()));
    }
}
