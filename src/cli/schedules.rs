//! `recorderd schedules …`: schedules on a running server, as tables for
//! people or the server's JSON for programs.

use serde_json::{Value, json};

use super::args::{ClientArgs, SchedulesCommand};
use super::client::{Client, DEFAULT_TIMEOUT};
use super::table::{print_fields, print_table, text};

const PATH: &str = "/api/recordings/schedules";

pub async fn run(args: &ClientArgs, command: &SchedulesCommand) -> anyhow::Result<()> {
    let client = Client::new(args, DEFAULT_TIMEOUT)?;
    let body = request(&client, command).await?;
    if client.json() {
        return client.print_json(&body);
    }
    match command {
        SchedulesCommand::List => print_schedules(
            body["schedules"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default(),
        ),
        SchedulesCommand::Delete { .. } => println!("{}", text(&body["message"])),
        SchedulesCommand::Show { .. }
        | SchedulesCommand::Create { .. }
        | SchedulesCommand::Pause { .. }
        | SchedulesCommand::Resume { .. } => print_schedule(&body),
    }
    Ok(())
}

/// The server's answer to one `schedules` command.
async fn request(client: &Client, command: &SchedulesCommand) -> anyhow::Result<Value> {
    match command {
        SchedulesCommand::List => client.get(&format!("{PATH}/")).await,
        SchedulesCommand::Show { schedule_id } => {
            client.get(&format!("{PATH}/{schedule_id}/")).await
        }
        SchedulesCommand::Create {
            source,
            duration,
            at,
            cron,
            time_zone,
            title,
            profile,
        } => {
            let mut body = json!({ "source": source, "duration_seconds": duration });
            for (field, value) in [
                ("start_at", at),
                ("cron", cron),
                ("time_zone", time_zone),
                ("title", title),
                ("profile", profile),
            ] {
                if let Some(value) = value {
                    body[field] = json!(value);
                }
            }
            client.post(&format!("{PATH}/"), body).await
        }
        SchedulesCommand::Pause { schedule_id } => {
            client
                .post(&format!("{PATH}/{schedule_id}/pause/"), json!({}))
                .await
        }
        SchedulesCommand::Resume { schedule_id } => {
            client
                .post(&format!("{PATH}/{schedule_id}/resume/"), json!({}))
                .await
        }
        SchedulesCommand::Delete { schedule_id } => {
            client.delete(&format!("{PATH}/{schedule_id}/")).await
        }
    }
}

/// `08:00 Mon-Fri`-like timing as typed: the pattern and its zone, or the
/// one instant.
fn when(schedule: &Value) -> String {
    match schedule["cron"].as_str() {
        Some(cron) => format!("{cron} ({})", text(&schedule["time_zone"])),
        None => text(&schedule["start_at"]),
    }
}

fn print_schedules(schedules: &[Value]) {
    let rows: Vec<Vec<String>> = schedules
        .iter()
        .map(|s| {
            vec![
                text(&s["id"]),
                text(&s["state"]),
                when(s),
                text(&s["duration_seconds"]),
                text(&s["next_firing"]),
                text(&s["profile"]),
                text(&s["title"]),
            ]
        })
        .collect();
    print_table(
        &["ID", "STATE", "WHEN", "SECONDS", "NEXT", "PROFILE", "TITLE"],
        &rows,
    );
}

/// One schedule's fields, then its recent firings as a table.
fn print_schedule(schedule: &Value) {
    let mut fields = schedule.clone();
    let firings = fields
        .as_object_mut()
        .and_then(|map| map.remove("firings"))
        .unwrap_or(Value::Null);
    print_fields(&fields);
    let firings = firings.as_array().map(Vec::as_slice).unwrap_or_default();
    if firings.is_empty() {
        return;
    }
    println!();
    let rows: Vec<Vec<String>> = firings
        .iter()
        .map(|f| {
            vec![
                text(&f["slot_at"]),
                text(&f["outcome"]),
                text(&f["job_id"]),
                text(&f["node"]),
                text(&f["error"]),
            ]
        })
        .collect();
    print_table(&["SLOT", "OUTCOME", "JOB", "NODE", "ERROR"], &rows);
}
