//! Exit → committed transition: N recorders ending at staggered times,
//! then N ending in one storm, each beside the exit floor (the harness's
//! own recorders seen through pidfds and committed by one writer).

use std::time::Duration;

use anyhow::Result;
use testkit::process::Signal;

use crate::api::{Delays, Started, exit_delays, start_batch, wait_none_running};
use crate::args::Ctx;
use crate::floors::{self, Ending};
use crate::report::{Better, Figure, Latencies, Report, Target};
use crate::server::Server;
use crate::workloads::memory::report_footprint;

/// How an exit figure is judged: the p99 at most `p99` ms (plus the
/// recorders' own exit spread when `beyond_spread`), and at most
/// `max_ratio` times the floor's p99.
struct ExitTarget {
    p99: f64,
    beyond_spread: bool,
    max_ratio: Option<f64>,
}

fn report_delays(
    report: &mut Report,
    workload: &'static str,
    n: usize,
    d: &Delays,
    floor: &Delays,
    commits: &Latencies,
    target: ExitTarget,
) {
    report.add(
        workload,
        "transitions committed",
        d.ended as f64,
        "jobs",
        Some(Target::Exactly(n as f64)),
    );
    report.push(
        Figure::new(workload, "recorders' exit spread", d.exit_spread_ms, "ms")
            .floor(floor.exit_spread_ms, Better::Lower),
    );
    report.push(
        Figure::new(workload, "delay p50", d.delays.p50(), "ms")
            .floor(floor.delays.p50(), Better::Lower),
    );
    let limit = if target.beyond_spread {
        target.p99 + d.exit_spread_ms
    } else {
        target.p99
    };
    let mut p99 = Figure::new(workload, "delay p99", d.delays.p99(), "ms")
        .target(Target::AtMost(limit))
        .floor(floor.delays.p99(), Better::Lower);
    if let Some(ratio) = target.max_ratio {
        p99 = p99.max_ratio(ratio);
    }
    report.push(p99);
    report.push(
        Figure::new(workload, "delay max", d.delays.max(), "ms")
            .floor(floor.delays.max(), Better::Lower),
    );
    report.add(
        workload,
        "floor: transitions committed",
        floor.ended as f64,
        "jobs",
        Some(Target::Exactly(n as f64)),
    );
    report.add(
        workload,
        "floor: one commit p99 (context)",
        commits.p99(),
        "ms",
        None,
    );
}

/// The running batch ends one recorder at a time over the stagger window.
pub async fn staggered(
    ctx: &Ctx,
    server: &Server,
    batch: &[Started],
    report: &mut Report,
) -> Result<()> {
    let n = batch.len();
    let spread = ctx.stagger();
    crate::phase(&format!(
        "1: {n} recorders ending over {} ms",
        spread.as_millis()
    ));
    let began = tokio::time::Instant::now();
    for (i, s) in batch.iter().enumerate() {
        tokio::time::sleep_until(began + spread.mul_f64(i as f64 / n as f64)).await;
        s.signal(Signal::INT);
    }
    if !wait_none_running(ctx, server, Duration::from_secs(60)).await? {
        crate::phase("1: some jobs were still running after 60 s");
    }
    let delays = exit_delays(ctx, server, batch).await?;
    crate::phase("1: the floor, the same exits");
    let (floor, commits) = floors::exits(ctx, n, Ending::Staggered(spread), "staggered").await?;
    let target = if ctx.is_postgres() {
        ExitTarget {
            p99: 5.0,
            beyond_spread: false,
            max_ratio: None,
        }
    } else {
        ExitTarget {
            p99: 2.0,
            beyond_spread: false,
            max_ratio: Some(3.0),
        }
    };
    report_delays(
        report,
        "1 exit→commit",
        n,
        &delays,
        &floor,
        &commits,
        target,
    );
    Ok(())
}

/// N recorders (the footprint taken with a fifth of them running) all
/// signalled in one loop.
pub async fn storm(ctx: &Ctx, server: &Server, report: &mut Report) -> Result<()> {
    let n = ctx.n();
    let some = (n / 5).max(1);
    crate::phase(&format!("6: starting {n} recorders for the exit storm"));
    let mut batch = start_batch(ctx, server, n, some).await?.started;
    tokio::time::sleep(Duration::from_secs(2)).await;
    report_footprint(report, "3 memory", server.pid, some)?;
    batch.extend(start_batch(ctx, server, n + some, n - some).await?.started);
    tokio::time::sleep(Duration::from_secs(1)).await;
    crate::phase("6: exit storm");
    let began = std::time::Instant::now();
    for s in &batch {
        s.signal(Signal::INT);
    }
    let signalled_in = began.elapsed();
    let all_ended = wait_none_running(ctx, server, Duration::from_secs(60)).await?;
    let storm_wall = began.elapsed();
    if !all_ended {
        crate::phase("6: some jobs were still running after 60 s");
    }
    let delays = exit_delays(ctx, server, &batch).await?;
    report.add(
        "6 exit storm",
        format!("time to signal all {n}"),
        crate::report::ms(signalled_in),
        "ms",
        None,
    );
    report.add(
        "6 exit storm",
        "signal → none running (seen by polling, 50 ms)",
        crate::report::ms(storm_wall),
        "ms",
        None,
    );
    crate::phase("6: the floor, the same storm");
    let (floor, commits) = floors::exits(ctx, n, Ending::Storm, "storm").await?;
    let target = ExitTarget {
        p99: 20.0,
        beyond_spread: true,
        max_ratio: None,
    };
    report_delays(report, "6 exit storm", n, &delays, &floor, &commits, target);
    Ok(())
}
