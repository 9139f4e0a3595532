//! Prometheus metrics, kept in memory and rendered in the text exposition
//! format at `/metrics`. Counters and histograms only move; job counts by
//! status are read from the database at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// A gauge sample computed at scrape time: name, help, labels, value.
pub type Gauge<'a> = (&'a str, &'a str, Vec<(String, String)>, f64);

/// Label values, in the order of the metric's label names.
type Labels = Vec<String>;

#[derive(Default)]
struct Families {
    counters: BTreeMap<&'static str, BTreeMap<Labels, u64>>,
    histograms: BTreeMap<&'static str, BTreeMap<Labels, Histogram>>,
}

/// Every metric recorderd exports.
#[derive(Default)]
pub struct Metrics {
    families: Mutex<Families>,
}

/// Name, help and label names of each metric.
const DESCRIPTIONS: &[(&str, &str, &[&str])] = &[
    (
        "recorderd_transitions_total",
        "Job and recording transitions, by kind.",
        &["kind"],
    ),
    (
        "recorderd_spawn_failures_total",
        "Recorders that could not be started.",
        &[],
    ),
    (
        "recorderd_stops_total",
        "Recorders ended by a stop sequence, by the last signal it needed.",
        &["final_signal"],
    ),
    (
        "recorderd_exit_commit_seconds",
        "From a recorder's exit being observed to its transition committed.",
        &[],
    ),
    (
        "recorderd_processing_step_seconds",
        "Duration of processing step attempts, by step and outcome.",
        &["step", "outcome"],
    ),
    (
        "recorderd_processing_step_failures_total",
        "Failed processing step attempts, by step.",
        &["step"],
    ),
    (
        "recorderd_webhook_deliveries_total",
        "Webhook delivery attempts, by outcome (delivered, retried, given_up).",
        &["outcome"],
    ),
    (
        "recorderd_http_request_seconds",
        "HTTP request latency, by method, route and status.",
        &["method", "route", "status"],
    ),
];

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Families) -> T) -> T {
        // Counters are plain numbers: a panic mid-update cannot leave them
        // inconsistent, so a poisoned lock is still usable.
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut families)
    }

    pub fn count(&self, name: &'static str, labels: &[&str]) {
        let labels = labels.iter().map(|l| (*l).to_owned()).collect();
        self.with(|f| {
            *f.counters
                .entry(name)
                .or_default()
                .entry(labels)
                .or_default() += 1
        });
    }

    pub fn observe(&self, name: &'static str, labels: &[&str], elapsed: Duration) {
        let labels = labels.iter().map(|l| (*l).to_owned()).collect();
        self.with(|f| {
            f.histograms
                .entry(name)
                .or_default()
                .entry(labels)
                .or_default()
                .observe(elapsed.as_secs_f64())
        });
    }

    /// The exposition text; `gauges` are rendered first (name, help,
    /// labels and value of each sample).
    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let mut out = String::new();
        let mut last_gauge = "";
        for (name, help, labels, value) in gauges {
            if *name != last_gauge {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
                last_gauge = name;
            }
            let _ = writeln!(out, "{name}{} {value}", render_labels(labels));
        }
        self.with(|f| {
            for (name, help, label_names) in DESCRIPTIONS {
                if let Some(series) = f.counters.get(name) {
                    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                    for (values, count) in series {
                        let _ = writeln!(out, "{name}{} {count}", named(label_names, values, None));
                    }
                } else if let Some(series) = f.histograms.get(name) {
                    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
                    for (values, h) in series {
                        for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                            let le = bound.to_string();
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {count}",
                                named(label_names, values, Some(&le))
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            named(label_names, values, Some("+Inf")),
                            h.count
                        );
                        let _ = writeln!(
                            out,
                            "{name}_sum{} {}",
                            named(label_names, values, None),
                            h.sum
                        );
                        let _ = writeln!(
                            out,
                            "{name}_count{} {}",
                            named(label_names, values, None),
                            h.count
                        );
                    }
                } else if label_names.is_empty() {
                    // Unlabelled counters exist from the start, at zero.
                    let kind = if name.ends_with("_total") {
                        "counter"
                    } else {
                        "histogram"
                    };
                    if kind == "counter" {
                        let _ =
                            writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} 0");
                    }
                }
            }
        });
        out
    }
}

fn named(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = names
        .iter()
        .zip(values)
        .map(|(n, v)| ((*n).to_owned(), v.clone()))
        .collect();
    if let Some(le) = le {
        pairs.push(("le".to_owned(), le.to_owned()));
    }
    render_labels(&pairs)
}

fn render_labels(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(n, v)| {
            let escaped = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{n}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let m = Metrics::default();
        m.observe(
            "recorderd_exit_commit_seconds",
            &[],
            Duration::from_millis(3),
        );
        m.count("recorderd_transitions_total", &["job.\"x\""]);
        let text = m.render(&[]);
        assert!(
            text.contains("recorderd_exit_commit_seconds_bucket{le=\"0.0025\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("recorderd_exit_commit_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("recorderd_exit_commit_seconds_bucket{le=\"+Inf\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("recorderd_transitions_total{kind=\"job.\\\"x\\\"\"} 1"),
            "{text}"
        );
        assert!(text.contains("recorderd_spawn_failures_total 0"), "{text}");
    }
}
