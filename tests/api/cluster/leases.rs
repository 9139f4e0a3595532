//! Life and death by lease: a node killed with its recorders is taken over
//! within two seconds, each job ended once; a paused node (its session
//! still open) keeps its jobs however long; a node whose session is cut is
//! taken over and, when it comes back, stops its recorders without writing
//! to the jobs taken; clocks minutes apart change nothing.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};
use time::OffsetDateTime;

use super::{count, events_of_job, node, pid_of, three_nodes};
use crate::helpers::{Backend, TestApp, exclusive, is_terminal, process_exists, send_signal};
use crate::on_both_databases;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_its_recorders_is_taken_over_within_two_seconds_once() {
    // Measured: nothing else runs meanwhile.
    let _alone = exclusive().await;
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let [mut a, b, c] = three_nodes(backend, |name| node(name, &[])).await;
    let (lost_1, _) = a.start_ok("test").await;
    let (lost_2, _) = a.start_ok("test").await;
    let (on_b, _) = b.start_ok("test").await;
    let (on_c, _) = c.start_ok("test").await;
    let recorders = [pid_of(&a, lost_1).await, pid_of(&a, lost_2).await];
    let others = [pid_of(&b, on_b).await, pid_of(&c, on_c).await];

    // kill -9: the node, then its recorders.
    let killed = Instant::now();
    let killed_at = OffsetDateTime::now_utc();
    send_signal(a.server_pid(), 9);
    for pid in recorders {
        send_signal(pid, 9);
    }
    a.wait_for_server_exit().await;
    let mut detected = Duration::ZERO;
    for job_id in [lost_1, lost_2] {
        let job = b
            .wait_for_job(job_id, Duration::from_secs(10), |j| {
                is_terminal(&j["status"])
            })
            .await;
        detected = detected.max(killed.elapsed());
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["end_cause"], "node_lost", "{job}");
        let completed_at = OffsetDateTime::parse(
            job["completed_at"].as_str().unwrap_or_default(),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("completed_at");
        println!(
            "lost node: job {job_id} ended {:?} after kill -9 (completed_at − kill: {})",
            killed.elapsed(),
            completed_at - killed_at
        );
    }
    println!("FIGURE time to detect a lost node and end its jobs: {detected:?}");
    assert!(
        detected < Duration::from_secs(2),
        "the lost node's jobs took {detected:?} to end"
    );
    // Exactly once: one end, by one of the two others.
    for job_id in [lost_1, lost_2] {
        assert_eq!(events_of_job(&b, "job.failed", job_id, None).await, 1);
        assert_eq!(events_of_job(&b, "job.completed", job_id, None).await, 0);
        let by_others = events_of_job(&b, "job.failed", job_id, Some("node-b")).await
            + events_of_job(&b, "job.failed", job_id, Some("node-c")).await;
        assert_eq!(by_others, 1, "ended by node-b or node-c");
    }
    // The others untouched.
    for (app, job_id) in [(&b, on_b), (&c, on_c)] {
        assert_eq!(app.job(job_id).await["status"], "running");
    }
    assert!(others.iter().all(|pid| process_exists(*pid)));
    let nodes = b.get("/api/nodes").await.1;
    let lost = nodes["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == "node-a"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(lost["status"], "lost", "{nodes}");
    assert_eq!(lost["jobs"], 0, "{nodes}");
}

/// Ends the session holding `node`'s lease, as an administrator would.
async fn cut_lease(app: &TestApp, node: &str) -> i64 {
    let db = app.db().await;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = 'recorderd lease {node}'"
            ),
        ))
        .await
        .expect("terminate")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("count")
}

