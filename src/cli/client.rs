//! The command-line client: `recorderd jobs …` and `recorderd recordings
//! …` against a running server, as tables for people or `--json` for
//! programs. Errors print the server's message and exit non-zero.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use backon::BackoffBuilder;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::backoff;
use crate::cli::args::{ClientArgs, JobsCommand, RecordingsCommand};

pub(super) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub(super) fn new(args: &ClientArgs) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: args.url.trim_end_matches('/').to_owned(),
            token: args.token.clone().filter(|t| !t.is_empty()),
        }
    }

    pub(super) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub(super) async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
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

    pub(super) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.request(reqwest::Method::POST, path).json(&body))
            .await
    }
}

pub async fn jobs(args: &ClientArgs, command: &JobsCommand) -> anyhow::Result<ExitCode> {
    let client = Client::new(args);
    if let JobsCommand::Watch {
        last_event_id,
        limit,
    } = command
    {
        watch(&client, *last_event_id, *limit, args.json).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let body = job_request(&client, command).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        print_job_answer(command, &body);
    }
    Ok(ExitCode::SUCCESS)
}

/// The server's answer to one `jobs` command.
async fn job_request(client: &Client, command: &JobsCommand) -> anyhow::Result<Value> {
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
            let path = page_path(
                "/api/recordings/jobs/",
                *page,
                *page_size,
                status.as_deref(),
            );
            client.get(&path).await
        }
        JobsCommand::Show { job_id } => {
            client.get(&format!("/api/recordings/jobs/{job_id}/")).await
        }
        JobsCommand::Logs { job_id, bytes } => {
            client
                .get(&format!("/api/recordings/jobs/{job_id}/log/?bytes={bytes}"))
                .await
        }
        JobsCommand::Watch { .. } => {
            bail!("`jobs watch` follows the stream; it has no single answer")
        }
    }
}

/// Prints the answer to a `jobs` command for people.
fn print_job_answer(command: &JobsCommand, body: &Value) {
    let jobs = || {
        body["jobs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    match command {
        JobsCommand::Start { .. } | JobsCommand::Stop { .. } => {
            print_jobs(std::slice::from_ref(&body["job"]));
        }
        JobsCommand::Active => {
            print_jobs(jobs());
            println!("{} active", body["count"]);
        }
        JobsCommand::Cleanup => println!("{}", body["message"].as_str().unwrap_or_default()),
        JobsCommand::List { page, .. } => {
            print_jobs(jobs());
            println!("page {page}, {} job(s) in all", body["count"]);
        }
        JobsCommand::Show { .. } => print_fields(body),
        JobsCommand::Logs { .. } => print!("{}", body["content"].as_str().unwrap_or_default()),
        JobsCommand::Watch { .. } => {}
    }
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

/// Consecutive reconnection attempts before `jobs watch` gives up: with the
/// backoff below they span about 30 s, long enough for a server restart.
const RECONNECT_ATTEMPTS: u32 = 16;
/// Wait before the first reconnection attempt; doubled after each failure.
const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(250);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);

/// Why opening the event stream failed.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("cannot reach recorderd at {base}")]
    Unreachable {
        base: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{0}: cannot follow events")]
    Refused(reqwest::StatusCode),
}

impl ConnectError {
    /// Worth another attempt: the server is down, restarting or briefly
    /// failing. A 4xx (a bad token, a bad event id) stays as it is.
    fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Refused(status) => status.is_server_error(),
        }
    }
}

/// How one connection to the event stream ended.
enum StreamEnd {
    /// `--limit` events were printed.
    LimitReached,
    /// The connection broke or the server closed it (as it does when it
    /// shuts down): worth resuming.
    Broken(String),
}

/// Follows the event stream, one line per event. When the connection
/// breaks (a server restart, say) it reconnects with `Last-Event-ID` set to
/// the last event printed, so the server resends what was missed meanwhile
/// and each event is printed once. Before the first event, and without
/// `--last-event-id`, there is no id to resume from: the new connection
/// starts with what happens next, as the first one did.
async fn watch(
    client: &Client,
    last_event_id: Option<i64>,
    limit: Option<usize>,
    json_lines: bool,
) -> anyhow::Result<()> {
    let mut watch = Watch {
        last_id: last_event_id.map(|id| id.to_string()),
        seen: 0,
        limit,
        json_lines,
    };
    // A first connection that fails is a mistake to report (a wrong URL),
    // not a restart to wait out.
    let mut response = connect(client, watch.last_id.as_deref()).await?;
    loop {
        match watch.follow(response).await? {
            StreamEnd::LimitReached => return Ok(()),
            StreamEnd::Broken(reason) => {
                eprintln!("the event stream broke ({reason}); reconnecting");
                response = reconnect(client, watch.last_id.as_deref()).await?;
            }
        }
    }
}

