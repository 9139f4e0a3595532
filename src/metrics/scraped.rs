//! What `/metrics` reads when it is scraped: the job and recording counts
//! as stored, the recorders supervised now and their live progress, the
//! recordings' disk and what retention keeps. State, not events: gauges
//! made at each scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

/// What `/metrics` reads from the database and the supervisor when it is
/// scraped: counts that are state, not events.
#[derive(Debug, Default)]
pub struct ScrapedCounts {
    /// Jobs by status, as stored.
    pub jobs: Vec<(String, i64)>,
    /// Recordings by status, as stored.
    pub recordings: Vec<(String, i64)>,
    /// Recorder processes this server watches now.
    pub recorders_supervised: usize,
    /// The live progress of this server's recorders that report it.
    pub progress: Vec<(i32, crate::entity::LiveProgress)>,
    /// Free bytes of the recordings' disk, when readable.
    pub disk_free_bytes: Option<u64>,
    /// Bytes of `ready` recordings kept, per profile.
    pub retained_bytes: Vec<(String, u64)>,
}

impl Collector for ScrapedCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        for (name, help, counts) in [
            ("recorderd_jobs", "Jobs by status.", &self.jobs),
            (
                "recorderd_recordings",
                "Recordings by status.",
                &self.recordings,
            ),
        ] {
            let gauge = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            for (status, n) in counts {
                let labels = StatusLabels {
                    status: status.clone(),
                };
                ConstGauge::new(*n).encode(family.encode_family(&labels)?)?;
            }
        }
        let supervised = ConstGauge::new(self.recorders_supervised);
        supervised.encode(encoder.encode_descriptor(
            "recorderd_recorders_supervised",
            "Recorder processes this server watches now (children and adopted).",
            None,
            supervised.metric_type(),
        )?)?;
        self.encode_storage(&mut encoder)?;
        self.encode_progress(&mut encoder)
    }
}

/// A figure of a job's live progress, as a gauge.
type ProgressFigure = fn(&crate::entity::LiveProgress, time::OffsetDateTime) -> Option<f64>;

impl ScrapedCounts {
    /// The recordings' disk and what retention keeps on it.
    fn encode_storage(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        if let Some(free) = self.disk_free_bytes {
            let gauge = ConstGauge::new(free as f64);
            gauge.encode(encoder.encode_descriptor(
                "recorderd_disk_free_bytes",
                "Free bytes of the filesystem holding the recordings.",
                None,
                gauge.metric_type(),
            )?)?;
        }
        let gauge = ConstGauge::new(0.0f64);
        let mut family = encoder.encode_descriptor(
            "recorderd_retained_bytes",
            "Bytes of ready recordings kept, per profile.",
            None,
            gauge.metric_type(),
        )?;
        for (profile, bytes) in &self.retained_bytes {
            let labels = ProfileLabels {
                profile: profile.clone(),
            };
            ConstGauge::new(*bytes as f64).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// One gauge family per figure of the running jobs' progress, a
    /// series per job.
    fn encode_progress(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let now = time::OffsetDateTime::now_utc();
        let figures: [(&str, &str, ProgressFigure); 4] = [
            (
                "recorderd_job_bytes_written",
                "Bytes the running job's current run has written.",
                |p, _| Some(p.bytes_written as f64),
            ),
            (
                "recorderd_job_bitrate_kbps",
                "Average bitrate of the running job's current run, in kbit/s.",
                |p, _| p.bitrate_kbps,
            ),
            (
                "recorderd_job_media_seconds",
                "Seconds of media the running job's current run has written.",
                |p, _| Some(p.media_seconds),
            ),
            (
                "recorderd_job_seconds_since_data",
                "Seconds since the running job's output last grew.",
                |p, now| {
                    p.last_data_at
                        .map(|at| (now - at).as_seconds_f64().max(0.0))
                },
            ),
        ];
        for (name, help, figure) in figures {
            let gauge = ConstGauge::new(0.0f64);
            let mut family = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            for (job_id, progress) in &self.progress {
                let Some(value) = figure(progress, now) else {
                    continue;
                };
                let labels = JobLabels {
                    job_id: job_id.to_string(),
                };
                ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProfileLabels {
    profile: String,
}

/// One series per running job: at most `--max-jobs` of them, gone with
/// the job.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JobLabels {
    job_id: String,
}
