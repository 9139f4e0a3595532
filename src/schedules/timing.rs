//! When a schedule's slots fall, in UTC: one instant, or the slots of a
//! cron pattern read in an IANA time zone.
//!
//! Daylight saving time follows the Open Cron Pattern Specification, as
//! croner implements it:
//! - a wall-clock time that does not exist (skipped when clocks go
//!   forward) fires at the first instant after the gap: `30 2 * * *` in
//!   Europe/Paris on the last Sunday of March fires at 03:00 CEST (01:00
//!   UTC), once;
//! - a wall-clock time that happens twice (clocks go back) fires once, at
//!   its first occurrence, for a pattern with fixed hours and minutes; a
//!   pattern with a wildcard or a step in a time field (`*/10 * * * * *`)
//!   keeps its interval through both passes, as elapsed time does.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use time::OffsetDateTime;

/// The longest pattern accepted.
const MAX_PATTERN_LEN: usize = 255;

/// Why a pattern or a zone was refused, said for whoever typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error("`{pattern}` is not a cron pattern: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error(
        "`{zone}` is not an IANA time zone (such as `Europe/Paris`, `America/New_York` or `UTC`)"
    )]
    UnknownZone { zone: String },
}

/// When a schedule fires.
#[derive(Debug, Clone)]
pub enum Timing {
    /// Once, at this instant (whole seconds).
    Once { at: OffsetDateTime },
    /// At each slot of `pattern` in `zone`.
    Cron { pattern: Box<Cron>, zone: Tz },
}

impl Timing {
    /// A cron pattern of 5 fields (minute first) or 6 (second first), read
    /// in the IANA zone `zone`.
    pub fn cron(pattern: &str, zone: &str) -> Result<Self, TimingError> {
        let bad = |reason: String| TimingError::BadPattern {
            pattern: pattern.to_owned(),
            reason,
        };
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(bad(format!("longer than {MAX_PATTERN_LEN} characters")));
        }
        let fields = pattern.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(bad(format!(
                "{fields} fields; give 5 (minute hour day month weekday) or 6 (second first)"
            )));
        }
        let parsed = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(pattern)
            .map_err(|e| bad(e.to_string()))?;
        let zone = Tz::from_str(zone.trim()).map_err(|_| TimingError::UnknownZone {
            zone: zone.to_owned(),
        })?;
        let timing = Self::Cron {
            pattern: Box::new(parsed),
            zone,
        };
        // A pattern that names no real date (`0 0 30 2 *`) never fires.
        if timing.next_after(OffsetDateTime::now_utc()).is_none() {
            return Err(bad("it matches no date".to_owned()));
        }
        Ok(timing)
    }

    /// The first slot strictly after `after`.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            Self::Once { at } => (*at > after).then_some(*at),
            Self::Cron { pattern, zone } => {
                let from = to_zoned(whole_seconds(after), *zone)?;
                pattern
                    .find_next_occurrence(&from, false)
                    .ok()
                    .and_then(|next| from_zoned(&next))
            }
        }
    }

    /// The next `n` slots strictly after `after`, in order.
    pub fn upcoming(&self, after: OffsetDateTime, n: usize) -> Vec<OffsetDateTime> {
        let mut slots = Vec::with_capacity(n);
        let mut cursor = after;
        while slots.len() < n {
            let Some(next) = self.next_after(cursor) else {
                break;
            };
            slots.push(next);
            cursor = next;
        }
        slots
    }

    /// The slots in `(after, until]`, in order: the last `limit` of them
    /// when there are more (after a long downtime only the latest matter,
    /// and a pattern firing every second must not be walked for a year).
    pub fn between(
        &self,
        after: OffsetDateTime,
        until: OffsetDateTime,
        limit: usize,
    ) -> Vec<OffsetDateTime> {
        if limit == 0 || until <= after {
            return Vec::new();
        }
        let start = match self {
            Self::Once { .. } => after,
            // Bounded by a walk backwards from `until`; the slots
            // themselves come from the forward walk, whose DST rules are
            // the ones every other computation here uses.
            Self::Cron { pattern, zone } => match to_zoned(until, *zone) {
                Some(end) => pattern
                    .iter_from(end, croner::Direction::Backward)
                    .take(limit + 1)
                    .last()
                    .and_then(|earliest| from_zoned(&earliest))
                    .map_or(after, |earliest| {
                        after.max(earliest - time::Duration::SECOND)
                    }),
                None => after,
            },
        };
        let mut slots = Vec::new();
        let mut cursor = start;
        while let Some(next) = self.next_after(cursor) {
            if next > until {
                break;
            }
            slots.push(next);
            cursor = next;
        }
        let excess = slots.len().saturating_sub(limit);
        slots.drain(..excess);
        slots
    }
}