/// The columns of a job's row its end wrote.
async fn end_of(app: &TestApp, job_id: i64) -> String {
    let job = app.job(job_id).await;
    format!(
        "{} {} {} {} {} {} {}",
        job["status"],
        job["end_cause"],
        job["error"],
        job["completed_at"],
        job["exit_code"],
        job["stop_signal"],
        job["lease_generation"]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_keeps_its_jobs_and_one_cut_off_is_fenced_out_when_it_returns() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let [a, b, c] = three_nodes(backend, |name| node(name, &["--node-timeout", "2"])).await;
    let (kept_1, _) = a.start_ok("test").await;
    let (kept_2, _) = a.start_ok("test").await;
    let (on_b, _) = b.start_ok("test").await;
    let recorders = [pid_of(&a, kept_1).await, pid_of(&a, kept_2).await];

    // Paused, its session open: its lease is held however long it stays
    // frozen (the wait, twice its timeout and the takeover's grace, is the
    // point); nobody ends its jobs.
    send_signal(a.server_pid(), 19);
    tokio::time::sleep(Duration::from_secs(5)).await;
    for other in [&b, &c] {
        assert_eq!(other.cleanup().await["updated_count"], 0);
    }
    for job_id in [kept_1, kept_2] {
        assert_eq!(b.job(job_id).await["status"], "running");
    }
    send_signal(a.server_pid(), 18);
    for job_id in [kept_1, kept_2] {
        assert_eq!(a.job(job_id).await["status"], "running");
    }
    assert!(recorders.iter().all(|pid| process_exists(*pid)));

    // Frozen again, and its session cut: its lease is gone, the others
    // take its jobs over.
    let generation = count(&b, "SELECT lease_generation FROM nodes WHERE id = 'node-a'").await;
    send_signal(a.server_pid(), 19);
    assert_eq!(cut_lease(&b, "node-a").await, 1, "one session held it");
    let cut = Instant::now();
    for job_id in [kept_1, kept_2] {
        let job = b
            .wait_for_job(job_id, Duration::from_secs(10), |j| {
                is_terminal(&j["status"])
            })
            .await;
        assert_eq!(job["end_cause"], "node_lost", "{job}");
        assert_eq!(job["lease_generation"], generation, "{job}");
    }
    println!(
        "cut session: node-a's jobs taken over {:?} after the cut",
        cut.elapsed()
    );
    let taken = [end_of(&b, kept_1).await, end_of(&b, kept_2).await];

    // Back, it takes a new lease, stops the recorders of the jobs it lost,
    // and writes nothing to those jobs.
    send_signal(a.server_pid(), 18);
    a.wait_for_processes_to_end(&recorders).await;
    // It may see its jobs ended (and stop their recorders) before it holds
    // its lease again: the new generation is waited for.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = generation;
    while now != generation + 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        now = count(&b, "SELECT lease_generation FROM nodes WHERE id = 'node-a'").await;
    }
    assert_eq!(now, generation + 1, "node-a took its lease again");
    // Its recorders' exits were seen by node-a; give any write they would
    // cause the time to land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        [end_of(&b, kept_1).await, end_of(&b, kept_2).await],
        taken,
        "node-a wrote to jobs taken from it"
    );
    for job_id in [kept_1, kept_2] {
        for kind in ["job.completed", "job.failed", "job.stopping"] {
            assert_eq!(
                events_of_job(&b, kind, job_id, Some("node-a")).await,
                0,
                "node-a published {kind} for job {job_id}"
            );
        }
    }
    assert!(
        a.server_log_text().contains("lost its lease"),
        "{}",
        a.server_log_text()
    );
    // node-b's job was never touched; node-a starts again under its lease.
    assert_eq!(b.job(on_b).await["status"], "running");
    let (again, _) = a.start_ok("test").await;
    assert_eq!(a.job(again).await["lease_generation"], generation + 1);
}

on_both_databases!(clocks_minutes_apart_change_nothing);

async fn clocks_minutes_apart_change_nothing(backend: Backend) {
    let offsets = [("node-a", "-300"), ("node-b", "0"), ("node-c", "300")];
    let [a, b, c] = three_nodes(backend, |name| {
        let mut options = node(name, &["--node-timeout", "2"]);
        let offset = offsets.iter().find(|(n, _)| *n == name).map(|(_, o)| *o);
        options.env = vec![(
            "RECORDERD_FAULT".to_owned(),
            format!("clock_offset={}", offset.unwrap_or("0")),
        )];
        options
    })
    .await;
    let jobs = [
        a.start_ok("test").await.0,
        b.start_ok("test").await.0,
        c.start_ok("test").await.0,
    ];
    // Longer than the node timeout: a node judged by its heartbeat's
    // time, five minutes behind, would have been lost at once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for app in [&a, &b, &c] {
        assert_eq!(app.cleanup().await["updated_count"], 0);
        let (status, nodes) = app.get("/api/nodes").await;
        assert_eq!(status, StatusCode::OK);
        let statuses: Vec<&str> = nodes["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter_map(|n| n["status"].as_str())
            .collect();
        assert_eq!(statuses, ["alive", "alive", "alive"], "{nodes}");
    }
    for job_id in jobs {
        assert_eq!(a.job(job_id).await["status"], "running");
    }
    // The offset is real: node-a's heartbeat says it is five minutes back.
    let nodes = b.get("/api/nodes").await.1;
    let seen = nodes["nodes"][0]["last_seen_at"]
        .as_str()
        .unwrap_or_default();
    let seen = OffsetDateTime::parse(seen, &time::format_description::well_known::Rfc3339)
        .expect("last_seen_at");
    assert!(
        OffsetDateTime::now_utc() - seen > time::Duration::minutes(4),
        "node-a's clock was not offset: {nodes}"
    );
    // And the cluster works as ever: a stop through another node.
    let (status, body) = c.stop(jobs[0]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ended = a.wait_for_job_end(jobs[0]).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["stop_signal"], 2, "{ended}");
}
