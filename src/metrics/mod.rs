//! Prometheus metrics: one registry of typed metric families, rendered in
//! the text exposition format (0.0.4) at `/metrics`, with this process's
//! `process_*` metrics and the job and recording counts read at scrape time.
//!
//! Call sites use the typed methods of [`Metrics`]; the names, help texts
//! and label sets live here only.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, prometheus_text,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod process;
mod scraped;

pub use scraped::ScrapedCounts;

/// The `Content-Type` of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of `recorderd_exit_commit_seconds`: a commit is
/// one database transaction, so from 100 µs (SQLite in memory) to seconds
/// (a loaded PostgreSQL).
const EXIT_COMMIT_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Upper bounds (seconds) of `recorderd_http_request_seconds`: from a probe
/// answered in a millisecond to a large listing or log under load.
const HTTP_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds (seconds) of `recorderd_processing_step_seconds`: steps run
/// external programs (analysis, transcoding, transcription) for up to their
/// timeout, 600 s by default and longer when configured.
const STEP_BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0,
];

/// How a processing step attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepOutcome {
    Succeeded,
    Failed,
}

/// What became of one webhook delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    Delivered,
    /// Failed; another attempt follows.
    Retried,
    /// Failed, and it was the last attempt.
    GivenUp,
}

/// The method label of request latencies. Any client, authenticated or
/// not, picks the method: mapping it to a fixed set keeps an unknown one
/// from adding a series of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestMethod {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Other,
}

impl From<&Method> for RequestMethod {
    fn from(method: &Method) -> Self {
        match *method {
            Method::GET => Self::Get,
            Method::HEAD => Self::Head,
            Method::POST => Self::Post,
            Method::PUT => Self::Put,
            Method::DELETE => Self::Delete,
            Method::PATCH => Self::Patch,
            Method::OPTIONS => Self::Options,
            _ => Self::Other,
        }
    }
}

/// Label values spelled as the exposition has always spelled them (the
/// derive would write the variants' Rust names).
macro_rules! label_values {
    ($($type:ty { $($variant:ident => $text:literal),* $(,)? })*) => {$(
        impl EncodeLabelValue for $type {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
                use std::fmt::Write;
                encoder.write_str(match self { $(Self::$variant => $text),* })
            }
        }
    )*};
}

