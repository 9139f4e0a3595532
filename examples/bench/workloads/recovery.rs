//! Recovery: live recorders adopted after the server is SIGKILLed and
//! started again, and dead orphans (`running` rows whose PIDs name no
//! process) ended by start-up reconciliation before the server listens.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use testkit::process::is_alive_as;

use crate::api::{active_count, count_with_status, start_batch};
use crate::args::Ctx;
use crate::report::{Report, Target, ms};
use crate::seed::{self, Rows};
use crate::server::Server;

pub async fn live_orphans(ctx: &Ctx, mut server: Server, report: &mut Report) -> Result<()> {
    let n = ctx.n();
    crate::phase(&format!(
        "5: {n} live recorders, SIGKILL the server, restart"
    ));
    let batch = start_batch(ctx, &server, 20 * n, n).await?.started;
    server.kill();
    let mut server = Server::start(ctx)?;
    let listening = server.listening_after;
    let mut adopted = 0.0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        adopted = active_count(ctx, &server).await?;
        if adopted == n as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_active = server.spawned_at.elapsed();
    report.add(
        "5 recovery",
        format!("{n} live orphans: start → listening"),
        ms(listening),
        "ms",
        None,
    );
    report.add(
        "5 recovery",
        format!("{n} live orphans: start → active count = {n}"),
        ms(all_active),
        "ms",
        None,
    );
    report.add(
        "5 recovery",
        "live orphans adopted",
        adopted,
        "jobs",
        Some(Target::Exactly(n as f64)),
    );
    let alive = batch
        .iter()
        .filter(|s| is_alive_as(s.pid, s.start_time))
        .count();
    report.add(
        "5 recovery",
        "adopted recorders still alive (none signalled)",
        alive as f64,
        "processes",
        Some(Target::Exactly(n as f64)),
    );
    crate::phase("5: stopping the server (it stops the adopted recorders)");
    server.terminate(Duration::from_secs(90)).await
}

pub async fn dead_orphans(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let orphans = ctx.orphans();
    crate::phase(&format!("5: {orphans} running jobs whose process is gone"));
    let pids = seed::dead_pids(64);
    ensure!(!pids.is_empty(), "no free PID found");
    seed::insert_rows(ctx, orphans, Rows::DeadOrphans(&pids)).await?;
    let mut server = Server::start(ctx)?;
    report.add(
        "5 recovery",
        format!("{orphans} dead orphans: start → listening, all ended"),
        ms(server.listening_after),
        "ms",
        Some(Target::AtMost(300.0)),
    );
    let still_running = count_with_status(ctx, &server, "running").await?;
    report.add(
        "5 recovery",
        "dead orphans left running",
        still_running as f64,
        "jobs",
        Some(Target::Exactly(0.0)),
    );
    server.terminate(Duration::from_secs(60)).await
}
