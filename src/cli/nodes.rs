//! `recorderd nodes …`: the nodes sharing a running server's database,
//! and draining one (for a rolling upgrade: drain, wait, restart).

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use super::args::{ClientArgs, NodesCommand};
use super::client::{Client, DEFAULT_TIMEOUT};
use super::table::{print_table, text};

pub async fn run(args: &ClientArgs, command: Option<&NodesCommand>) -> anyhow::Result<()> {
    let client = Client::new(args, DEFAULT_TIMEOUT)?;
    match command.unwrap_or(&NodesCommand::List) {
        NodesCommand::List => {
            let body = client.get("/api/nodes/").await?;
            if client.json() {
                client.print_json(&body)?;
            } else {
                print_nodes(
                    body["nodes"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                );
            }
        }
        NodesCommand::Drain {
            node_id,
            wait,
            timeout,
        } => {
            let path = format!("/api/nodes/{}/drain/", encode(node_id));
            let node = client.post(&path, json!({})).await?;
            show(&client, &node)?;
            if *wait {
                wait_until_empty(&client, node_id, Duration::from_secs(*timeout)).await?;
            }
        }
        NodesCommand::Resume { node_id } => {
            let path = format!("/api/nodes/{}/drain/", encode(node_id));
            let node = client.delete(&path).await?;
            show(&client, &node)?;
        }
    }
    Ok(())
}

fn show(client: &Client, node: &Value) -> anyhow::Result<()> {
    if client.json() {
        client.print_json(node)?;
    } else {
        print_nodes(std::slice::from_ref(node));
    }
    Ok(())
}

/// Waits until the node holds no job, saying how many are left now and
/// then.
async fn wait_until_empty(client: &Client, node_id: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut said = None;
    loop {
        let body = client.get("/api/nodes/").await?;
        let nodes = body["nodes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some(node) = nodes.iter().find(|n| n["id"] == node_id) else {
            bail!("node `{node_id}` is no longer known");
        };
        let jobs = node["jobs"].as_i64().unwrap_or(0);
        if jobs == 0 {
            eprintln!("node {node_id} holds no job");
            return Ok(());
        }
        if said != Some(jobs) {
            eprintln!("node {node_id} still holds {jobs} job(s)");
            said = Some(jobs);
        }
        if Instant::now() >= deadline {
            bail!("node `{node_id}` still holds {jobs} job(s) after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn print_nodes(nodes: &[Value]) {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let labels: Vec<String> = n["labels"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(text)
                .collect();
            vec![
                text(&n["id"]),
                text(&n["status"]),
                format!("{}/{}", text(&n["jobs"]), text(&n["max_jobs"])),
                format!(
                    "{}/{}",
                    text(&n["processing_busy"]),
                    text(&n["processing_slots"])
                ),
                text(&n["lease_held_since"]),
                labels.join(","),
                text(&n["version"]),
            ]
        })
        .collect();
    print_table(
        &[
            "NODE",
            "STATUS",
            "JOBS",
            "PROCESSING",
            "LEASE SINCE",
            "LABELS",
            "VERSION",
        ],
        &rows,
    );
}

/// Everything but RFC 3986's unreserved characters is escaped: a node id
/// is one path segment, whatever it holds.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A node id as one path segment.
fn encode(node_id: &str) -> String {
    percent_encoding::utf8_percent_encode(node_id, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn node_ids_are_one_path_segment() {
        assert_eq!(super::encode("node-a.1"), "node-a.1");
        assert_eq!(super::encode("a/b c"), "a%2Fb%20c");
    }
}
