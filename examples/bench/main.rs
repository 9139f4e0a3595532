//! The benchmark harness ("Benchmarks and the performance budget"): starts
//! the real server binary on port 0 with a fresh data directory and
//! database, drives it over HTTP like a client, with real recorder
//! processes (`examples/test_recorder.rs`), and prints each figure beside
//! its target and, where the machine sets one, beside its floor measured
//! in the same run (`floors`): a table, and one JSON line per figure.
//!
//! ```text
//! bench [--scale N] [--history N] [--quick] [--clients N] [--server PATH]
//!       [--recorder PATH] [--database-url URL] [--keep]
//! ```
//!
//! `cargo bench --bench harness` builds the release binaries and runs this
//! with the arguments after `--` (see `benches/harness.rs`); BENCHMARKS.md
//! explains each workload and records the figures of a run.

mod api;
mod args;
mod floors;
mod report;
mod seed;
mod server;
mod workloads;

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use clap::Parser;

use crate::args::{Args, Backend, Ctx};
use crate::report::{Report, ms};
use crate::seed::Rows;
use crate::server::Server;

fn phase(text: &str) {
    eprintln!("bench: {text}");
}

/// Creates the schema with `recorderd migrate` and stores the history.
async fn prepare(ctx: &Ctx) -> Result<()> {
    let history = ctx.history();
    phase(&format!("migrating and storing {history} ended jobs"));
    let migrate = Command::new(&ctx.server_bin)
        .arg("migrate")
        .arg("--data-dir")
        .arg(ctx.dir.join("data"))
        .args(["--database-url", &ctx.database_url])
        .env("RUST_LOG", "warn")
        .output()
        .context("running recorderd migrate")?;
    ensure!(
        migrate.status.success(),
        "recorderd migrate failed: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    seed::insert_rows(ctx, history, Rows::History).await
}

async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    prepare(ctx).await?;
    let server = Server::start(ctx)?;
    report.add(
        "5 recovery",
        format!(
            "start → listening, nothing to recover ({} ended jobs stored)",
            ctx.history()
        ),
        ms(server.listening_after),
        "ms",
        None,
    );
    workloads::memory::idle(ctx, &server, report).await?;
    let batch = workloads::start::throughput(ctx, &server, report).await?;
    workloads::memory::running(ctx, &server, &batch, report).await?;
    workloads::listing::run(ctx, &server, report).await?;
    workloads::exits::staggered(ctx, &server, &batch, report).await?;
    workloads::exits::storm(ctx, &server, report).await?;
    workloads::concurrent::run(ctx, &server, report).await?;
    workloads::recovery::live_orphans(ctx, server, report).await?;
    workloads::recovery::dead_orphans(ctx, report).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match setup_and_run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: failed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn setup_and_run(args: Args) -> Result<()> {
    ensure!(args.scale > 0, "--scale must be at least 1");
    // The server (a child of this process) inherits the limit: thousands of
    // recorders mean thousands of pidfds and log files.
    let open_files = server::raise_open_file_limit();
    let name = testkit::unique_name();
    let dir = std::env::temp_dir().join(format!("recorderd-bench-{name}"));
    std::fs::create_dir_all(dir.join("history")).context("creating the bench directory")?;
    let (database_url, backend) = match args.database_url.as_deref().filter(|u| !u.is_empty()) {
        Some(admin) => {
            let db_name = format!("recorderd_bench_{name}");
            let url = testkit::postgres::create_database(admin, &db_name)
                .await
                .context("creating the benchmark database")?;
            (
                url,
                Backend::Postgres {
                    name: db_name,
                    admin: admin.to_owned(),
                },
            )
        }
        None => (
            format!("sqlite://{}/bench.db?mode=rwc", dir.display()),
            Backend::Sqlite,
        ),
    };
    // reqwest's TLS (which the server's webhooks use) needs its provider
    // installed before any client is built, even a plain-HTTP one.
    recorderd::tls::install_crypto_provider();
    let ctx = Ctx::new(args, dir, database_url, backend)?;
    std::fs::write(ctx.dir.join("profiles.toml"), ctx.profiles_toml())
        .context("writing the profiles")?;
    eprintln!(
        "bench: scale {} ({} ended jobs stored, {} concurrent), {}, {} cores, open files {open_files}, server {}, data in {}",
        ctx.n(),
        ctx.history(),
        ctx.concurrent(),
        ctx.backend_name(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        ctx.server_bin.display(),
        ctx.dir.display()
    );
    let began = Instant::now();
    let mut report = Report::default();
    let result = run(&ctx, &mut report).await;
    let killed = ctx.kill_leftover_recorders();
    if killed > 0 {
        eprintln!("bench: killed {killed} leftover recorder(s)");
    }
    println!();
    print!("{}", report.table());
    eprintln!("bench: done in {:.1} s", began.elapsed().as_secs_f64());
    if let Backend::Postgres { name, admin } = &ctx.backend {
        testkit::postgres::drop_database(admin, name).await;
    }
    if result.is_ok() && !ctx.args.keep {
        let _ = std::fs::remove_dir_all(&ctx.dir);
    } else {
        eprintln!("bench: files kept in {}", ctx.dir.display());
    }
    result
}
