//! Memory (`/proc/<pid>/smaps_rollup`) idle and with recorders, and the
//! server's CPU with idle recorders.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::api::{Started, get_json};
use crate::args::Ctx;
use crate::report::{Figure, Report, Target};
use crate::server::{Footprint, Server, cpu_ticks};

/// The budget for the server's RSS with `recorders` running (MiB): 12
/// idle, 16 with up to 200, 24 with up to 1,000, 64 beyond.
pub fn rss_target(recorders: usize) -> f64 {
    match recorders {
        0 => 12.0,
        1..=200 => 16.0,
        201..=1000 => 24.0,
        _ => 64.0,
    }
}

/// Reports the server's footprint with `recorders` running: RSS against
/// its budget, and where it is (anonymous, file-backed, threads).
pub fn report_footprint(
    report: &mut Report,
    workload: &'static str,
    pid: i32,
    recorders: usize,
) -> Result<Footprint> {
    let f = Footprint::of(pid)?;
    let with = if recorders == 0 {
        "idle".to_owned()
    } else {
        format!("with {recorders} recorders")
    };
    report.push(
        Figure::new(
            workload,
            format!("server RSS {with}"),
            f.rss as f64 / 1024.0,
            "MiB",
        )
        .target(Target::AtMost(rss_target(recorders))),
    );
    report.add(
        workload,
        format!("  of which anonymous (heap, stacks) {with}"),
        f.anonymous as f64 / 1024.0,
        "MiB",
        None,
    );
    report.add(
        workload,
        format!("  of which file-backed (binary, libraries) {with}"),
        f.file_backed as f64 / 1024.0,
        "MiB",
        None,
    );
    report.add(
        workload,
        format!("threads {with}"),
        f.threads as f64,
        "threads",
        None,
    );
    Ok(f)
}

/// The idle server's footprint, after a few requests.
pub async fn idle(ctx: &Ctx, server: &Server, report: &mut Report) -> Result<()> {
    for _ in 0..20 {
        get_json(ctx, &server.url("/healthz")).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    report_footprint(report, "3 memory", server.pid, 0)?;
    Ok(())
}

/// Footprint with the batch running, and the server's CPU over a window in
/// which the recorders only record.
pub async fn running(
    ctx: &Ctx,
    server: &Server,
    batch: &[Started],
    report: &mut Report,
) -> Result<()> {
    crate::phase("3: memory and idle CPU");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = batch.len();
    report_footprint(report, "3 memory", server.pid, n)?;
    let window = Duration::from_secs(if ctx.args.quick { 3 } else { 10 });
    let recorder_ticks =
        |batch: &[Started]| -> u64 { batch.iter().filter_map(|s| cpu_ticks(s.pid)).sum::<u64>() };
    let server_before = cpu_ticks(server.pid).context("reading the server's CPU time")?;
    let recorders_before = recorder_ticks(batch);
    let began = Instant::now();
    tokio::time::sleep(window).await;
    let server_after = cpu_ticks(server.pid).context("reading the server's CPU time")?;
    let recorders_after = recorder_ticks(batch);
    let seconds = began.elapsed().as_secs_f64();
    let cpu_pct = |ticks: u64| -> f64 { ticks as f64 / ctx.clk_tck / seconds * 100.0 };
    report.add(
        "3 idle cost",
        format!("server CPU with {n} idle recorders ({}s)", window.as_secs()),
        cpu_pct(server_after.saturating_sub(server_before)),
        "% of a core",
        Some(Target::Below(0.5)),
    );
    report.add(
        "3 idle cost",
        format!("the {n} test recorders' own CPU (context)"),
        cpu_pct(recorders_after.saturating_sub(recorders_before)),
        "% of a core",
        None,
    );
    Ok(())
}
