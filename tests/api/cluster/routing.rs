//! Requests sent to a node that does not hold what they are about: a stop
//! of another node's job takes effect within milliseconds (the owner is
//! woken, not polling), and a recording's file is served with ranges
//! through a node that does not have it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;

use super::{node, percentile, three_nodes};
use crate::helpers::{Backend, TestApp, exclusive};
use crate::on_both_databases;

/// Nanoseconds since the epoch, as the test recorder writes them.
fn epoch_ns(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Stops each job through `via` one after the other; returns how long each
/// took to take effect: from the request being sent to its recorder
/// handling the signal (it writes the time, beside its output, as it
/// exits).
async fn stop_latencies(via: &TestApp, jobs: &[(i64, PathBuf)]) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(jobs.len());
    for (job_id, output) in jobs {
        let stamp = PathBuf::from(format!("{}.exited", output.display()));
        let sent = SystemTime::now();
        let (status, body) = via.stop(*job_id).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ended_ns = via
            .wait_until(
                "the recorder handling its stop",
                Duration::from_secs(10),
                || {
                    std::fs::read_to_string(&stamp)
                        .ok()
                        .and_then(|t| t.trim().parse::<u128>().ok())
                        .ok_or_else(|| format!("{} not written", stamp.display()))
                },
            )
            .await;
        let ns = ended_ns.saturating_sub(epoch_ns(sent));
        latencies.push(Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)));
    }
    latencies.sort();
    latencies
}

/// Starts `n` recorders on `app` that record until stopped, each writing
/// already (so a stop is one they handle); returns each job with its
/// output.
async fn recording_jobs(app: &TestApp, n: usize) -> Vec<(i64, PathBuf)> {
    let mut jobs = Vec::with_capacity(n);
    for _ in 0..n {
        let (job_id, recording_id) = app.start_ok("stamped").await;
        let recording = app.recording(recording_id).await;
        let output = PathBuf::from(recording["output_path"].as_str().unwrap_or_default());
        jobs.push((job_id, output));
    }
    for (job_id, _) in &jobs {
        let recording_id = app.job(*job_id).await["recording_id"]
            .as_i64()
            .expect("recording id");
        app.wait_for_recorder_output(recording_id).await;
    }
    jobs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_sent_to_another_node_take_effect_within_milliseconds() {
    let _alone = exclusive().await;
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let [a, b, _c] = three_nodes(backend, |name| node(name, &["--max-jobs", "200"])).await;
    let routed = recording_jobs(&a, 100).await;
    let direct = recording_jobs(&a, 20).await;

    let through_b = stop_latencies(&b, &routed).await;
    let through_a = stop_latencies(&a, &direct).await;
    let (p50, p99, max) = (
        percentile(&through_b, 50),
        percentile(&through_b, 99),
        percentile(&through_b, 100),
    );
    println!(
        "FIGURE stop routing: {} stops sent to another node: p50 {p50:?}, p99 {p99:?}, max \
         {max:?}; {} sent to the owner: p50 {:?}, p99 {:?}",
        through_b.len(),
        through_a.len(),
        percentile(&through_a, 50),
        percentile(&through_a, 99)
    );
    // The aim is a p99 under 50 ms (printed above, and in BENCHMARKS.md).
    // What is asserted is that stops are carried by the message, not found
    // by the owner's safety-net look every five seconds (which would put
    // the median near 2.5 s): bounds a machine busy with other builds,
    // where even stops sent to the owner take a few hundred ms, still
    // meets.
    assert!(
        p50 < Duration::from_secs(1) && p99 < Duration::from_millis(2500),
        "stops through another node: p50 {p50:?}, p99 {p99:?}"
    );
    for (job_id, _) in routed.iter().chain(&direct) {
        let job = a.wait_for_job_end(*job_id).await;
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["stop_signal"], 2, "{job}");
    }
}

on_both_databases!(a_range_of_a_file_read_through_a_node_without_it_is_the_files_bytes);