/// Opens the event stream, resuming after `last_id` when there is one.
async fn connect(
    client: &Client,
    last_id: Option<&str>,
) -> Result<reqwest::Response, ConnectError> {
    let mut request = client.request(reqwest::Method::GET, "/api/recordings/jobs/events/");
    if let Some(id) = last_id {
        request = request.header("last-event-id", id);
    }
    let response = request
        .send()
        .await
        .map_err(|source| ConnectError::Unreachable {
            base: client.base.clone(),
            source,
        })?;
    if !response.status().is_success() {
        return Err(ConnectError::Refused(response.status()));
    }
    Ok(response)
}

/// Opens the event stream again after it broke, with a doubling backoff,
/// for [`RECONNECT_ATTEMPTS`] attempts at most.
async fn reconnect(client: &Client, last_id: Option<&str>) -> anyhow::Result<reqwest::Response> {
    let mut delays = backoff::doubling(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY).build();
    let mut attempt = 0;
    loop {
        attempt += 1;
        tokio::time::sleep(delays.next().unwrap_or(RECONNECT_MAX_DELAY)).await;
        match connect(client, last_id).await {
            Ok(response) => return Ok(response),
            Err(e) if e.is_transient() && attempt < RECONNECT_ATTEMPTS => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("the event stream broke and {attempt} reconnection attempt(s) failed")
                });
            }
        }
    }
}

/// What `jobs watch` has printed so far, and where to resume.
struct Watch {
    /// Id of the last event printed: the `Last-Event-ID` of a reconnection.
    last_id: Option<String>,
    seen: usize,
    limit: Option<usize>,
    json_lines: bool,
}

impl Watch {
    /// Prints the events of one connection until it ends or `--limit` is
    /// reached. Bytes that are not an event stream are an error, not a
    /// reason to reconnect.
    async fn follow(&mut self, response: reqwest::Response) -> anyhow::Result<StreamEnd> {
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(EventStreamError::Transport(e)) => return Ok(StreamEnd::Broken(e.to_string())),
                Err(e) => return Err(anyhow::anyhow!("the event stream is malformed: {e}")),
            };
            println!("{}", event_line(&event, self.json_lines));
            if !event.id.is_empty() {
                self.last_id = Some(event.id);
            }
            self.seen += 1;
            if self.limit.is_some_and(|limit| self.seen >= limit) {
                return Ok(StreamEnd::LimitReached);
            }
        }
        Ok(StreamEnd::Broken("the server closed it".to_owned()))
    }
}

/// One event as `jobs watch` prints it: a JSON object per line with
/// `--json`, else a line of columns.
fn event_line(event: &Event, json_lines: bool) -> String {
    let object: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    if json_lines {
        json!({ "id": event.id.parse::<i64>().ok(), "event": event.event, "data": object })
            .to_string()
    } else {
        format!(
            "#{:<6} {:<22} {} {:<10} {}",
            event.id,
            event.event,
            text(&object["id"]),
            text(&object["status"]),
            object["error"].as_str().unwrap_or_default()
        )
    }
}

/// A list endpoint's path with its page and optional status filter.
fn page_path(base: &str, page: u64, page_size: u64, status: Option<&str>) -> String {
    let mut path = format!("{base}?page={page}&page_size={page_size}");
    if let Some(status) = status {
        path.push_str(&format!("&status={status}"));
    }
    path
}

pub(super) fn text(value: &Value) -> String {
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
            // Between two runs nothing records: the status says so.
            let status = match j["restart_at"].as_str() {
                Some(at) if j["status"] == "running" => format!("restarting at {at}"),
                _ => text(&j["status"]),
            };
            vec![
                text(&j["id"]),
                status,
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

pub(super) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Events as a proxy may reframe them: CRLF line ends, a `data:` field
    /// over two lines, chunks cut inside a field name and between the CR
    /// and LF of one line end, and a keep-alive comment.
    #[tokio::test]
    async fn crlf_and_multi_line_data_split_across_chunks_make_whole_events() {
        let chunks: [&[u8]; 4] = [
            b": keep-alive\r\n\r\nid: 7\r\nevent: job.st",
            b"arted\r\ndata: {\"id\": 3,\r\ndata:  \"status\": \"running\"}\r",
            b"\n\r\nid: 8\nevent: job.failed\ndata: {\"id\": 3, \"status\": \"failed\",",
            b" \"error\": \"exit 1\"}\n\n",
        ];
        let bytes = futures::stream::iter(chunks.map(Ok::<_, std::convert::Infallible>));
        let events: Vec<Event> = bytes
            .eventsource()
            .map(|event| event.expect("a well-formed stream"))
            .collect()
            .await;

        let lines: Vec<Value> = events
            .iter()
            .map(|event| serde_json::from_str(&event_line(event, true)).expect("JSON"))
            .collect();
        assert_eq!(
            lines,
            [
                json!({ "id": 7, "event": "job.started", "data": { "id": 3, "status": "running" } }),
                json!({ "id": 8, "event": "job.failed",
                        "data": { "id": 3, "status": "failed", "error": "exit 1" } }),
            ]
        );
        assert_eq!(
            event_line(&events[1], false),
            "#8      job.failed             3 failed     exit 1"
        );
    }
}
