//! Where work runs: starts beyond a node's `--max-jobs` are placed on the
//! live nodes with free slots and the one too many is refused; a drained
//! node takes nothing new; with shared storage, recordings are processed by
//! every node, each once, and without it where they were recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::{node, percentile, three_nodes};
use crate::helpers::{AppOptions, Backend, TestApp};
use crate::on_both_databases;

on_both_databases!(starts_beyond_a_nodes_capacity_run_on_the_others_and_one_too_many_is_refused);

async fn starts_beyond_a_nodes_capacity_run_on_the_others_and_one_too_many_is_refused(
    backend: Backend,
) {
    let [a, b, c] = three_nodes(backend, |name| node(name, &["--max-jobs", "5"])).await;
    let mut by_node: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let (mut here, mut placed) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let began = Instant::now();
        let (status, body) = a
            .start(json!({ "source": "test://stream", "profile": "test" }))
            .await;
        let took = began.elapsed();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let job = &body["job"];
        let node = job["node"].as_str().expect("node").to_owned();
        // Answered once its node started it.
        assert_eq!(job["status"], "running", "{body}");
        assert!(job["process_id"].is_i64(), "{body}");
        if node == "node-a" {
            here.push(took);
        } else {
            placed.push(took);
        }
        by_node
            .entry(node)
            .or_default()
            .push(job["id"].as_i64().expect("id"));
    }
    let counts: Vec<usize> = by_node.values().map(Vec::len).collect();
    assert_eq!(counts, [5, 5, 5], "{by_node:?}");
    here.sort();
    placed.sort();
    println!(
        "FIGURE placement: start answered (recorder running) on the node asked: p50 {:?}, max \
         {:?}; placed on another node: p50 {:?}, max {:?}",
        percentile(&here, 50),
        percentile(&here, 100),
        percentile(&placed, 50),
        percentile(&placed, 100)
    );
    // Each node supervises what it was given.
    for (app, name) in [(&b, "node-b"), (&c, "node-c")] {
        for job_id in &by_node[name] {
            let job = app.job(*job_id).await;
            assert!(crate::helpers::process_exists(
                job["process_id"].as_i64().expect("pid") as i32
            ));
        }
    }

    // One too many, anywhere: 503 at_capacity, with when to try again.
    let too_many = a
        .client
        .post(a.url("/api/recordings/jobs/start/"))
        .json(&json!({ "source": "test://stream", "profile": "test" }))
        .send()
        .await
        .expect("POST");
    assert_eq!(too_many.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(too_many.headers()["retry-after"], "10");
    let body: serde_json::Value = too_many.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "at_capacity", "{body}");
    let (_, nodes) = c.get("/api/nodes").await;
    for node in nodes["nodes"].as_array().expect("nodes") {
        assert_eq!(node["free_slots"], 0, "{nodes}");
    }

    // A slot frees on node-b, which is draining: still nothing to be had.
    b.stop(by_node["node-b"][0]).await;
    b.wait_for_job_end(by_node["node-b"][0]).await;
    let (status, drained) = a.post("/api/nodes/node-b/drain", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{drained}");
    assert_eq!(drained["status"], "draining", "{drained}");
    let (status, body) = c
        .start(json!({ "source": "test://stream", "profile": "test" }))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // Resumed, it takes the start.
    let (status, _) = c
        .client
        .delete(c.url("/api/nodes/node-b/drain"))
        .json(&json!({}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .expect("DELETE");
    assert_eq!(status, StatusCode::OK);
    let (status, body) = c
        .start(json!({ "source": "test://stream", "profile": "test" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["job"]["node"], "node-b", "{body}");
    let (status, body) = a.get("/api/nodes/unknown/drain").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let (status, body) = a.post("/api/nodes/unknown/drain", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "node_not_found", "{body}");
}

/// Which node's post-processing counted each recording (each node's
/// profiles append to its own `processed.log`).
fn processed_by(apps: &[&TestApp], names: &[&str], ids: &[i64]) -> BTreeMap<String, Vec<i64>> {
    let mut by = BTreeMap::new();
    for (app, name) in apps.iter().zip(names) {
        let runs: Vec<i64> = ids
            .iter()
            .flat_map(|id| std::iter::repeat_n(*id, app.processing_runs(*id)))
            .collect();
        by.insert((*name).to_owned(), runs);
    }
    by
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_shared_storage_every_node_processes_and_each_recording_once() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let first = TestApp::spawn_with(
        backend.clone(),
        node(
            "node-a",
            &["--shared-storage", "--processing-concurrency", "2"],
        ),
    )
    .await;
    let shared = |name: &str| AppOptions {
        database_url: Some(first.database_url.clone()),
        data_dir: Some(first.dir.join("data")),
        ..node(name, &["--shared-storage", "--processing-concurrency", "2"])
    };
    let second = TestApp::spawn_with(backend.clone(), shared("node-b")).await;
    let third = TestApp::spawn_with(backend, shared("node-c")).await;

    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(first.start_ok("paced_step").await.1);
    }
    for id in &ids {
        let recording = first
            .wait_for_recording(*id, Duration::from_secs(60), |r| {
                matches!(r["status"].as_str(), Some("ready" | "failed"))
            })
            .await;
        assert_eq!(recording["status"], "ready", "{recording}");
        assert!(recording["processing_node"].is_string(), "{recording}");
    }
    let by = processed_by(
        &[&first, &second, &third],
        &["node-a", "node-b", "node-c"],
        &ids,
    );
    let spread: Vec<(String, usize)> = by.iter().map(|(n, r)| (n.clone(), r.len())).collect();
    println!("shared processing of 30 recordings made on node-a: {spread:?}");
    let all: Vec<i64> = by.values().flatten().copied().collect();
    assert_eq!(all.len(), 30, "each processed once: {by:?}");
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 30, "{by:?}");
    for (name, runs) in &by {
        assert!(!runs.is_empty(), "{name} processed nothing: {by:?}");
    }
}

on_both_databases!(without_shared_storage_each_recording_is_processed_where_it_was_recorded);

async fn without_shared_storage_each_recording_is_processed_where_it_was_recorded(
    backend: Backend,
) {
    let apps = three_nodes(backend, |name| node(name, &[])).await;
    let mut made: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (app, name) in apps.iter().zip(["node-a", "node-b", "node-c"]) {
        for _ in 0..3 {
            made.entry(name.to_owned())
                .or_default()
                .push(app.start_ok("paced_step").await.1);
        }
    }
    let ids: Vec<i64> = made.values().flatten().copied().collect();
    for id in &ids {
        let recording = apps[0]
            .wait_for_recording(*id, Duration::from_secs(30), |r| {
                matches!(r["status"].as_str(), Some("ready" | "failed"))
            })
            .await;
        assert_eq!(recording["status"], "ready", "{recording}");
    }
    let [a, b, c] = &apps;
    let by = processed_by(&[a, b, c], &["node-a", "node-b", "node-c"], &ids);
    assert_eq!(by, made, "processed where recorded");
}