/// `at` without its fraction of a second: slots are whole seconds.
pub fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

fn to_zoned(at: OffsetDateTime, zone: Tz) -> Option<DateTime<Tz>> {
    DateTime::<Utc>::from_timestamp(at.unix_timestamp(), at.nanosecond())
        .map(|utc| utc.with_timezone(&zone))
}

fn from_zoned(at: &DateTime<Tz>) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(at.timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> OffsetDateTime {
        OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
            .expect("an RFC 3339 instant")
    }

    fn utc(pattern: &str, zone: &str, after: OffsetDateTime, n: usize) -> Vec<OffsetDateTime> {
        Timing::cron(pattern, zone)
            .expect("a valid pattern")
            .upcoming(after, n)
    }

    #[test]
    fn a_time_skipped_by_spring_forward_fires_once_right_after_the_gap() {
        // Europe/Paris, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
        let slots = utc(
            "0 30 2 * * *",
            "Europe/Paris",
            at("2026-03-27T12:00:00Z"),
            3,
        );
        assert_eq!(
            slots,
            vec![
                at("2026-03-28T01:30:00Z"), // 02:30 CET
                at("2026-03-29T01:00:00Z"), // 03:00 CEST: 02:30 does not exist
                at("2026-03-30T00:30:00Z"), // 02:30 CEST
            ]
        );
    }

    #[test]
    fn a_daily_time_keeps_its_wall_clock_hour_across_the_autumn_change() {
        // Europe/Paris, 2026-10-25: 03:00 CEST becomes 02:00 CET.
        let slots = utc("0 8 * * *", "Europe/Paris", at("2026-10-23T12:00:00Z"), 3);
        assert_eq!(
            slots,
            vec![
                at("2026-10-24T06:00:00Z"), // 08:00 CEST (+2)
                at("2026-10-25T07:00:00Z"), // 08:00 CET (+1)
                at("2026-10-26T07:00:00Z"),
            ]
        );
    }

    #[test]
    fn a_repeated_time_fires_once_at_its_first_occurrence() {
        // 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET).
        let slots = utc("30 2 * * *", "Europe/Paris", at("2026-10-24T12:00:00Z"), 2);
        assert_eq!(
            slots,
            vec![at("2026-10-25T00:30:00Z"), at("2026-10-26T01:30:00Z")]
        );
    }

    #[test]
    fn an_interval_keeps_its_pace_through_the_repeated_hour() {
        // Every 30 minutes through the autumn change: elapsed time, no gap,
        // no double slot.
        let slots = utc(
            "*/30 * * * *",
            "Europe/Paris",
            at("2026-10-24T23:59:00Z"),
            6,
        );
        let expected: Vec<_> = (0..6)
            .map(|i| at("2026-10-25T00:00:00Z") + time::Duration::minutes(30 * i))
            .collect();
        assert_eq!(slots, expected);
    }

    #[test]
    fn seconds_are_allowed_as_a_sixth_field() {
        let slots = utc("*/10 * * * * *", "UTC", at("2026-11-30T12:00:03Z"), 3);
        assert_eq!(
            slots,
            vec![
                at("2026-11-30T12:00:10Z"),
                at("2026-11-30T12:00:20Z"),
                at("2026-11-30T12:00:30Z")
            ]
        );
    }

    #[test]
    fn bad_patterns_and_zones_are_refused_with_what_is_wrong() {
        for pattern in [
            "",
            "* * *",
            "61 * * * *",
            "0 0 30 2 *",
            "* * * * * * *",
            "bogus x y z w",
        ] {
            assert!(
                matches!(
                    Timing::cron(pattern, "UTC"),
                    Err(TimingError::BadPattern { .. })
                ),
                "{pattern:?} was accepted"
            );
        }
        assert_eq!(
            Timing::cron("0 8 * * *", "Mars/Olympus").err(),
            Some(TimingError::UnknownZone {
                zone: "Mars/Olympus".to_owned()
            })
        );
    }

    #[test]
    fn between_keeps_only_the_latest_slots_of_a_long_stretch() {
        let timing = Timing::cron("* * * * * *", "UTC").expect("a valid pattern");
        let until = at("2026-11-30T12:00:00Z");
        let slots = timing.between(until - time::Duration::days(365), until, 3);
        assert_eq!(
            slots,
            vec![
                until - time::Duration::seconds(2),
                until - time::Duration::SECOND,
                until
            ]
        );
        let once = Timing::Once { at: until };
        assert_eq!(
            once.between(until - time::Duration::SECOND, until, 5),
            vec![until]
        );
        assert!(
            once.between(until, until + time::Duration::HOUR, 5)
                .is_empty()
        );
    }
}
