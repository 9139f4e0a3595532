//! The benchmark harness (`examples/bench/`) at a tiny scale against the
//! debug server: it must run every workload to the end and report its
//! figures as JSON lines. The figures themselves are not judged here (a
//! debug build on a busy machine says nothing about the budget).
//!
//! Not part of a plain `cargo test`: it starts thousands of processes and
//! takes minutes of both cores. Run it with
//! `cargo test --test api bench_smoke -- --ignored`.

use std::process::Command;

use serde_json::Value;

fn run_bench(database_url: Option<&str>) {
    let _exclusive = crate::helpers::exclusive_blocking();
    let mut command = Command::new(crate::helpers::example("bench"));
    command
        .args([
            "--scale",
            "10",
            "--history",
            "200",
            "--quick",
            "--clients",
            "4",
        ])
        .arg("--server")
        .arg(crate::helpers::server_binary())
        .env_remove("RECORDERD_BENCH_DATABASE_URL");
    if let Some(url) = database_url {
        command.args(["--database-url", url]);
    }
    let output = command.output().expect("run the benchmark harness");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let figures: Vec<Value> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for figure in &figures {
        for key in [
            "workload", "figure", "value", "unit", "floor", "ratio", "target", "met",
        ] {
            assert!(figure.get(key).is_some(), "no `{key}` in {figure}");
        }
    }
    for workload in [
        "1 exit→commit",
        "2 start",
        "3 memory",
        "3 idle cost",
        "4 listing",
        "5 recovery",
        "6 exit storm",
        "7 concurrent",
    ] {
        assert!(
            figures.iter().any(|f| f["workload"] == workload),
            "no figure for workload {workload}\nstdout:\n{stdout}"
        );
    }
    // Whatever the timings, every job must have ended and been counted.
    for figure in &figures {
        let name = figure["figure"].as_str().unwrap_or_default();
        if name == "transitions committed"
            || name == "floor: transitions committed"
            || name == "active count"
            || name == "live orphans adopted"
            || name == "dead orphans left running"
        {
            assert_eq!(figure["met"], true, "{figure}\nstderr:\n{stderr}");
        }
    }
}

#[test]
#[ignore = "minutes of load: cargo test --test api bench_smoke -- --ignored"]
fn bench_harness_runs_every_workload_on_sqlite() {
    run_bench(None);
}

#[test]
#[ignore = "minutes of load: cargo test --test api bench_smoke -- --ignored"]
fn bench_harness_runs_every_workload_on_postgres() {
    if let Some(crate::helpers::Backend::Postgres(url)) = crate::helpers::Backend::postgres() {
        run_bench(Some(&url));
    }
}