label_values! {
    StepOutcome { Succeeded => "succeeded", Failed => "failed" }
    DeliveryOutcome { Delivered => "delivered", Retried => "retried", GivenUp => "given_up" }
    RequestMethod {
        Get => "GET", Head => "HEAD", Post => "POST", Put => "PUT", Delete => "DELETE",
        Patch => "PATCH", Options => "OPTIONS", Other => "other",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TransitionLabels {
    kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StopLabels {
    final_signal: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StepLabels {
    step: String,
    outcome: StepOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StepFailureLabels {
    step: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeliveryLabels {
    outcome: DeliveryOutcome,
}

/// Bounded on every axis: the route is the matched pattern (or
/// `unmatched`), never the raw path, so ids and probes of unknown paths add
/// no series; methods are a fixed set; statuses are few.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: RequestMethod,
    route: String,
    status: u16,
}

/// A histogram family builds each new series with its own buckets.
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric recorderd keeps. The families are handles into the one
/// registry, which is only read once built, so no lock is needed here.
pub struct Metrics {
    registry: Registry,
    transitions: Family<TransitionLabels, Counter>,
    spawn_failures: Counter,
    stops: Family<StopLabels, Counter>,
    exit_commit: Histogram,
    step_seconds: HistogramFamily<StepLabels>,
    step_failures: Family<StepFailureLabels, Counter>,
    webhook_deliveries: Family<DeliveryLabels, Counter>,
    webhook_events_missed: Counter,
    http_requests: HistogramFamily<RequestLabels>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        // The registry appends `_total` to counters and a full stop to help
        // texts: both are left out here.
        let transitions = Family::default();
        registry.register(
            "recorderd_transitions",
            "Job and recording transitions, by kind",
            transitions.clone(),
        );
        let spawn_failures = Counter::default();
        registry.register(
            "recorderd_spawn_failures",
            "Recorders that could not be started",
            spawn_failures.clone(),
        );
        let stops = Family::default();
        registry.register(
            "recorderd_stops",
            "Recorders ended by a stop sequence, by the last signal it needed",
            stops.clone(),
        );
        let exit_commit = Histogram::new(EXIT_COMMIT_BUCKETS);
        registry.register(
            "recorderd_exit_commit_seconds",
            "From a recorder's exit being observed to its transition committed",
            exit_commit.clone(),
        );
        let step_seconds: HistogramFamily<StepLabels> =
            Family::new_with_constructor(|| Histogram::new(STEP_BUCKETS));
        registry.register(
            "recorderd_processing_step_seconds",
            "Duration of processing step attempts, by step and outcome",
            step_seconds.clone(),
        );
        let step_failures = Family::default();
        registry.register(
            "recorderd_processing_step_failures",
            "Failed processing step attempts, by step",
            step_failures.clone(),
        );
        let webhook_deliveries = Family::default();
        registry.register(
            "recorderd_webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered, retried, given_up)",
            webhook_deliveries.clone(),
        );
        let webhook_events_missed = Counter::default();
        registry.register(
            "recorderd_webhook_events_missed",
            "Events pruned from the log before a webhook receiver got them, as its events.gap deliveries reported",
            webhook_events_missed.clone(),
        );
        let http_requests: HistogramFamily<RequestLabels> =
            Family::new_with_constructor(|| Histogram::new(HTTP_BUCKETS));
        registry.register(
            "recorderd_http_request_seconds",
            "HTTP request latency, by method, route and status",
            http_requests.clone(),
        );
        registry.register_collector(Box::new(process::ProcessCollector));
        Self {
            registry,
            transitions,
            spawn_failures,
            stops,
            exit_commit,
            step_seconds,
            step_failures,
            webhook_deliveries,
            webhook_events_missed,
            http_requests,
        }
    }
}

impl Metrics {
    /// A job or recording changed state; `kind` as in the event stream
    /// (`job.completed`, `recording.ready`, …).
    pub fn transition(&self, kind: &str) {
        let labels = TransitionLabels {
            kind: kind.to_owned(),
        };
        self.transitions.get_or_create(&labels).inc();
    }

    /// A recorder could not be started.
    pub fn spawn_failed(&self) {
        self.spawn_failures.inc();
    }

    /// A recorder's exit was committed `latency` after it was observed;
    /// `final_stop_signal` names the last signal of its stop sequence, if
    /// one ended it.
    pub fn exit_committed(&self, latency: Duration, final_stop_signal: Option<&'static str>) {
        self.exit_commit.observe(latency.as_secs_f64());
        if let Some(final_signal) = final_stop_signal {
            self.stops.get_or_create(&StopLabels { final_signal }).inc();
        }
    }

    /// A processing step attempt ended after `elapsed`.
    pub fn step_finished(&self, step: &str, outcome: StepOutcome, elapsed: Duration) {
        let labels = StepLabels {
            step: step.to_owned(),
            outcome,
        };
        self.step_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if outcome == StepOutcome::Failed {
            let labels = StepFailureLabels { step: labels.step };
            self.step_failures.get_or_create(&labels).inc();
        }
    }

    /// A webhook delivery attempt ended.
    pub fn webhook_delivery(&self, outcome: DeliveryOutcome) {
        self.webhook_deliveries
            .get_or_create(&DeliveryLabels { outcome })
            .inc();
    }

    /// A webhook receiver was told, by an `events.gap` delivered or given
    /// up on, that it missed `count` events.
    pub fn webhook_events_missed(&self, count: i64) {
        self.webhook_events_missed
            .inc_by(u64::try_from(count).unwrap_or(0));
    }

    /// A request to `route` (its pattern, or `unmatched`) was answered
    /// with `status` after `elapsed`.
    pub fn http_request(
        &self,
        method: &Method,
        route: &str,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            method: method.into(),
            route: route.to_owned(),
            status: status.as_u16(),
        };
        self.http_requests
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The exposition text: `counts` first, then every family, then the
    /// process's metrics. Reads `/proc/self`, so call it off the runtime's
    /// worker threads.
    pub fn render(&self, counts: ScrapedCounts) -> Result<String, std::fmt::Error> {
        let mut scraped = Registry::default();
        scraped.register_collector(Box::new(counts));
        let mut text = String::new();
        prometheus_text::encode(&mut text, &scraped)?;
        prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(metrics: &Metrics) -> String {
        metrics
            .render(ScrapedCounts::default())
            .expect("rendering into a String cannot fail")
    }

    #[test]
    fn counters_keep_their_names_with_the_total_suffix() {
        let m = Metrics::default();
        m.transition("job.\"x\"");
        m.spawn_failed();
        m.exit_committed(Duration::from_millis(3), Some("SIGKILL"));
        m.webhook_delivery(DeliveryOutcome::GivenUp);
        m.webhook_events_missed(42);
        m.step_finished("transcode", StepOutcome::Failed, Duration::from_secs(700));
        let text = render(&m);
        for line in [
            "# HELP recorderd_transitions_total Job and recording transitions, by kind.",
            "# TYPE recorderd_transitions_total counter",
            "recorderd_transitions_total{kind=\"job.\\\"x\\\"\"} 1",
            "# TYPE recorderd_spawn_failures_total counter",
            "recorderd_spawn_failures_total 1",
            "recorderd_stops_total{final_signal=\"SIGKILL\"} 1",
            "recorderd_webhook_deliveries_total{outcome=\"given_up\"} 1",
            "recorderd_webhook_events_missed_total 42",
            "recorderd_processing_step_failures_total{step=\"transcode\"} 1",
            "# TYPE recorderd_processing_step_seconds histogram",
            "recorderd_processing_step_seconds_bucket{step=\"transcode\",outcome=\"failed\",le=\"600\"} 0",
            "recorderd_processing_step_seconds_bucket{step=\"transcode\",outcome=\"failed\",le=\"1200\"} 1",
            "recorderd_exit_commit_seconds_bucket{le=\"0.0025\"} 0",
            "recorderd_exit_commit_seconds_bucket{le=\"0.005\"} 1",
            "recorderd_exit_commit_seconds_bucket{le=\"+Inf\"} 1",
            "recorderd_exit_commit_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(!text.contains("_total_total"), "{text}");
    }

    #[test]
    fn unlabelled_metrics_are_exposed_before_anything_happens() {
        let text = render(&Metrics::default());
        assert!(
            text.contains("\nrecorderd_spawn_failures_total 0\n"),
            "{text}"
        );
        assert!(
            text.contains("\nrecorderd_exit_commit_seconds_count 0\n"),
            "{text}"
        );
    }

    #[test]
    fn request_methods_outside_the_fixed_set_share_one_series() {
        let m = Metrics::default();
        for method in ["BREW", "PROPFIND", "GET"] {
            let method = Method::from_bytes(method.as_bytes()).expect("a valid method token");
            m.http_request(
                &method,
                "/healthz",
                StatusCode::OK,
                Duration::from_millis(2),
            );
        }
        let text = render(&m);
        let count = |method: &str| {
            let series = format!(
                "recorderd_http_request_seconds_count{{method=\"{method}\",route=\"/healthz\",status=\"200\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .map(str::to_owned)
        };
        assert_eq!(count("other").as_deref(), Some("2"), "{text}");
        assert_eq!(count("GET").as_deref(), Some("1"), "{text}");
        assert!(
            !text.contains("BREW") && !text.contains("PROPFIND"),
            "{text}"
        );
    }

    #[test]
    fn scraped_counts_come_first_as_gauges() {
        let counts = ScrapedCounts {
            jobs: vec![("completed".to_owned(), 3), ("failed".to_owned(), 1)],
            recordings: vec![("ready".to_owned(), 3)],
            recorders_supervised: 2,
            progress: vec![(
                7,
                crate::entity::LiveProgress {
                    bytes_written: 1500,
                    bitrate_kbps: Some(128.5),
                    media_seconds: 12.25,
                    last_data_at: None,
                    updated_at: time::OffsetDateTime::now_utc(),
                },
            )],
            disk_free_bytes: Some(4096),
            retained_bytes: vec![("ffmpeg".to_owned(), 2000)],
        };
        let text = Metrics::default().render(counts).expect("render");
        for series in [
            "recorderd_job_bytes_written{job_id=\"7\"} 1500",
            "recorderd_job_bitrate_kbps{job_id=\"7\"} 128.5",
            "recorderd_job_media_seconds{job_id=\"7\"} 12.25",
            "recorderd_disk_free_bytes 4096",
            "recorderd_retained_bytes{profile=\"ffmpeg\"} 2000",
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
        assert!(
            !text.contains("recorderd_job_seconds_since_data{"),
            "no data yet, no series: {text}"
        );
        let expected = "# HELP recorderd_jobs Jobs by status.\n\
            # TYPE recorderd_jobs gauge\n\
            recorderd_jobs{status=\"completed\"} 3\n\
            recorderd_jobs{status=\"failed\"} 1\n\
            # HELP recorderd_recordings Recordings by status.\n\
            # TYPE recorderd_recordings gauge\n\
            recorderd_recordings{status=\"ready\"} 3\n\
            # HELP recorderd_recorders_supervised Recorder processes this server watches now (children and adopted).\n\
            # TYPE recorderd_recorders_supervised gauge\n\
            recorderd_recorders_supervised 2\n";
        assert!(text.starts_with(expected), "{text}");
    }

    #[test]
    fn process_metrics_describe_this_process() {
        let text = render(&Metrics::default());
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no {name} in\n{text}"))
                .parse()
                .unwrap_or_else(|_| panic!("{name} is not a number in\n{text}"))
        };
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter"),
            "{text}"
        );
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(value("process_resident_memory_bytes") > 1024.0 * 1024.0);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_threads") >= 1.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs_f64();
        let started = value("process_start_time_seconds");
        // This test process started at most an hour ago; a start time off
        // by the boot time or by a factor of the tick rate would not be.
        assert!(
            started <= now + 1.0 && started > now - 3600.0,
            "{started} vs {now}"
        );
    }
}
