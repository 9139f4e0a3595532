//! Listings with the history stored and N recorders running: `active` and
//! the job list's first page, beside the read floors (the same rows read
//! through the same entity and serialized, no HTTP), and an HTTP round
//! trip that reads nothing (`/healthz`) for context.

use anyhow::Result;

use crate::api::{active_count, time_gets};
use crate::args::Ctx;
use crate::floors;
use crate::report::{Better, Figure, Report, Target};
use crate::server::Server;

pub async fn run(ctx: &Ctx, server: &Server, report: &mut Report) -> Result<()> {
    crate::phase("4: listing");
    let n = ctx.n();
    let requests = ctx.requests();
    let stored = ctx.history() + n;
    report.add(
        "4 listing",
        "active count",
        active_count(ctx, server).await?,
        "jobs",
        Some(Target::Exactly(n as f64)),
    );
    let (_, active_floor, page_floor) = floors::reads(ctx, requests).await?;
    let healthz = time_gets(ctx, server, "/healthz", requests).await?;
    report.push(Figure::new(
        "4 listing",
        "GET /healthz p99 (an HTTP round trip, context)",
        healthz.p99(),
        "ms",
    ));
    for (name, path, floor) in [
        (
            "GET jobs/active/",
            "/api/recordings/jobs/active/",
            &active_floor,
        ),
        (
            "GET jobs/?page_size=50",
            "/api/recordings/jobs/?page_size=50",
            &page_floor,
        ),
    ] {
        let times = time_gets(ctx, server, path, requests).await?;
        report.push(
            Figure::new(
                "4 listing",
                format!("{name} p50 ({stored} stored, {n} running)"),
                times.p50(),
                "ms",
            )
            .floor(floor.p50(), Better::Lower),
        );
        report.push(
            Figure::new("4 listing", format!("{name} p99"), times.p99(), "ms")
                .target(Target::AtMost(3.0))
                .floor(floor.p99(), Better::Lower),
        );
    }
    Ok(())
}
