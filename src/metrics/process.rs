//! The standard `process_*` metrics of this process, read from
//! `/proc/self` at each scrape (names and meanings as every Prometheus
//! client library exports them, so stock dashboards work).

use procfs::process::{LimitValue, Process};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Registered once; reads `/proc/self` whenever the registry is encoded.
#[derive(Debug)]
pub struct ProcessCollector;

/// One reading of `/proc/self`.
#[derive(Debug)]
struct Sample {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: usize,
    /// `None` when the soft limit is unlimited.
    max_fds: Option<u64>,
    start_time_seconds: f64,
    threads: i64,
}

impl Sample {
    fn read() -> procfs::ProcResult<Self> {
        let me = Process::myself()?;
        let stat = me.stat()?;
        let ticks = procfs::ticks_per_second() as f64;
        let max_fds = match me.limits()?.max_open_files.soft_limit {
            LimitValue::Value(n) => Some(n),
            LimitValue::Unlimited => None,
        };
        Ok(Self {
            cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
            resident_bytes: stat.rss * procfs::page_size(),
            virtual_bytes: stat.vsize,
            open_fds: me.fd_count()?,
            max_fds,
            // `starttime` counts clock ticks since boot.
            start_time_seconds: procfs::boot_time_secs()? as f64 + stat.starttime as f64 / ticks,
            threads: stat.num_threads,
        })
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        // A scrape without these is still worth having: say why they are
        // missing rather than fail the others.
        let sample = match Sample::read() {
            Ok(sample) => sample,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read /proc/self for the process metrics");
                return Ok(());
            }
        };
        let cpu = ConstCounter::new(sample.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        gauge(
            &mut encoder,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            sample.resident_bytes,
        )?;
        gauge(
            &mut encoder,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            sample.virtual_bytes,
        )?;
        gauge(
            &mut encoder,
            "process_open_fds",
            "Number of open file descriptors.",
            sample.open_fds,
        )?;
        if let Some(max_fds) = sample.max_fds {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max_fds,
            )?;
        }
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            sample.start_time_seconds,
        )?;
        gauge(
            &mut encoder,
            "process_threads",
            "Number of OS threads in the process.",
            sample.threads,
        )
    }
}

fn gauge<N>(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: N) -> std::fmt::Result
where
    N: prometheus_client::encoding::EncodeGaugeValue,
{
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}
