//! `/metrics`: a valid Prometheus exposition whose counters move as jobs
//! run.

use std::collections::HashMap;

use crate::helpers::{Backend, TestApp};
use crate::on_both_databases;

on_both_databases!(metrics_parse_and_move_as_jobs_run);

/// Parses the text format strictly: every sample line is `name{labels}
/// value` with a numeric value, every family announced by HELP and TYPE.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().expect("TYPE has a name");
            let kind = parts.next().expect("TYPE has a kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            if kind == "counter" {
                assert!(
                    name.ends_with("_total") && !name.ends_with("_total_total"),
                    "{line}"
                );
            }
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| typed.contains(*base))
            .unwrap_or(name);
        assert!(typed.contains(family), "sample before its TYPE: {line}");
        if series.contains('{') {
            assert!(series.ends_with('}'), "unclosed labels: {line}");
        }
        samples.insert(series.to_owned(), value);
    }
    samples
}

async fn metrics_parse_and_move_as_jobs_run(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let scrape = || async {
        let response = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        parse(&response.text().await.expect("body"))
    };
    let before = scrape().await;
    assert_eq!(before.get("recorderd_spawn_failures_total"), Some(&0.0));
    assert!(!before.contains_key("recorderd_transitions_total{kind=\"job.completed\"}"));

    let (job_id, recording_id) = app.start_ok("short").await;
    app.wait_for_job_end(job_id).await;
    app.wait_for_recording_settled(recording_id).await;
    let _ = app
        .start(serde_json::json!({ "source": "test://x", "profile": "missing" }))
        .await;
    // A method of the client's invention is counted, under `other`.
    let brew = reqwest::Method::from_bytes(b"BREW").expect("a valid method token");
    let response = app
        .client
        .request(brew, app.url("/api/recordings/jobs/"))
        .send()
        .await
        .expect("BREW /api/recordings/jobs/");
    assert_eq!(response.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);

    let after = scrape().await;
    let get = |key: &str| {
        after
            .get(key)
            .copied()
            .unwrap_or_else(|| panic!("no {key} in {after:#?}"))
    };
    assert_eq!(
        get("recorderd_transitions_total{kind=\"job.started\"}"),
        1.0
    );
    assert_eq!(
        get("recorderd_transitions_total{kind=\"job.completed\"}"),
        1.0
    );
    assert_eq!(
        get("recorderd_transitions_total{kind=\"recording.ready\"}"),
        1.0
    );
    assert_eq!(get("recorderd_spawn_failures_total"), 1.0);
    assert_eq!(get("recorderd_jobs{status=\"completed\"}"), 1.0);
    assert_eq!(get("recorderd_jobs{status=\"failed\"}"), 1.0);
    assert!(get("recorderd_exit_commit_seconds_count") >= 1.0);
    assert!(
        get(
            "recorderd_processing_step_seconds_count{step=\"post-processing-1\",outcome=\"succeeded\"}"
        ) >= 1.0
    );
    // Routed after the trailing slash is trimmed: one route, one series.
    assert!(
        get(
            "recorderd_http_request_seconds_count{method=\"POST\",route=\"/api/recordings/jobs/start\",status=\"201\"}"
        ) >= 1.0
    );
    assert!(
        !after
            .keys()
            .any(|k| k.contains("route=\"/api/recordings/jobs/start/\"")),
        "{after:#?}"
    );
    assert_eq!(
        get(
            "recorderd_http_request_seconds_count{method=\"other\",route=\"/api/recordings/jobs\",status=\"405\"}"
        ),
        1.0
    );
    assert!(!after.keys().any(|k| k.contains("BREW")), "{after:#?}");

    // The server's own process, not the test's.
    assert!(get("process_resident_memory_bytes") > 1024.0 * 1024.0);
    assert!(get("process_virtual_memory_bytes") >= get("process_resident_memory_bytes"));
    assert!(get("process_open_fds") >= 3.0);
    assert!(get("process_max_fds") >= get("process_open_fds"));
    assert!(get("process_cpu_seconds_total") > 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64();
    let started = get("process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 300.0,
        "the server started at {started}, now is {now}"
    );
}
