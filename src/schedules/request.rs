//! A schedule as a client asks for it, and its validation: what a start
//! would refuse (source, profile, title, duration) is refused the same
//! way, and the timing must be exactly one of a future instant or a cron
//! pattern with its zone.

use serde::Deserialize;
use time::OffsetDateTime;

use super::timing::{Timing, TimingError, whole_seconds};
use crate::entity::ScheduleKind;
use crate::jobs::{JobError, StartRequest};
use crate::profile::Profiles;
use crate::store::schedules::NewSchedule;

/// Body of `POST /api/recordings/schedules/`: `start_at`, or `cron` with
/// `time_zone`; `duration_seconds` always.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CreateSchedule {
    /// What to record, as for a start.
    #[schema(max_length = 4096, example = "https://radio.example/live.mp3")]
    pub source: String,
    /// The title of each recording; defaults to the source, its secrets
    /// redacted.
    #[schema(max_length = 200)]
    pub title: Option<String>,
    /// A profile from the configuration; the default one when absent.
    pub profile: Option<String>,
    /// One-shot: when to start (RFC 3339, in the future).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-01T08:00:00+01:00")]
    pub start_at: Option<OffsetDateTime>,
    /// Recurring: a cron pattern, 5 fields (minute hour day month weekday)
    /// or 6 (a second first).
    #[schema(example = "0 8 * * MON-FRI")]
    pub cron: Option<String>,
    /// Recurring: the IANA zone the pattern is read in.
    #[schema(example = "Europe/Paris")]
    pub time_zone: Option<String>,
    /// How long each recording lasts (at most a week).
    #[schema(minimum = 1, maximum = 604800)]
    #[serde(default, deserialize_with = "whole_seconds_field")]
    pub duration_seconds: Option<i64>,
    /// The names of fields this server does not know, kept only to be
    /// logged.
    #[serde(flatten)]
    #[schema(ignore)]
    pub ignored: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

/// An optional whole number, as `duration_seconds` of a start takes it.
fn whole_seconds_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "crate::jobs::whole_number")] i64);
    Ok(Option::<Whole>::deserialize(d)?.map(|Whole(n)| n))
}

fn invalid(field: &'static str, reason: impl Into<String>) -> JobError {
    JobError::InvalidField {
        field,
        reason: reason.into(),
    }
}

impl CreateSchedule {
    /// Checks every field; `now` is when the schedule is created.
    pub fn validate(
        self,
        profiles: &Profiles,
        now: OffsetDateTime,
    ) -> Result<NewSchedule, JobError> {
        let duration = match self.duration_seconds {
            None => return Err(invalid("duration_seconds", "is required")),
            Some(d) if d <= 0 => {
                return Err(invalid(
                    "duration_seconds",
                    "must be at least 1: each firing records for this long",
                ));
            }
            Some(d) => d,
        };
        // The start each firing will make, checked now as a start would be.
        let start = StartRequest {
            source: self.source.clone(),
            title: self.title.clone(),
            profile: self.profile.clone(),
            duration_seconds: u64::try_from(duration).ok(),
            ignored: Default::default(),
        }
        .validate(profiles)?;
        let cron = self.cron.filter(|c| !c.trim().is_empty());
        let zone = self.time_zone.filter(|z| !z.trim().is_empty());
        let (kind, start_at, cron, zone) = match (self.start_at, cron, zone) {
            (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
                return Err(invalid(
                    "start_at",
                    "give either `start_at` (once) or `cron` with `time_zone` (recurring), not both",
                ));
            }
            (None, None, _) => {
                return Err(invalid(
                    "cron",
                    "give either `start_at` (once) or `cron` with `time_zone` (recurring)",
                ));
            }
            (None, Some(_), None) => {
                return Err(invalid(
                    "time_zone",
                    "is required with `cron`: an IANA zone such as `Europe/Paris` or `UTC`",
                ));
            }
            (Some(at), None, None) => {
                let at = whole_seconds(at.to_offset(time::UtcOffset::UTC));
                if at <= now {
                    return Err(invalid("start_at", "is in the past"));
                }
                (ScheduleKind::Once, Some(at), None, None)
            }
            (None, Some(cron), Some(zone)) => {
                let cron = cron.trim().to_owned();
                let zone = zone.trim().to_owned();
                Timing::cron(&cron, &zone).map_err(|e| match &e {
                    TimingError::BadPattern { .. } => invalid("cron", e.to_string()),
                    TimingError::UnknownZone { .. } => invalid("time_zone", e.to_string()),
                })?;
                (ScheduleKind::Cron, None, Some(cron), Some(zone))
            }
        };
        Ok(NewSchedule {
            title: start.title,
            source: start.source,
            profile: start.profile_name,
            kind,
            start_at,
            cron,
            time_zone: zone,
            duration_seconds: duration,
            now,
        })
    }
}
