//! Which of a schedule's passed slots fire now and which are missed: pure,
//! given the slots not yet settled, the time and the grace.

use std::time::Duration;

use time::OffsetDateTime;

/// How many missed slots are recorded at most after a downtime: enough to
/// see that something was missed, never a flood after a year away.
pub const MAX_MISSED: usize = 10;

/// What to do with a schedule's unsettled slots.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The slot to fire now (on time, or late within the grace).
    pub due: Option<OffsetDateTime>,
    /// Slots to record as missed, oldest first.
    pub missed: Vec<OffsetDateTime>,
}

/// Decides for `slots` (passed and unsettled, oldest first, each at or
/// before `now`): the latest fires when it is at most `grace` old; every
/// other is missed, since starting several recordings of one schedule at
/// once, late, would record the same stream in parallel. At most
/// [`MAX_MISSED`] of the missed ones are kept (the latest).
pub fn plan(slots: &[OffsetDateTime], now: OffsetDateTime, grace: Duration) -> Plan {
    let Some((&latest, earlier)) = slots.split_last() else {
        return Plan::default();
    };
    let late = now - latest;
    let (due, mut missed) = if late <= grace {
        (Some(latest), earlier.to_vec())
    } else {
        (None, slots.to_vec())
    };
    let excess = missed.len().saturating_sub(MAX_MISSED);
    missed.drain(..excess);
    Plan { due, missed }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(300);

    fn base() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a valid instant")
    }

    fn ago(seconds: i64) -> OffsetDateTime {
        base() - time::Duration::seconds(seconds)
    }

    #[test]
    fn nothing_passed_nothing_to_do() {
        assert_eq!(plan(&[], base(), GRACE), Plan::default());
    }

    #[test]
    fn a_slot_on_time_fires() {
        assert_eq!(
            plan(&[base()], base(), GRACE),
            Plan {
                due: Some(base()),
                missed: vec![]
            }
        );
    }

    #[test]
    fn a_slot_missed_within_the_grace_fires_late() {
        assert_eq!(plan(&[ago(300)], base(), GRACE).due, Some(ago(300)));
    }

    #[test]
    fn a_slot_missed_beyond_the_grace_is_recorded_missed() {
        assert_eq!(
            plan(&[ago(301)], base(), GRACE),
            Plan {
                due: None,
                missed: vec![ago(301)]
            }
        );
    }

    #[test]
    fn only_the_latest_of_several_slots_within_the_grace_fires() {
        assert_eq!(
            plan(&[ago(900), ago(200), ago(100)], base(), GRACE),
            Plan {
                due: Some(ago(100)),
                missed: vec![ago(900), ago(200)]
            }
        );
    }

    #[test]
    fn a_long_downtime_records_only_the_latest_missed_slots() {
        let slots: Vec<_> = (0..50).rev().map(|h| ago(3600 * (h + 1))).collect();
        let plan = plan(&slots, base(), GRACE);
        assert_eq!(plan.due, None);
        assert_eq!(plan.missed.len(), MAX_MISSED);
        assert_eq!(plan.missed.last(), Some(&ago(3600)));
        assert_eq!(plan.missed.first(), Some(&ago(3600 * MAX_MISSED as i64)));
    }
}