async fn a_range_of_a_file_read_through_a_node_without_it_is_the_files_bytes(backend: Backend) {
    let [a, b, c] = three_nodes(backend, |name| node(name, &[])).await;
    let (job_id, recording_id) = a.start_ok("short").await;
    a.wait_for_recording(recording_id, Duration::from_secs(15), |r| {
        r["status"] == "ready"
    })
    .await;
    let recording = a.recording(recording_id).await;
    let file = std::fs::read(recording["output_path"].as_str().unwrap_or_default())
        .expect("node-a's file");
    assert!(file.len() >= 30, "the recorder wrote a few lines");
    let media = b.url(&format!("/api/recordings/{recording_id}/media"));

    // A range: exactly those bytes, said to be a part of the whole.
    let response = b
        .client
        .get(&media)
        .header("range", "bytes=5-24")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let headers = response.headers().clone();
    assert_eq!(headers["x-recorderd-node"], "node-a");
    assert_eq!(
        headers["content-range"],
        format!("bytes 5-24/{}", file.len()).as_str()
    );
    let body = response.bytes().await.expect("body");
    assert_eq!(&body[..], &file[5..25]);

    // The last bytes, and the whole file, through the third node.
    let response = c
        .client
        .get(c.url(&format!("/api/recordings/{recording_id}/media")))
        .header("range", "bytes=-10")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        &response.bytes().await.expect("body")[..],
        &file[file.len() - 10..]
    );
    let whole = b.client.get(&media).send().await.expect("GET");
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(&whole.bytes().await.expect("body")[..], &file[..]);

    // A range past the end is refused as the owner refuses it.
    let response = b
        .client
        .get(&media)
        .header("range", format!("bytes={}-", file.len() + 10))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // The recorder's log, read through another node, is node-a's.
    let log = format!("/api/recordings/jobs/{job_id}/log/");
    let (status, here) = a.get(&log).await;
    assert_eq!(status, StatusCode::OK);
    let (status, there) = c.get(&log).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(here, there);
}

on_both_databases!(a_recording_deleted_through_another_node_loses_its_files_there);

/// The files of a recording deleted through another node are removed by
/// the node that holds them: at once while it runs, and as it returns when
/// it was down. Nothing else is removed.
async fn a_recording_deleted_through_another_node_loses_its_files_there(backend: Backend) {
    let [mut a, b, _c] = three_nodes(backend, |name| node(name, &[])).await;
    let mut recordings = Vec::new();
    for _ in 0..3 {
        let (_, recording_id) = a.start_ok("short").await;
        let ready = a
            .wait_for_recording(recording_id, Duration::from_secs(15), |r| {
                r["status"] == "ready"
            })
            .await;
        let output = PathBuf::from(ready["output_path"].as_str().unwrap_or_default());
        assert!(output.exists(), "{} written", output.display());
        recordings.push((recording_id, output));
    }
    let delete_through_b = async |recording_id: i64| {
        let response = b
            .client
            .delete(b.url(&format!("/api/recordings/{recording_id}")))
            .header("content-type", "application/json")
            .send()
            .await
            .expect("DELETE");
        assert_eq!(response.status(), StatusCode::OK);
    };
    let gone = |output: &PathBuf| {
        if output.exists() {
            Err(format!("{} still there", output.display()))
        } else {
            Ok(())
        }
    };

    // node-a runs: it hears of the deletion and removes the file.
    let (deleted, output) = &recordings[0];
    delete_through_b(*deleted).await;
    a.wait_until("node-a removing the file", Duration::from_secs(10), || {
        gone(output)
    })
    .await;

    // node-a is down: the file waits for it, and goes as it returns.
    a.signal_server(libc::SIGTERM).await;
    let (deleted, output) = &recordings[1];
    delete_through_b(*deleted).await;
    assert!(output.exists(), "no node but node-a removes its files");
    a.start_server().await;
    a.wait_until(
        "node-a removing the file on its return",
        Duration::from_secs(10),
        || gone(output),
    )
    .await;

    let (kept, output) = &recordings[2];
    assert!(output.exists(), "recording {kept}'s file is still there");
    let (status, _) = a.get(&format!("/api/recordings/{kept}")).await;
    assert_eq!(status, StatusCode::OK);
}
